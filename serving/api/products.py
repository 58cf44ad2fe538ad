"""The product catalogue and new-product (cold start) analysis."""
from __future__ import annotations

import re

from flask import Blueprint
from flask_babel import lazy_gettext as _l

from ml.core.catalogue import CATEGORIES, RISK_LEVELS

from .. import audit_log as audit
from .. import validation as v
from .. import workflow, wording
from ..auth import require
from ..errors import ApiError
from .common import READ_ROLES, services

bp = Blueprint("products", __name__)
TAG = re.compile(r"[0-9A-Za-z_ \u4e00-\u9fff-]{1,32}")  # a code, or its English or Chinese name
PRODUCT_FIELDS = ("product_id", "name", "name_zh", "category", "risk_level", "min_investment_cny",
                  "expected_return_pct", "target_age_min", "target_age_max", "tags", "annual_value_cny")


v.RULES[TAG.pattern] = _l("1 to 32 letters (Latin or Chinese), digits, spaces, _ or -")


def tags(product: dict) -> list[str]:
    """The product's tags as codes: a known tag may be given by its code or its English or Chinese
    name (``养老`` -> ``retirement``); another tag is kept as written."""
    given = v.pattern_list(product, "tags", TAG, max_items=20) or []
    out: list[str] = []
    for tag in given:
        code = wording.tag_code(tag)
        if code not in out:
            out.append(code)
    return out


@bp.get("/products")
@require(*READ_ROLES)
def list_products():
    """The catalogue the engine ranks from."""
    catalogue = services().catalogue
    return {"products": [{**workflow.product_summary(catalogue, p.product_id), "min_investment_cny": p.min_investment_cny,
                          "expected_return_pct": p.expected_return_pct, "target_age_min": p.target_age_min,
                          "target_age_max": p.target_age_max, "annual_value_cny": p.annual_value_cny,
                          "tags": list(p.tags), "tag_names": wording.tag_names(p.tags)}
                         for p in catalogue]}


# the forecast assumptions a request may override: name -> (integer?, lowest, highest)
ASSUMPTION_LIMITS = {"horizon_months": (True, 1, 60), "contact_rate": (False, 0.0, 1.0),
                     "contact_uplift": (False, 0.0, 20.0), "margin": (False, 0.0, 1.0),
                     "average_balance_cny": (False, 0.0, 1e9), "n_similar": (True, 1, 10)}


def forecast_assumptions(body: dict) -> dict:
    """The ``assumptions`` object of a cold-start request (only the names given), validated."""
    given = v.obj(body, "assumptions", tuple(ASSUMPTION_LIMITS))
    if not given:
        return {}
    out = {}
    for name, (whole, lo, hi) in ASSUMPTION_LIMITS.items():
        value = (v.integer(given, name, lo=int(lo), hi=int(hi)) if whole
                 else v.number(given, name, lo=float(lo), hi=float(hi)))
        if value is not None:
            out[name] = value
    return out


def product_definition(body: dict) -> dict:
    product = v.obj(body, "product", PRODUCT_FIELDS)
    if product is None:
        raise v.invalid(body, "product", "%(name)s is required", code="missing_field")
    category = v.required_string(product, "category")
    if category not in CATEGORIES:
        raise v.invalid(product, "category", "%(name)s must be one of: %(allowed)s", allowed=", ".join(CATEGORIES))
    risk_level = v.required_string(product, "risk_level")
    if risk_level not in RISK_LEVELS:
        raise v.invalid(product, "risk_level", "%(name)s must be one of: %(allowed)s", allowed=", ".join(RISK_LEVELS))
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
        "tags": tags(product),
        "annual_value_cny": v.number(product, "annual_value_cny", lo=0, hi=1e9),
    }
    if age_min > age_max:
        raise v.invalid(product, "target_age_min", "%(name)s must not exceed %(other)s", status=422,
                        code="invalid_range", other="product.target_age_max")
    return out


@bp.post("/products/cold-start")
@require("admin")
def cold_start():
    """Conflicts with existing products, the best-matching target customers, and an uptake forecast."""
    body = v.json_body()
    v.reject_unknown(body, ("product", "n_targets", "assumptions"))
    product = product_definition(body)
    n = v.integer(body, "n_targets", lo=1, hi=1000, default=100)
    result = workflow.cold_start(services(), product, n, forecast_assumptions(body))
    audit.note(t["customer_id"] for t in result["targets"])  # the admin reads these customers' scores
    return result
