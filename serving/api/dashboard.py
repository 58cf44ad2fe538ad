"""Dashboard figures computed from the recommendation log and the feedback store."""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta

from flask import Blueprint, request

from ..as_of import AsOf
from ..auth import require
from ..dashboard_summary import dashboard
from ..errors import ApiError
from .common import query_params, services

bp = Blueprint("dashboard", __name__)
DATE = re.compile(r"2[0-9]{3}-[0-9]{2}-[0-9]{2}")
MAX_DAYS = 3660


def _date(args: Mapping[str, str], name: str, default: date) -> date:
    text = args.get(name)
    if text is None:
        return default
    try:
        if not DATE.fullmatch(text):
            raise ValueError
        value = date.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "invalid_date", "%(name)s must be a date YYYY-MM-DD", params={"name": name}, field=name,
                       in_body=False) from None
    return value  # the pattern keeps it within 2000-01-01 .. 2999-12-31


def date_range(args: Mapping[str, str], as_of: AsOf) -> tuple[date, date]:
    """``from`` and ``to`` of ``args``: dates of the as-of calendar (``serving.as_of``), by default the
    30 days to the as-of date. The API and the console's dashboard read their ranges here."""
    end = _date(args, "to", as_of.date)
    start = _date(args, "from", end - timedelta(days=29))
    if start > end:
        raise ApiError(422, "invalid_range", "from must not be after to", field="from", in_body=False)
    if (end - start).days > MAX_DAYS:
        raise ApiError(422, "invalid_range", "the range from .. to must be at most %(max)s days", params={"max": MAX_DAYS},
                       field="from", in_body=False)
    return start, end


@bp.get("/dashboard")
@require("admin")
def get_dashboard():
    """Feedback counts and stage-one vs stage-two hit rates, per manager and per product, over [from, to]
    (dates of the as-of calendar; the last 30 days to the as-of date by default)."""
    query_params(("from", "to"))
    svc = services()
    as_of = svc.as_of()
    start, end = date_range(request.args, as_of)
    return dashboard(svc, start, end, as_of)
