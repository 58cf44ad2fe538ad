"""The recommendation log and feedback store: one interface, plain SQL, two backends.

Tables (same in SQLite and PostgreSQL):

- ``recommendation_lists``: one row per recommendation (id, customer, manager, stage 1/2, parent,
  model version, created_at). A list may be empty (nothing suitable), so it has its own table.
- ``recommendation_items``: one row per product shown (rank, score, match_score, reasons, tags).
- ``feedback_requests``: one row per idempotency key (primary key) with the hash of the request
  it carried; a retried request finds it and stores nothing. Keys are scoped to the caller: the
  stored key is ``<caller>/<client key>`` (``/`` cannot occur in a client key; the caller is
  ``manager:<id>`` for a manager, ``token:<token id>`` for other tokens), so one caller's key never
  meets another's. Keys stored before scoping have no ``/`` and so never collide with scoped ones.
- ``feedback``: one row per product judgement (interested | not_interested | already_owns).
  ``request_key`` is the scoped key; ``idempotency_key`` (UNIQUE) is the per-row key
  ``<scoped key>#<product id>`` (``#`` cannot occur in a client key), so the exported table has
  one row per key. A later judgement of the same product supersedes an earlier one ("latest wins",
  ordered by recorded_at then the insertion sequence).

- ``recommendation_order``: the commit order of the lists (the export's watermark).
- ``dashboard_*``: the dashboard's daily counts, kept in the same transactions (``dashboard``).

Every write is one transaction committed and flushed to disk before the method returns (SQLite
``synchronous=FULL`` in WAL mode, PostgreSQL ``synchronous_commit=on`` set in the transaction, never
left to the server's default); the API answers 2xx only after that. This holds for the
recommendation log as well as for feedback: a client that holds a list may answer on it after the
machine lost power, and the list must still be there. It costs stage one one WAL flush per request.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import date, datetime, timezone
from typing import Any

from ml.core.feedback_log import EXPORT_COLUMNS

from . import dashboard
from .audit import insert_reads
from .records import FeedbackResult, FeedbackRow, Recommendation, ShadowList, ShownProduct, row_key, scoped_key
from .schema import SCHEMA_VERSION

_EXPORT_SQL = {  # rows committed after one watermark and up to another, in commit order
    "recommendations": """
        SELECT l.recommendation_id, l.customer_id, l.manager_id, l.stage, l.parent_recommendation_id,
               i.product_id, i.rank, i.score, i.match_score, l.model_version, l.created_at, l.arm
        FROM recommendation_order o
        JOIN recommendation_lists l ON l.recommendation_id = o.recommendation_id
        JOIN recommendation_items i ON i.recommendation_id = l.recommendation_id
        WHERE o.seq > ? AND o.seq <= ?
        ORDER BY o.seq, i.rank""",
    "feedback": """
        SELECT feedback_id, recommendation_id, customer_id, product_id, manager_id, response, recorded_at,
               idempotency_key
        FROM feedback WHERE seq > ? AND seq <= ? ORDER BY seq""",
}
_SEQUENCED = {"recommendations": "recommendation_order", "feedback": "feedback"}
_FEEDBACK_COLUMNS = ("feedback_id, recommendation_id, customer_id, product_id, manager_id, response, recorded_at,"
                     " idempotency_key, request_key")
_LATEST = """
    SELECT recommendation_id, product_id, customer_id, manager_id, response, recorded_at FROM (
        SELECT f.*, ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY recorded_at DESC, seq DESC) AS rn
        FROM feedback f WHERE {where}
    ) latest WHERE rn = 1"""


class StoreUnavailable(RuntimeError):
    """The database cannot be reached or did not answer in time (the API answers 503)."""


class SqlStore:
    """Shared logic; subclasses supply connections, DDL, placeholders and timestamp codecs.

    Opening a store touches no database: the first connection of the process creates the schema,
    so a worker boots during a database outage, answers 503 and recovers when the database does.
    """

    backend = "sql"
    ddl: Sequence[str] = ()
    migrations: dict[int, Sequence[str]] = {}
    unavailable_errors: tuple[type[BaseException], ...] = ()  # the driver's "cannot reach / timed out"
    RECONNECT_AFTER_SECONDS = 1.0  # after a failed connect, fail fast for this long

    def __init__(self) -> None:
        self._local = threading.local()
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        self.timezone: str | None = None  # the bank's, for the dashboard's daily counts (None: keep the store's)
        self._down_until = 0.0
        self._down_reason = ""

    # -- backend hooks ---------------------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return text

    def _ts_in(self, value: datetime) -> Any:
        return value

    def _ts_out(self, value: Any) -> datetime:
        return value

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """A durable write transaction (committed and flushed on exit) yielding a cursor."""
        raise NotImplementedError

    def _lock_list(self, cur: Any, recommendation_id: str) -> None:
        """Serialise feedback on one list (the dashboard counts read the answer they replace)."""

    def _day_sql(self, column: str, timezone: str) -> str:
        """SQL for the local date (``YYYY-MM-DD``) of a timestamp column in ``timezone``."""
        raise NotImplementedError

    @contextmanager
    def push_lock(self, timeout: float = 5.0) -> Iterator[None]:
        """Held while reading a customer's answers and pushing them to the online store, so that
        pushes from every worker reach it in the order their reads happened. ``TimeoutError`` after
        ``timeout`` seconds (a stuck push elsewhere must not hang a request: the push is retried)."""
        raise NotImplementedError

    def _fence(self) -> AbstractContextManager[None]:
        """Wait for the writes in flight to commit, and hold new ones, while ``export_horizon`` reads
        the highest sequence numbers; nothing to do where writers are serialised (SQLite)."""
        return nullcontext()

    @contextmanager
    def read_snapshot(self) -> Iterator[Any]:
        """A consistent read-only view over all tables (for the export), yielding a cursor."""
        raise NotImplementedError

    def _healthy(self, conn: Any) -> bool:
        return True

    # -- connections -----------------------------------------------------------------------
    def _conn(self) -> Any:
        """One connection per thread (and per process: a forked child opens its own)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid() or not self._healthy(conn):
            if time.monotonic() < self._down_until:
                raise StoreUnavailable(self._down_reason)
            try:
                conn = self._connect()
            except Exception as exc:  # noqa: BLE001 - whatever the driver raises, the store is unreachable
                self._down_until = time.monotonic() + self.RECONNECT_AFTER_SECONDS
                self._down_reason = f"the {self.backend} feedback store is unreachable ({type(exc).__name__})"
                raise StoreUnavailable(self._down_reason) from exc
            self._local.conn, self._local.pid = conn, os.getpid()
        if not self._schema_ready and not getattr(self._local, "creating_schema", False):
            with self._schema_lock:
                if not self._schema_ready:
                    self._local.creating_schema = True
                    try:
                        self.init_schema(self.timezone)
                    finally:
                        self._local.creating_schema = False
                    self._schema_ready = True
        return conn

    def _discard(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        try:
            cur = self._conn().cursor()
            cur.execute(self._sql(sql), tuple(params))
            return cur.fetchall()
        except self.unavailable_errors as exc:
            self._discard()
            raise StoreUnavailable(f"the {self.backend} feedback store did not answer ({type(exc).__name__})") from exc
        except Exception:
            self._discard()
            raise

    def close(self) -> None:
        self._discard()

    def init_schema(self, timezone: str | None = None) -> None:
        """Create what is missing. The dashboard counts are (re)built from the log when the store
        has none yet (a store older than them) or ``timezone`` differs from the one they use."""
        with self._write() as cur:
            for statement in self.ddl:
                cur.execute(statement)
            cur.execute(self._sql("SELECT version FROM lingxi_schema"))
            stored = cur.fetchone()
            if stored is None:
                cur.execute(self._sql("INSERT INTO lingxi_schema (version) VALUES (?)"), (SCHEMA_VERSION,))
            elif int(stored[0]) < SCHEMA_VERSION:  # an older store: bring it up to date, in this transaction
                for version in range(int(stored[0]) + 1, SCHEMA_VERSION + 1):
                    for statement in self.migrations.get(version, ()):
                        cur.execute(statement)
                cur.execute(self._sql("UPDATE lingxi_schema SET version = ?"), (SCHEMA_VERSION,))
            cur.execute(self._sql("SELECT timezone FROM dashboard_state"))
            state = cur.fetchone()
            if state is None:  # first use by this version: number the lists logged before it
                cur.execute(self._sql(
                    "INSERT INTO recommendation_order (recommendation_id) SELECT recommendation_id"
                    " FROM recommendation_lists l WHERE NOT EXISTS (SELECT 1 FROM recommendation_order o"
                    " WHERE o.recommendation_id = l.recommendation_id) ORDER BY created_at, recommendation_id"))
            wanted = timezone or (state[0] if state else dashboard.DEFAULT_TIMEZONE)
            if state is None or state[0] != wanted:
                dashboard.rebuild(self, cur, wanted)

    def ping(self) -> None:
        self._query("SELECT 1")

    # -- recommendations -------------------------------------------------------------------
    def log_recommendation(self, rec: Recommendation, reads: Sequence[Any] = (),
                           shadow: ShadowList | None = None) -> None:
        """Log a list; ``reads`` (``audit.CustomerRead``) go to the audit log and ``shadow`` (the
        challenger's unshown list) to ``recommendation_shadow``, in the same transaction."""
        with self._write() as cur:
            insert_reads(self, cur, reads)
            cur.execute(self._sql(
                "INSERT INTO recommendation_lists (recommendation_id, customer_id, manager_id, stage,"
                " parent_recommendation_id, model_version, created_at, arm) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                (rec.recommendation_id, rec.customer_id, rec.manager_id, rec.stage, rec.parent_recommendation_id,
                 rec.model_version, self._ts_in(rec.created_at), rec.arm))
            if shadow is not None:
                cur.execute(self._sql(
                    "INSERT INTO recommendation_shadow (recommendation_id, arm, model_version, products, created_at)"
                    " VALUES (?, ?, ?, ?, ?)"),
                    (rec.recommendation_id, shadow.arm, shadow.model_version, json.dumps(list(shadow.product_ids)),
                     self._ts_in(rec.created_at)))
            if rec.products:
                cur.executemany(self._sql(
                    "INSERT INTO recommendation_items (recommendation_id, product_id, rank, score, match_score,"
                    " reasons, tags) VALUES (?, ?, ?, ?, ?, ?, ?)"),
                    [(rec.recommendation_id, p.product_id, p.rank, p.score, p.match_score,
                      json.dumps(list(p.reasons), ensure_ascii=False), json.dumps(list(p.tags), ensure_ascii=False))
                     for p in rec.products])
            cur.execute(self._sql("INSERT INTO recommendation_order (recommendation_id) VALUES (?)"),
                        (rec.recommendation_id,))
            dashboard.count_list(self, cur, rec)

    def get_recommendation(self, recommendation_id: str) -> Recommendation | None:
        head = self._query(
            "SELECT recommendation_id, customer_id, manager_id, stage, parent_recommendation_id, model_version,"
            " created_at, arm FROM recommendation_lists WHERE recommendation_id = ?", (recommendation_id,))
        if not head:
            return None
        items = self._query(
            "SELECT product_id, rank, score, match_score, reasons, tags FROM recommendation_items"
            " WHERE recommendation_id = ? ORDER BY rank", (recommendation_id,))
        rid, customer_id, manager_id, stage, parent, model_version, created_at, arm = head[0]
        products = tuple(ShownProduct(p, int(r), float(s), int(m), tuple(json.loads(reasons)), tuple(json.loads(tags)))
                         for p, r, s, m, reasons, tags in items)
        return Recommendation(rid, customer_id, manager_id, int(stage), parent, model_version,
                              self._ts_out(created_at), products, arm=arm)

    def shadow_for(self, recommendation_id: str) -> ShadowList | None:
        rows = self._query("SELECT arm, model_version, products FROM recommendation_shadow WHERE recommendation_id = ?",
                           (recommendation_id,))
        return ShadowList(rows[0][0], rows[0][1], tuple(json.loads(rows[0][2]))) if rows else None

    # -- feedback --------------------------------------------------------------------------
    def _feedback_rows(self, cur: Any, where: str, params: Sequence[Any]) -> tuple[FeedbackRow, ...]:
        cur.execute(self._sql(f"SELECT {_FEEDBACK_COLUMNS} FROM feedback WHERE {where} ORDER BY seq"), tuple(params))
        return tuple(self._feedback_row(row) for row in cur.fetchall())

    def _feedback_row(self, row: Sequence[Any]) -> FeedbackRow:
        return FeedbackRow(row[0], row[1], row[2], row[3], row[4], row[5], self._ts_out(row[6]), row[7], row[8])

    def record_feedback(self, *, idempotency_key: str, request_hash: str, recommendation: Recommendation,
                        manager_id: str, items: Sequence[tuple[str, str]], recorded_at: datetime,
                        caller: str) -> FeedbackResult:
        """Store one feedback request atomically, or replay / refuse a key this caller already used."""
        idempotency_key = scoped_key(caller, idempotency_key)
        with self._write() as cur:
            self._lock_list(cur, recommendation.recommendation_id)
            cur.execute(self._sql(
                "INSERT INTO feedback_requests (idempotency_key, request_hash, recommendation_id, manager_id,"
                " recorded_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING"),
                (idempotency_key, request_hash, recommendation.recommendation_id, manager_id, self._ts_in(recorded_at)))
            if cur.rowcount == 0:
                cur.execute(self._sql("SELECT request_hash FROM feedback_requests WHERE idempotency_key = ?"),
                            (idempotency_key,))
                (stored_hash,) = cur.fetchone()
                if stored_hash != request_hash:
                    return FeedbackResult("conflict")
                return FeedbackResult("replayed", self._feedback_rows(cur, "request_key = ?", (idempotency_key,)))
            rows = tuple(FeedbackRow(uuid.uuid4().hex.upper(), recommendation.recommendation_id,
                                     recommendation.customer_id, product_id, manager_id, response, recorded_at,
                                     row_key(idempotency_key, product_id), idempotency_key)
                         for product_id, response in items)
            dashboard.count_feedback(self, cur, recommendation, rows)
            cur.executemany(self._sql(
                f"INSERT INTO feedback ({_FEEDBACK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                [(r.feedback_id, r.recommendation_id, r.customer_id, r.product_id, r.manager_id, r.response,
                  self._ts_in(r.recorded_at), r.idempotency_key, r.request_key) for r in rows])
        return FeedbackResult("created", rows)

    def feedback_for(self, recommendation_id: str) -> tuple[FeedbackRow, ...]:
        rows = self._query(f"SELECT {_FEEDBACK_COLUMNS} FROM feedback WHERE recommendation_id = ? ORDER BY seq",
                           (recommendation_id,))
        return tuple(self._feedback_row(row) for row in rows)

    def latest_feedback(self, recommendation_id: str) -> dict[str, str]:
        """product id -> latest response recorded on this recommendation."""
        sql = _LATEST.format(partition="product_id", where="recommendation_id = ?")
        return {row[1]: row[4] for row in self._query(sql, (recommendation_id,))}

    def customer_feedback(self, customer_ids: Sequence[str]) -> tuple[FeedbackRow, ...]:
        """Every feedback row of these customers, in recording order (what the online aggregates count)."""
        out: list[FeedbackRow] = []
        for start in range(0, len(customer_ids), 500):
            chunk = list(customer_ids[start:start + 500])
            rows = self._query(f"SELECT {_FEEDBACK_COLUMNS} FROM feedback WHERE customer_id IN"
                               f" ({', '.join('?' * len(chunk))}) ORDER BY seq", chunk)
            out.extend(self._feedback_row(row) for row in rows)
        return tuple(out)

    def customers_with_feedback_since(self, since: datetime | None) -> list[str]:
        """Customers with an answer recorded at or after ``since`` (all with any answer: None)."""
        if since is None:
            rows = self._query("SELECT DISTINCT customer_id FROM feedback")
        else:
            rows = self._query("SELECT DISTINCT customer_id FROM feedback WHERE recorded_at >= ?", (self._ts_in(since),))
        return sorted(row[0] for row in rows)

    def customer_judgements(self, customer_id: str) -> dict[str, tuple[str, datetime]]:
        """product id -> (latest response, when) over all of a customer's feedback."""
        sql = _LATEST.format(partition="product_id", where="customer_id = ?")
        return {row[1]: (row[4], self._ts_out(row[5])) for row in self._query(sql, (customer_id,))}

    # -- a customer's history and a book's contacts (console) ------------------------------
    def customer_recommendations(self, customer_id: str, limit: int = 20) -> list[Recommendation]:
        """The customer's logged lists, newest first (at most ``limit``)."""
        heads = self._query(
            "SELECT recommendation_id FROM recommendation_lists WHERE customer_id = ?"
            " ORDER BY created_at DESC, recommendation_id DESC LIMIT ?", (customer_id, int(limit)))
        return [rec for (rid,) in heads if (rec := self.get_recommendation(rid)) is not None]

    def _chunked(self, sql: str, customer_ids: Sequence[str], params: Sequence[Any] = ()) -> list[tuple]:
        """Run ``sql`` (with ``{ids}`` for the placeholder list) over the ids in chunks of 500."""
        rows: list[tuple] = []
        for start in range(0, len(customer_ids), 500):
            chunk = list(customer_ids[start:start + 500])
            rows += self._query(sql.format(ids=", ".join("?" * len(chunk))), chunk + list(params))
        return rows

    def last_contacts(self, customer_ids: Sequence[str], since: datetime) -> dict[str, datetime]:
        """customer id -> when the latest list was shown to them, for those shown one since ``since``."""
        rows = self._chunked("SELECT customer_id, MAX(created_at) FROM recommendation_lists"
                             " WHERE customer_id IN ({ids}) AND created_at >= ? GROUP BY customer_id",
                             customer_ids, (self._ts_in(since),))
        return {cid: self._ts_out(ts) for cid, ts in rows}

    def judgements_of(self, customer_ids: Sequence[str]) -> dict[str, dict[str, tuple[str, datetime]]]:
        """``customer_judgements`` for many customers at once: id -> product id -> (response, when)."""
        sql = _LATEST.format(partition="customer_id, product_id", where="customer_id IN ({ids})")
        out: dict[str, dict[str, tuple[str, datetime]]] = {}
        for _rid, product_id, customer_id, _mid, response, recorded_at in self._chunked(sql, customer_ids):
            out.setdefault(customer_id, {})[product_id] = (response, self._ts_out(recorded_at))
        return out

    # -- dashboard (pre-aggregated daily counts, ``dashboard``) ----------------------------
    def item_outcomes(self, first: date, last: date) -> list[tuple]:
        """Per (stage, list manager, product): shown, judged, interested, not_interested, already_owns,
        for lists logged on local days [first, last], judged by the latest answer on each shown product."""
        return dashboard.item_outcomes(self, first, last)

    def list_outcomes(self, first: date, last: date) -> list[tuple]:
        """Per (stage, list manager): lists, lists with any feedback, lists with an "interested"."""
        return dashboard.list_outcomes(self, first, last)

    def daily_outcomes(self, first: date, last: date) -> list[tuple]:
        """Per (local day, stage, list manager): shown, judged, interested (the hit rate over time)."""
        return dashboard.daily_outcomes(self, first, last)

    def feedback_counts(self, first: date, last: date) -> list[tuple]:
        """Per (recording manager, product, response): count of latest judgements recorded on local days
        [first, last]."""
        return dashboard.feedback_counts(self, first, last)

    # -- export ----------------------------------------------------------------------------
    def export_horizon(self) -> dict[str, int]:
        """Per export table, the highest sequence number below which every row is committed (or
        rolled back for good): the next export's watermark. Read before ``read_snapshot``."""
        with self._fence():
            return {table: int(self._query(f"SELECT COALESCE(MAX(seq), 0) FROM {source}")[0][0])
                    for table, source in _SEQUENCED.items()}

    def export_batches(self, cur: Any, table: str, after: int, upto: int,
                       batch_size: int = 50_000) -> Iterator[list[tuple]]:
        """Rows of an export table (``EXPORT_COLUMNS``) with sequence numbers in (after, upto], in
        batches, timestamps as aware UTC datetimes."""
        ts_index = EXPORT_COLUMNS[table].index("created_at" if table == "recommendations" else "recorded_at")
        cur.execute(self._sql(_EXPORT_SQL[table]), (after, upto))
        while True:
            batch = cur.fetchmany(batch_size)
            if not batch:
                return
            yield [row[:ts_index] + (self._ts_out(row[ts_index]),) + row[ts_index + 1:] for row in batch]


def utc(value: datetime) -> datetime:
    """Normalise to an aware UTC datetime."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
