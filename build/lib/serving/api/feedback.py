"""Feedback on a recommendation: per product interested / not interested / already owns."""
from __future__ import annotations

from flask import Blueprint, g, request

from ml.recommendation.contract import RESPONSES

from .. import audit_log as audit
from .. import validation as v
from .. import workflow
from ..auth import require
from ..errors import ApiError
from .common import WRITE_ROLES, recommendation_id_param, scope, services

bp = Blueprint("feedback", __name__)
MAX_ITEMS = 20


def _idempotency_key() -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise ApiError(400, "missing_field", "an Idempotency-Key header is required")
    if not v.IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(400, "invalid_value", "the idempotency key must match [A-Za-z0-9_.:-]{8,128}")
    return key


def _items(body: dict) -> list[tuple[str, str]]:
    items = body.get("items")
    if not isinstance(items, list) or not 0 < len(items) <= MAX_ITEMS:
        raise ApiError(400, "invalid_value", f"items must be a list of 1..{MAX_ITEMS} judgements")
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise ApiError(400, "invalid_value", "each item must be an object")
        v.reject_unknown(item, ("product_id", "response"), where="items[]")
        product_id = v.required_string(item, "product_id", pattern=v.PRODUCT_ID, max_len=40)
        response = item.get("response")
        if response not in RESPONSES:
            raise ApiError(400, "invalid_value", f"response must be one of {', '.join(RESPONSES)}")
        out.append((product_id, response))
    if len(set(out)) != len(out):
        raise ApiError(400, "invalid_value", "items must be unique")
    if len({p for p, _ in out}) != len(out):
        raise ApiError(422, "duplicate_product", "a product appears twice with different responses")
    return out


@bp.post("/recommendations/<recommendation_id>/feedback")
@require(*WRITE_ROLES)
def record_feedback(recommendation_id: str):
    """Store the manager's judgements durably (idempotent by key within the caller), then push them to
    the online store. Only on a list whose customer is in the acting manager's book."""
    rid = recommendation_id_param(recommendation_id)
    body = v.json_body()
    v.reject_unknown(body, ("manager_id", "items"))
    key = _idempotency_key()
    items = _items(body)
    reach = scope(body)
    manager_id = reach.acting_manager
    assert manager_id is not None  # managers act for themselves, the CRM must name one
    svc = services()
    rec = workflow.load_recommendation(svc, rid, reach)
    g.log_customer_id = rec.customer_id
    audit.note([rec.customer_id])
    status, result = workflow.record_feedback(svc, rec, manager_id, key, items, g.principal.caller)
    headers = {"Idempotent-Replayed": "true"} if status == 200 else {}
    return result, status, headers
