"""CLI: python -m ml.datagen --customers N --seed S --out DIR [--oracle-out DIR]."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ml.core.config import customers_for_scale
from ml.datagen.generate import generate, manifest_matches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.datagen", description=__doc__)
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--customers", type=int, help="number of customers")
    size.add_argument("--scale", help="test (20k), demo (100k), full (1,108,828) or a number")
    parser.add_argument("--seed", type=int, default=7, help="generator seed: the same seed and size give the same bank")
    parser.add_argument("--out", type=Path, default=Path("data/raw"), help="raw tables folder")
    parser.add_argument("--oracle-out", type=Path, default=None,
                        help="oracle folder (default: <out>/../oracle; never inside --out)")
    parser.add_argument("--workers", type=int, default=2, help="processes generating customer chunks in parallel")
    parser.add_argument("--reuse", action="store_true", help="do nothing if --out already holds this size and seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    customers = args.customers if args.customers is not None else customers_for_scale(args.scale)
    oracle_out = args.oracle_out or args.out.parent / "oracle"
    if args.reuse and manifest_matches(args.out, customers, args.seed):
        print(f"reusing {args.out} ({customers} customers, seed {args.seed})", file=sys.stderr)
        return 0
    manifest = generate(customers, args.seed, args.out, oracle_out, workers=args.workers, progress=not args.quiet)
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
