"""Segment filter over the in-memory customer snapshot."""
from __future__ import annotations

from flask import Blueprint, current_app

from .. import audit_log as audit
from .. import segments
from ..auth import require
from ..validation import json_body
from .common import READ_ROLES, scope, services

bp = Blueprint("segments", __name__)


@bp.post("/segments/query")
@require(*READ_ROLES)
def query_segment():
    """Customers matching every given condition, a page at a time, with the count: a manager's (or the
    CRM's for a named manager) within that book and capped; admin's over every customer."""
    svc = services()
    body = json_body()
    spec, limit, cursor = segments.parse_request(body, svc.catalogue)
    reach = scope(body)
    cap = int(current_app.config["LINGXI_SEGMENT_BOOK_CAP"]) if reach.capped else None
    result = segments.query(svc.snapshot(), spec, limit, cursor, book=reach.book, cap=cap)
    audit.note(c["customer_id"] for c in result["customers"])
    result["limit"] = limit
    return result
