"""A new product's definition as a catalogue product, and the catalogue extended with it."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ml.core.catalogue import CATEGORY_CODES, Catalogue, Product, load_catalogue
from ml.features.pairs import PRODUCT_ATTRIBUTES


# ------------------------------------------------------------------------------------------------
# The product definition
# ------------------------------------------------------------------------------------------------
def to_product(definition: Mapping[str, Any]) -> Product:
    """A :class:`Product` from a definition (API or JSON file: ``name`` or ``name_en``,
    ``risk_level`` "R3" or 3, ``tags`` list or "a|b")."""
    d = dict(definition)
    risk = d.get("risk_level")
    tags = d.get("tags") or ()
    row = {
        "product_id": d.get("product_id") or "NEW_PRODUCT",
        "product_name_en": d.get("name_en") or d.get("name") or d.get("product_id") or "new product",
        "product_name_zh": d.get("name_zh") or "",
        "category": d["category"],
        "category_zh": d.get("category_zh", ""),
        "risk_level": risk if isinstance(risk, str) else f"R{int(risk)}",
        "min_investment_cny": float(d.get("min_investment_cny") or 0.0),
        "expected_return_pct": float(d.get("expected_return_pct") or 0.0),
        "target_age_min": int(d.get("target_age_min", 18)),
        "target_age_max": int(d.get("target_age_max", 110)),
        "tags": tuple(tags) if not isinstance(tags, str) else tags,
        "annual_value_cny": float(d.get("annual_value_cny") or 0.0),
    }
    return Product.from_row(row)


def extended_catalogue(product: Product, catalogue: Catalogue | None = None) -> Catalogue:
    """The catalogue plus the new product (last), so the suitability rules apply to it."""
    cat = catalogue or load_catalogue()
    if product.product_id in cat:
        raise ValueError(f"{product.product_id} is already in the catalogue")
    return Catalogue(cat.products + (product,))


def product_row(product: Product, code: int | None = None, catalogue: Catalogue | None = None) -> pd.DataFrame:
    """A ``product_table``-like row: a new ``product_code`` (>= catalogue size), no graph column."""
    cat = catalogue or load_catalogue()
    frame = pd.DataFrame({
        "category": [product.category], "product_risk": [float(product.risk_level)],
        "log_min_investment": [math.log1p(product.min_investment_cny)],
        "expected_return_pct": [product.expected_return_pct],
        "target_age_min": [float(product.target_age_min)], "target_age_max": [float(product.target_age_max)],
        "product_code": [float(len(cat) if code is None else code)],
        "category_code": [float(CATEGORY_CODES[product.category])],
    }, index=pd.Index([product.product_id], name="product_id"))
    return frame[["category", *[c for c in PRODUCT_ATTRIBUTES if c != "category"]]]
