"""The product catalogue and new-product (cold start) analysis."""
from __future__ import annotations

import re

from flask import Blueprint

from ml.core.catalogue import CATEGORIES, RISK_LEVELS

from .. import audit_log as audit
from .. import validation as v
from .. import workflow
from ..auth import require
from ..errors import ApiError
from .common import READ_ROLES, services

bp = Blueprint("products", __name__)
TAG = re.compile(r"[a-z0-9-]{1,32}")
PRODUCT_FIELDS = ("product_id", "name", "name_zh", "category", "risk_level", "min_investment_cny",
                  "expected_return_pct", "target_age_min", "target_age_max", "tags", "annual_value_cny")


@bp.get("/products")
@require(*READ_ROLES)
def list_products():
    """The catalogue the engine ranks from."""
    catalogue = services().catalogue
    return {"products": [{**p.summary(), "min_investment_cny": p.min_investment_cny,
                          "expected_return_pct": p.expected_return_pct, "target_age_min": p.target_age_min,
                          "target_age_max": p.target_age_max, "tags": list(p.tags)}
                         for p in catalogue]}


def _product(body: dict) -> dict:
    product = v.obj(body, "product", PRODUCT_FIELDS)
    if product is None:
        raise ApiError(400, "missing_field", "product is required")
    category = v.required_string(product, "category")
    risk_level = v.required_string(product, "risk_level")
    age_min = v.integer(product, "target_age_min", lo=0, hi=120, default=18)
    age_max = v.integer(product, "target_age_max", lo=0, hi=120, default=110)
    out = {
        "product_id": v.required_string(product, "product_id", pattern=v.PRODUCT_ID, max_len=40),
        "name": v.required_string(product, "name", max_len=100),
        "name_zh": v.string(product, "name_zh", max_len=100),
        "category": category,
        "risk_level": risk_level,
        "min_investment_cny": v.number(product, "min_investment_cny", lo=0, hi=1e9, default=0.0),
        "expected_return_pct": v.number(product, "expected_return_pct", lo=-100, hi=100, default=0.0),
        "target_age_min": age_min,
        "target_age_max": age_max,
        "tags": v.pattern_list(product, "tags", TAG, max_items=20) or [],
        "annual_value_cny": v.number(product, "annual_value_cny", lo=0, hi=1e9),
    }
    if category not in CATEGORIES or risk_level not in RISK_LEVELS:
        raise ApiError(400, "invalid_value", f"category must be one of {CATEGORIES}; risk_level one of {RISK_LEVELS}")
    if age_min > age_max:
        raise ApiError(422, "invalid_range", "target_age_min must not exceed target_age_max")
    return out


@bp.post("/products/cold-start")
@require("admin")
def cold_start():
    """Conflicts with existing products, the best-matching target customers, and an uptake forecast."""
    body = v.json_body()
    v.reject_unknown(body, ("product", "n_targets"))
    product = _product(body)
    n = v.integer(body, "n_targets", lo=1, hi=1000, default=100)
    result = workflow.cold_start(services(), product, n)
    audit.note(t["customer_id"] for t in result["targets"])  # the admin reads these customers' scores
    return result
