"""Export the audit log of customer reads (``serving.audit_log`` records them) as CSV.

    python -m serving.audit export --since 2025-07-01 [--until 2025-08-01] --out reads.csv

``--since``/``--until`` are UTC dates or ISO date-times (``until`` exclusive); the store is
``LINGXI_FEEDBACK_DB_URL`` (default the data dir's SQLite file) or ``--db-url``. One row per
customer read: read_at (UTC), token id and name, role, the manager acted for, customer, method,
endpoint (route template), status, request id.
"""
from __future__ import annotations

import argparse
import csv
import sys
from datetime import datetime, timezone
from pathlib import Path

from . import config as serving_config
from .store import SqlStore, open_store
from .store.audit import COLUMNS, iter_reads


def _moment(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def export_csv(store: SqlStore, out: Path, since: datetime, until: datetime | None = None) -> int:
    """Write the reads of [since, until) to ``out`` (CSV with a header, UTC ISO times); the row count."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    n = 0
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for batch in iter_reads(store, since, until):
            for read in batch:
                writer.writerow([read.read_at.isoformat().replace("+00:00", "Z"), read.token_id, read.token_name,
                                 read.role, read.acting_manager_id or "", read.customer_id, read.method,
                                 read.endpoint, read.status, read.request_id or ""])
            n += len(batch)
    tmp.replace(out)
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.audit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write the customer reads of a period as CSV")
    export.add_argument("--since", required=True, help="UTC date or ISO date-time (inclusive)")
    export.add_argument("--until", default=None, help="UTC date or ISO date-time (exclusive)")
    export.add_argument("--out", type=Path, required=True, help="the CSV file to write")
    export.add_argument("--db-url", default=None, help="feedback store URL (default LINGXI_FEEDBACK_DB_URL)")
    args = parser.parse_args(argv)
    try:
        since, until = _moment(args.since), _moment(args.until) if args.until else None
    except ValueError:
        print("error: --since/--until must be ISO dates or date-times", file=sys.stderr)
        return 2
    url = args.db_url or serving_config.finalise(serving_config.from_env())["LINGXI_FEEDBACK_DB_URL"]
    store = open_store(url)
    try:
        n = export_csv(store, args.out, since, until)
    finally:
        store.close()
    print(f"{n} customer reads written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
