"""The dashboard's daily counts, kept up to date in the transaction of every write.

Three tables, one row per local day (the bank's time zone, ``dashboard_state``) and key:

- ``dashboard_items`` (day the list was logged, stage, list manager, product): shown, judged, and
  the latest answer's counts — interested / not_interested / already_owns;
- ``dashboard_lists`` (day the list was logged, stage, list manager): lists, lists with an answer,
  lists with an "interested";
- ``dashboard_feedback`` (day of the latest answer, recording manager, product, response): how many
  (recommendation, product) pairs have that answer as their latest.

"Latest" is the store's rule: the latest ``recorded_at``, then the later row. A new answer that is
not the latest (an older ``recorded_at`` committed late) changes nothing. Feedback on one list is
serialised (``SqlStore._lock_list``), so the answer a write replaces is the one it read. Every
transaction touches the tables in one order (lists, items, feedback) and the rows in key order, so
concurrent PostgreSQL writers cannot deadlock on them. A dashboard request sums a bounded number of
these rows (days x managers x products), however long the log.

``rebuild`` computes the same tables from the log with the ranking queries they replace, for a
store that predates them or a change of time zone.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from .base import SqlStore
    from .records import FeedbackRow, Recommendation

RESPONSES = ("interested", "not_interested", "already_owns")
DEFAULT_TIMEZONE = "Asia/Shanghai"

_ITEMS_UPSERT = """
    INSERT INTO dashboard_items (day, stage, manager_id, product_id, shown, judged, interested, not_interested,
                                 already_owns)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (day, stage, manager_id, product_id) DO UPDATE SET
        shown = dashboard_items.shown + excluded.shown, judged = dashboard_items.judged + excluded.judged,
        interested = dashboard_items.interested + excluded.interested,
        not_interested = dashboard_items.not_interested + excluded.not_interested,
        already_owns = dashboard_items.already_owns + excluded.already_owns"""
_LISTS_UPSERT = """
    INSERT INTO dashboard_lists (day, stage, manager_id, lists, judged, with_interest) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (day, stage, manager_id) DO UPDATE SET
        lists = dashboard_lists.lists + excluded.lists, judged = dashboard_lists.judged + excluded.judged,
        with_interest = dashboard_lists.with_interest + excluded.with_interest"""
_FEEDBACK_UPSERT = """
    INSERT INTO dashboard_feedback (day, manager_id, product_id, response, n) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (day, manager_id, product_id, response) DO UPDATE SET n = dashboard_feedback.n + excluded.n"""


def local_day(value: datetime, zone: ZoneInfo) -> str:
    return value.astimezone(zone).date().isoformat()


def zone_of(store: SqlStore, cur: Any) -> ZoneInfo:
    """The time zone the counts are kept in (read in the writing transaction: a rebuild may change it)."""
    cur.execute(store._sql("SELECT timezone FROM dashboard_state"))
    row = cur.fetchone()
    return ZoneInfo(row[0] if row else DEFAULT_TIMEZONE)


def _manager(manager_id: str | None) -> str:
    return manager_id or ""


# -- maintenance, inside the write transactions ------------------------------------------------------
def count_list(store: SqlStore, cur: Any, rec: Recommendation) -> None:
    """A list was logged: one more list, one more "shown" per product."""
    day = local_day(rec.created_at, zone_of(store, cur))
    manager = _manager(rec.manager_id)
    cur.execute(store._sql(_LISTS_UPSERT), (day, rec.stage, manager, 1, 0, 0))
    if rec.products:
        cur.executemany(store._sql(_ITEMS_UPSERT),
                        [(day, rec.stage, manager, product_id, 1, 0, 0, 0, 0)
                         for product_id in sorted(p.product_id for p in rec.products)])


def count_feedback(store: SqlStore, cur: Any, rec: Recommendation, rows: Sequence[FeedbackRow]) -> None:
    """New answers on ``rec`` (before they are inserted): move the counts from each product's previous
    latest answer to the new one, when the new one is the latest."""
    zone = zone_of(store, cur)
    cur.execute(store._sql("SELECT product_id, response, recorded_at, manager_id FROM feedback"
                           " WHERE recommendation_id = ? ORDER BY seq"), (rec.recommendation_id,))
    before: dict[str, tuple[str, datetime, str]] = {}
    for product_id, response, recorded_at, manager_id in cur.fetchall():
        at = store._ts_out(recorded_at)
        if product_id not in before or at >= before[product_id][1]:  # later rows win ties
            before[product_id] = (response, at, manager_id)
    after = dict(before)
    for row in rows:
        previous = after.get(row.product_id)
        if previous is None or row.recorded_at >= previous[1]:
            after[row.product_id] = (row.response, row.recorded_at, row.manager_id)
    changed = [p for p in after if after[p] != before.get(p)]
    if not changed:
        return
    list_day, manager = local_day(rec.created_at, zone), _manager(rec.manager_id)
    judged = int(bool(after)) - int(bool(before))
    hit = (int(any(r[0] == "interested" for r in after.values()))
           - int(any(r[0] == "interested" for r in before.values())))
    if judged or hit:
        cur.execute(store._sql(_LISTS_UPSERT), (list_day, rec.stage, manager, 0, judged, hit))
    items, feedback = [], []
    for product_id in sorted(changed):
        old, new = before.get(product_id), after[product_id]
        delta = dict.fromkeys(RESPONSES, 0)
        delta[new[0]] += 1
        if old is not None:
            delta[old[0]] -= 1
            feedback.append((local_day(old[1], zone), old[2], product_id, old[0], -1))
        feedback.append((local_day(new[1], zone), new[2], product_id, new[0], 1))
        items.append((list_day, rec.stage, manager, product_id, 0, int(old is None), *(delta[r] for r in RESPONSES)))
    cur.executemany(store._sql(_ITEMS_UPSERT), items)
    cur.executemany(store._sql(_FEEDBACK_UPSERT), sorted(feedback))


# -- reads -------------------------------------------------------------------------------------------
def _none(manager: str) -> str | None:
    return manager or None


def item_outcomes(store: SqlStore, first: date, last: date) -> list[tuple]:
    """Per (stage, list manager, product): shown, judged, interested, not_interested, already_owns,
    for lists logged on local days [first, last]."""
    rows = store._query(
        "SELECT stage, manager_id, product_id, SUM(shown), SUM(judged), SUM(interested), SUM(not_interested),"
        " SUM(already_owns) FROM dashboard_items WHERE day >= ? AND day <= ?"
        " GROUP BY stage, manager_id, product_id", (first.isoformat(), last.isoformat()))
    return [(int(s), _none(m), p, *(int(v) for v in rest)) for s, m, p, *rest in rows]


def list_outcomes(store: SqlStore, first: date, last: date) -> list[tuple]:
    """Per (stage, list manager): lists, lists with any answer, lists with an "interested"."""
    rows = store._query(
        "SELECT stage, manager_id, SUM(lists), SUM(judged), SUM(with_interest) FROM dashboard_lists"
        " WHERE day >= ? AND day <= ? GROUP BY stage, manager_id", (first.isoformat(), last.isoformat()))
    return [(int(s), _none(m), int(a), int(b), int(c)) for s, m, a, b, c in rows]


def daily_outcomes(store: SqlStore, first: date, last: date) -> list[tuple]:
    """Per (local day, stage, list manager): shown, judged, interested, for lists logged on [first, last]."""
    rows = store._query(
        "SELECT day, stage, manager_id, SUM(shown), SUM(judged), SUM(interested) FROM dashboard_items"
        " WHERE day >= ? AND day <= ? GROUP BY day, stage, manager_id", (first.isoformat(), last.isoformat()))
    return [(str(d), int(s), _none(m), int(a), int(b), int(c)) for d, s, m, a, b, c in rows]


def feedback_counts(store: SqlStore, first: date, last: date) -> list[tuple]:
    """Per (recording manager, product, response): latest answers recorded on local days [first, last]."""
    rows = store._query(
        "SELECT manager_id, product_id, response, SUM(n) FROM dashboard_feedback WHERE day >= ? AND day <= ?"
        " GROUP BY manager_id, product_id, response HAVING SUM(n) > 0", (first.isoformat(), last.isoformat()))
    return [(m, p, r, int(n)) for m, p, r, n in rows]


# -- rebuild from the log ----------------------------------------------------------------------------
_LATEST = """latest AS (
        SELECT recommendation_id, product_id, response, recorded_at, manager_id FROM (
            SELECT f.*, ROW_NUMBER() OVER (PARTITION BY recommendation_id, product_id
                                           ORDER BY recorded_at DESC, seq DESC) AS rn
            FROM feedback f) ranked
        WHERE rn = 1)"""


def rebuild_statements(day_of: Any) -> Iterable[str]:
    """The rebuild's SQL; ``day_of(column)`` is the dialect's local-day expression."""
    yield from ("DELETE FROM dashboard_items", "DELETE FROM dashboard_lists", "DELETE FROM dashboard_feedback")
    yield f"""WITH {_LATEST}
        INSERT INTO dashboard_items (day, stage, manager_id, product_id, shown, judged, interested, not_interested,
                                     already_owns)
        SELECT {day_of('l.created_at')}, l.stage, COALESCE(l.manager_id, ''), i.product_id, COUNT(*),
               COUNT(lt.response),
               SUM(CASE WHEN lt.response = 'interested' THEN 1 ELSE 0 END),
               SUM(CASE WHEN lt.response = 'not_interested' THEN 1 ELSE 0 END),
               SUM(CASE WHEN lt.response = 'already_owns' THEN 1 ELSE 0 END)
        FROM recommendation_lists l
        JOIN recommendation_items i ON i.recommendation_id = l.recommendation_id
        LEFT JOIN latest lt ON lt.recommendation_id = i.recommendation_id AND lt.product_id = i.product_id
        GROUP BY 1, 2, 3, 4"""
    yield f"""WITH {_LATEST},
        per_list AS (
            SELECT {day_of('l.created_at')} AS day, l.stage, COALESCE(l.manager_id, '') AS manager_id,
                   MAX(CASE WHEN lt.response IS NOT NULL THEN 1 ELSE 0 END) AS judged,
                   MAX(CASE WHEN lt.response = 'interested' THEN 1 ELSE 0 END) AS hit
            FROM recommendation_lists l
            LEFT JOIN latest lt ON lt.recommendation_id = l.recommendation_id
            GROUP BY l.recommendation_id, l.created_at, l.stage, l.manager_id)
        INSERT INTO dashboard_lists (day, stage, manager_id, lists, judged, with_interest)
        SELECT day, stage, manager_id, COUNT(*), SUM(judged), SUM(hit) FROM per_list GROUP BY day, stage, manager_id"""
    yield f"""WITH {_LATEST}
        INSERT INTO dashboard_feedback (day, manager_id, product_id, response, n)
        SELECT {day_of('recorded_at')}, manager_id, product_id, response, COUNT(*) FROM latest GROUP BY 1, 2, 3, 4"""


def rebuild(store: SqlStore, cur: Any, timezone: str) -> None:
    """Recount every table from the log in ``timezone`` (inside the caller's write transaction)."""
    ZoneInfo(timezone)  # a valid name, before it goes into SQL
    for statement in rebuild_statements(lambda column: store._day_sql(column, timezone)):
        cur.execute(store._sql(statement))
    cur.execute("DELETE FROM dashboard_state")
    cur.execute(store._sql("INSERT INTO dashboard_state (timezone) VALUES (?)"), (timezone,))
