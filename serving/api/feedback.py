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
        raise ApiError(400, "missing_field", "the %(name)s header is required", params={"name": "Idempotency-Key"},
                       field="Idempotency-Key", in_body=False)
    if not v.IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(400, "invalid_value", "the %(name)s header must be %(rule)s",
                       params={"name": "Idempotency-Key", "rule": v.RULES[v.IDEMPOTENCY_KEY.pattern]},
                       field="Idempotency-Key", in_body=False)
    return key


def _items(body: dict) -> list[tuple[str, str]]:
    items = body.get("items", v.MISSING)
    if items is v.MISSING:
        raise v.invalid(body, "items", "%(name)s is required", code="missing_field")
    if not isinstance(items, list) or not 0 < len(items) <= MAX_ITEMS:
        raise v.invalid(body, "items", "%(name)s must be a list of 1 to %(max)s answers", max=MAX_ITEMS)
    out = []
    listed = v.located({}, ("items",))
    for i, raw in enumerate(items):
        if not isinstance(raw, dict):
            raise v.invalid(listed, i, "%(name)s must be an object")
        item = v.located(raw, ("items", i))
        v.reject_unknown(item, ("product_id", "response"))
        product_id = v.required_string(item, "product_id", pattern=v.PRODUCT_ID, max_len=40)
        response = item.get("response", v.MISSING)
        if response is v.MISSING:
            raise v.invalid(item, "response", "%(name)s is required", code="missing_field")
        if response not in RESPONSES:
            raise v.invalid(item, "response", "%(name)s must be one of: %(allowed)s", allowed=", ".join(RESPONSES))
        if (product_id, response) in out:
            raise v.invalid(listed, i, "%(name)s repeats an earlier answer")
        if any(p == product_id for p, _ in out):
            raise v.invalid(item, "product_id", "%(name)s answers a product that an earlier item answers differently",
                            status=422, code="duplicate_product")
        out.append((product_id, response))
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
