"""SQLite backend: WAL journal with ``synchronous=FULL`` (every commit, the recommendation log's as
well as feedback's, is flushed to disk before the API answers; ``NORMAL`` would only flush at
checkpoints and lose the last commits with the machine), ``busy_timeout`` for the other gunicorn
workers, ``BEGIN IMMEDIATE`` for writes (writers are serialised, so sequence numbers follow commit
order), one connection per thread. Timestamps are stored as fixed-width UTC text
(``YYYY-MM-DD HH:MM:SS.ffffff``), which sorts and compares correctly as text."""
from __future__ import annotations

import fcntl
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .base import SqlStore, StoreUnavailable, utc
from .schema import SQLITE, ddl
from .schema import migrations as schema_migrations

_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

DDL = ddl(SQLITE)


class SqliteStore(SqlStore):
    backend = "sqlite"
    ddl = DDL
    migrations = schema_migrations(SQLITE)

    def __init__(self, path: Path, busy_timeout_ms: int = 10_000) -> None:
        super().__init__()
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout_ms / 1000,
                               check_same_thread=True)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        mode = self._enable_wal(conn)
        if mode.lower() != "wal":
            raise RuntimeError(f"SQLite refused WAL mode ({mode}) for {self.path}")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.create_function("lingxi_local_day", 2, _local_day, deterministic=True)
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> str:
        """Switch to WAL, retrying: two processes switching a new database at once can deadlock on
        the lock upgrade, and SQLite then fails one at once instead of calling the busy handler
        (gunicorn workers starting together on a fresh data dir)."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _ts_in(self, value: datetime) -> str:
        return utc(value).strftime(_FORMAT)

    def _ts_out(self, value: Any) -> datetime:
        return datetime.strptime(value, _FORMAT).replace(tzinfo=timezone.utc)

    def _day_sql(self, column: str, timezone: str) -> str:
        return f"lingxi_local_day({column}, '{timezone}')"

    @contextmanager
    def push_lock(self, timeout: float = 5.0) -> Iterator[None]:
        # a lock file next to the database: SQLite is one machine's store, so its workers are too
        with open(self.path.with_name(self.path.name + ".push-lock"), "a+b") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"online-store push lock busy for {timeout:g} s") from None
                    time.sleep(0.005)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            self._discard()
            if "locked" in str(exc) or "busy" in str(exc):  # another writer held it past busy_timeout
                raise StoreUnavailable("the sqlite feedback store is busy") from exc
            raise
        except sqlite3.Error:
            self._discard()
            raise
        try:
            yield conn.cursor()
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                self._discard()
            raise

    @contextmanager
    def read_snapshot(self) -> Iterator[sqlite3.Cursor]:
        conn = self._connect()  # a dedicated connection: a long export must not hold a request's
        try:
            conn.execute("BEGIN")  # in WAL mode a read transaction sees one consistent snapshot
            yield conn.cursor()
            conn.execute("COMMIT")
        finally:
            conn.close()


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local_day(value: str | None, zone: str) -> str | None:
    """SQL ``lingxi_local_day(ts, zone)``: the local date of a stored UTC timestamp."""
    if value is None:
        return None
    return datetime.strptime(value, _FORMAT).replace(tzinfo=timezone.utc).astimezone(_zone(zone)).date().isoformat()
