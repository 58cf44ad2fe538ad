"""Feedback to the online store: each customer's aggregates, pushed off the request path.

A committed feedback request marks its customer; a thread in each worker process pushes the
marked customers every ``LINGXI_PUSH_INTERVAL_SECONDS`` (default 0.5) in one engine call. A push
carries *all* of those customers' committed feedback, read from the store (the source of truth,
as for the nightly ``customer_feedback`` source), and the engine sets their online aggregates to
its counts. Absolute counts make a push idempotent, so there is no read-modify-write of counts and
no lost increment; batching makes one Feast push (one online-store commit) per interval instead of
one per request — a push costs ~20 ms of CPU and a synchronous commit, which at 200 feedback
writes a second would not fit in two cores.

**Ordered across workers.** Two workers can push the same customer: the one that read fewer answers
must not land last. Each push reads the store and writes the online store under the store's
``push_lock`` (one lock for every worker of the deployment), so pushes land in the order of their
reads; and the online store itself keeps the row that counts more answers, then the later last
answer (``ml.features.online``), so no older count overwrites a newer one even without the lock
(e.g. a nightly materialisation).

**Retried, bounded.** A failed push keeps its customers: they are retried with the next pushes,
after 1, 2, 4, ... x ``retry_seconds`` (at least the interval), up to ``LINGXI_PUSH_MAX_ATTEMPTS``
attempts; each failure is logged (``push_failed``) and giving up is logged as an error
(``push_dropped``). A retry reads the store again, so it pushes the current answers, never the
failed batch's. After giving up, the customer's next answer, or the nightly export, brings the
aggregates back. A process killed mid-interval loses only its pending pushes, for the same
reasons. Stage two pushes its customer first (``sync``): the re-ranker reads the online aggregates
and must see the answers it re-ranks on. Suppressions never wait for a push: serving reads them
from the feedback store. Interval 0 pushes inside the request (tests); retries then run on the
thread.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from .engine import EngineSlot
from .store import SqlStore

log = logging.getLogger("lingxi.serving")


class FeedbackPusher:
    def __init__(self, store: SqlStore, engine_slot: EngineSlot, interval_seconds: float = 0.5,
                 max_attempts: int = 8, retry_seconds: float | None = None,
                 clock: Callable[[], float] = time.monotonic, background: bool = True) -> None:
        self.store = store
        self.engine_slot = engine_slot
        self.interval = float(interval_seconds)
        self.max_attempts = max(1, int(max_attempts))
        self.retry_seconds = float(retry_seconds if retry_seconds is not None else max(self.interval, 0.5))
        self.clock = clock
        self.background = background  # False: only explicit flush() pushes the pending and the retries (tests)
        self._pending: set[str] = set()
        self._retry: dict[str, tuple[int, float]] = {}  # customer -> (failed attempts, due time)
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
            self._start()

    def sync(self, customer_id: str) -> bool:
        """Push one customer now (its pending push, if any, is done by this one)."""
        with self._lock:
            self._pending.discard(customer_id)
        return self.push([customer_id])

    def flush(self) -> bool:
        """Push the pending customers and the retries that are due."""
        now = self.clock()
        with self._lock:
            due = {c for c, (_, at) in self._retry.items() if at <= now}
            batch, self._pending = sorted(self._pending | due), set()
        return self.push(batch) if batch else True

    def retrying(self) -> dict[str, int]:
        """Customers waiting for a retry -> failed attempts so far."""
        with self._lock:
            return {c: attempts for c, (attempts, _) in self._retry.items()}

    def push(self, customer_ids: list[str]) -> bool:
        if not customer_ids:
            return False
        engine = self.engine_slot.engine
        try:
            if engine is None:
                raise RuntimeError("the engine is not loaded")
            with self.store.push_lock():  # read and write in one step, for every worker
                rows = self.store.customer_feedback(customer_ids)
                engine.push_feedback([r.as_dict() for r in rows])
        except Exception as exc:  # noqa: BLE001 - a failing online store must not fail serving
            self._failed(customer_ids, exc)
            return False
        with self._lock:
            for customer_id in customer_ids:
                self._retry.pop(customer_id, None)
        return True

    def _failed(self, customer_ids: list[str], exc: Exception) -> None:
        now, dropped, attempts = self.clock(), [], 0
        with self._lock:
            for customer_id in customer_ids:
                attempts = self._retry.get(customer_id, (0, 0.0))[0] + 1
                if attempts >= self.max_attempts:
                    self._retry.pop(customer_id, None)
                    dropped.append(customer_id)
                else:
                    self._retry[customer_id] = (attempts, now + self.retry_seconds * 2 ** (attempts - 1))
            if len(dropped) < len(customer_ids):
                self._start()
        log.warning("online store push failed (%s) for %d customer(s); attempt %d of %d",
                    type(exc).__name__, len(customer_ids), attempts, self.max_attempts,
                    extra={"event": "push_failed"})
        if dropped:
            log.error("online store push given up after %d attempts for %d customer(s); their next answer or"
                      " the nightly export brings them back", self.max_attempts, len(dropped),
                      extra={"event": "push_dropped"})

    def _start(self) -> None:
        """Start the pushing thread in this process (lazily: gunicorn forks workers); under ``_lock``."""
        if self.background and (self._thread is None or self._pid != os.getpid()):
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="lingxi-feedback-push", daemon=True)
            self._thread.start()
            atexit.register(self.flush)

    def _run(self) -> None:
        stop = threading.Event()
        tick = min(self.interval, self.retry_seconds) if self.interval > 0 else self.retry_seconds
        while not stop.wait(tick):
            self.flush()
