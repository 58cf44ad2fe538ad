"""Dashboard figures computed from the recommendation log and the feedback store."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, request

from .. import workflow
from ..auth import require
from ..errors import ApiError
from .common import services

bp = Blueprint("dashboard", __name__)
DATE = re.compile(r"2[0-9]{3}-[0-9]{2}-[0-9]{2}")
MAX_DAYS = 3660


def _date(name: str, default: date) -> date:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        if not DATE.fullmatch(text):
            raise ValueError
        value = date.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "invalid_date", f"{name} must be a date YYYY-MM-DD") from None
    return value  # the pattern keeps it within 2000-01-01 .. 2999-12-31


@bp.get("/dashboard")
@require("admin")
def get_dashboard():
    """Feedback counts and stage-one vs stage-two hit rates, per manager and per product, over [from, to]."""
    unknown = sorted(set(request.args) - {"from", "to"})
    if unknown:
        raise ApiError(400, "unknown_parameter", f"unknown query parameter(s): {', '.join(unknown[:5])}")
    svc = services()
    today = datetime.now(ZoneInfo(svc.timezone)).date()
    end = _date("to", today)
    start = _date("from", end - timedelta(days=29))
    if start > end or (end - start).days > MAX_DAYS:
        raise ApiError(422, "invalid_range", f"from must not be after to, and the range at most {MAX_DAYS} days")
    return workflow.dashboard(svc, start, end)
