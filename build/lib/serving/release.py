"""The version a worker answers from: customer snapshot and engine, loaded together, swapped together.

The nightly job publishes everything serving reads under one version id and switches
``versions/CURRENT`` with one rename (``ml.core.versions``, ``ml.engine.publish``). Each worker reads
that pointer at most every ``LINGXI_SNAPSHOT_CHECK_SECONDS`` (a 40-byte file read on the request
that happens to be due), loads a new version off to the side (a background thread by default),
and publishes it with one reference assignment. A request pins the release current when it starts
(``init_app``), so it answers from one version end to end; its response names the version
(``X-Lingxi-Version``). Old arrays are freed when the last request holding them ends.

A data dir with no published version is served as it is (the marts' ``customer_360`` and the
engine over the data dir), reloaded together when the customer snapshot changes; only published
versions guarantee that snapshot, model, table and features belong to one night.

Loading never stops the process: a version whose engine or snapshot fails to load is retried with
exponential backoff (``LINGXI_LOAD_RETRY_SECONDS`` doubling up to ``LINGXI_LOAD_RETRY_MAX_SECONDS``);
meanwhile the previous complete version keeps answering, or requests get 503 with the reason, and
``/readyz`` says what failed and when the next attempt is.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from flask import Flask, g, has_request_context

from ml.core.catalogue import Catalogue
from ml.core.versions import VersionError, current_version, read_manifest, version_dir

from .engine import EngineSlot, load_engine
from .snapshot import Snapshot, SnapshotError, Source, load_snapshot, resolve_source

log = logging.getLogger("lingxi.serving")

VERSION_HEADER = "X-Lingxi-Version"
UNVERSIONED = "unversioned"
# an answer's recorded_at precedes its commit by at most a request's duration: re-push from a margin
CATCH_UP_MARGIN = timedelta(minutes=10)


@dataclass(frozen=True)
class Target:
    """What the data dir currently publishes."""

    version: str
    root: Path                 # a data dir: versions/<id>/, or the data dir itself
    source: Source | None      # the customer snapshot's files
    published: bool


@dataclass(frozen=True)
class Release:
    """One version as loaded by this worker. Never mutated: a new one replaces it."""

    version: str
    root: Path
    published: bool
    snapshot: Snapshot | None
    engine_slot: EngineSlot
    manifest: dict[str, Any]
    loaded_at: datetime
    snapshot_error: str | None = None

    @property
    def complete(self) -> bool:
        return self.snapshot is not None and self.engine_slot.engine is not None

    @property
    def parts(self) -> int:
        return (self.snapshot is not None) + (self.engine_slot.engine is not None)


def resolve_target(data_dir: Path) -> Target:
    """The published version, else the data dir itself (raises ``VersionError``/``SnapshotError``)."""
    version = current_version(data_dir)
    if version is not None:
        root = version_dir(data_dir, version)
        source = resolve_source(root / "marts")
        return Target(version, root, replace(source, version=version) if source else None, True)
    source = resolve_source(Path(data_dir) / "marts")
    return Target(source.version if source else UNVERSIONED, Path(data_dir), source, False)


class LiveEngineSlot:
    """An ``EngineSlot`` look-alike for the feedback pusher: inside a request, the engine of the
    release the request pinned (stage two pushes into the store its re-ranker reads); in the
    background, the engine of the release current at that moment."""

    def __init__(self, manager: "ReleaseManager") -> None:
        self._manager = manager

    @property
    def engine(self):
        if has_request_context() and "lingxi_release" in g:
            release = g.lingxi_release
        else:
            release = self._manager.peek()
        return release.engine_slot.engine if release else None

    @property
    def error(self) -> str | None:
        return self._manager.reason()


class ReleaseManager:
    """Holds the current release; polls the pointer, loads, retries, swaps."""

    def __init__(self, data_dir: Path, catalogue: Catalogue, engine_spec: str | object, *,
                 check_seconds: float = 1.0, background: bool = True, retry_seconds: float = 1.0,
                 retry_max_seconds: float = 60.0,
                 on_new_version: Callable[[Release], None] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.catalogue = catalogue
        self.engine_spec = engine_spec
        self.check_seconds = float(check_seconds)
        self.background = background
        self.retry_seconds = float(retry_seconds)
        self.retry_max_seconds = float(retry_max_seconds)
        self.on_new_version = on_new_version
        self._current: Release | None = None
        self._lock = threading.Lock()          # one load at a time
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._checked = float("-inf")
        self._attempts = 0
        self._retry_at = 0.0
        self.pending: str | None = None         # the version being retried
        self.last_error: str | None = None

    # -- reading ---------------------------------------------------------------------------
    def current(self) -> Release | None:
        """The release for a new request (polls the pointer when a check is due)."""
        now = time.monotonic()
        if now - self._checked >= self.check_seconds:
            self._checked = now
            self._poll(now)
        return self._current

    def peek(self) -> Release | None:
        return self._current

    def reason(self) -> str | None:
        """Why the engine or snapshot is not (yet) available, for 503s."""
        release = self._current
        if release is not None and release.complete:
            return None
        if self.last_error:
            return self.last_error
        if release is None:
            return "loading the published version" if self._lock.locked() else "nothing loaded yet"
        return release.engine_slot.error or release.snapshot_error

    def retry_in(self) -> float | None:
        return max(0.0, self._retry_at - time.monotonic()) if self.pending else None

    def status(self) -> dict[str, Any]:
        release = self._current
        retry = self.retry_in()
        return {
            "ok": release is not None and release.complete,
            "version": release.version if release else None,
            "published": release.published if release else None,
            "loaded_at": release.loaded_at.isoformat() if release else None,
            "pending": self.pending,
            "attempts": self._attempts,
            "retry_in_s": round(retry, 1) if retry is not None else None,
            "error": self.last_error,
        }

    # -- loading ---------------------------------------------------------------------------
    def start(self, wait_seconds: float = 0.0) -> None:
        """Load the published version: in the foreground, or in the background while this call
        waits up to ``wait_seconds`` (a worker that boots within that takes no request before it
        is ready; a slower or failing load leaves the worker up, answering 503 until it is)."""
        self._checked = time.monotonic()
        self._poll(self._checked)
        thread = self._thread
        if thread is not None and wait_seconds > 0:
            thread.join(wait_seconds)

    def _poll(self, now: float) -> None:
        if self._pid != os.getpid():  # forked after creation (gunicorn --preload): a fresh lock
            self._pid, self._lock = os.getpid(), threading.Lock()
        if self._lock.locked():
            return
        try:
            target = resolve_target(self.data_dir)
        except (VersionError, SnapshotError, OSError) as exc:
            self.last_error = str(exc)
            return
        current = self._current
        if current is not None and current.version == target.version and current.complete:
            if self.pending is None:
                self.last_error = None  # e.g. a pointer that was broken for a while is fixed
            return
        if target.version == self.pending and now < self._retry_at:
            return  # backing off
        if self.background:
            self._thread = threading.Thread(target=self.load, args=(target,), name="lingxi-release", daemon=True)
            self._thread.start()
        else:
            self.load(target)

    def load(self, target: Target | None = None) -> bool:
        """Load ``target`` (default: what is published now); True when it was swapped in."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            target = target or resolve_target(self.data_dir)
            return self._load(target)
        except Exception as exc:  # noqa: BLE001 - the worker stays up, says why and retries
            self._failed(target.version if target else "?", f"{type(exc).__name__}: {exc}")
            return False
        finally:
            self._lock.release()

    def _load(self, target: Target) -> bool:
        started = time.perf_counter()
        current = self._current
        same = current is not None and current.version == target.version
        snapshot, snapshot_error = (current.snapshot, None) if same and current.snapshot is not None \
            else self._load_snapshot(target)
        slot = current.engine_slot if same and current.engine_slot.engine is not None \
            else load_engine(self.engine_spec, target.root)
        manifest = current.manifest if same else (read_manifest(target.root) if target.published else {})
        release = Release(target.version, target.root, target.published, snapshot, slot, manifest,
                          datetime.now(timezone.utc), snapshot_error)
        # a new version replaces the current one only if it is at least as complete; a retry of
        # the same version only if it adds a part
        swap = current is None or (release.parts > current.parts if same else release.parts >= current.parts)
        if swap:
            self._current = release  # the atomic swap
        if release.complete:
            self.pending, self._attempts, self.last_error = None, 0, None
            log.info("version %s loaded in %.0f ms", release.version, (time.perf_counter() - started) * 1000,
                     extra={"event": "version_loaded"})
        else:
            self._failed(target.version, slot.error or snapshot_error or "incomplete")
        if swap and not same and self.on_new_version is not None:
            try:
                self.on_new_version(release)
            except Exception as exc:  # noqa: BLE001 - a follow-up must not undo the swap
                log.warning("after loading version %s: %s", release.version, type(exc).__name__,
                            extra={"event": "version_follow_up_failed"})
        return swap

    def _failed(self, version: str, reason: str) -> None:
        """Record the failure and schedule the next attempt (exponential backoff, capped)."""
        self._attempts = self._attempts + 1 if self.pending == version else 1
        self.pending = version
        delay = min(self.retry_max_seconds, self.retry_seconds * 2 ** (self._attempts - 1))
        self._retry_at = time.monotonic() + delay
        self.last_error = f"version {version}: {reason}"
        log.warning("%s (attempt %d, next in %.1f s)", self.last_error, self._attempts, delay,
                    extra={"event": "version_load_failed"})

    def _load_snapshot(self, target: Target) -> tuple[Snapshot | None, str | None]:
        if target.source is None:
            return None, f"no customer_360.parquet under {target.root / 'marts'}"
        try:
            return load_snapshot(target.source, self.catalogue), None
        except SnapshotError as exc:
            return None, str(exc)


def catch_up_feedback(store, pusher, release: Release, batch: int = 500) -> int:
    """After switching to a published version: its online store holds the feedback aggregates of the
    export it was built from; push every customer answered since then into it (absolute counts
    from the feedback store: pushing twice changes nothing)."""
    if not release.published or release.engine_slot.engine is None:
        return 0
    until = (release.manifest.get("feedback_seeded") or {}).get("until")
    since = datetime.fromisoformat(until) - CATCH_UP_MARGIN if until else None
    customers = store.customers_with_feedback_since(since)
    for start in range(0, len(customers), batch):
        pusher.push(customers[start:start + batch])
    if customers:
        log.info("version %s: feedback of %d customers pushed", release.version, len(customers),
                 extra={"event": "feedback_catch_up"})
    return len(customers)


# -- per request -------------------------------------------------------------------------------
def pinned(manager: ReleaseManager) -> Release | None:
    """The release this request started with (outside a request: the current one)."""
    if has_request_context() and "lingxi_release" in g:
        return g.lingxi_release
    return manager.current()


def init_app(app: Flask, manager: ReleaseManager) -> None:
    def pin() -> None:
        g.lingxi_release = manager.current()

    def stamp(response):
        release = g.get("lingxi_release")
        response.headers[VERSION_HEADER] = release.version if release is not None else "none"
        return response

    app.before_request(pin)
    app.after_request(stamp)
