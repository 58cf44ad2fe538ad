"""Match scores 0..100: the display score of a model probability, and a rule-based score.

Two different things carry the name in the brief:

* :class:`MatchReference` — the *display* score of stage one: a customer's calibrated probability
  for a product turned into a percentile of the probabilities of every customer that product is
  suitable for, at the current snapshot ("match 90" = a better prospect for this product than 90%
  of the customers who may be offered it). Monotone non-decreasing in the probability within a
  product by construction, comparable across products with very different base rates, and cheap
  (one ``searchsorted`` per product). The reference quantiles are computed in the nightly batch
  (:func:`ml.engine.batch_score`) and saved with the scores; serving reads them.
* :func:`rule_scores` — a transparent rule-based 0..100 score from product attributes and the
  customer's profile alone (age fit, risk fit, assets against the minimum, use of the category,
  recent triggers, tag rules), the kind of score a bank writes without a model. It is the baseline
  the cold-start evaluation compares the model with, and the fallback when no model is loaded.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.core.config import Paths
from ml.features.layout import POSITION
from ml.training.model import PropensityModel

N_QUANTILES = 1001  # 0.1% resolution


@dataclass(frozen=True)
class MatchReference:
    """Per-product quantiles of the calibrated probability over the suitable population."""

    products: tuple[str, ...]
    quantiles: np.ndarray          # (P, N_QUANTILES), non-decreasing per row
    model_version: str = ""
    n_customers: int = 0

    @classmethod
    def fit(cls, probabilities: np.ndarray, allowed: np.ndarray, products: Sequence[str],
            model_version: str = "") -> "MatchReference":
        """Quantiles of ``probabilities`` (n, P) per column over the ``allowed`` cells."""
        levels = np.linspace(0.0, 1.0, N_QUANTILES)
        rows = []
        for j in range(len(products)):
            values = probabilities[allowed[:, j], j]
            values = values[np.isfinite(values)]
            rows.append(np.quantile(values, levels) if len(values) else np.zeros(N_QUANTILES))
        return cls(tuple(products), np.vstack(rows), model_version, int(len(probabilities)))

    def score(self, probabilities: np.ndarray, product_index: np.ndarray | int) -> np.ndarray:
        """Match scores (int 0..100) for probabilities of the products at ``product_index``.

        The share of the product's suitable customers with a probability at or below this one
        (the midpoint of a run of ties), rounded to an integer percentage.
        """
        p = np.asarray(probabilities, dtype=np.float64)
        idx = np.broadcast_to(np.asarray(product_index), p.shape)
        out = np.zeros(p.shape, dtype=np.int64)
        for j in np.unique(idx):
            sel = idx == j
            q = self.quantiles[int(j)]
            lo = np.searchsorted(q, p[sel], side="left")
            hi = np.searchsorted(q, p[sel], side="right")
            share = (lo + hi) / 2 / (len(q) - 1)
            out[sel] = np.clip(np.round(100 * share), 0, 100).astype(np.int64)
        return out

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"products": list(self.products), "model_version": self.model_version,
                                   "n_customers": self.n_customers,
                                   "quantiles": np.round(self.quantiles, 9).tolist()}))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "MatchReference":
        raw = json.loads(Path(path).read_text())
        return cls(tuple(raw["products"]), np.asarray(raw["quantiles"], dtype=np.float64),
                   raw.get("model_version", ""), int(raw.get("n_customers", 0)))


# ------------------------------------------------------------------------------------------------
# The rule-based score
# ------------------------------------------------------------------------------------------------
RULE_WEIGHTS: Mapping[str, float] = {
    "age": 30.0,        # distance of the age to the middle of the target range
    "risk": 15.0,       # tolerance at or just above the product's risk level
    "assets": 15.0,     # assets cover the minimum investment comfortably
    "category": 15.0,   # already uses products of the category
    "trigger": 15.0,    # salary credit, deposit maturity or card replacement in the last 60 days
    "tags": 10.0,       # tag rules (retirement & age 45+, family & married, ...)
}

TRIGGER_DAYS = 60



def _col(x: np.ndarray, name: str) -> np.ndarray:
    return x[:, POSITION[name]].astype(np.float64)


def rule_components(x: np.ndarray, product: Mapping) -> dict[str, np.ndarray]:
    """Each rule's 0..1 fit for customer rows ``x`` (layout order) and one product definition.

    ``product``: ``category``, ``risk_level`` (1..5 or "R1".."R5"), ``min_investment_cny``,
    ``target_age_min``, ``target_age_max``, ``tags`` (list or "|"-joined).
    """
    x = np.asarray(x, dtype=np.float64)
    risk = int(str(product["risk_level"]).upper().lstrip("R"))
    lo, hi = float(product["target_age_min"]), float(product["target_age_max"])
    tags = product.get("tags") or ()
    tags = set(tags.split("|") if isinstance(tags, str) else tags)
    age = _col(x, "age")
    mid, half = (lo + hi) / 2, max((hi - lo) / 2, 1.0)
    age_fit = np.where((age >= lo) & (age <= hi), 1.0 - 0.5 * ((age - mid) / half) ** 2, 0.0)
    tol = _col(x, "risk_tolerance")
    risk_fit = np.where(tol >= risk, 1.0 - 0.25 * np.clip(tol - risk, 0, 2), 0.0)
    assets = np.expm1(_col(x, "log_assets"))
    minimum = float(product.get("min_investment_cny") or 0.0)
    asset_fit = np.clip(np.log10(np.maximum(assets, 1.0) / max(minimum, 1_000.0)) / 2, 0.0, 1.0)
    category = str(product["category"])
    held = _col(x, f"n_held_{category}")
    recent = np.nan_to_num(_col(x, f"n_{category}_events_90d"))
    category_fit = np.clip(0.6 * (np.nan_to_num(held) > 0) + 0.4 * (recent > 0), 0, 1)
    trigger = np.zeros(len(x))
    for name in ("days_since_salary_credit", "days_since_deposit_maturity", "days_since_card_replacement"):
        days = _col(x, name)
        trigger = np.maximum(trigger, np.where(np.isfinite(days) & (days <= TRIGGER_DAYS), 1.0, 0.0))
    tag_fit = np.zeros(len(x))
    rules = {
        "retirement": age >= 45, "family": _col(x, "marital_status_code") == 1,
        "education": (_col(x, "marital_status_code") == 1) & (age >= 25) & (age <= 50),
        "home": (age >= 23) & (age <= 45),
        "vehicle": _col(x, "n_held_credit") > 0, "business": np.isnan(_col(x, "days_since_salary_credit")),
        "equity": tol >= 4, "growth": tol >= 4, "high-balance": assets >= 500_000,
        "steady": tol <= 3, "guaranteed": tol <= 2, "everyday": _col(x, "n_everyday_txn_90d") > 10,
        "health": age >= 30, "protection": age >= 25,
    }
    hits = [np.asarray(rules[t], dtype=np.float64) for t in tags if t in rules]
    if hits:
        tag_fit = np.mean(hits, axis=0)
    return {"age": age_fit, "risk": risk_fit, "assets": asset_fit, "category": category_fit,
            "trigger": trigger, "tags": tag_fit}


def rule_scores(x: np.ndarray, product: Mapping) -> np.ndarray:
    """Rule-based match score (float 0..100) of customer rows for one product definition."""
    parts = rule_components(x, product)
    total = sum(RULE_WEIGHTS[k] * np.nan_to_num(v) for k, v in parts.items())
    return np.clip(total, 0.0, 100.0)


def load_reference(paths: Paths, model: PropensityModel) -> MatchReference | None:
    """The match-score reference the nightly batch wrote for this model version, or None (then
    match scores use a fixed log scale until the batch has run: serving never scans the snapshot)."""
    path = paths.data / "scores" / REFERENCE_FILE
    if not path.exists():
        return None
    ref = MatchReference.load(path)
    if ref.model_version != str(model.metadata.get("version", "")) or ref.products != tuple(model.products):
        return None
    return ref


REFERENCE_FILE = "match_reference.json"
