"""Match scores 0..100: the display score of a ranked offer, and a rule-based score.

Two different things carry the name:

* :class:`MatchReference` — the *display* score of stage one: where an offer's expected value
  (calibrated adoption probability x the product's annual value to the bank, the key stage one
  ranks by) stands among every suitable offer of the current snapshot, pooled over customers and
  products ("match 90" = a better offer than 90% of tonight's suitable customer x product pairs).
  It is a monotone function of the ranking key, so it never increases down a list: the order a
  manager reads and the scores agree. The per-product quantiles of the probability are kept as
  well (``prospect_percentile``: how this customer compares with the other customers the product
  suits). The quantiles are computed in the nightly batch (``ml.recommendation.batch``) and saved
  with the scores; serving reads them (one ``searchsorted``).
* :func:`rule_scores` — a transparent rule-based 0..100 score from product attributes and the
  customer's profile alone (age fit, risk fit, assets against the minimum, use of the category,
  recent triggers, tag rules), the kind of score a bank writes without a model. It is the baseline
  the cold-start evaluation compares the model with.
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
    value_quantiles: np.ndarray | None = None  # (N_QUANTILES,) expected values of every suitable offer

    @classmethod
    def fit(cls, probabilities: np.ndarray, allowed: np.ndarray, products: Sequence[str],
            model_version: str = "", values: np.ndarray | None = None) -> "MatchReference":
        """Quantiles of ``probabilities`` (n, P) per column over the ``allowed`` cells, and (with the
        products' annual ``values``) of the expected values of all allowed cells pooled."""
        levels = np.linspace(0.0, 1.0, N_QUANTILES)
        rows = []
        for j in range(len(products)):
            column = probabilities[allowed[:, j], j]
            column = column[np.isfinite(column)]
            rows.append(np.quantile(column, levels) if len(column) else np.zeros(N_QUANTILES))
        pooled = None
        if values is not None:
            expected = (np.asarray(probabilities, dtype=np.float64) * np.asarray(values, dtype=np.float64)[None, :])
            expected = expected[allowed & np.isfinite(expected)]
            pooled = np.quantile(expected, levels) if len(expected) else np.zeros(N_QUANTILES)
        return cls(tuple(products), np.vstack(rows), model_version, int(len(probabilities)), pooled)

    def score_value(self, expected_values: np.ndarray) -> np.ndarray:
        """Match scores (int 0..100) of expected values: the share of tonight's suitable offers with an
        expected value at or below each (midpoint of a run of ties). None without pooled quantiles."""
        assert self.value_quantiles is not None
        return _percentile(self.value_quantiles, np.asarray(expected_values, dtype=np.float64))

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
            out[sel] = _percentile(self.quantiles[int(j)], p[sel])
        return out

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        pooled = None if self.value_quantiles is None else np.round(self.value_quantiles, 6).tolist()
        tmp.write_text(json.dumps({"products": list(self.products), "model_version": self.model_version,
                                   "n_customers": self.n_customers,
                                   "quantiles": np.round(self.quantiles, 9).tolist(),
                                   "value_quantiles": pooled}))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "MatchReference":
        raw = json.loads(Path(path).read_text())
        pooled = raw.get("value_quantiles")
        return cls(tuple(raw["products"]), np.asarray(raw["quantiles"], dtype=np.float64),
                   raw.get("model_version", ""), int(raw.get("n_customers", 0)),
                   None if pooled is None else np.asarray(pooled, dtype=np.float64))


def _percentile(quantiles: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Integer percentages 0..100 of ``values`` within sorted ``quantiles`` (ties share the midpoint)."""
    lo = np.searchsorted(quantiles, values, side="left")
    hi = np.searchsorted(quantiles, values, side="right")
    share = (lo + hi) / 2 / (len(quantiles) - 1)
    return np.clip(np.round(100 * share), 0, 100).astype(np.int64)


def log_scale(expected_values: np.ndarray) -> np.ndarray:
    """The match score before any nightly reference exists: expected values on a log scale from
    CNY 0.01 (0) to CNY 1,000 (100), still monotone in the ranking key."""
    ev = np.maximum(np.nan_to_num(np.asarray(expected_values, dtype=np.float64)), 1e-2)
    return np.clip(np.round(100 * (np.log10(ev) + 2) / 5), 0, 100).astype(np.int64)


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


def load_reference(paths: Paths, model: PropensityModel, scores_dir: Path | None = None) -> MatchReference | None:
    """The match-score reference the nightly batch wrote for this model version, or None (then
    match scores use a fixed log scale until the batch has run: serving never scans the snapshot;
    a reference from before the pooled expected values counts as none)."""
    path = (scores_dir or paths.data / "scores") / REFERENCE_FILE
    if not path.exists():
        return None
    ref = MatchReference.load(path)
    if ref.model_version != str(model.metadata.get("version", "")) or ref.products != tuple(model.products):
        return None
    if ref.value_quantiles is None:
        return None
    return ref


REFERENCE_FILE = "match_reference.json"
