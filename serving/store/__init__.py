"""Feedback store: ``open_store(url)`` for ``sqlite:///path`` or ``postgresql://...``."""
from __future__ import annotations

from pathlib import Path

from .base import SqlStore, StoreUnavailable, utc
from .records import FeedbackResult, FeedbackRow, Recommendation, ShadowList, ShownProduct, row_key, scoped_key

__all__ = ["FeedbackResult", "FeedbackRow", "Recommendation", "ShownProduct", "SqlStore", "StoreUnavailable",
           "ShadowList", "open_store", "redact", "row_key", "scoped_key", "utc"]


def open_store(url: str, *, create: bool = True, timezone: str | None = None, connect_timeout: float = 5.0,
               timeout: float = 10.0) -> SqlStore:
    """Open the store named by ``url``; ``create`` makes the schema now (else at the first connection,
    so a server can start while the database is down). ``timezone`` is the bank's, for the
    dashboard's daily counts (``None``: keep the store's). ``connect_timeout`` bounds a PostgreSQL
    connect, ``timeout`` a statement (PostgreSQL ``statement_timeout``, SQLite ``busy_timeout``)."""
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteStore

        path = url[len("sqlite:///"):]
        if not path or path == ":memory:":
            raise ValueError("an in-memory SQLite store cannot be shared between connections")
        store: SqlStore = SqliteStore(Path(path), busy_timeout_ms=int(timeout * 1000))
    elif url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        store = PostgresStore(url, connect_timeout=max(1, round(connect_timeout)),
                              statement_timeout_ms=int(timeout * 1000))
    else:
        raise ValueError(f"unsupported feedback store URL scheme: {redact(url)}")
    store.timezone = timezone
    if create:
        store.init_schema(timezone)
    return store


def redact(url: str) -> str:
    """The URL without credentials, for logs and /readyz."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<invalid url>"
    if "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]
    return f"{scheme}://{rest.split('?', 1)[0]}"
