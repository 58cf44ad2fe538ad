"""The dashboard reads daily counts kept with every write, and answers what ranking the whole log
per request answered (the reference below is that computation, as it was), on both backends."""
from __future__ import annotations

import random
import sqlite3
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from serving_fakes import make_rec, record

from serving.store import open_store

ZONE = "Asia/Shanghai"
PRODUCTS = ("SAV_TIME", "PRO_LIFE", "WLT_WMP", "CRD_CARD", "SAV_LCD", "WLT_FUND")
MANAGERS = ("M001", "M002", "M003", None)

# -- the computation the dashboard ran on every request before, verbatim --------------------------
_LATEST = """
    SELECT recommendation_id, product_id, customer_id, manager_id, response, recorded_at FROM (
        SELECT f.*, ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY recorded_at DESC, seq DESC) AS rn
        FROM feedback f WHERE {where}
    ) latest WHERE rn = 1"""


def reference_items(store, start, end):
    latest = _LATEST.format(partition="recommendation_id, product_id",
                            where="recommendation_id IN (SELECT recommendation_id FROM recommendation_lists"
                                  " WHERE created_at >= ? AND created_at < ?)")
    sql = f"""
        WITH latest AS ({latest})
        SELECT l.stage, l.manager_id, i.product_id, COUNT(*), COUNT(lt.response),
               SUM(CASE WHEN lt.response = 'interested' THEN 1 ELSE 0 END),
               SUM(CASE WHEN lt.response = 'not_interested' THEN 1 ELSE 0 END),
               SUM(CASE WHEN lt.response = 'already_owns' THEN 1 ELSE 0 END)
        FROM recommendation_lists l
        JOIN recommendation_items i ON i.recommendation_id = l.recommendation_id
        LEFT JOIN latest lt ON lt.recommendation_id = i.recommendation_id AND lt.product_id = i.product_id
        WHERE l.created_at >= ? AND l.created_at < ?
        GROUP BY l.stage, l.manager_id, i.product_id"""
    s, e = store._ts_in(start), store._ts_in(end)
    return [(int(a), b, c, int(d), int(f), int(g or 0), int(h or 0), int(k or 0))
            for a, b, c, d, f, g, h, k in store._query(sql, (s, e, s, e))]


def reference_lists(store, start, end):
    latest = _LATEST.format(partition="recommendation_id, product_id",
                            where="recommendation_id IN (SELECT recommendation_id FROM recommendation_lists"
                                  " WHERE created_at >= ? AND created_at < ?)")
    sql = f"""
        WITH latest AS ({latest}),
        per_list AS (
            SELECT l.recommendation_id, l.stage, l.manager_id,
                   MAX(CASE WHEN lt.response IS NOT NULL THEN 1 ELSE 0 END) AS judged,
                   MAX(CASE WHEN lt.response = 'interested' THEN 1 ELSE 0 END) AS hit
            FROM recommendation_lists l
            LEFT JOIN latest lt ON lt.recommendation_id = l.recommendation_id
            WHERE l.created_at >= ? AND l.created_at < ?
            GROUP BY l.recommendation_id, l.stage, l.manager_id)
        SELECT stage, manager_id, COUNT(*), SUM(judged), SUM(hit) FROM per_list GROUP BY stage, manager_id"""
    s, e = store._ts_in(start), store._ts_in(end)
    return [(int(a), b, int(c), int(d or 0), int(f or 0)) for a, b, c, d, f in store._query(sql, (s, e, s, e))]


def reference_feedback(store, start, end):
    latest = _LATEST.format(partition="recommendation_id, product_id", where="1 = 1")
    sql = f"""
        SELECT manager_id, product_id, response, COUNT(*) FROM ({latest}) lt
        WHERE recorded_at >= ? AND recorded_at < ? GROUP BY manager_id, product_id, response"""
    return [(a, b, c, int(d)) for a, b, c, d in store._query(sql, (store._ts_in(start), store._ts_in(end)))]


def _bounds(first: date, last: date, zone: str = ZONE) -> tuple[datetime, datetime]:
    z = ZoneInfo(zone)
    return (datetime.combine(first, time.min, z).astimezone(timezone.utc),
            datetime.combine(last + timedelta(days=1), time.min, z).astimezone(timezone.utc))


def assert_same_answers(store, first: date, last: date, zone: str = ZONE) -> None:
    lo, hi = _bounds(first, last, zone)
    assert sorted(store.item_outcomes(first, last), key=repr) == sorted(reference_items(store, lo, hi), key=repr)
    assert sorted(store.list_outcomes(first, last), key=repr) == sorted(reference_lists(store, lo, hi), key=repr)
    assert sorted(store.feedback_counts(first, last)) == sorted(reference_feedback(store, lo, hi))


def fill(store, seed: int = 5, lists: int = 120) -> None:
    """Lists over six days around local midnights (UTC 16:00), stage two on some, answers by several
    managers, answers changed, and answers stamped earlier than one already stored (a late commit)."""
    rng = random.Random(seed)
    t0 = datetime(2025, 7, 1, 12, 0, tzinfo=timezone.utc)
    logged = []
    for i in range(lists):
        at = t0 + timedelta(minutes=rng.randrange(0, 6 * 24 * 60))
        parent = rng.choice(logged) if logged and rng.random() < 0.25 else None
        rec = make_rec(customer=f"{rng.randrange(30):032X}", stage=2 if parent else 1,
                       parent=parent.recommendation_id if parent else None, manager=rng.choice(MANAGERS),
                       products=tuple(rng.sample(PRODUCTS, rng.randrange(0, 5))), at=at)
        store.log_recommendation(rec)
        logged.append(rec)
    for j in range(lists * 2):
        rec = rng.choice(logged)
        if not rec.products:
            continue
        shown = [p.product_id for p in rec.products]
        items = [(p, rng.choice(("interested", "not_interested", "already_owns")))
                 for p in rng.sample(shown, rng.randrange(1, len(shown) + 1))]
        at = rec.created_at + timedelta(minutes=rng.randrange(-30, 3 * 24 * 60))  # some before others
        record(store, rec, f"k{j:05d}", items, manager=rng.choice(MANAGERS[:3]), at=at)


@pytest.fixture
def store(store_url: str):
    store = open_store(store_url, timezone=ZONE)
    yield store
    store.close()


def test_daily_counts_answer_as_the_ranking_of_the_log(store):
    fill(store)
    first = date(2025, 7, 1)
    for start, days in ((0, 0), (0, 9), (1, 0), (2, 2), (3, 1), (5, 3), (-3, 20)):
        assert_same_answers(store, first + timedelta(days=start), first + timedelta(days=start + days))
    assert store.item_outcomes(first, first + timedelta(days=9))  # not vacuous


def test_rebuild_from_the_log_matches_the_running_counts(store_url: str):
    """A store older than the counts, or a new time zone, is recounted from the log at start."""
    store = open_store(store_url, timezone=ZONE)
    fill(store, seed=8, lists=60)
    running = {table: sorted(store._query(f"SELECT * FROM {table} WHERE {cond}"))
               for table, cond in (("dashboard_items", "shown > 0"), ("dashboard_lists", "lists > 0"),
                                   ("dashboard_feedback", "n > 0"))}
    store.close()
    moved = open_store(store_url, timezone="UTC")  # recounted in UTC days
    assert_same_answers(moved, date(2025, 7, 1), date(2025, 7, 4), zone="UTC")
    moved.close()
    back = open_store(store_url, timezone=ZONE)
    for table, rows in running.items():
        assert sorted(back._query(f"SELECT * FROM {table}")) == rows
    other = open_store(store_url)  # a tool that names no zone keeps the store's
    assert other._query("SELECT timezone FROM dashboard_state") == [(ZONE,)]
    other.close()
    back.close()


def test_dashboard_reads_only_the_daily_counts(tmp_path: Path):
    """Bounded work per request: the dashboard's queries never touch the log's tables."""
    store = open_store(f"sqlite:///{tmp_path / 'f.db'}", timezone=ZONE)
    fill(store, lists=30)
    conn = store._conn()
    read: set[str] = set()

    def note(action, table, column, database, trigger):
        if action == sqlite3.SQLITE_READ:
            read.add(table)
        return sqlite3.SQLITE_OK

    conn.set_authorizer(note)
    store.item_outcomes(date(2025, 7, 1), date(2025, 7, 31))
    store.list_outcomes(date(2025, 7, 1), date(2025, 7, 31))
    store.feedback_counts(date(2025, 7, 1), date(2025, 7, 31))
    conn.set_authorizer(None)
    store.close()
    assert read and read <= {"dashboard_items", "dashboard_lists", "dashboard_feedback"}


def test_concurrent_answers_on_one_list_count_once(store_url: str):
    """Workers answering the same list at once: each replaced answer is the one its write read."""
    import threading

    setup = open_store(store_url, timezone=ZONE)
    recs = [make_rec(products=PRODUCTS[:4]) for _ in range(3)]
    for rec in recs:
        setup.log_recommendation(rec)
    errors = []

    def worker(w: int) -> None:
        store = open_store(store_url, create=False)
        rng = random.Random(w)
        try:
            for i in range(15):
                rec = rng.choice(recs)
                items = [(p, rng.choice(("interested", "not_interested"))) for p in rng.sample(PRODUCTS[:4], 2)]
                record(store, rec, f"c{w}-{i}", items, at=rec.created_at + timedelta(seconds=rng.randrange(60)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert_same_answers(setup, date(2025, 6, 30), date(2025, 7, 2))
    setup.close()
