"""Stage one (rank products for a customer), fetch a recommendation, stage two (re-rank after feedback)."""
from __future__ import annotations

from flask import Blueprint, g

from .. import audit_log as audit
from .. import validation as v
from .. import workflow
from ..auth import require
from ..errors import ApiError
from .common import (
    READ_ROLES,
    WRITE_ROLES,
    customer_id_param,
    query_params,
    recommendation_id_param,
    scope,
    services,
)

bp = Blueprint("recommendations", __name__)
MAX_K = 10


@bp.post("/recommendations")
@require(*WRITE_ROLES)
def create_recommendation():
    """Stage one: up to k suitable products with match score, reasons and tags; the list is logged."""
    body = v.json_body()
    v.reject_unknown(body, ("customer_id", "k", "manager_id", "explain_exclusions"))
    if "customer_id" not in body:
        raise v.invalid(body, "customer_id", "%(name)s is required", code="missing_field")
    customer_id = customer_id_param(body["customer_id"], in_body=True)
    k = v.integer(body, "k", lo=1, hi=MAX_K, default=5)
    explain = v.boolean(body, "explain_exclusions")
    reach = scope(body)
    audit.note([customer_id])
    result = workflow.stage_one(services(), customer_id, k, reach, explain, reads=audit.rows(201))
    audit.recorded()  # logged with the list
    g.log_recommendation_id = result["recommendation_id"]
    return result, 201


@bp.get("/recommendations/<recommendation_id>")
@require(*READ_ROLES)
def get_recommendation(recommendation_id: str):
    """A logged recommendation with the latest feedback per product (its customer in the caller's book)."""
    reach = scope(query_params(("manager_id",)))
    svc = services()
    rec = workflow.load_recommendation(svc, recommendation_id_param(recommendation_id), reach)
    g.log_customer_id = rec.customer_id
    audit.note([rec.customer_id])
    body = workflow.recommendation_body(rec, svc, svc.store.feedback_for(rec.recommendation_id))
    return body


@bp.post("/recommendations/<recommendation_id>/stage-two")
@require(*WRITE_ROLES)
def create_stage_two(recommendation_id: str):
    """Stage two: re-rank the customer's products using the feedback on a stage-one list."""
    rid = recommendation_id_param(recommendation_id)
    body = v.json_body(optional=True)
    v.reject_unknown(body, ("k", "manager_id", "explain_exclusions"))
    k = v.integer(body, "k", lo=1, hi=MAX_K, default=5)
    explain = v.boolean(body, "explain_exclusions")
    reach = scope(body)
    svc = services()
    parent = workflow.load_recommendation(svc, rid, reach)
    g.log_customer_id = parent.customer_id
    audit.note([parent.customer_id])
    result = workflow.stage_two(svc, parent, k, reach.acting_manager, explain, reads=audit.rows(201))
    audit.recorded()  # logged with the list
    return result, 201
