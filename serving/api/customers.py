"""Customer lookup by id."""
from __future__ import annotations

from flask import Blueprint

from .. import workflow
from ..auth import require
from .common import READ_ROLES, customer_id_param, services

bp = Blueprint("customers", __name__)


@bp.get("/customers/<customer_id>")
@require(*READ_ROLES)
def get_customer(customer_id: str):
    """Profile (profile_v1), holdings, recent events, trigger windows and current suppressions."""
    return workflow.customer_view(services(), customer_id_param(customer_id))
