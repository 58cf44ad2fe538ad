"""The console dashboard's figures beyond the API's: hit rates per day, per branch and per class, and
the conversion after "interested".

Everything comes from logged data: the feedback store's daily counts (the same rows the API's
``/dashboard`` sums, through ``dashboard_summary.dashboard`` and the store's ``daily_outcomes``), the books
of the served snapshot (which branch a manager works in), and, for conversions, the nightly mart
``recommendation_feedback`` (the exported log joined with the bank's product openings in the label
window), read from the version served.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from .dashboard_summary import dashboard, rate
from .workflow import Services

FEEDBACK_MART = "recommendation_feedback.parquet"
STAGES = {1: "stage_one", 2: "stage_two"}


def marts_dir(services: Services) -> Path:
    """The marts of the version served (the working data dir when nothing is published)."""
    release = services.release()
    return (release.root if release is not None else services.releases.data_dir) / "marts"


def daily(services: Services, start: date, end: date, managers: Collection[str] | None = None) -> list[dict]:
    """Per day of [start, end] on the as-of calendar (every day, empty ones too): judged and interested
    items and the hit rate of each stage. The store counts wall days; they are shifted as the API's are."""
    as_of = services.as_of()
    days: dict[str, dict[str, Any]] = {}
    for offset in range((end - start).days + 1):
        day = (start + timedelta(days=offset)).isoformat()
        days[day] = {"day": day, **{key: {"shown": 0, "judged": 0, "interested": 0} for key in STAGES.values()}}
    shift = timedelta(days=as_of.offset_days)
    for wall_day, stage, manager, shown, judged, interested in services.store.daily_outcomes(as_of.to_wall(start),
                                                                                             as_of.to_wall(end)):
        day = (date.fromisoformat(str(wall_day)[:10]) + shift).isoformat()
        if (managers is not None and manager not in managers) or day not in days:
            continue
        acc = days[day][STAGES[stage]]
        acc["shown"] += shown
        acc["judged"] += judged
        acc["interested"] += interested
    for row in days.values():
        for key in STAGES.values():
            row[key]["hit_rate"] = rate(row[key]["interested"], row[key]["judged"])
    return list(days.values())


def manager_branches(services: Services) -> dict[str, dict[str, Any]]:
    """manager id -> branch id and names, from the books of the served snapshot."""
    books = services.snapshot().books
    out: dict[str, dict[str, Any]] = {}
    manager_codes, manager_labels = books.manager
    branch_codes, branch_labels = books.branch
    if not len(manager_codes):
        return out
    pairs = np.unique(np.stack([manager_codes, branch_codes], axis=1), axis=0)
    for m, b in pairs:
        if m < 0 or b < 0:
            continue
        branch_id = branch_labels[b]
        zh, en = books.branch_names.get(branch_id, (None, None))
        out[manager_labels[m]] = {"branch_id": branch_id, "branch_name_zh": zh, "branch_name_en": en}
    return out


def _sum_stages(rows: list[dict], key_of, extra_of) -> list[dict]:
    """Sum the items and lists of both stages (and the feedback counts) of ``rows`` grouped by a key."""
    groups: dict[Any, dict[str, Any]] = {}
    for row in rows:
        key = key_of(row)
        acc = groups.setdefault(key, {**extra_of(row), "feedback": defaultdict(int),
                                      **{s: defaultdict(int) for s in STAGES.values()}})
        for name, value in row["feedback"].items():
            acc["feedback"][name] += value
        for stage in STAGES.values():
            items = row[stage]["items"] if "items" in row[stage] else row[stage]
            for name in ("shown", "judged", "interested", "not_interested", "already_owns"):
                acc[stage][name] += items[name]
    out = []
    for key, acc in sorted(groups.items(), key=lambda kv: (kv[0] is None, str(kv[0]))):
        for stage in STAGES.values():
            acc[stage] = dict(acc[stage], hit_rate=rate(acc[stage]["interested"], acc[stage]["judged"]))
        acc["feedback"] = dict(acc["feedback"])
        out.append(acc)
    return out


def by_branch(summary: dict, branches: dict[str, dict[str, Any]]) -> list[dict]:
    """The per-manager figures summed per branch (lists without a manager or branch under none)."""
    none = {"branch_id": None, "branch_name_zh": None, "branch_name_en": None}
    return _sum_stages(summary["by_manager"], lambda r: branches.get(r["manager_id"], none)["branch_id"],
                       lambda r: dict(branches.get(r["manager_id"], none)))


def by_class(summary: dict, catalogue) -> list[dict]:
    """The per-product figures summed per product class."""
    def category(row: dict) -> str:
        product = catalogue.get(row["product_id"])
        return product.category if product is not None else "other"

    return _sum_stages(summary["by_product"], category, lambda r: {"category": category(r)})


def conversion_after_interest(services: Services, start: date, end: date,
                              managers: Collection[str] | None = None) -> dict[str, Any] | None:
    """Of the products answered "interested" on lists logged in [start, end], how many the customer
    opened within the label window (the nightly mart; None until the mart exists). Lists newer than
    the mart's last export are not in it yet: ``through`` says how far it reaches."""
    path = marts_dir(services) / FEEDBACK_MART
    if not path.exists():
        return None
    where = ["response = 'interested'", "created_at >= ?", "created_at < ?"]
    params: list[Any] = [start.isoformat(), (end + timedelta(days=1)).isoformat()]
    if managers is not None:
        if not managers:
            return {"interested": 0, "converted": 0, "rate": None, "through": None, "by_product": []}
        where.append(f"manager_id IN ({', '.join('?' for _ in managers)})")
        params.extend(sorted(managers))
    sql = (f"SELECT product_id, count(*), sum(is_adopted_in_window) FROM read_parquet(?) WHERE {' AND '.join(where)}"
           " GROUP BY product_id ORDER BY product_id")
    conn = services.duck()
    rows = conn.execute(sql, [str(path), *params]).fetchall()
    through = conn.execute("SELECT max(created_at) FROM read_parquet(?)", [str(path)]).fetchone()[0]
    interested = sum(int(n) for _, n, _ in rows)
    converted = sum(int(c or 0) for _, _, c in rows)
    return {"interested": interested, "converted": converted, "rate": rate(converted, interested),
            "through": through.isoformat() if through is not None else None,
            "by_product": [{"product_id": p, "interested": int(n), "converted": int(c or 0),
                            "rate": rate(int(c or 0), int(n))} for p, n, c in rows]}


def figures(services: Services, start: date, end: date, managers: Collection[str] | None = None) -> dict[str, Any]:
    """Everything the dashboard shows for [start, end]; ``managers`` narrows it to those books' lists."""
    summary = dashboard(services, start, end, managers=managers)
    return {**summary, "daily": daily(services, start, end, managers),
            "by_branch": by_branch(summary, manager_branches(services)),
            "by_class": by_class(summary, services.catalogue),
            "conversion": conversion_after_interest(services, start, end, managers)}
