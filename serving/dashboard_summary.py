"""The dashboard's figures: feedback counts and stage-one / stage-two hit rates, overall, per manager
and per product, from the feedback store's daily counts (the API's ``/dashboard`` and the console's
dashboard, ``serving.dashboard_breakdown``, read them here)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import date
from typing import Any

from .as_of import AsOf
from .workflow import Services


def rate(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


def _items(shown=0, judged=0, interested=0, not_interested=0, already_owns=0) -> dict[str, Any]:
    return {"shown": shown, "judged": judged, "interested": interested, "not_interested": not_interested,
            "already_owns": already_owns, "hit_rate": rate(interested, judged)}


def _add_items(acc: dict[str, Any], row: Sequence[int]) -> None:
    for key, value in zip(("shown", "judged", "interested", "not_interested", "already_owns"), row):
        acc[key] += value
    acc["hit_rate"] = rate(acc["interested"], acc["judged"])


def _lists(lists=0, judged=0, hits=0) -> dict[str, Any]:
    return {"lists": lists, "judged": judged, "with_interest": hits, "hit_rate": rate(hits, judged)}


def _counts() -> dict[str, int]:
    return {"total": 0, "positive": 0, "negative": 0, "already_owns": 0}


def _add_count(acc: dict[str, int], response: str, n: int) -> None:
    acc["total"] += n
    acc[{"interested": "positive", "not_interested": "negative"}.get(response, "already_owns")] += n


def dashboard(services: Services, start: date, end: date, as_of: AsOf | None = None,
              managers: Collection[str] | None = None) -> dict[str, Any]:
    """Feedback counts and stage-one / stage-two hit rates, overall, per manager and per product, from
    the store's daily counts (local days [start, end] of the as-of calendar, read as the wall days they
    are); the work is bounded by the range, not the log.
    ``managers``: count only the lists (and answers) of these managers (a manager's own dashboard)."""
    as_of = as_of or services.as_of()
    report_start, report_end = start, end
    start, end = as_of.to_wall(start), as_of.to_wall(end)
    only = None if managers is None else frozenset(managers)

    def kept(manager: str | None) -> bool:
        return only is None or manager in only

    stage_key = {1: "stage_one", 2: "stage_two"}
    total = {"stage_one": {"items": _items(), "lists": _lists()}, "stage_two": {"items": _items(), "lists": _lists()}}
    managers: dict[Any, dict] = defaultdict(lambda: {"feedback": _counts(), "stage_one": {"items": _items(), "lists": _lists()},
                                                     "stage_two": {"items": _items(), "lists": _lists()}})
    products: dict[str, dict] = defaultdict(lambda: {"feedback": _counts(), "stage_one": _items(), "stage_two": _items()})
    for stage, manager, product, *numbers in services.store.item_outcomes(start, end):
        if not kept(manager):
            continue
        key = stage_key[stage]
        _add_items(total[key]["items"], numbers)
        _add_items(managers[manager][key]["items"], numbers)
        _add_items(products[product][key], numbers)
    for stage, manager, lists, judged, hits in services.store.list_outcomes(start, end):
        if not kept(manager):
            continue
        key = stage_key[stage]
        for acc in (total[key]["lists"], managers[manager][key]["lists"]):
            acc["lists"] += lists
            acc["judged"] += judged
            acc["with_interest"] += hits
            acc["hit_rate"] = rate(acc["with_interest"], acc["judged"])
    feedback = _counts()
    for manager, product, response, n in services.store.feedback_counts(start, end):
        if not kept(manager):
            continue
        for acc in (feedback, managers[manager]["feedback"], products[product]["feedback"]):
            _add_count(acc, response, n)
    one, two = total["stage_one"]["items"]["hit_rate"], total["stage_two"]["items"]["hit_rate"]
    return {
        "from": report_start.isoformat(),
        "to": report_end.isoformat(),
        "as_of": as_of.body(),
        "timezone": services.timezone,
        "feedback": feedback,
        "stage_one": total["stage_one"],
        "stage_two": total["stage_two"],
        "stage_two_relative_uplift": round(two / one - 1, 6) if one and two is not None else None,
        "by_manager": [{"manager_id": m, **v} for m, v in sorted(managers.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))],
        "by_product": [{"product_id": p, **v} for p, v in sorted(products.items())],
    }
