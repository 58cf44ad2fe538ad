"""The audit log: every read of a customer by a person, and its export.

Every request of a manager, an admin, or the CRM acting for a manager that names or returns a
customer (lookup, stage one, a logged list, stage two, feedback, segment pages, cold-start
targets) adds one row per customer to ``customer_reads`` in the feedback store: who (token id and
name), role, the manager acted for, when, which customer, which endpoint (the route template) and
the answer's status. Refused attempts are recorded too (a 404 for a customer outside the book is
how cross-book probing shows up). A successful read is only answered once it is recorded: if the
store cannot take the rows, the answer becomes 503 ``audit_unavailable``.

Export::

    python -m serving.audit export --since 2025-07-01 [--until 2025-08-01] --out reads.csv

``--since``/``--until`` are UTC dates or ISO date-times (``until`` exclusive); the store is
``LINGXI_FEEDBACK_DB_URL`` (default the data dir's SQLite file) or ``--db-url``.
"""
from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from flask import Flask, current_app, g, jsonify, request

from .errors import error_body
from .store.audit import COLUMNS, CustomerRead, iter_reads, record_reads

log = logging.getLogger("lingxi.serving")


def note(customer_ids: Iterable[str]) -> None:
    """Mark customers this request reads (recorded when the answer is sent)."""
    g.setdefault("audit_customers", []).extend(customer_ids)


def _record(response):
    principal = g.get("principal")
    customers = g.get("audit_customers")
    if principal is None or not customers:
        return response
    scope = g.get("scope")
    services = current_app.extensions["lingxi"]
    rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    now = services.clock()
    reads = [CustomerRead(now, principal.token_id, principal.name, principal.role,
                          scope.acting_manager if scope is not None else None, customer_id, request.method, rule,
                          response.status_code, g.get("request_id"))
             for customer_id in dict.fromkeys(customers)]
    try:
        record_reads(services.store, reads)
    except Exception as exc:  # noqa: BLE001 - any store failure: do not hand out an unrecorded read
        log.error("audit rows not recorded: %s", type(exc).__name__, extra={"event": "audit_failed"})
        if response.status_code < 400:
            failed = jsonify(error_body("audit_unavailable", "the read could not be recorded in the audit log"))
            failed.status_code = 503
            return failed
    return response


def init_app(app: Flask) -> None:
    """Register after the request log, so that the log shows the final status."""
    app.after_request(_record)


# -- export ------------------------------------------------------------------------------------
def _moment(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def export_csv(store, out: Path, since: datetime, until: datetime | None = None) -> int:
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
    from . import config as serving_config
    from .store import open_store

    parser = argparse.ArgumentParser(prog="python -m serving.audit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write the customer reads of a period as CSV")
    export.add_argument("--since", required=True, help="UTC date or ISO date-time (inclusive)")
    export.add_argument("--until", default=None, help="UTC date or ISO date-time (exclusive)")
    export.add_argument("--out", type=Path, required=True)
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
