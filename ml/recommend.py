"""The recommendation engine (issue #6): stage one, stage two, per customer and for everyone.

    python -m ml.recommend batch [--k 5] [--sample N] [--no-check]   # nightly scoring of every customer

Stage one, for a customer at the current snapshot:

1. features: one Feast online read of ``stage_one_v1`` (serving) or the current snapshot of the
   ``customer_features`` view's source (batch);
2. holding corrections: products reported "already owns" (``suppressed`` with ``ALREADY_HELD``)
   count as held — in the features (``holds_*`` and the category counts, so complement effects
   apply) and in suitability (never offered again);
3. suitability (``ml.suitability``, hard filter) and suppressions remove products;
4. the calibrated adoption probability of each remaining cross-sell product is multiplied by the
   product's value (``annual_value_cny`` from the catalogue, overridable — see
   :class:`RecommendConfig`) and the top K are returned, each with its probability (``score``),
   a 0..100 match score (:class:`ml.match_score.MatchReference`), reasons (``ml.explain``) and
   the product's tags; with ``explain_exclusions`` every excluded product and its reason codes.

Serving answers stage one from the nightly batch when it can: ``batch`` also publishes
``scores/stage_one_table/`` (``ml.stage_one_table``: each customer's features, probabilities and
ranking keys), and a request then only masks the suppressed products, ranks and explains — the
same numbers, so the same list as steps 1-4 live. Live scoring over Feast remains for a stale or
missing table, customers outside it, and reported holdings (step 2 changes the features).

Stage two re-ranks the cross-sell products *not yet shown* with the answers on the shown ones
("already owns" answers become holding corrections first). By default it ranks by the learned
re-ranker's P(interested | answers) — the two-step accuracy the bank measures — and reports that
probability as the score (match score = its percentage); ``stage_two_objective="value"`` keeps
stage one's objective instead (probability x the re-ranker's lift x value). See ``ml.rerank``.

    python -m ml.recommend latency [--requests 500]     # per-call p50 / p95, in-process
    python -m ml.recommend scale-test [--customers N]   # vectorised stage one on N rows (timing only)

Suitability is law: every list, batch or single, goes through :func:`ml.suitability.rank` on the
``allowed`` mask, so no score can bring an excluded product back.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml import stage_one_table, suitability
from ml.catalogue import CATEGORIES, Catalogue, load_catalogue
from ml.config import Paths
from ml.explain import PathExplainer, reasons
from ml.feature_layout import (FEEDBACK_CATEGORIES, FEEDBACK_COLUMNS, LAST_ANSWERS_FEATURE, POSITION,
                               STAGE_ONE_FEATURES, VECTOR_FEATURE, last_answers)
from ml.feature_layout import FEEDBACK_RESPONSES as RESPONSES
from ml.match_score import MatchReference
from ml.model import PropensityModel
from ml.pair_features import CATEGORY_CODES, FIT_FEATURES, PRODUCT_ATTRIBUTES, product_table
from serving.engine import ALREADY_HELD, ColdStartResult, Exclusion, RankedProduct, Ranking, Reason, UnknownCustomer

FEATURE_SERVICE = "stage_one_v1"
PROFILE_SERVICE = "profile_v1"
# Assets for the minimum-investment rule come back from float32 log1p(assets); shave this
# relative margin so rounding can only exclude a borderline customer, never admit one.
ASSET_MARGIN = 2e-5
BATCH_CHUNK = 20_000
STAGE_TWO_CHUNK = 100_000  # customers per stage-two block in batch mode (about 0.5 GB of re-ranker features)
TIE_EPS = 1e-9
REFERENCE_FILE = "match_reference.json"


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecommendConfig:
    """Knobs of the engine. ``from_env`` reads:

    * ``LINGXI_PRODUCT_VALUES`` — JSON object ``{product_id: annual value CNY}`` or a path to one;
      overrides the catalogue's ``annual_value_cny`` for ranking.
    * ``LINGXI_VALUE_WEIGHTING`` — ``0`` ranks by probability alone (default ``1``).
    * ``LINGXI_STAGE_TWO`` — ``learned`` (default; falls back to ``rule`` when no re-ranker is
      trained for the model), ``rule`` or ``one_step``.
    * ``LINGXI_STAGE_TWO_OBJECTIVE`` — ``interest`` (default: rank the unseen products by
      P(interested | answers), the two-step accuracy the bank measures) or ``value`` (probability
      x lift x value, like stage one).
    * ``LINGXI_EXPLAINER`` — ``path`` (default, fast) or ``treeshap`` (exact, ~2.5 ms per product).
    """

    default_k: int = 5
    max_k: int = 10
    value_weighting: bool = True
    product_values: Mapping[str, float] = field(default_factory=dict)
    max_reasons: int = 3
    explainer: str = "path"
    stage_two: str = "learned"
    stage_two_objective: str = "interest"

    def __post_init__(self) -> None:
        if self.explainer not in ("path", "treeshap"):
            raise ValueError(f"explainer must be path or treeshap, not {self.explainer!r}")
        if self.stage_two not in ("learned", "rule", "one_step"):
            raise ValueError(f"stage_two must be learned, rule or one_step, not {self.stage_two!r}")
        if self.stage_two_objective not in ("interest", "value"):
            raise ValueError(f"stage_two_objective must be interest or value, not {self.stage_two_objective!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "RecommendConfig":
        env = os.environ if env is None else env
        values: dict[str, float] = {}
        raw = env.get("LINGXI_PRODUCT_VALUES", "").strip()
        if raw:
            text = Path(raw).read_text() if not raw.startswith("{") else raw
            values = {str(k): float(v) for k, v in json.loads(text).items()}
        return cls(value_weighting=env.get("LINGXI_VALUE_WEIGHTING", "1").strip() not in ("0", "false", "no"),
                   product_values=values, explainer=env.get("LINGXI_EXPLAINER", "path"),
                   stage_two=env.get("LINGXI_STAGE_TWO", "learned"),
                   stage_two_objective=env.get("LINGXI_STAGE_TWO_OBJECTIVE", "interest"))


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
        # pair rows without pandas: the product side of ml.pair_features.pair_matrix, precomputed
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
        :func:`ml.pair_features.pair_matrix` (a test keeps them equal), without pandas."""
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
        """Match scores 0..100 (percentile of the product's suitable population; see ml.match_score)."""
        p = np.clip(np.nan_to_num(np.asarray(probabilities, dtype=np.float64)), 0.0, 1.0)
        if self.reference is None:  # no reference yet: a log scale between 1e-4 and 0.5
            return np.clip(np.round(100 * (np.log10(np.maximum(p, 1e-4)) + 4) / (4 + math.log10(0.5))), 0, 100
                           ).astype(np.int64)
        return self.reference.score(p, product_index)

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


# ------------------------------------------------------------------------------------------------
# Stage two, vectorised
# ------------------------------------------------------------------------------------------------
def shown_mask(top: np.ndarray, n_products: int) -> np.ndarray:
    """(n, K) ranked product positions, padded with -1 in short lists -> (n, P) bool "was shown"."""
    shown = np.zeros((len(top), n_products), dtype=bool)
    rows, slots = np.nonzero(top >= 0)
    shown[rows, top[rows, slots]] = True
    return shown


def stage_two_batch(stage_one: StageOne, reranker, x: np.ndarray, shown: np.ndarray, answers: np.ndarray, k: int,
                    reported: np.ndarray | None = None, blocked: np.ndarray | None = None,
                    prior: np.ndarray | None = None, p_first: np.ndarray | None = None,
                    raw_first: np.ndarray | None = None, objective: str = "interest") -> BatchLists:
    """Stage two for many customers.

    ``x``: features as at stage one (before this session's corrections); ``shown`` (n, P) bool and
    ``answers`` (n, P) int8 codes (``ml.rerank.ANSWER_CODES``) over the model's products;
    ``reported``: (n, P_all) products known held *before* the session; ``blocked``: (n, P)
    suppressed products; ``prior``: (n, 3, 4) earlier feedback counts; ``p_first`` / ``raw_first``:
    the stage-one calibrated / raw probabilities of every product (computed when not given);
    ``objective``: ``interest`` ranks by the re-ranker's P(interested | answers) when it has an
    interest model (``probabilities`` are then interest probabilities, ``kind="interest"``),
    ``value`` by probability x lift x value. Answers "already owns" become holding corrections;
    shown products are never shown again.
    """
    from ml.rerank import ALREADY_OWNS, Sessions

    if len(x) > STAGE_TWO_CHUNK:  # the re-ranker's (n, P, features) array: bounded memory for the nightly batch
        parts = []
        for start in range(0, len(x), STAGE_TWO_CHUNK):
            cut = slice(start, start + STAGE_TWO_CHUNK)
            pick = lambda a: None if a is None else a[cut]  # noqa: E731
            parts.append(stage_two_batch(stage_one, reranker, x[cut], shown[cut], answers[cut], k, pick(reported),
                                         pick(blocked), pick(prior), pick(p_first), pick(raw_first), objective))
        return BatchLists(*(np.concatenate([getattr(b, f) for b in parts]) for f in ("top", "probabilities",
                                                                                     "allowed", "x", "raw")),
                          kind=parts[0].kind)
    x_first = apply_reported_holdings(x, reported, stage_one.catalogue)
    if p_first is None:
        p_first, raw_first = stage_one.predict(x_first)
    else:
        raw_first = raw_first if raw_first is not None else np.zeros_like(p_first)
    owns = np.zeros((len(x), len(stage_one.catalogue)), dtype=bool)
    owns[:, stage_one.positions] = answers == ALREADY_OWNS
    now = owns if reported is None else (owns | reported)
    x_now = apply_reported_holdings(x, now, stage_one.catalogue)
    elig = stage_one.eligibility(x_now, now)
    block = shown.copy() if blocked is None else (shown | blocked)
    allowed = stage_one.allowed(elig, block)
    p_now, raw_now = p_first.copy(), raw_first.copy()
    changed = owns.any(axis=1)
    if changed.any():
        p_now[changed], raw_now[changed] = stage_one.predict(x_now[changed])
    sessions = Sessions(products=stage_one.products, p=p_first, answers=answers, prior=prior)
    interest = getattr(reranker, "interest", None)
    if objective == "interest" and interest is not None:
        score = np.where(allowed, interest(sessions, p_now), np.nan)
        with np.errstate(invalid="ignore", over="ignore"):
            key = np.nan_to_num(score, nan=-np.inf) + TIE_EPS * np.nan_to_num(raw_now)
        top = stage_one.rank(key, allowed, k)
        return BatchLists(top=top, probabilities=score, allowed=allowed, x=x_now, raw=raw_now, kind="interest")
    lift = reranker.lift(sessions)
    p2 = np.where(allowed, p_now * lift, np.nan)
    top = stage_one.rank(stage_one.ranking_key(p2, raw_now * lift), allowed, k)
    return BatchLists(top=top, probabilities=p2, allowed=allowed, x=x_now, raw=raw_now * lift)


# ------------------------------------------------------------------------------------------------
# The engine (serving/engine.py's RecommendationEngine)
# ------------------------------------------------------------------------------------------------
class Engine:
    """Per-request stage one / stage two / cold start over Feast online features (stage one from the
    nightly table when ``load_engine`` found a current one)."""

    def __init__(self, paths: Paths, model: PropensityModel, online, config: RecommendConfig | None = None,
                 reranker=None, reference: MatchReference | None = None,
                 table: stage_one_table.StageOneTable | None = None):
        from ml.rerank import CategoryRule

        self.paths = paths
        self.config = config or RecommendConfig()
        self.stage_one_scorer = StageOne(model, self.config, reference=reference)
        self.catalogue = self.stage_one_scorer.catalogue
        self.online = online
        self.reranker = reranker if reranker is not None else CategoryRule()
        self.table = table  # the nightly stage-one table, checked by load_engine (None: score live)
        self._read_lock = threading.Lock()

    # -- protocol -------------------------------------------------------------------------------
    def versions(self) -> Mapping[str, str]:
        ref = self.stage_one_scorer.reference
        return {"model": self.stage_one_scorer.model_version, "features": FEATURE_SERVICE,
                "suitability_rules": str(suitability.RULES_VERSION), "stage_two": self.reranker.version,
                "stage_two_objective": (self.config.stage_two_objective
                                        if getattr(self.reranker, "interest", None) is not None else "value"),
                "match_reference": f"{ref.model_version}:{ref.n_customers}" if ref else "log-scale",
                "stage_one_table": self.table.version() if self.table is not None else "none (live scoring)"}

    def customer_profile(self, customer_id: str) -> Mapping[str, Any] | None:
        try:
            values = self._online(customer_id, service=PROFILE_SERVICE)
        except UnknownCustomer:
            return None
        vector = values.get(VECTOR_FEATURE) or []
        profile: dict[str, Any] = {"feature_service": PROFILE_SERVICE}
        for name, value in zip(STAGE_ONE_FEATURES, vector):
            profile[name] = None if value is None or not math.isfinite(float(value)) else float(value)
        for name in FEEDBACK_COLUMNS:
            profile[name] = int(values.get(name) or 0)
        profile[LAST_ANSWERS_FEATURE] = list(values.get(LAST_ANSWERS_FEATURE) or [])
        last = values.get("fb_last_response_ts")
        profile["fb_last_response_ts"] = _iso(last)
        return profile

    def stage_one(self, customer_id: str, k: int, *, explain_exclusions: bool = False,
                  suppressed: Mapping[str, str] | None = None) -> Ranking:
        s1 = self.stage_one_scorer
        k = self._k(k)
        reported, blocked = self._suppressions(suppressed)
        row = self._table_row(customer_id, suppressed)
        if row is not None:  # the nightly scores: rank the row minus the suppressed products
            x = row.x[None, :]
            allowed = ~np.isnan(row.probability)[None, :]
            if blocked is not None:
                allowed &= ~blocked
            top = s1.rank(row.ranking_key[None, :], allowed, k)[0]
            top = top[top >= 0]
            p = row.probability[top]
        else:
            features, _ = self._features(customer_id)
            lists = s1.score_batch(features, k, reported=reported, blocked=blocked)
            x = lists.x
            top = lists.top[0][lists.top[0] >= 0]
            p = lists.probabilities[0, top]
        products = self._ranked(x[0], top, p, s1.match(p, top))
        excluded = self._excluded(x, reported, blocked, suppressed) if explain_exclusions else ()
        return Ranking(products, s1.model_version, excluded)

    def _table_row(self, customer_id: str, suppressed: Mapping[str, str] | None) -> stage_one_table.TableRow | None:
        """The customer's nightly row, unless a reported holding changes the features (then the
        holding counts and complement effects move every score: score live)."""
        if self.table is None or any(reason == ALREADY_HELD for reason in (suppressed or {}).values()):
            return None
        return self.table.row(customer_id)

    def stage_two(self, customer_id: str, shown: Sequence[str], feedback: Mapping[str, str], k: int, *,
                  explain_exclusions: bool = False, suppressed: Mapping[str, str] | None = None) -> Ranking:
        from ml.rerank import ANSWER_CODES

        s1 = self.stage_one_scorer
        k = self._k(k)
        x, fb = self._features(customer_id)
        index = {p: j for j, p in enumerate(s1.products)}
        shown_mask = np.zeros((1, len(s1.products)), dtype=bool)
        answers = np.zeros((1, len(s1.products)), dtype=np.int8)
        for pid in shown:
            if pid in index:
                shown_mask[0, index[pid]] = True
        session = {"interested": {}, "not_interested": {}, "already_owns": {}}
        for pid, response in feedback.items():
            if response not in ANSWER_CODES:
                raise ValueError(f"unknown response {response!r}")
            if pid in index:
                answers[0, index[pid]] = ANSWER_CODES[response]
                shown_mask[0, index[pid]] = True
            if pid in self.catalogue:
                category = self.catalogue[pid].category
                session[response][category] = session[response].get(category, 0) + 1
        # holdings reported before this session (this session's "already owns" are in feedback)
        earlier = {p: r for p, r in (suppressed or {}).items()
                   if not (r == ALREADY_HELD and feedback.get(p) == "already_owns")}
        reported_before, _ = self._suppressions(earlier)
        reported_all, blocked = self._suppressions(suppressed)
        prior = self._prior_feedback(fb, session)
        # every suppressed product (reported holdings included) is blocked; answers "already owns"
        # of this session become holding corrections inside stage_two_batch
        lists = stage_two_batch(s1, self.reranker, x, shown_mask, answers, k, reported=reported_before,
                                blocked=blocked, prior=prior, objective=self.config.stage_two_objective)
        top = lists.top[0][lists.top[0] >= 0]
        p = lists.probabilities[0, top]
        # interest objective: the score is P(interested | answers) and the match its percentage
        match = np.clip(np.round(100 * p), 0, 100).astype(int) if lists.kind == "interest" else s1.match(p, top)
        products = self._ranked(lists.x[0], top, p, match, feedback_reasons=self._feedback_reasons(top, answers[0]))
        excluded = ()
        if explain_exclusions:
            held = np.zeros((1, len(self.catalogue)), dtype=bool)
            held[:, s1.positions] = answers == ANSWER_CODES["already_owns"]
            if reported_all is not None:
                held |= reported_all
            excluded = self._excluded(lists.x, held, blocked, suppressed)
        return Ranking(products, f"{s1.model_version}+{self.reranker.version}", excluded)

    def cold_start(self, product: Mapping[str, Any], n: int) -> ColdStartResult:
        from ml.cold_start import ColdStartAnalyser

        analyser = ColdStartAnalyser.for_engine(self)
        return analyser.analyse(product, n)

    def push_feedback(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Set each customer's ``customer_feedback`` aggregates online to the counts of ``rows`` — all of
        the customer's committed answers (as the nightly source counts the whole feedback export), so
        no online read, and pushing twice changes nothing."""
        if not rows:
            return
        category = {p.product_id: p.category for p in self.catalogue}
        counts: dict[str, dict[str, int]] = {}
        answered: dict[str, list[tuple]] = {}
        last: dict[str, pd.Timestamp] = {}
        for row in rows:
            customer_id = row["customer_id"]
            acc = counts.setdefault(customer_id, dict.fromkeys(FEEDBACK_COLUMNS, 0))
            answered.setdefault(customer_id, [])
            recorded = pd.Timestamp(row["recorded_at"])
            recorded = recorded.tz_localize("UTC") if recorded.tzinfo is None else recorded.tz_convert("UTC")
            last[customer_id] = max(last.get(customer_id, recorded), recorded)
            key = f"fb_{row['response']}_{category.get(row['product_id'])}"
            if key in acc:  # products outside the catalogue are not counted (as in the nightly join)
                acc[key] += 1
                answered[customer_id].append((row["product_id"], row["response"], recorded))
        frame = pd.DataFrame([{"customer_id": c, "event_timestamp": last[c], **counts[c], "fb_last_response_ts": last[c],
                               LAST_ANSWERS_FEATURE: last_answers(answered[c])} for c in sorted(counts)])
        with self._read_lock:  # the store's one SQLite connection is shared with the reads
            self.online.push_feedback(frame)

    # -- helpers --------------------------------------------------------------------------------
    def _k(self, k: int) -> int:
        k = int(k) if k else self.config.default_k
        return max(1, min(k, self.config.max_k))

    def _online(self, customer_id: str, service: str = FEATURE_SERVICE) -> dict:
        from ml.features import CustomerNotFound

        try:
            with self._read_lock:  # one SQLite connection per store object
                if service == FEATURE_SERVICE:
                    return self.online.get(customer_id, datetime.now(timezone.utc))
                row = self.online.store.get_online_features(
                    features=self.online.store.get_feature_service(service),
                    entity_rows=[{"customer_id": customer_id}]).to_dict()
        except CustomerNotFound:
            raise UnknownCustomer(customer_id) from None
        values = {name: column[0] for name, column in row.items()}
        if not values.get(VECTOR_FEATURE):
            raise UnknownCustomer(customer_id)
        return values

    def _features(self, customer_id: str) -> tuple[np.ndarray, dict]:
        values = self._online(customer_id)
        vector = np.asarray(values[VECTOR_FEATURE], dtype=np.float32)
        if vector.shape != (len(STAGE_ONE_FEATURES),):
            raise UnknownCustomer(customer_id)
        return vector[None, :], values

    def _suppressions(self, suppressed: Mapping[str, str] | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(reported held (1, P_all) or None, blocked (1, P) or None) from the serving mapping."""
        if not suppressed:
            return None, None
        s1 = self.stage_one_scorer
        reported = np.zeros((1, len(self.catalogue)), dtype=bool)
        blocked = np.zeros((1, len(s1.products)), dtype=bool)
        index = {p: j for j, p in enumerate(s1.products)}
        for pid, reason in suppressed.items():
            if reason == ALREADY_HELD and pid in self.catalogue:
                reported[0, self.catalogue.index(pid)] = True
            if pid in index:
                blocked[0, index[pid]] = True
        return reported, blocked

    def _prior_feedback(self, fb: Mapping[str, Any], session: Mapping[str, Mapping[str, int]]) -> np.ndarray:
        """(1, 3, 4) earlier answers: the online counts minus this session's (pushed already)."""
        prior = np.zeros((1, len(RESPONSES), len(FEEDBACK_CATEGORIES)))
        for r, response in enumerate(RESPONSES):
            for c, category in enumerate(FEEDBACK_CATEGORIES):
                total = int(fb.get(f"fb_{response}_{category}") or 0)
                prior[0, r, c] = max(total - session[response].get(category, 0), 0)
        return prior

    def _ranked(self, x_row: np.ndarray, top: np.ndarray, p: np.ndarray, match: np.ndarray,
                feedback_reasons: Sequence[tuple[Reason, ...]] | None = None) -> tuple[RankedProduct, ...]:
        s1 = self.stage_one_scorer
        model_reasons = s1.reasons(x_row, list(top))
        out = []
        for i, j in enumerate(top):
            product = self.catalogue[s1.products[j]]
            extra = feedback_reasons[i] if feedback_reasons else ()
            why = (extra + model_reasons[i])[: max(self.config.max_reasons, len(extra))]
            out.append(RankedProduct(product.product_id, round(float(p[i]), 6), int(match[i]), why, product.tags))
        return tuple(out)

    def _feedback_reasons(self, top: np.ndarray, answers: np.ndarray) -> list[tuple[Reason, ...]]:
        """A reason naming the shown product whose answer raised this candidate, if any."""
        from ml.rerank import INTERESTED

        s1 = self.stage_one_scorer
        complement = (s1.model.relations or {}).get("complement")
        liked = [j for j in np.flatnonzero(answers == INTERESTED)]
        out = []
        for j in top:
            reason: tuple[Reason, ...] = ()
            same = [a for a in liked if s1.categories[a] == s1.categories[j]]
            related = [a for a in liked if complement is not None
                       and complement[s1.positions[a], s1.positions[j]] > 0]
            if related:
                name = self.catalogue[s1.products[related[0]]].name_en
                reason = (Reason("FEEDBACK_COMPLEMENT", f"interested in {name}, which goes with this product"),)
            elif same:
                name = self.catalogue[s1.products[same[0]]].name_en
                reason = (Reason("FEEDBACK_SAME_CATEGORY",
                                 f"interested in {name}: another {s1.categories[j]} product"),)
            out.append(reason)
        return out

    def _excluded(self, x: np.ndarray, reported: np.ndarray | None, blocked: np.ndarray | None,
                  suppressed: Mapping[str, str] | None) -> tuple[Exclusion, ...]:
        s1 = self.stage_one_scorer
        elig = s1.eligibility(x, reported)
        out = []
        for j, pid in enumerate(s1.products):
            codes = list(elig.codes(0, int(s1.positions[j])))
            extra = (suppressed or {}).get(pid)
            if extra and extra not in codes:
                codes.append(extra)
            if codes:
                out.append(Exclusion(pid, tuple(codes)))
        return tuple(out)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc).isoformat()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    return str(value)


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------
def load_model(paths: Paths) -> tuple[PropensityModel, Path]:
    from ml.registry import Registry

    folder = Registry(paths.models).current()
    if folder is None:
        raise FileNotFoundError(f"no current model under {paths.models} (run `make train`)")
    return PropensityModel.load(folder), folder


def load_reranker(model_dir: Path, config: RecommendConfig):
    """The configured stage-two strategy for a model version; without a trained re-ranker
    (``reranker.json`` next to the model) the category rule on the stage-one probabilities."""
    from ml.rerank import CategoryRule, LearnedReranker, OneStep

    path = model_dir / "reranker.json"
    learned = LearnedReranker.load(path) if path.exists() else None
    if config.stage_two == "one_step":
        return OneStep()
    if config.stage_two == "rule" or learned is None:
        return CategoryRule(prior=learned)
    return learned


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


def load_engine(data_dir: Path, config: RecommendConfig | None = None) -> Engine:
    """The factory serving calls (``LINGXI_ENGINE=ml.recommend:load_engine``)."""
    from ml.features import OnlineFeatures

    paths = Paths(data=Path(data_dir).resolve(), reports=Paths.from_env().reports)
    config = config or RecommendConfig.from_env()
    model, folder = load_model(paths)
    online = OnlineFeatures(feature_store(paths))
    engine = Engine(paths, model, online, config, load_reranker(folder, config), load_reference(paths, model))
    engine.table = load_table(paths, engine.stage_one_scorer, online.store)
    return engine


def load_table(paths: Paths, s1: StageOne, store=None) -> stage_one_table.StageOneTable | None:
    """The nightly stage-one table if it was scored by this model over the current features."""
    import logging

    table = stage_one_table.StageOneTable.load(paths.data / "scores")
    if table is None:
        return None
    problems = table.problems(s1.model_version, s1.products, s1.values, feature_source(paths, store))
    if problems:
        logging.getLogger("lingxi.serving").warning("stage-one table not used: %s", "; ".join(problems),
                                                    extra={"event": "stage_one_table_stale"})
        return None
    return table


# ------------------------------------------------------------------------------------------------
# Batch features and nightly scoring
# ------------------------------------------------------------------------------------------------
def feature_store(paths: Paths):
    """``ml.features.get_store`` for ``paths`` without leaving ``LINGXI_DATA_DIR`` re-pointed
    (the store resolves its paths when it is built)."""
    from ml.features import get_store

    previous = os.environ.get("LINGXI_DATA_DIR")
    try:
        return get_store(paths)
    finally:
        if previous is None:
            os.environ.pop("LINGXI_DATA_DIR", None)
        else:
            os.environ["LINGXI_DATA_DIR"] = previous


def feature_source(paths: Paths, store=None) -> Path:
    """The Parquet behind Feast's ``customer_features`` view (as registered by ``feast apply``)."""
    store = store if store is not None else feature_store(paths)
    source = Path(store.get_feature_view("customer_features").batch_source.path)
    return source if source.exists() else paths.feast / "sources" / "customer_feature_vectors.parquet"


def snapshot_features(paths: Paths, snapshot: datetime | str | None = None, limit: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(customer ids, (n, 75) float32) of one snapshot of the ``customer_features`` source.

    The same rows Feast serves (the view's batch source), read column-wise for batch scoring of
    every customer; default: the latest snapshot. Sorted by customer id; ``limit`` keeps the first.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    dataset = ds.dataset(str(feature_source(paths)), format="parquet")
    if snapshot is None:
        snapshot = pc.max(dataset.to_table(columns=["snapshot_ts"])["snapshot_ts"]).as_py()
    table = dataset.to_table(columns=["customer_id", VECTOR_FEATURE],
                             filter=ds.field("snapshot_ts") == pd.Timestamp(snapshot).to_pydatetime())
    table = table.sort_by("customer_id")
    if limit is not None:
        table = table.slice(0, limit)
    ids = table["customer_id"].to_numpy(zero_copy_only=False)
    values = table[VECTOR_FEATURE].combine_chunks()
    flat = values.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    x = flat.reshape(len(ids), len(STAGE_ONE_FEATURES))
    return ids, x


def batch_score(paths: Paths, k: int = 5, sample: int | None = None, config: RecommendConfig | None = None,
                check: bool = True, seed: int = 0) -> dict:
    """Nightly stage one for every customer: ``scores/stage_one.parquet`` and the match reference.

    With ``check``: stage two for everyone too (answers drawn at random, seeded: the rules must hold
    whatever the answers) and a suitability audit of both lists against the raw customer table,
    written to ``reports/metrics.json`` under ``suitability``.
    """
    from ml.rerank import random_answers

    started = time.perf_counter()
    config = config or RecommendConfig()
    model, folder = load_model(paths)
    s1 = StageOne(model, config)
    source = stage_one_table.source_stamp(feature_source(paths))  # before reading: a later rebuild is seen
    ids, x = snapshot_features(paths, limit=sample)
    t_read = time.perf_counter() - started
    lists = s1.score_batch(x, k)
    t_score = time.perf_counter() - started - t_read
    reference = MatchReference.fit(lists.probabilities, lists.allowed, s1.products, s1.model_version)
    s1.reference = reference
    out_dir = paths.data / "scores"
    reference.save(out_dir / REFERENCE_FILE)
    frame = _lists_frame(s1, ids, lists, stage=1)
    _write_parquet(frame, out_dir / "stage_one.parquet")
    stage_one_table.write(out_dir, ids, lists.x, lists.probabilities, s1.ranking_key(lists.probabilities, lists.raw),
                          {"model_version": s1.model_version, "products": list(s1.products),
                           "values": s1.values.tolist(), "feature_source": source})
    result: dict[str, Any] = {"customers": int(len(ids)), "k": k, "model_version": s1.model_version,
                              "read_s": round(t_read, 1), "stage_one_s": round(t_score, 1),
                              "rows": int(len(frame))}
    if check:
        reranker = load_reranker(folder, config)
        rng = np.random.default_rng(seed)
        shown = shown_mask(lists.top, lists.allowed.shape[1])
        answers = random_answers(rng, shown)
        t = time.perf_counter()
        second = stage_two_batch(s1, reranker, x, shown, answers, k, p_first=lists.probabilities,
                                 raw_first=lists.raw, objective=config.stage_two_objective)
        result["stage_two_s"] = round(time.perf_counter() - t, 1)
        owns = np.zeros((len(ids), len(s1.catalogue)), dtype=bool)
        owns[:, s1.positions] = answers == 3
        audit = audit_lists(paths, ids, x, [(lists.top, None), (second.top, owns)], s1)
        overlap = int(np.sum((second.top[:, :, None] == lists.top[:, None, :]) & (second.top[:, :, None] >= 0)))
        result["suitability"] = {**audit, "stage_two_reshown": overlap, "reranker": reranker.version}
        write_metrics(paths, {"suitability": result["suitability"]})
    result["total_s"] = round(time.perf_counter() - started, 1)
    return result


def scale_test(paths: Paths, customers: int, k: int = 5, config: RecommendConfig | None = None) -> dict:
    """Time vectorised stage one on ``customers`` rows (the snapshot tiled): nothing is written."""
    model, _ = load_model(paths)
    s1 = StageOne(model, config or RecommendConfig())
    _, x = snapshot_features(paths)
    x = np.resize(x, (customers, x.shape[1]))
    started = time.perf_counter()
    cpu = time.process_time()
    lists = s1.score_batch(x, k)
    return {"customers": customers, "k": k, "stage_one_s": round(time.perf_counter() - started, 1),
            "cpu_s": round(time.process_time() - cpu, 1), "pairs_scored": int(lists.allowed.sum()),
            "note": "the current snapshot tiled to this many rows; timing only"}


def latency(paths: Paths, requests: int = 500, k: int = 5, seed: int = 0) -> dict:
    """Per-call latency of the engine in-process (real Feast online reads), over random customers."""
    engine = load_engine(paths.data)
    ids, _ = snapshot_features(paths)
    rng = np.random.default_rng(seed)
    sample = rng.choice(ids, size=requests, replace=len(ids) < requests)
    for cid in sample[:20]:                                   # warm caches (explainer table, SQLite pages)
        engine.stage_one(cid, k)
    out = {}
    for name in ("stage_one", "stage_two"):
        wall, cpu = [], []
        for cid in sample:
            shown, feedback = [], {}
            if name == "stage_two":
                shown = [p.product_id for p in engine.stage_one(cid, k).products]
                feedback = {p: rng.choice(["interested", "not_interested"]) for p in shown}
            t, c = time.perf_counter(), time.process_time()
            if name == "stage_one":
                engine.stage_one(cid, k)
            else:
                engine.stage_two(cid, shown, feedback, k)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        wall_ms, cpu_ms = np.array(wall) * 1000, np.array(cpu) * 1000
        out[name] = {"requests": requests, "p50_ms": round(float(np.percentile(wall_ms, 50)), 2),
                     "p95_ms": round(float(np.percentile(wall_ms, 95)), 2),
                     "p99_ms": round(float(np.percentile(wall_ms, 99)), 2),
                     "cpu_mean_ms": round(float(cpu_ms.mean()), 2)}
    out.update({"k": k, "customers": int(len(ids)), "explainer": engine.config.explainer,
                "load_average": [round(v, 2) for v in os.getloadavg()],
                "note": "in-process, one thread, Feast SQLite online store; wall time includes waiting for the "
                        "CPU on a shared machine (see load_average)"})
    return out


def audit_lists(paths: Paths, ids: np.ndarray, x: np.ndarray, lists: Sequence[tuple[np.ndarray, np.ndarray | None]],
                s1: StageOne) -> dict:
    """Audit lists against the *raw* customer table (exact age, risk preference, assets) and holdings.

    ``lists``: (top positions in ``s1.products``, extra reported holdings (n, P_all) or None).
    Customers missing from the raw table are audited on their features (fail closed).
    """
    raw = pd.read_parquet(paths.raw / "customers", columns=["customer_id", "age", "risk_preference", "assets_cny"])
    raw = raw.drop_duplicates("customer_id", keep=False).set_index("customer_id")
    customers = raw.reindex(pd.Index(ids, name="customer_id"))
    fallback = suitability_inputs(x)
    missing = customers["age"].isna().to_numpy()
    customers = customers.reset_index(drop=True)
    for col in ("age", "assets_cny"):
        customers.loc[missing, col] = fallback.loc[missing, col].to_numpy()
    customers["risk_tolerance"] = np.where(missing, fallback["risk_tolerance"], np.nan)
    held = held_from_features(x, s1.catalogue)
    total = {"violations": 0, "recommendations": 0, "customers_checked": int(len(ids)), "lists_checked": 0,
             "by_reason": {}, "rules_version": str(suitability.RULES_VERSION),
             "checked_against": "raw customers (age, risk_preference, assets_cny) + holdings + reported holdings"}
    for top, extra in lists:
        ranked = np.where(top >= 0, s1.positions[np.maximum(top, 0)], -1)
        result = suitability.audit(ranked, customers, held if extra is None else (held | extra), catalogue=s1.catalogue)
        total["violations"] += result.n_violations
        total["recommendations"] += result.n_recommendations
        total["lists_checked"] += int((top >= 0).any(axis=1).sum())
        for code, n in result.by_reason.items():
            total["by_reason"][code] = total["by_reason"].get(code, 0) + n
    return total


def _lists_frame(s1: StageOne, ids: np.ndarray, lists: BatchLists, stage: int) -> pd.DataFrame:
    n, k = lists.top.shape
    rows, ranks = np.nonzero(lists.top >= 0)
    pos = lists.top[rows, ranks]
    p = lists.probabilities[rows, pos]
    return pd.DataFrame({
        "customer_id": ids[rows], "stage": np.int32(stage), "rank": (ranks + 1).astype(np.int32),
        "product_id": np.asarray(s1.products, dtype=object)[pos], "probability": p,
        "score": p * s1.values[pos], "match_score": s1.match(p, pos).astype(np.int32),
        "model_version": s1.model_version})


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def write_metrics(paths: Paths, sections: Mapping[str, Any]) -> Path:
    """Merge ``sections`` into ``reports/metrics.json`` (read, update these keys, atomic replace)."""
    import fcntl

    paths.reports.mkdir(parents=True, exist_ok=True)
    target = paths.reports / "metrics.json"
    with open(paths.reports / ".metrics.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = json.loads(target.read_text()) if target.exists() else {}
        current.update(sections)
        tmp = target.with_name(f".metrics.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(current, indent=2, sort_keys=False, default=_json_default) + "\n")
        os.replace(tmp, target)
    return target


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.recommend", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    batch = sub.add_parser("batch", help="stage one for every customer (+ the full-population suitability check)")
    batch.add_argument("--k", type=int, default=5)
    batch.add_argument("--sample", type=int, default=None, help="only the first N customers (by id)")
    batch.add_argument("--no-check", action="store_true", help="skip stage two and the suitability audit")
    batch.add_argument("--seed", type=int, default=0)
    scale = sub.add_parser("scale-test", help="time stage one on N rows (the snapshot tiled); writes nothing")
    scale.add_argument("--customers", type=int, default=1_108_828)
    scale.add_argument("--k", type=int, default=5)
    lat = sub.add_parser("latency", help="per-call stage one / stage two latency in-process (p50/p95)")
    lat.add_argument("--requests", type=int, default=500)
    lat.add_argument("--k", type=int, default=5)
    args = parser.parse_args(argv)
    if args.command == "latency":
        paths = Paths.from_env()
        result = latency(paths, args.requests, args.k)
        paths.reports.mkdir(parents=True, exist_ok=True)
        (paths.reports / "engine_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    elif args.command == "scale-test":
        result = scale_test(Paths.from_env(), args.customers, args.k, RecommendConfig.from_env())
    else:
        result = batch_score(Paths.from_env(), args.k, args.sample, RecommendConfig.from_env(), not args.no_check,
                             args.seed)
    print(json.dumps(result, indent=2, default=_json_default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
