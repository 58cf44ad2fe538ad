"""Stage one, vectorised: probabilities, suitability, ranking by expected value, reasons.

Stage one, for a customer at the current snapshot:

1. features: one Feast online read of ``stage_one_v1`` (serving) or the current snapshot of the
   ``customer_features`` view's source (batch);
2. holding corrections: products reported "already owns" (``suppressed`` with ``ALREADY_HELD``)
   count as held — in the features (``holds_*`` and the category counts, so complement effects
   apply) and in suitability (never offered again);
3. suitability (``ml.core.suitability``, hard filter) and suppressions remove products;
4. the calibrated adoption probability of each remaining cross-sell product is multiplied by the
   product's value (``annual_value_cny`` from the catalogue, overridable — see
   :class:`RecommendConfig`) and the top K are returned, each with its probability (``score``),
   a 0..100 match score (:class:`ml.recommendation.match_score.MatchReference`), reasons (``ml.recommendation.explain``) and
   the product's tags; with ``explain_exclusions`` every excluded product and its reason codes.

Serving answers stage one from the nightly batch when it can: the nightly batch (``ml.recommendation.batch``) also publishes
``scores/stage_one_table/`` (``ml.recommendation.stage_one_table``: each customer's features, probabilities and
ranking keys), and a request then only masks the suppressed products, ranks and explains — the
same numbers, so the same list as steps 1-4 live. Live scoring over Feast remains for a stale or
missing table, customers outside it, and reported holdings (step 2 changes the features).

Stage two re-ranks the cross-sell products *not yet shown* with the answers on the shown ones
("already owns" answers become holding corrections first). By default it ranks by the learned
re-ranker's P(interested | answers) — the two-step accuracy the bank measures — and reports that
probability as the score (match score = its percentage); ``stage_two_objective="value"`` keeps
stage one's objective instead (probability x the re-ranker's lift x value). See ``ml.recommendation.rerankers``.


Suitability is law: every list, batch or single, goes through :func:`ml.core.suitability.rank` on the
``allowed`` mask, so no score can bring an excluded product back.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.core import suitability
from ml.core.catalogue import CATEGORIES, Catalogue, load_catalogue
from ml.features.layout import POSITION
from ml.features.pairs import (
    CATEGORY_CODES,
    FIT_FEATURES,
    PRODUCT_ATTRIBUTES,
    product_table,
)
from ml.recommendation.config import RecommendConfig
from ml.recommendation.contract import Reason
from ml.recommendation.explain import PathExplainer, reasons
from ml.recommendation.match_score import MatchReference, log_scale
from ml.training.model import PropensityModel

# Assets for the minimum-investment rule come back from float32 log1p(assets); shave this
# relative margin so rounding can only exclude a borderline customer, never admit one.
ASSET_MARGIN = 2e-5

BATCH_CHUNK = 20_000

TIE_EPS = 1e-9


# ------------------------------------------------------------------------------------------------
# Feature helpers (vectorised, layout order)
# ------------------------------------------------------------------------------------------------
def held_from_features(x: np.ndarray, catalogue: Catalogue | None = None) -> np.ndarray:
    """(n, P_all) bool: products held at the snapshot, from the ``holds_*`` features."""
    cat = catalogue or load_catalogue()
    cols = [POSITION[f"holds_{p.lower()}"] for p in cat.ids]
    return np.nan_to_num(np.asarray(x)[:, cols]) > 0


def apply_reported_holdings(x: np.ndarray, reported: np.ndarray | None,
                            catalogue: Catalogue | None = None) -> np.ndarray:
    """A copy of ``x`` where products reported held (``(n, P_all)`` bool) count as held."""
    x = np.array(x, dtype=np.float32, copy=True)
    if reported is None or not np.any(reported):
        return x
    cat = catalogue or load_catalogue()
    new = np.asarray(reported, dtype=bool) & ~held_from_features(x, cat)
    cols = np.array([POSITION[f"holds_{p.lower()}"] for p in cat.ids])
    x[:, cols] = np.where(new, 1.0, x[:, cols])
    for category in CATEGORIES:
        col = POSITION[f"n_held_{category}"]
        x[:, col] = np.nan_to_num(x[:, col]) + new[:, cat.categories == category].sum(axis=1)
    x[:, POSITION["n_products_held"]] = np.nan_to_num(x[:, POSITION["n_products_held"]]) + new.sum(axis=1)
    return x


def suitability_inputs(x: np.ndarray) -> pd.DataFrame:
    """The rule inputs recovered from the features (assets shaved by ``ASSET_MARGIN``, fail closed)."""
    x = np.asarray(x, dtype=np.float64)
    log_assets = x[:, POSITION["log_assets"]]
    return pd.DataFrame({"age": x[:, POSITION["age"]], "risk_tolerance": x[:, POSITION["risk_tolerance"]],
                         "assets_cny": np.expm1(log_assets) * (1.0 - ASSET_MARGIN)})


# ------------------------------------------------------------------------------------------------
# Stage one, vectorised
# ------------------------------------------------------------------------------------------------
class StageOne:
    """Probabilities, values, suitability and ranking over the model's cross-sell products."""

    def __init__(self, model: PropensityModel, config: RecommendConfig | None = None,
                 catalogue: Catalogue | None = None, reference: MatchReference | None = None):
        self.model = model
        self.config = config or RecommendConfig()
        self.catalogue = catalogue or load_catalogue()
        self.products: tuple[str, ...] = tuple(model.products)
        self.positions = self.catalogue.indices(self.products)      # catalogue position per product
        if (self.positions < 0).any():
            raise ValueError("the model ranks products that are not in the catalogue")
        self.product_table = product_table(list(self.products))
        base = {p.product_id: p.annual_value_cny for p in self.catalogue}
        unknown = set(self.config.product_values) - set(base)
        if unknown:
            raise ValueError(f"product values for unknown products: {sorted(unknown)}")
        self.values = np.array([float(self.config.product_values.get(p, base[p])) if self.config.value_weighting
                                else 1.0 for p in self.products])
        if not np.all(self.values > 0):
            raise ValueError("product values must be positive")
        self.categories = np.array([self.catalogue[p].category for p in self.products], dtype=object)
        self.reference = reference
        # pair rows without pandas: the product side of ml.features.pairs.pair_matrix, precomputed
        table = self.product_table
        self._attrs = table[PRODUCT_ATTRIBUTES].to_numpy(dtype=np.float32)
        self._lo = table.target_age_min.to_numpy()
        self._hi = table.target_age_max.to_numpy()
        self._risk = table.product_risk.to_numpy()
        self._log_min = table.log_min_investment.to_numpy()
        self._category_code = table.category_code.to_numpy(dtype=int)
        self._holds_cols = np.array([POSITION[f"holds_{p.lower()}"] for p in self.catalogue.ids])
        self._category_cols = np.array([POSITION[f"n_held_{c}"] for c in CATEGORY_CODES])
        relations = model.relations or {}
        cols = self.positions
        self._complement = relations["complement"][:, cols] if "complement" in relations else None
        self._substitute = relations["substitute"][:, cols] if "substitute" in relations else None
        cal = model.calibrator
        self._iso = (np.asarray(cal.X_thresholds_), np.asarray(cal.y_thresholds_)) if hasattr(cal, "X_thresholds_") \
            else None
        self._explainer: PathExplainer | None = None
        self._lock = threading.Lock()

    @property
    def model_version(self) -> str:
        return str(self.model.metadata.get("version", "unversioned"))

    # -- pieces ---------------------------------------------------------------------------------
    def eligibility(self, x: np.ndarray, reported: np.ndarray | None = None) -> suitability.Eligibility:
        """Catalogue-wide eligibility: the rules, holdings at the snapshot and reported holdings."""
        held = held_from_features(x, self.catalogue)
        if reported is not None:
            held = held | np.asarray(reported, dtype=bool)
        return suitability.eligibility(suitability_inputs(x), held, catalogue=self.catalogue)

    def allowed(self, elig: suitability.Eligibility, blocked: np.ndarray | None = None) -> np.ndarray:
        """(n, P) bool over the model's products: suitable and not ``blocked`` (suppressed, shown)."""
        allowed = elig.allowed[:, self.positions]
        return allowed & ~blocked if blocked is not None else allowed

    def rows(self, x: np.ndarray, product_index: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Model rows for every (customer, product) pair, customer-major: the same float32 values as
        :func:`ml.features.pairs.pair_matrix` (a test keeps them equal), without pandas."""
        x = np.asarray(x, dtype=np.float32)
        j = np.arange(len(self.products)) if product_index is None else np.asarray(product_index, dtype=int)
        n, p = len(x), len(j)
        cust = np.repeat(x, p, axis=0)
        prod = np.tile(self._attrs[j], (n, 1))
        age = x[:, POSITION["age"]][:, None]
        tol = x[:, POSITION["risk_tolerance"]][:, None]
        log_assets = x[:, POSITION["log_assets"]][:, None]
        lo, hi = self._lo[j][None, :], self._hi[j][None, :]
        held_in_category = x[:, self._category_cols][:, self._category_code[j]]
        held = (np.nan_to_num(x[:, self._holds_cols]) > 0).astype(np.float32)
        complement = np.zeros((n, p), dtype=np.float32)
        substitute = np.zeros((n, p), dtype=np.float32)
        if self._complement is not None:
            complement[:] = held @ self._complement[:, j]
        if self._substitute is not None:
            substitute[:] = np.max(held[:, :, None] * self._substitute[None, :, j], axis=1)
        fit = np.stack([
            tol - self._risk[j][None, :],
            age - (lo + hi) / 2,
            ((age >= lo) & (age <= hi)).astype(np.float32),
            log_assets - self._log_min[j][None, :],
            held_in_category,
            complement,
            substitute,
        ], axis=2).reshape(n * p, len(FIT_FEATURES)).astype(np.float32)
        return np.hstack([cust, prod, fit])

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """The model's isotonic calibration (``np.interp`` on its thresholds: same values, no sklearn
        overhead per request)."""
        if self._iso is None:
            return self.model.calibrate(raw)
        return np.clip(np.interp(raw, *self._iso), 0.0, 1.0)

    def predict(self, x: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(calibrated probabilities, raw booster probabilities), both (n, P), NaN outside ``mask``."""
        x = np.asarray(x, dtype=np.float32)
        n, p = len(x), len(self.products)
        out = np.full((n, p), np.nan)
        raw_out = np.full((n, p), np.nan)
        for start in range(0, n, BATCH_CHUNK):
            stop = min(start + BATCH_CHUNK, n)
            cells = np.ones((stop - start, p), dtype=bool) if mask is None else np.asarray(mask[start:stop], bool)
            if not cells.any():
                continue
            rows = self.rows(x[start:stop])[cells.ravel()]
            raw = self.model.booster.predict(rows, num_threads=_threads(len(rows)))
            out[start:stop][cells] = self.calibrate(raw)
            raw_out[start:stop][cells] = raw
        return out, raw_out

    def probabilities(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """(n, P) calibrated probabilities; only ``mask`` cells are computed (NaN elsewhere)."""
        return self.predict(x, mask)[0]

    def ranking_key(self, p: np.ndarray, raw: np.ndarray | None = None) -> np.ndarray:
        """Probability x value; ties of the calibrated probability (isotonic steps, often at 0) are
        broken by the raw booster score, which the calibration maps monotonically."""
        key = np.nan_to_num(p, nan=-np.inf)
        with np.errstate(over="ignore", invalid="ignore"):
            if raw is not None:
                key = key + TIE_EPS * np.nan_to_num(raw)
            return key * self.values

    def rank(self, scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
        """(n, k) positions in ``self.products`` (-1 padded), only allowed cells (suitability.rank)."""
        return suitability.rank(np.nan_to_num(scores, nan=-np.inf), allowed, k)

    def match(self, probabilities: np.ndarray, product_index: np.ndarray) -> np.ndarray:
        """Match scores 0..100 of offers (probability of the products at ``product_index``): where each
        offer's expected value stands among tonight's suitable offers (``ml.recommendation.match_score``);
        monotone in the ranking key, so a list's scores never increase down the list."""
        p = np.clip(np.nan_to_num(np.asarray(probabilities, dtype=np.float64)), 0.0, 1.0)
        expected = p * self.values[np.asarray(product_index, dtype=int)]
        if self.reference is None or self.reference.value_quantiles is None:
            return log_scale(expected)
        return self.reference.score_value(expected)

    def contributions(self, x_row: np.ndarray, product_index: Sequence[int]) -> np.ndarray:
        """(k, F + 1) contributions of one customer's rows for the given products."""
        rows = self.rows(np.asarray(x_row, np.float32)[None, :], product_index)
        if self.config.explainer == "treeshap":
            return np.asarray(self.model.booster.predict(rows, pred_contrib=True, num_threads=1))
        if self._explainer is None:
            with self._lock:
                if self._explainer is None:
                    self._explainer = PathExplainer(self.model.booster)
        return self._explainer.contributions(rows)

    def reasons(self, x_row: np.ndarray, product_index: Sequence[int]) -> list[tuple[Reason, ...]]:
        if len(product_index) == 0:
            return []
        contrib = self.contributions(x_row, product_index)
        complement = (self.model.relations or {}).get("complement")
        out = []
        for c, j in zip(contrib, product_index):
            product = self.catalogue[self.products[j]]
            column = complement[:, self.positions[j]] if complement is not None else None
            out.append(reasons(c, x_row, product, catalogue=self.catalogue, complement=column,
                               max_reasons=self.config.max_reasons))
        return out

    # -- whole lists ----------------------------------------------------------------------------
    def score_batch(self, x: np.ndarray, k: int, reported: np.ndarray | None = None,
                    blocked: np.ndarray | None = None) -> "BatchLists":
        """Stage one for many customers: (n, k) lists plus probabilities and the allowed mask."""
        x = apply_reported_holdings(x, reported, self.catalogue)
        elig = self.eligibility(x, reported)
        allowed = self.allowed(elig, blocked)
        p, raw = self.predict(x, allowed)
        top = self.rank(self.ranking_key(p, raw), allowed, k)
        return BatchLists(top=top, probabilities=p, allowed=allowed, x=x, raw=raw)


@dataclass
class BatchLists:
    top: np.ndarray            # (n, k) positions in StageOne.products, -1 padded
    probabilities: np.ndarray  # (n, P) NaN where not allowed
    allowed: np.ndarray        # (n, P) bool
    x: np.ndarray              # the (corrected) features used
    raw: np.ndarray | None = None  # (n, P) raw booster probabilities (tie-break of the ranking)
    kind: str = "adoption"     # what ``probabilities`` are: adoption (stage one) or interest (stage two)


def _threads(n_rows: int) -> int:
    return 1 if n_rows < 5_000 else 2
