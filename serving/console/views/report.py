"""Monthly report: the monthly effect report of a month against the previous one, from the marts
(figures per branch, manager and product, no customer: every console user may read it)."""
from __future__ import annotations

from datetime import date

from flask import render_template, request
from flask_babel import lazy_gettext as _l

from ... import dashboard_breakdown
from ... import monthly_report as effect
from .. import context as ctx
from ..blueprint import bp, nav_item
from ..sessions import login_required

nav_item("console.monthly_report", _l("Monthly report"), 50)


@bp.get("/reports/monthly")
@login_required()
def monthly_report():
    """The month asked for (default: the latest month with recommendations, else the current one)."""
    marts = dashboard_breakdown.marts_dir(ctx.services())
    month = request.args.get("month", "").strip()
    try:
        if not month:
            latest = effect.load(marts, date.today().replace(day=1))["months"]
            month = latest[-1] if latest else date.today().strftime("%Y-%m")
        report, error = effect.load(marts, effect.parse_month(month)), None
    except effect.ReportError as exc:
        report, error = None, str(exc)
    return render_template("console/monthly_report.html", report=report, month=month, error=error), \
        (200 if error is None else 422)
