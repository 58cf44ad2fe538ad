"""Analyse a new product from its definition: conflicts, target customers, uptake forecast.

    python -m ml.cold_start --definition product.json [--n 20] [--assumptions a.json] [--scorer model|rule]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ml.cold_start.analyser import ColdStartAnalyser
from ml.core.config import Paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.cold_start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--definition", type=Path, required=True, help="the product as JSON (catalogue columns)")
    parser.add_argument("--n", type=int, default=20, help="how many target customers to list")
    parser.add_argument("--assumptions", type=Path, default=None, help="JSON overriding forecast assumptions")
    parser.add_argument("--scorer", choices=["model", "rule"], default="model",
                        help="rank targets by the propensity model or by the rule-based match score")
    args = parser.parse_args(argv)
    definition = json.loads(args.definition.read_text())
    assumptions = json.loads(args.assumptions.read_text()) if args.assumptions else None
    result = ColdStartAnalyser.from_paths(Paths.from_env()).report(definition, args.n, assumptions, args.scorer)
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
