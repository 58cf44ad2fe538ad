"""Customer lookup by id."""
from __future__ import annotations

from flask import Blueprint

from .. import audit_log as audit
from .. import workflow
from ..auth import require
from ..errors import ApiError
from .common import READ_ROLES, customer_id_param, query_params, scope, services

bp = Blueprint("customers", __name__)


@bp.get("/customers/<customer_id>")
@require(*READ_ROLES)
def get_customer(customer_id: str):
    """Attributes, book, named holdings, recent events, trigger windows and current suppressions, in
    the reader's language; the model's inputs (``profile_v1``) only with ``?include=features``. Only a
    customer of the caller's book (the CRM names the manager in ``?manager_id=``)."""
    params = query_params(("manager_id", "include"))
    include = params.get("include")
    if include is not None and include != "features":
        raise ApiError(400, "invalid_value", "%(name)s must be one of: %(allowed)s",
                       params={"name": "include", "allowed": "features"}, field="include", in_body=False)
    reach = scope(params)
    customer_id = customer_id_param(customer_id)
    audit.note([customer_id])
    return workflow.customer_view(services(), customer_id, reach, include_features=include == "features")
