"""Feedback to the online store: each customer's aggregates, pushed off the request path.

A committed feedback request marks its customer; a thread in each worker process pushes the
marked customers every ``LINGXI_PUSH_INTERVAL_SECONDS`` (default 0.5) in one engine call. A push
carries *all* of those customers' committed feedback, read from the store (the source of truth,
as for the nightly ``customer_feedback`` source), and the engine sets their online aggregates to
its counts. Absolute counts make a push idempotent, so the workers push independently with no
read-modify-write and no lost increments; batching makes one Feast push (one online-store
commit) per interval instead of one per request — a push costs ~20 ms of CPU and a synchronous
commit, which at 200 feedback writes a second would not fit in two cores.

Stage two pushes its customer first (``sync``): the re-ranker reads the online aggregates and
must see the answers it re-ranks on. Suppressions never wait for a push: serving reads them from
the feedback store.

Best effort: a failed push is logged, the feedback itself is committed, the customer's next push
carries it, and the nightly export rebuilds every aggregate. A process killed mid-interval loses
only its pending pushes, for the same reasons. Interval 0 pushes inside the request (tests).
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Iterable

from .engine import EngineSlot
from .store import SqlStore

log = logging.getLogger("lingxi.serving")


class FeedbackPusher:
    def __init__(self, store: SqlStore, engine_slot: EngineSlot, interval_seconds: float = 0.5) -> None:
        self.store = store
        self.engine_slot = engine_slot
        self.interval = float(interval_seconds)
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def submit(self, customer_ids: Iterable[str]) -> None:
        """These customers have new committed feedback: push them (now, or at the next interval)."""
        if self.interval <= 0:
            self.push(sorted(set(customer_ids)))
            return
        with self._lock:
            self._pending.update(customer_ids)
            if self._thread is None or self._pid != os.getpid():  # started lazily, in the worker process
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="lingxi-feedback-push", daemon=True)
                self._thread.start()
                atexit.register(self.flush)

    def sync(self, customer_id: str) -> bool:
        """Push one customer now (its pending push, if any, is done by this one)."""
        with self._lock:
            self._pending.discard(customer_id)
        return self.push([customer_id])

    def flush(self) -> bool:
        with self._lock:
            batch, self._pending = sorted(self._pending), set()
        return self.push(batch) if batch else True

    def push(self, customer_ids: list[str]) -> bool:
        engine = self.engine_slot.engine
        if engine is None or not customer_ids:
            return False
        try:
            rows = self.store.customer_feedback(customer_ids)
            engine.push_feedback([r.as_dict() for r in rows])
            return True
        except Exception as exc:  # noqa: BLE001 - a failing online store must not fail serving
            log.warning("online store push failed: %s", type(exc).__name__,
                        extra={"event": "push_failed"})
            return False

    def _run(self) -> None:
        stop = threading.Event()
        while not stop.wait(self.interval):
            self.flush()
