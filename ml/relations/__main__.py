"""CLI: python -m ml.relations --holdings PATH [--format csv|parquet] --out PATH.

Reads any holdings table with (customer id, product id[, opened at]) rows — or ``--events`` for
a raw event log as in docs/data_contract.md — and writes one row per product pair to ``--out``
(Parquet or CSV by extension). A summary of the labelled pairs goes to stderr.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ml.core.catalogue import CATALOGUE_PATH, load_catalogue
from ml.relations.compute import RelationParams, compute_relations
from ml.relations.graph import write_table
from ml.relations.holdings import (
    FORMATS,
    detect_format,
    holdings_from_events,
    load_holdings,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.relations", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--holdings", type=Path, help="holdings table (file or folder of Parquet parts)")
    source.add_argument("--events", type=Path, help="raw events (Parquet file or folder); holdings derived")
    parser.add_argument("--before", help="with --events: holdings as of this date (events strictly before it)")
    parser.add_argument("--format", choices=FORMATS, help="input format (default: from the extension)")
    parser.add_argument("--out", type=Path, required=True, help="output .parquet or .csv")
    parser.add_argument("--catalogue", type=Path, default=CATALOGUE_PATH, help="product catalogue CSV")
    parser.add_argument("--customer-col", default="customer_id", help="customer id column of the input")
    parser.add_argument("--product-col", default="product_id", help="product id column of the input")
    parser.add_argument("--time-col", default="opened_at", help="opening time column, if any")
    defaults = RelationParams()
    parser.add_argument("--window-days", type=int, default=defaults.window_days,
                        help="co-adoption: days after opening one product within which opening the other counts "
                             "(needs --time-col)")
    parser.add_argument("--min-holders", type=int, default=defaults.min_holders,
                        help="pairs where either product has fewer holders stay neutral")
    parser.add_argument("--fdr", type=float, default=defaults.fdr,
                        help="false discovery rate of the Benjamini-Hochberg correction over all the run's tests")
    parser.add_argument("--quiet", action="store_true", help="no summary of the labels on stderr")
    args = parser.parse_args(argv)

    try:
        detect_format(args.out)  # fail before the work, not after
        if args.events is not None:
            holdings = holdings_from_events(args.events, args.before)
        else:
            holdings = load_holdings(args.holdings, args.format, customer_col=args.customer_col,
                                     product_col=args.product_col, time_col=args.time_col)
        params = RelationParams(window_days=args.window_days, min_holders=args.min_holders, fdr=args.fdr)
        table = compute_relations(holdings, load_catalogue(args.catalogue), params)
        write_table(table, args.out)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(summary(table), file=sys.stderr)
    return 0


def summary(table) -> str:
    counts = table["relation"].value_counts().to_dict()
    lines = [f"{len(table)} pairs over {int(table['n_customers'].iloc[0]) if len(table) else 0} customers: "
             + ", ".join(f"{k} {counts.get(k, 0)}" for k in ("complement", "substitute", "neutral"))]
    labelled = table[table["relation"] != "neutral"].sort_values(["relation", "strength"], ascending=[True, False])
    for row in labelled.itertuples():
        lines.append(f"  {row.relation:<10} {row.product_a} ~ {row.product_b}  strength {row.strength:.2f}  "
                     f"lift {row.lift:.2f}  n_ab {row.n_ab}  {row.evidence} {row.direction}".rstrip())
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
