"""List, or add as pending, every Italian text of the corpus that has no English entry yet.

    python scripts/translations_skeleton.py [--corpus corpus] [--write [--prune]] [--show]

Without --write it only reports (exit 1 when a text is missing or an entry is stale); --write appends the
missing texts to corpus/translations/en/<document>.toml with en = "" and status = "pending", to be filled in.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from retrieval.corpus import load_corpus
from retrieval.translations import Translations, write_skeleton


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("corpus"))
    parser.add_argument("--translations", type=Path, default=None, help="default: CORPUS/translations/en")
    parser.add_argument("--write", action="store_true", help="append missing texts as pending entries")
    parser.add_argument("--prune", action="store_true", help="with --write: drop stale and orphaned entries")
    parser.add_argument("--show", action="store_true", help="print each missing or stale text")
    args = parser.parse_args(argv)
    folder = args.translations or args.corpus / "translations" / "en"
    records = load_corpus(args.corpus).chunks
    translations = Translations.load(folder)
    coverage = translations.coverage(records)
    words = sum(len(n.it.split()) for n in coverage.needed)
    print(f"needed {len(coverage.needed)} texts ({words} Italian words); approved "
          f"{len(coverage.needed) - len(coverage.missing)}; missing {len(coverage.missing)}; "
          f"stale {len(coverage.stale)}; orphaned {len(coverage.orphaned)}; pending {len(coverage.pending)}")
    if args.show:
        for need in coverage.missing:
            print(f"missing\t{need.passage}\t{need.source_hash}\t{need.it}")
        for entry in coverage.stale:
            print(f"stale\t{entry.passage}\t{entry.source_hash}\t{entry.it}")
    if args.write:
        for name, count in write_skeleton(translations, records, folder, prune=args.prune).items():
            print(f"{folder / name}: {count:+d} entries")
        return 0
    return 0 if coverage.complete else 1


if __name__ == "__main__":
    sys.exit(main())
