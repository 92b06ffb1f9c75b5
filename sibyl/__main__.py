import sys

from sibyl.cli import main

sys.exit(main())
