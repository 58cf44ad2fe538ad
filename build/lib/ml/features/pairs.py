"""Customer × product rows: customer features, product attributes and how well the two fit.

One model over all products (rather than one per product) sees products through their
attributes, which is what lets it score a product it has never seen (cold start).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ml.core.catalogue import CATEGORY_CODES, load_catalogue
from ml.features.layout import POSITION, STAGE_ONE_FEATURES

PRODUCT_ATTRIBUTES = ["product_code", "category_code", "product_risk", "log_min_investment",
                      "expected_return_pct", "target_age_min", "target_age_max"]

FIT_FEATURES = ["risk_headroom", "age_to_target_mid", "age_in_target", "asset_margin",
                "held_in_category", "complement_score", "substitute_held"]



def product_table(products: list[str] | None = None, catalogue=None) -> pd.DataFrame:
    """Numeric attributes per product, indexed by product_id (catalogue or ad-hoc products)."""
    cat = catalogue or load_catalogue()
    frame = pd.DataFrame({
        "product_id": list(cat.ids),
        "category": list(cat.categories),
        "product_risk": cat.risk_levels.astype(float),
        "log_min_investment": np.log1p(cat.min_investment.astype(float)),
        "expected_return_pct": np.asarray([p.expected_return_pct for p in cat.products], dtype=float),
        "target_age_min": cat.age_min.astype(float),
        "target_age_max": cat.age_max.astype(float),
    })
    frame["product_code"] = np.arange(len(frame), dtype=float)
    frame["category_code"] = frame.category.map(CATEGORY_CODES).astype(float)
    frame = frame.set_index("product_id")
    return frame.loc[products] if products is not None else frame


def feature_names() -> list[str]:
    return list(STAGE_ONE_FEATURES) + PRODUCT_ATTRIBUTES + FIT_FEATURES


def _holdings(customer: np.ndarray, all_ids: tuple[str, ...]) -> np.ndarray:
    cols = [POSITION[f"holds_{p.lower()}"] for p in all_ids]
    return np.nan_to_num(customer[:, cols]) > 0


def pair_matrix(customer: np.ndarray, products: pd.DataFrame, relations: dict[str, np.ndarray] | None = None
                ) -> np.ndarray:
    """(n·P, F) float32 rows for every (customer row, product) pair, customer-major.

    ``customer``: (n, len(STAGE_ONE_FEATURES)) in layout order; ``products``: rows of
    :func:`product_table`; ``relations``: optional {"complement", "substitute"} (P_all, P_all)
    strength matrices in catalogue order, from held product to offered product. A product outside
    the catalogue (cold start) has no relation column: its graph features are 0.
    """
    n, p = len(customer), len(products)
    attrs = products[PRODUCT_ATTRIBUTES].to_numpy(dtype=np.float32)
    cust = np.repeat(customer.astype(np.float32), p, axis=0)
    prod = np.tile(attrs, (n, 1))

    age = customer[:, POSITION["age"]][:, None]
    tol = customer[:, POSITION["risk_tolerance"]][:, None]
    log_assets = customer[:, POSITION["log_assets"]][:, None]
    lo, hi = products.target_age_min.to_numpy()[None, :], products.target_age_max.to_numpy()[None, :]
    category_held = np.column_stack([customer[:, POSITION[f"n_held_{c}"]] for c in CATEGORY_CODES])
    held_in_category = category_held[:, products.category_code.to_numpy(dtype=int)]
    all_ids = load_catalogue().ids
    held = _holdings(customer, all_ids).astype(np.float32)
    complement = np.zeros((n, p), dtype=np.float32)
    substitute = np.zeros((n, p), dtype=np.float32)
    if relations:
        code = products.product_code.to_numpy()
        known = np.flatnonzero(code < len(all_ids))
        cols = code[known].astype(int)
        complement[:, known] = held @ relations["complement"][:, cols]
        substitute[:, known] = np.max(held[:, :, None] * relations["substitute"][None, :, cols], axis=1)
    fit = np.stack([
        tol - products.product_risk.to_numpy()[None, :],
        age - (lo + hi) / 2,
        ((age >= lo) & (age <= hi)).astype(np.float32),
        log_assets - products.log_min_investment.to_numpy()[None, :],
        held_in_category,
        complement,
        substitute,
    ], axis=2).reshape(n * p, len(FIT_FEATURES)).astype(np.float32)
    return np.hstack([cust, prod, fit])


def pairs_to_matrix(frame: pd.DataFrame, relations: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Model rows for a long frame of (customer features..., product_id) pairs, in frame order."""
    products = product_table()
    customer = frame[list(STAGE_ONE_FEATURES)].to_numpy(dtype=np.float32)
    out = np.empty((len(frame), len(feature_names())), dtype=np.float32)
    codes = products.index.get_indexer(frame.product_id)
    for j in np.unique(codes):
        rows = np.flatnonzero(codes == j)
        out[rows] = pair_matrix(customer[rows], products.iloc[[j]], relations)
    return out
