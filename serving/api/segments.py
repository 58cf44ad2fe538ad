"""Segment filter over the in-memory customer snapshot."""
from __future__ import annotations

from flask import Blueprint

from .. import segments
from ..auth import require
from ..validation import json_body
from .common import READ_ROLES, services

bp = Blueprint("segments", __name__)


@bp.post("/segments/query")
@require(*READ_ROLES)
def query_segment():
    """Customers matching every given condition, a page at a time, with the total count."""
    svc = services()
    spec, limit, cursor = segments.parse_request(json_body(), svc.catalogue)
    body = segments.query(svc.snapshot(), spec, limit, cursor)
    body["limit"] = limit
    return body
