"""Customer lookup by id."""
from __future__ import annotations

from flask import Blueprint

from .. import audit_log as audit
from .. import workflow
from ..auth import require
from .common import READ_ROLES, customer_id_param, query_params, scope, services

bp = Blueprint("customers", __name__)


@bp.get("/customers/<customer_id>")
@require(*READ_ROLES)
def get_customer(customer_id: str):
    """Profile (profile_v1), book, holdings, recent events, trigger windows and current suppressions;
    only a customer of the caller's book (the CRM names the manager in ``?manager_id=``)."""
    reach = scope(query_params(("manager_id",)))
    customer_id = customer_id_param(customer_id)
    audit.note([customer_id])
    return workflow.customer_view(services(), customer_id, reach)
