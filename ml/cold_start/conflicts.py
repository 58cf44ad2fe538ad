"""Which products a new one would compete with, and what the rules and the shelf warn about.

*substitute* (same role: same category and similar, or a shared tag across categories) with risk
``high`` / ``medium`` by strength; *overlap* (same category, less similar); *complement* (the
relation graph's complements of its nearest existing product). Warnings: risk concentration,
target ages the suitability rules cut, a minimum investment few reach, an outlying return.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.core import suitability
from ml.core.catalogue import Catalogue, Product, load_catalogue
from ml.features.layout import POSITION
from ml.relations import attribute_similarity

SUBSTITUTE_SIMILARITY = 0.7      # same category and at least this similar: a substitute

HIGH_RISK_SIMILARITY = 0.8       # a substitute this similar: high cannibalisation risk

OVERLAP_SIMILARITY = 0.55        # same category, less similar: an overlap (medium)

CROSS_SUBSTITUTE_SIMILARITY = 0.4  # across categories: a shared tag and this similar


# ------------------------------------------------------------------------------------------------
# 1. Conflicts and warnings
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConflictItem:
    product_id: str
    relation: str          # substitute | overlap | complement
    strength: float        # 0..1
    risk: str              # high | medium | low
    reason: str


def conflicts(product: Product, catalogue: Catalogue | None = None,
              complement: np.ndarray | None = None) -> list[ConflictItem]:
    """Existing products the new one would substitute, overlap or complement, strongest first."""

    cat = catalogue or load_catalogue()
    out: list[ConflictItem] = []
    sims = {q.product_id: attribute_similarity(product, q) for q in cat}
    for q in cat:
        s = sims[q.product_id]
        sim = s["attribute_similarity"]
        shared = sorted(set(product.tags) & set(q.tags))
        if q.category == product.category and sim >= SUBSTITUTE_SIMILARITY:
            risk = "high" if sim >= HIGH_RISK_SIMILARITY else "medium"
            out.append(ConflictItem(q.product_id, "substitute", round(sim, 3), risk,
                                    f"same category ({q.category}), {q.risk_label} vs {product.risk_label}, "
                                    f"target ages overlap {s['age_overlap']:.0%}"
                                    + (f", shared tags {', '.join(shared)}" if shared else "")))
        elif q.category == product.category and sim >= OVERLAP_SIMILARITY:
            out.append(ConflictItem(q.product_id, "overlap", round(sim, 3), "medium",
                                    f"same category ({q.category}), partly different customers "
                                    f"(age overlap {s['age_overlap']:.0%}, {q.risk_label} vs {product.risk_label})"))
        elif q.category != product.category and shared and sim >= CROSS_SUBSTITUTE_SIMILARITY:
            out.append(ConflictItem(q.product_id, "substitute", round(sim, 3),
                                    "high" if sim >= HIGH_RISK_SIMILARITY else "medium",
                                    f"same role across categories: shared tags {', '.join(shared)}"))
    if complement is not None:
        nearest = max(cat, key=lambda q: (sims[q.product_id]["attribute_similarity"], q.product_id))
        near_sim = sims[nearest.product_id]["attribute_similarity"]
        row = complement[cat.index(nearest.product_id)]
        taken = {c.product_id for c in out}
        for j in np.argsort(-row):
            if row[j] <= 0:
                break
            q = cat[int(j)]
            if q.product_id in taken or q.product_id == nearest.product_id:
                continue
            out.append(ConflictItem(q.product_id, "complement", round(float(near_sim * row[j]), 3), "low",
                                    f"complements {nearest.name_en} (relation strength {row[j]:.2f}), the most "
                                    f"similar existing product: a cross-sell opportunity"))
    order = {"high": 0, "medium": 1, "low": 2}
    return sorted(out, key=lambda c: (order[c.risk], -c.strength, c.product_id))


def warnings(product: Product, x: np.ndarray | None = None, allowed: np.ndarray | None = None,
             catalogue: Catalogue | None = None) -> list[dict]:
    """Risk-concentration and suitability warnings (``x``: customers' features at the snapshot)."""
    cat = catalogue or load_catalogue()
    rules = suitability.RULES
    out = []
    same = [q for q in cat if q.category == product.category and q.risk_level == product.risk_level]
    if len(same) >= 2:
        out.append(_warning("RISK_CONCENTRATION", "medium",
                            "%(n)s %(category)s products at %(risk_level)s already (%(products)s): the category's "
                            "offer concentrates at this risk level", n=len(same), category=product.category,
                            risk_level=product.risk_label, products=", ".join(q.product_id for q in same)))
    if product.risk_level >= rules.high_risk_min_level and product.target_age_max > rules.high_risk_max_age:
        out.append(_warning("AGE_LIMIT_HIGH_RISK", "high",
                            "%(risk_level)s products cannot be offered over age %(max_age)s; the target range "
                            "%(age_min)s-%(age_max)s will be cut", risk_level=product.risk_label,
                            max_age=f"{rules.high_risk_max_age:.0f}", age_min=product.target_age_min,
                            age_max=product.target_age_max))
    if product.category in rules.adult_categories and product.target_age_min < rules.adult_min_age:
        out.append(_warning("BELOW_ADULT_AGE", "high", "%(category)s products only from age %(min_age)s",
                            category=product.category, min_age=f"{rules.adult_min_age:.0f}"))
    peers = [q.expected_return_pct for q in cat
             if q.risk_level == product.risk_level and q.category == product.category]
    if peers and product.expected_return_pct > max(peers) + 1.0:
        out.append(_warning("RETURN_ABOVE_RISK_PEERS", "high",
                            "expected return %(return_pct)s%% is above every %(risk_level)s %(category)s product "
                            "(max %(peer_max_pct)s%%): check the risk rating (mis-selling risk)",
                            return_pct=f"{product.expected_return_pct:.2f}", risk_level=product.risk_label,
                            category=product.category, peer_max_pct=f"{max(peers):.2f}"))
    if x is not None and len(x):
        age = x[:, POSITION["age"]]
        in_range = (age >= product.target_age_min) & (age <= product.target_age_max)
        assets = np.expm1(x[:, POSITION["log_assets"]].astype(np.float64))
        reach = float(np.mean(assets[in_range] >= product.min_investment_cny)) if in_range.any() else 0.0
        if product.min_investment_cny > 0 and reach < 0.2:
            out.append(_warning("MIN_INVESTMENT_REACH", "medium",
                                "only %(share)s of customers in the target ages hold the CNY %(minimum)s minimum "
                                "at the bank", share=f"{reach:.0%}", minimum=f"{product.min_investment_cny:,.0f}"))
        if allowed is not None:
            share = float(np.mean(allowed))
            if share < 0.01:
                out.append(_warning("SMALL_SUITABLE_POPULATION", "medium",
                                    "the product is suitable for only %(share)s of customers", share=f"{share:.2%}"))
    return out


def _warning(code: str, severity: str, template: str, **params: object) -> dict:
    """A warning: its English message, and the template and params serving translates."""
    return {"code": code, "severity": severity, "message": template % params, "template": template, "params": params}
