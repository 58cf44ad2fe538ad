"""The control arm's ranking: the rule-based match score (``match_score.rule_scores``), no model.

A bank measures what its model adds against what its rules would have shown: a slice of customers
is served the products ranked by the rule score alone, under the same suitability mask and
suppressions as the model's lists. The score shown is the rule score itself (0..100).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ml.core.catalogue import Catalogue
from ml.recommendation.match_score import rule_scores

CONTROL_VERSION = "rules-v1"


def rule_matrix(x: np.ndarray, products: Sequence[str], catalogue: Catalogue) -> np.ndarray:
    """(n, P) rule scores of customer rows ``x`` for ``products``."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    out = np.empty((len(x), len(products)))
    for j, pid in enumerate(products):
        p = catalogue[pid]
        out[:, j] = rule_scores(x, {"category": p.category, "risk_level": p.risk_level,
                                    "min_investment_cny": p.min_investment_cny, "target_age_min": p.target_age_min,
                                    "target_age_max": p.target_age_max, "tags": p.tags})
    return out


def rule_top(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """(n, k) positions of the k best allowed products by rule score (-1 pads a short list); ties
    keep the catalogue order so the list is deterministic."""
    keyed = np.where(allowed, scores, -np.inf)
    order = np.argsort(-keyed, axis=1, kind="stable")[:, :k]
    ok = np.take_along_axis(allowed, order, axis=1)
    return np.where(ok, order, -1)
