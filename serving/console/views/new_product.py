"""New product (admin): the cold-start wizard over the API's analysis.

Define a product (or start from one of the bank's templates), then read its conflicts with their
risk tags and the warnings, the target customers with reasons (CSV for a campaign) and the
forecast with its assumptions, which can be edited and the forecast run again. The definition and
the assumptions are validated by the API's own functions and analysed by ``workflow.cold_start``
(the engine's ``ml.cold_start``); the page only reads, so the wizard is a GET form.
"""
from __future__ import annotations

import csv
import io

from flask import Response, render_template, request
from flask_babel import lazy_gettext as _l

from ml.core.catalogue import CATEGORIES, RISK_LEVELS

from ... import audit_log as audit
from ... import workflow
from ...api.products import ASSUMPTION_LIMITS, forecast_assumptions, product_definition
from ...errors import ApiError
from .. import context as ctx
from ..blueprint import bp, nav_item
from ..sessions import login_required

nav_item("console.new_product", _l("New product"), 60, roles=("admin",))
PAGE_TARGETS = 50
CSV_TARGETS = 1000

TEMPLATES = {
    "smart_wealth_plus": {"product_id": "WLT_SMART_PLUS", "name": "Smart Wealth Plus", "name_zh": "智能理财Plus",
                          "category": "wealth", "risk_level": "R3", "min_investment_cny": 10000,
                          "expected_return_pct": 3.8, "target_age_min": 25, "target_age_max": 65,
                          "tags": "balanced|diversified|digital", "annual_value_cny": 600},
    "express_consumer_loan": {"product_id": "CRD_EXPRESS_LOAN", "name": "Express consumer loan", "name_zh": "极速消费贷",
                              "category": "credit", "risk_level": "R2", "min_investment_cny": 0,
                              "expected_return_pct": 0, "target_age_min": 22, "target_age_max": 60,
                              "tags": "flexible|short-term|digital", "annual_value_cny": 900},
    "family_protection": {"product_id": "PRO_FAMILY_PLAN", "name": "Family protection plan", "name_zh": "全家福保险",
                          "category": "protection", "risk_level": "R1", "min_investment_cny": 2000,
                          "expected_return_pct": 0, "target_age_min": 25, "target_age_max": 60,
                          "tags": "family|health|protection", "annual_value_cny": 450},
}
NUMBERS = ("min_investment_cny", "expected_return_pct", "annual_value_cny")
INTEGERS = ("target_age_min", "target_age_max")


def _typed(text: str, whole: bool, field: str):
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, "invalid_value", f"{field} must be a number") from None
    if whole and not value.is_integer():
        raise ApiError(400, "invalid_value", f"{field} must be a whole number")
    return int(value) if whole else value


def definition(args) -> tuple[dict, dict]:
    """The product and the assumption overrides of the form, validated as the API validates them."""
    product = {k: args.get(k, "").strip() for k in ("product_id", "name", "name_zh", "category", "risk_level")}
    product = {k: v for k, v in product.items() if v}
    for field in NUMBERS + INTEGERS:
        if args.get(field, "").strip():
            product[field] = _typed(args[field].strip(), field in INTEGERS, field)
    tags = [t.strip() for t in args.get("tags", "").replace(",", "|").split("|") if t.strip()]
    if tags:
        product["tags"] = tags
    assumptions = {name: _typed(args[f"a_{name}"].strip(), whole, name)
                   for name, (whole, _lo, _hi) in ASSUMPTION_LIMITS.items() if args.get(f"a_{name}", "").strip()}
    return product_definition({"product": product}), forecast_assumptions({"assumptions": assumptions})


def _analyse(n: int) -> tuple[dict, dict, dict]:
    product, assumptions = definition(request.args)
    result = workflow.cold_start(ctx.services(), product, n, assumptions)
    audit.note(t["customer_id"] for t in result["targets"])  # the admin reads these customers' scores
    return product, assumptions, result


@bp.get("/products/new")
@login_required("admin")
def new_product():
    """The definition form (from a template when one is chosen) and, once submitted, the analysis."""
    form = dict(TEMPLATES.get(request.args.get("template", ""), {}))
    form.update({k: v for k, v in request.args.items() if k != "template"})
    result = error = None
    if request.args.get("product_id"):
        try:
            _product, _assumptions, result = _analyse(PAGE_TARGETS)
        except ApiError as exc:
            error = exc
    return render_template("console/new_product.html", form=form, result=result, error=error, templates=TEMPLATES,
                           categories=CATEGORIES, risk_levels=RISK_LEVELS, limits=ASSUMPTION_LIMITS,
                           query=request.query_string.decode("ascii", "replace"), n_csv=CSV_TARGETS), \
        (error.status if error is not None else 200)


@bp.get("/products/new/targets.csv")
@login_required("admin")
def new_product_targets():
    """The best-matching target customers of the product (up to 1,000) with their reasons, for a campaign."""
    product, _assumptions, result = _analyse(CSV_TARGETS)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "customer_id", "match_score", "reason_codes", "reasons"])
    for rank, target in enumerate(result["targets"], start=1):
        writer.writerow([rank, target["customer_id"], target["match_score"],
                         "|".join(r["code"] for r in target["reasons"]), "; ".join(r["text"] for r in target["reasons"])])
    return Response(buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename=targets-{product['product_id']}.csv"})
