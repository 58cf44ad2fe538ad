"""The feedback store's tables, written once for both dialects (SQLite and PostgreSQL).

Only two things differ between the engines: the timestamp type (SQLite keeps UTC text, PostgreSQL
``TIMESTAMPTZ``) and the auto-increment key of the append-only ``feedback``, ``customer_reads`` and
``recommendation_order`` tables.

``recommendation_order`` gives each logged list an increasing number (the export's watermark; a
list's ``created_at`` comes from the worker's clock, so it cannot order commits). The
``dashboard_*`` tables are the dashboard's daily counts (days in the bank's time zone, kept in
``dashboard_state``), maintained in the same transaction as each write (``serving.store.dashboard``);
``manager_id`` there is ``''`` for a list logged without a manager.

``recommendation_lists.arm`` names who served a list (``champion``, ``challenger``, ``control``;
null before arms existed) and ``recommendation_shadow`` keeps the challenger's list for a request
it did not serve (logged, never shown). Databases older than a change are brought up to date by
``MIGRATIONS`` (schema version -> statements), applied once when a store first connects.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Dialect:
    timestamp: str  # the column type of every timestamp
    sequence: str   # the feedback table's increasing row key


SQLITE = Dialect(timestamp="TEXT", sequence="INTEGER PRIMARY KEY AUTOINCREMENT")
POSTGRES = Dialect(timestamp="TIMESTAMPTZ", sequence="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")


def ddl(dialect: Dialect) -> tuple[str, ...]:
    """The ``CREATE ... IF NOT EXISTS`` statements, in dependency order."""
    ts, seq = dialect.timestamp, dialect.sequence
    return (
        "CREATE TABLE IF NOT EXISTS lingxi_schema (version INTEGER NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS recommendation_lists (
        recommendation_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        manager_id TEXT,
        stage INTEGER NOT NULL CHECK (stage IN (1, 2)),
        parent_recommendation_id TEXT REFERENCES recommendation_lists (recommendation_id),
        model_version TEXT NOT NULL,
        created_at {ts} NOT NULL,
        arm TEXT)""",
        "CREATE INDEX IF NOT EXISTS recommendation_lists_created ON recommendation_lists (created_at)",
        "CREATE INDEX IF NOT EXISTS recommendation_lists_customer ON recommendation_lists (customer_id)",
        """CREATE TABLE IF NOT EXISTS recommendation_items (
        recommendation_id TEXT NOT NULL REFERENCES recommendation_lists (recommendation_id),
        product_id TEXT NOT NULL,
        rank INTEGER NOT NULL,
        score DOUBLE PRECISION NOT NULL,
        match_score INTEGER NOT NULL,
        reasons TEXT NOT NULL,
        tags TEXT NOT NULL,
        PRIMARY KEY (recommendation_id, product_id))""",
        f"""CREATE TABLE IF NOT EXISTS feedback_requests (
        idempotency_key TEXT PRIMARY KEY,
        request_hash TEXT NOT NULL,
        recommendation_id TEXT NOT NULL REFERENCES recommendation_lists (recommendation_id),
        manager_id TEXT NOT NULL,
        recorded_at {ts} NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS feedback (
        seq {seq},
        feedback_id TEXT NOT NULL UNIQUE,
        recommendation_id TEXT NOT NULL REFERENCES recommendation_lists (recommendation_id),
        customer_id TEXT NOT NULL,
        product_id TEXT NOT NULL,
        manager_id TEXT NOT NULL,
        response TEXT NOT NULL CHECK (response IN ('interested', 'not_interested', 'already_owns')),
        recorded_at {ts} NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        request_key TEXT NOT NULL REFERENCES feedback_requests (idempotency_key),
        UNIQUE (request_key, product_id))""",
        "CREATE INDEX IF NOT EXISTS feedback_customer ON feedback (customer_id, product_id, recorded_at)",
        "CREATE INDEX IF NOT EXISTS feedback_recommendation ON feedback (recommendation_id, product_id)",
        "CREATE INDEX IF NOT EXISTS feedback_recorded ON feedback (recorded_at)",
        # the audit log: one row per customer a person's request read (serving.audit)
        f"""CREATE TABLE IF NOT EXISTS customer_reads (
        seq {seq},
        read_at {ts} NOT NULL,
        token_id TEXT NOT NULL,
        token_name TEXT NOT NULL,
        role TEXT NOT NULL,
        acting_manager_id TEXT,
        customer_id TEXT NOT NULL,
        method TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        status INTEGER NOT NULL,
        request_id TEXT)""",
        "CREATE INDEX IF NOT EXISTS customer_reads_read_at ON customer_reads (read_at)",
        "CREATE INDEX IF NOT EXISTS customer_reads_customer ON customer_reads (customer_id, read_at)",
        f"""CREATE TABLE IF NOT EXISTS recommendation_order (
        seq {seq},
        recommendation_id TEXT NOT NULL UNIQUE REFERENCES recommendation_lists (recommendation_id))""",
        "CREATE TABLE IF NOT EXISTS dashboard_state (timezone TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS recommendation_shadow (
        recommendation_id TEXT PRIMARY KEY REFERENCES recommendation_lists (recommendation_id),
        arm TEXT NOT NULL,
        model_version TEXT NOT NULL,
        products TEXT NOT NULL,
        created_at {ts} NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS dashboard_items (
        day TEXT NOT NULL, stage INTEGER NOT NULL, manager_id TEXT NOT NULL, product_id TEXT NOT NULL,
        shown BIGINT NOT NULL, judged BIGINT NOT NULL, interested BIGINT NOT NULL,
        not_interested BIGINT NOT NULL, already_owns BIGINT NOT NULL,
        PRIMARY KEY (day, stage, manager_id, product_id))""",
        """CREATE TABLE IF NOT EXISTS dashboard_lists (
        day TEXT NOT NULL, stage INTEGER NOT NULL, manager_id TEXT NOT NULL,
        lists BIGINT NOT NULL, judged BIGINT NOT NULL, with_interest BIGINT NOT NULL,
        PRIMARY KEY (day, stage, manager_id))""",
        """CREATE TABLE IF NOT EXISTS dashboard_feedback (
        day TEXT NOT NULL, manager_id TEXT NOT NULL, product_id TEXT NOT NULL, response TEXT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (day, manager_id, product_id, response))""",
    )


def migrations(dialect: Dialect) -> dict[int, tuple[str, ...]]:
    """Statements that bring a store at version N - 1 to version N (tables that are new in N come
    from ``ddl``'s ``IF NOT EXISTS``; only changes to existing tables are here)."""
    if_missing = "IF NOT EXISTS " if dialect is POSTGRES else ""  # SQLite migrates under one writer lock
    return {2: (f"ALTER TABLE recommendation_lists ADD COLUMN {if_missing}arm TEXT",)}


# every table of the store, in creation order (what a full backup must carry)
TABLES: tuple[str, ...] = tuple(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", "\n".join(ddl(SQLITE))))
