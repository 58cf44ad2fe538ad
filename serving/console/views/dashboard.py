"""Dashboard: feedback counts and hit rates over time, per manager, branch, class and product; CSV.

The figures are the API's dashboard (``serving.dashboard_summary.dashboard`` over the feedback store's daily counts)
plus ``serving.dashboard_breakdown``; a manager sees the lists of their own book, an admin every book.
"""
from __future__ import annotations

import csv
import io

from flask import Response, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ... import dashboard_breakdown
from ...api.dashboard import date_range
from ...errors import ApiError
from ... import labels
from .. import charts
from .. import context as ctx
from ..blueprint import bp, nav_item
from ..sessions import login_required

nav_item("console.dashboard", _l("Dashboard"), 40)
STAGE_KEYS = ("stage_one", "stage_two")


def _managers() -> set[str] | None:
    """The books whose lists count: a manager's own, every one for an admin (None)."""
    principal = ctx.principal()
    return {principal.manager_id} if principal.role == "manager" else None


def _range():
    args = {k: v for k, v in request.args.items() if k in ("from", "to") and v.strip()}
    return date_range(args, ctx.services().as_of())


def _charts(figures: dict) -> dict:
    names = {"stage_one": _("Stage one"), "stage_two": _("Stage two")}
    days = [row["day"] for row in figures["daily"]]
    over_time = charts.rate_lines(_("Hit rate per day"), days,
                                  {names[k]: [row[k]["hit_rate"] for row in figures["daily"]] for k in STAGE_KEYS})
    managers = figures["by_manager"][:12]
    per_manager = charts.rate_bars(_("Hit rate per account manager"), [m["manager_id"] or "-" for m in managers],
                                   {names[k]: [m[k]["items"]["hit_rate"] for m in managers] for k in STAGE_KEYS})
    classes = figures["by_class"]
    per_class = charts.rate_bars(_("Hit rate per product class"),
                                 [str(labels.label(labels.CATEGORIES, c["category"])) for c in classes],
                                 {names[k]: [c[k]["hit_rate"] for c in classes] for k in STAGE_KEYS})
    return {"over_time": over_time, "per_manager": per_manager, "per_class": per_class}


@bp.get("/dashboard")
@login_required()
def dashboard():
    """The figures of [from, to] (default: the last 30 days) as charts and tables."""
    try:
        start, end = _range()
    except ApiError as exc:
        return render_template("console/dashboard.html", error=exc, figures=None, args=request.args), exc.status
    figures = dashboard_breakdown.figures(ctx.services(), start, end, _managers())
    return render_template("console/dashboard.html", error=None, figures=figures, charts=_charts(figures),
                           args={"from": start.isoformat(), "to": end.isoformat()})


def csv_rows(figures: dict) -> list[list]:
    """One row per (breakdown, key): stage-one and stage-two shown / judged / interested / hit rate."""
    header = ["breakdown", "key"] + [f"{s}_{n}" for s in STAGE_KEYS for n in ("shown", "judged", "interested", "hit_rate")]
    rows = [header + ["interested_answers", "converted", "conversion_rate"]]

    def add(kind: str, key, stages: dict) -> None:
        rows.append([kind, key if key is not None else ""] +
                    [stages[s].get(n, "") if stages[s].get(n) is not None else "" for s in STAGE_KEYS
                     for n in ("shown", "judged", "interested", "hit_rate")])

    add("total", "all", {s: figures[s]["items"] for s in STAGE_KEYS})
    for row in figures["daily"]:
        add("day", row["day"], row)
    for row in figures["by_manager"]:
        add("manager", row["manager_id"], {s: row[s]["items"] for s in STAGE_KEYS})
    for row in figures["by_branch"]:
        add("branch", row["branch_id"], row)
    for row in figures["by_class"]:
        add("class", row["category"], row)
    for row in figures["by_product"]:
        add("product", row["product_id"], row)
    conversion = figures["conversion"]
    if conversion is not None:  # the last three columns: conversion after "interested" (nightly mart)
        for product_id, row in [("all", conversion)] + [(r["product_id"], r) for r in conversion["by_product"]]:
            rate = row["rate"] if row["rate"] is not None else ""
            rows.append(["conversion", product_id] + [""] * 8 + [row["interested"], row["converted"], rate])
    return rows


@bp.get("/dashboard.csv")
@login_required()
def dashboard_csv():
    """The dashboard's figures of [from, to] as CSV (the same numbers as the page)."""
    start, end = _range()
    figures = dashboard_breakdown.figures(ctx.services(), start, end, _managers())
    buffer = io.StringIO()
    csv.writer(buffer).writerows(csv_rows(figures))
    name = f"dashboard-{start.isoformat()}-{end.isoformat()}.csv"
    return Response(buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={name}"})
