"""The feedback store, the same suite over SQLite and PostgreSQL."""
from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from serving_fakes import T0, make_rec, record

from serving.store import open_store, redact

_rec, _feedback = make_rec, record


@pytest.fixture
def store(store_url: str):
    store = open_store(store_url)
    yield store
    store.close()


def test_schema_creation_is_idempotent(store_url):
    for _ in range(2):
        open_store(store_url).close()


def test_recommendation_round_trip(store):
    rec = _rec()
    store.log_recommendation(rec)
    assert store.get_recommendation(rec.recommendation_id) == rec
    assert store.get_recommendation("F" * 32) is None
    empty = _rec(products=())
    store.log_recommendation(empty)
    assert store.get_recommendation(empty.recommendation_id).products == ()


def test_feedback_created_replayed_conflict(store):
    rec = _rec()
    store.log_recommendation(rec)
    items = [("SAV_TIME", "interested"), ("PRO_LIFE", "not_interested")]
    first = _feedback(store, rec, "key-0001", items)
    assert first.status == "created" and len(first.rows) == 2
    again = _feedback(store, rec, "key-0001", list(reversed(items)))  # same request, other order
    assert again.status == "replayed" and again.rows == first.rows
    other = _feedback(store, rec, "key-0001", [("SAV_TIME", "already_owns")])
    assert other.status == "conflict"
    assert len(store.feedback_for(rec.recommendation_id)) == 2


def test_latest_judgement_wins(store):
    rec = _rec()
    store.log_recommendation(rec)
    _feedback(store, rec, "key-0001", [("SAV_TIME", "interested")], at=T0)
    _feedback(store, rec, "key-0002", [("SAV_TIME", "not_interested")], at=T0 + timedelta(minutes=1))
    _feedback(store, rec, "key-0003", [("PRO_LIFE", "already_owns")], at=T0)
    _feedback(store, rec, "key-0004", [("PRO_LIFE", "interested")], at=T0)  # same instant: insertion order
    assert store.latest_feedback(rec.recommendation_id) == {"SAV_TIME": "not_interested", "PRO_LIFE": "interested"}
    judgements = store.customer_judgements(rec.customer_id)
    assert judgements["SAV_TIME"] == ("not_interested", T0 + timedelta(minutes=1))


def test_idempotency_keys_are_scoped_per_caller(store):
    """The same client key from two callers is two requests (it used to be one global key: a 409)."""
    mine, theirs = _rec(manager="M001"), _rec(customer="B" * 32, manager="M002")
    store.log_recommendation(mine)
    store.log_recommendation(theirs)
    first = _feedback(store, mine, "shared-0001", [("SAV_TIME", "interested")], manager="M001")
    second = _feedback(store, theirs, "shared-0001", [("PRO_LIFE", "not_interested")], manager="M002")
    assert (first.status, second.status) == ("created", "created")
    assert _feedback(store, theirs, "shared-0001", [("PRO_LIFE", "not_interested")], manager="M002").rows == second.rows
    assert _feedback(store, mine, "shared-0001", [("PRO_LIFE", "interested")], manager="M001").status == "conflict"
    keys = {r.idempotency_key for r in first.rows + second.rows}
    assert keys == {"manager:M001/shared-0001#SAV_TIME", "manager:M002/shared-0001#PRO_LIFE"}  # unique in the export


def test_audit_rows_round_trip(store):
    from serving.store.audit import CustomerRead, iter_reads, record_reads

    reads = [CustomerRead(T0 + timedelta(minutes=i), "0123456789ab", "wang", "manager", "M001", f"{i:032X}", "GET",
                          "/api/v1/customers/<customer_id>", 200, f"req-{i}") for i in range(5)]
    reads.append(CustomerRead(T0, "ba9876543210", "crm", "crm", "M002", "C" * 32, "POST", "/api/v1/recommendations",
                              404, None))
    record_reads(store, reads)
    record_reads(store, [])
    back = [r for batch in iter_reads(store, T0 + timedelta(minutes=1), T0 + timedelta(minutes=4), batch_size=2)
            for r in batch]
    assert back == reads[1:4]
    everything = [r for batch in iter_reads(store, T0) for r in batch]
    assert everything == reads  # recording order


def test_concurrent_retries_store_once(store_url):
    """Many threads (own connections) racing with one key: one row set, every answer identical."""
    setup = open_store(store_url)
    rec = _rec()
    setup.log_recommendation(rec)
    store = open_store(store_url, create=False)
    results, errors = [], []

    def worker():
        try:
            results.append(_feedback(store, rec, "race-key-1", [("WLT_WMP", "interested")]))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sorted(r.status for r in results) == ["created"] + ["replayed"] * 7
    assert len({r.rows for r in results}) == 1
    assert len(setup.feedback_for(rec.recommendation_id)) == 1
    setup.close()
    store.close()


def test_dashboard_aggregates(store):
    one = _rec(manager="M001")
    two = _rec(stage=2, parent=one.recommendation_id, manager="M001", products=("CRD_CARD", "SAV_LCD"))
    other = _rec(manager="M002", at=T0 - timedelta(days=40))  # outside the range
    for rec in (one, two, other):
        store.log_recommendation(rec)
    _feedback(store, one, "k-one-0001", [("SAV_TIME", "interested"), ("PRO_LIFE", "not_interested")])
    _feedback(store, two, "k-two-0001", [("CRD_CARD", "interested")])
    _feedback(store, other, "k-oth-0001", [("SAV_TIME", "interested")], manager="M002", at=T0 - timedelta(days=40))
    lo, hi = (T0 - timedelta(days=1)).date(), (T0 + timedelta(days=1)).date()
    items = {(s, m, p): rest for s, m, p, *rest in store.item_outcomes(lo, hi)}
    assert items[(1, "M001", "SAV_TIME")] == [1, 1, 1, 0, 0]
    assert items[(1, "M001", "WLT_WMP")] == [1, 0, 0, 0, 0]
    assert items[(2, "M001", "CRD_CARD")] == [1, 1, 1, 0, 0]
    assert not any(m == "M002" for _, m, _ in items)
    lists = {(s, m): rest for s, m, *rest in store.list_outcomes(lo, hi)}
    assert lists == {(1, "M001"): [1, 1, 1], (2, "M001"): [1, 1, 1]}
    counts = {(m, p, r): n for m, p, r, n in store.feedback_counts(lo, hi)}
    assert counts == {("M001", "SAV_TIME", "interested"): 1, ("M001", "PRO_LIFE", "not_interested"): 1,
                      ("M001", "CRD_CARD", "interested"): 1}


def test_sqlite_pragmas(tmp_path: Path):
    store = open_store(f"sqlite:///{tmp_path / 'f.db'}")
    conn = store._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    store.close()


def _open_at(url: str, start: float, results) -> None:
    import time

    while time.time() < start:
        pass
    try:
        open_store(url).close()
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put(repr(exc))


def test_sqlite_new_database_opened_by_processes_at_once(tmp_path: Path):
    """gunicorn workers start together on a fresh data dir: both switch the new file to WAL and
    create the schema; SQLite may fail one of them at once on the lock upgrade, so it is retried."""
    import multiprocessing
    import time

    context = multiprocessing.get_context("fork")
    results = context.Queue()
    for i in range(25):
        url, start = f"sqlite:///{tmp_path / f'race{i}.db'}", time.time() + 0.05
        workers = [context.Process(target=_open_at, args=(url, start, results)) for _ in range(3)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(30)
        assert [results.get(timeout=5) for _ in workers] == ["ok"] * 3


def test_sqlite_every_commit_is_flushed(tmp_path: Path):
    """WAL mode with synchronous=FULL for every write: the recommendation log a client holds as well as
    feedback (NORMAL flushes the WAL only at checkpoints, so the last lists died with the machine)."""
    store = open_store(f"sqlite:///{tmp_path / 'f.db'}")
    rec = _rec()
    store.log_recommendation(rec)
    assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with store.read_snapshot():  # a second connection must not confuse the first one's state
        pass
    _feedback(store, rec, "sync-key-1", [("SAV_TIME", "interested")])
    assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 2
    store.close()
    store.log_recommendation(_rec())  # reconnect after close
    assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 2
    store.close()


def test_postgres_commits_are_synchronous_whatever_the_server_default(postgres_url: str):
    """A database whose default is synchronous_commit=off must not make the store acknowledge
    commits a crash can lose: each write transaction sets it on. A trigger records the setting in
    force inside the transactions that log a list and store feedback."""
    import psycopg

    store = open_store(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        name = postgres_url.rsplit("/", 1)[1]
        admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        admin.execute("CREATE TABLE commit_modes (tbl TEXT, mode TEXT)")
        admin.execute("""CREATE FUNCTION note_mode() RETURNS trigger LANGUAGE plpgsql AS $$
                         BEGIN INSERT INTO commit_modes VALUES (TG_TABLE_NAME, current_setting('synchronous_commit'));
                         RETURN NEW; END $$""")
        for table in ("recommendation_lists", "feedback"):
            admin.execute(f"CREATE TRIGGER note_{table} AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION note_mode()")
    store.close()  # new connections take the database default
    store = open_store(postgres_url)
    assert store._query("SHOW synchronous_commit") == [("off",)]
    rec = _rec()
    store.log_recommendation(rec)
    _feedback(store, rec, "pg-sync-1", [("SAV_TIME", "interested")])
    modes = store._query("SELECT tbl, mode FROM commit_modes ORDER BY tbl")
    store.close()
    assert modes == [("feedback", "on"), ("recommendation_lists", "on")]


def test_urls():
    assert redact("postgresql://u:secret@h:5432/db?sslmode=require") == "postgresql://h:5432/db"
    with pytest.raises(ValueError):
        open_store("mysql://x")
    with pytest.raises(ValueError):
        open_store("sqlite:///:memory:")
