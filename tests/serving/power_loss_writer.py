"""The writer the power-loss test traces: logs lists and records feedback through the real SQLite
store, and after every call that returned (what the API would acknowledge) writes a marker to
/dev/null, so the trace shows exactly which answers were acknowledged before each disk write.

    python power_loss_writer.py DB N [--relaxed]

``--relaxed`` commits the recommendation log at ``synchronous = NORMAL`` and feedback at ``FULL``,
as the store used to: the test's control run, which must lose acknowledged lists.
"""
from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from serving.store import Recommendation, ShownProduct, open_store
from serving.store.sqlite import SqliteStore
from serving.workflow import request_hash

PRODUCTS = ("SAV_TIME", "PRO_LIFE", "WLT_WMP", "CRD_CARD")


def main(db: Path, n: int, relaxed: bool) -> None:
    if relaxed:
        log = SqliteStore.log_recommendation

        def relaxed_log(self, rec):
            conn = self._conn()
            conn.execute("PRAGMA synchronous = NORMAL")
            try:
                log(self, rec)
            finally:
                conn.execute("PRAGMA synchronous = FULL")

        SqliteStore.log_recommendation = relaxed_log
    marker = os.open("/dev/null", os.O_WRONLY)

    def ack(text: str) -> None:
        os.write(marker, f"lingxi-ack {text}".encode())

    store = open_store(f"sqlite:///{db}")
    ack("ready -")
    t0 = datetime(2025, 7, 1, 2, 0, tzinfo=timezone.utc)
    previous = None
    for i in range(n):
        at = t0 + timedelta(seconds=i)
        shown = tuple(ShownProduct(p, r + 1, 0.5, 50, (), ()) for r, p in enumerate(PRODUCTS))
        rec = Recommendation(f"{i:032X}", f"{i % 7:032X}", "M001", 1, None, "m-1", at, shown)
        store.log_recommendation(rec)
        ack(f"list {rec.recommendation_id}")
        if previous is not None:
            key, items = f"power-{i}", [(PRODUCTS[i % 4], "interested")]
            store.record_feedback(idempotency_key=key, request_hash=request_hash(previous.recommendation_id, "M001", items),
                                  recommendation=previous, manager_id="M001", items=items, recorded_at=at,
                                  caller="manager:M001")
            ack(f"feedback {key}")
        previous = rec
    ack("done -")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), "--relaxed" in sys.argv[3:])
