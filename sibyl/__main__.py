from sibyl.cli import main
import sys

sys.exit(main())
