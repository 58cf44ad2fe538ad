"""The control arm's ranking: the rule-based match score (``match_score.rule_scores``), no model.

A bank measures what its model adds against what its rules would have shown: a slice of customers
is served the products ranked by the rule score alone, under the same suitability mask and
suppressions as the model's lists. The score shown is the rule score itself (0..100).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ml.core.catalogue import Catalogue, Product
from ml.recommendation.contract import Reason
from ml.recommendation.match_score import RULE_WEIGHTS, rule_components, rule_scores

CONTROL_VERSION = "rules-v1"


RULE_TEXT = {"age": "age in the product's target range", "risk": "risk tolerance fits the product's risk level",
             "assets": "assets cover the minimum investment", "category": "already uses products of this kind",
             "trigger": "a recent salary credit, deposit maturity or card replacement",
             "tags": "profile matches the product's purpose"}


def _definition(p: Product) -> dict:
    return {"category": p.category, "risk_level": p.risk_level, "min_investment_cny": p.min_investment_cny,
            "target_age_min": p.target_age_min, "target_age_max": p.target_age_max, "tags": p.tags}


def rule_matrix(x: np.ndarray, products: Sequence[str], catalogue: Catalogue) -> np.ndarray:
    """(n, P) rule scores of customer rows ``x`` for ``products``."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    out = np.empty((len(x), len(products)))
    for j, pid in enumerate(products):
        out[:, j] = rule_scores(x, _definition(catalogue[pid]))
    return out


def rule_reasons(x: np.ndarray, product: Product) -> tuple[Reason, ...]:
    """The rules that score one customer row highest for ``product``, as reasons (best first)."""
    parts = rule_components(np.atleast_2d(np.asarray(x, dtype=np.float64))[:1], _definition(product))
    ranked = sorted(((RULE_WEIGHTS[k] * float(np.nan_to_num(v[0])), k) for k, v in parts.items()), reverse=True)
    return tuple(Reason(f"RULE_{name.upper()}", RULE_TEXT[name]) for weight, name in ranked if weight > 0)


def rule_top(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """(n, k) positions of the k best allowed products by rule score (-1 pads a short list); ties
    keep the catalogue order so the list is deterministic."""
    keyed = np.where(allowed, scores, -np.inf)
    order = np.argsort(-keyed, axis=1, kind="stable")[:, :k]
    ok = np.take_along_axis(allowed, order, axis=1)
    return np.where(ok, order, -1)
