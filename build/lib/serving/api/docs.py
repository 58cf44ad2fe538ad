"""The OpenAPI document of this API."""
from __future__ import annotations

from flask import Blueprint, current_app

from ..auth import require
from .common import READ_ROLES

bp = Blueprint("docs", __name__)


@bp.get("/openapi.json")
@require(*READ_ROLES)
def openapi():
    """The hand-written OpenAPI 3.1 document (``serving/openapi.yaml``) as JSON."""
    return current_app.extensions["lingxi_openapi"]
