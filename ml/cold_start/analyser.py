"""Target customers for a product that has no history, scored by the propensity model through its attributes.

Only customers the product is suitable for are ranked (the rules applied to the product as if it
were in the catalogue); each target has a match score and reasons; the report adds conflicts and
the forecast.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from ml.cold_start.conflicts import conflicts, warnings
from ml.cold_start.definition import extended_catalogue, product_row, to_product
from ml.cold_start.forecast import (
    ForecastAssumptions,
    ProductHistory,
    assumption_lines,
    forecast,
)
from ml.core import suitability
from ml.core.catalogue import Catalogue, Product, load_catalogue
from ml.core.config import Paths
from ml.features.pairs import pair_matrix
from ml.features.snapshot import snapshot_features
from ml.recommendation.contract import (
    ColdStartResult,
    ColdStartWarning,
    Conflict,
    Forecast,
    Reason,
    Target,
)
from ml.recommendation.explain import PathExplainer, reasons
from ml.recommendation.explain import reason as explain_reason
from ml.recommendation.match_score import MatchReference, log_scale, rule_components, rule_scores
from ml.recommendation.stage_one import suitability_inputs
from ml.training.registry import load_model


# ------------------------------------------------------------------------------------------------
# 2. Targets, and the analyser that puts everything together
# ------------------------------------------------------------------------------------------------
# the forecast's assumptions a caller may override, as stated in its result
EDITABLE_ASSUMPTIONS = ("horizon_months", "contact_rate", "contact_uplift", "margin", "average_balance_cny")


class ColdStartAnalyser:
    """Scores a product defined by attributes for every customer of the current snapshot."""

    def __init__(self, paths: Paths, model, customer_ids: np.ndarray, x: np.ndarray,
                 catalogue: Catalogue | None = None, history: ProductHistory | None = None):
        self.paths = paths
        self.model = model
        self.catalogue = catalogue or load_catalogue()
        self.customer_ids = customer_ids
        self.x = x
        self._history = history
        self._explainer = None
        self.reference: MatchReference | None = None  # the nightly match-score reference, when served

    @classmethod
    def from_paths(cls, paths: Paths) -> "ColdStartAnalyser":
        model, _ = load_model(paths)
        ids, x = snapshot_features(paths)
        return cls(paths, model, ids, x)

    @classmethod
    def for_engine(cls, engine) -> "ColdStartAnalyser":
        """One analyser per engine (the snapshot read once, lazily)."""
        analyser = getattr(engine, "_cold_start", None)
        if analyser is None:
            ids, x = snapshot_features(engine.paths)
            analyser = cls(engine.paths, engine.stage_one_scorer.model, ids, x, engine.catalogue)
            analyser.reference = engine.stage_one_scorer.reference
            engine._cold_start = analyser
        return analyser

    def annual_value(self, product: Product) -> float:
        """The product's yearly value to the bank; unknown: the median of its category's products."""
        if product.annual_value_cny > 0:
            return float(product.annual_value_cny)
        same = [p.annual_value_cny for p in self.catalogue if p.category == product.category]
        return float(np.median(same)) if same else 1.0

    @property
    def history(self) -> ProductHistory:
        if self._history is None:
            self._history = ProductHistory.from_marts(self.paths, catalogue=self.catalogue)
        return self._history

    @property
    def model_version(self) -> str:
        return str(self.model.metadata.get("version", "unversioned"))

    def eligibility(self, product: Product) -> np.ndarray:
        """(n,) bool: may the product be offered to each customer (the rules, nobody holds it)."""

        ext = extended_catalogue(product, self.catalogue)
        return suitability.eligibility(suitability_inputs(self.x), catalogue=ext).allowed[:, -1]

    def probabilities(self, product: Product, rows: np.ndarray | None = None, raw: bool = False):
        """Calibrated probabilities of the product for customer ``rows`` (and the raw booster
        probabilities with ``raw``: they order the customers within an isotonic step)."""

        x = self.x if rows is None else self.x[rows]
        table = product_row(product, catalogue=self.catalogue)
        out, raw_out = np.empty(len(x)), np.empty(len(x))
        for start in range(0, len(x), 50_000):
            block = pair_matrix(x[start:start + 50_000], table, self.model.relations)
            raw_out[start:start + 50_000] = self.model.booster.predict(block, num_threads=2)
        out[:] = self.model.calibrate(raw_out)
        return (out, raw_out) if raw else out

    def targets(self, product: Product, n: int, scorer: str = "model", with_reasons: bool = True) -> pd.DataFrame:
        """Top ``n`` suitable customers: customer_id, probability (model), score, match_score, reasons."""

        allowed = self.eligibility(product)
        rows = np.flatnonzero(allowed)
        if scorer == "model":
            score, tie = self.probabilities(product, rows, raw=True)
        elif scorer == "rule":
            score = rule_scores(self.x[rows], asdict(product) | {"risk_level": product.risk_level})
            tie = np.zeros(len(rows))
        else:
            raise ValueError(f"unknown scorer {scorer!r}")
        order = np.lexsort((self.customer_ids[rows], -tie, -score))[:n]
        if scorer == "model":
            # stage one's match score: the offer's expected value among tonight's suitable offers (a
            # percentile of the suitable population itself would read 100 for every top target)
            expected = score[order] * self.annual_value(product)
            reference = self.reference
            match = (reference.score_value(expected) if reference is not None and reference.value_quantiles is not None
                     else log_scale(expected))
        else:
            match = np.round(score[order]).astype(int)  # the rule score is itself 0..100
        frame = pd.DataFrame({"customer_id": self.customer_ids[rows[order]], "score": score[order],
                              "match_score": match})
        if with_reasons:
            frame["reasons"] = self._reasons(product, rows[order]) if scorer == "model" else \
                self._rule_reasons(product, rows[order])
        return frame

    def _reasons(self, product: Product, rows: np.ndarray) -> list[tuple[Reason, ...]]:
        if self._explainer is None:
            self._explainer = PathExplainer(self.model.booster)
        table = product_row(product, catalogue=self.catalogue)
        out = []
        for start in range(0, len(rows), 500):
            chunk = rows[start:start + 500]
            contrib = self._explainer.contributions(pair_matrix(self.x[chunk], table, self.model.relations))
            out += [reasons(c, self.x[r], product, catalogue=self.catalogue) for c, r in zip(contrib, chunk)]
        return out

    def _rule_reasons(self, product: Product, rows: np.ndarray) -> list[tuple[Reason, ...]]:
        parts = rule_components(self.x[rows], asdict(product) | {"risk_level": product.risk_level})
        names = {"age": explain_reason("AGE_FITS_PRODUCT", "age fits the product"),
                 "risk": explain_reason("RISK_APPETITE_FITS", "risk fits"),
                 "assets": explain_reason("ASSETS_COVER_MINIMUM", "assets cover the minimum"),
                 "category": explain_reason("USES_CATEGORY", "uses %(category)s products", category=product.category),
                 "trigger": explain_reason("RECENT_TRIGGER", "recent salary, deposit maturity or card event"),
                 "tags": explain_reason("PROFILE_FITS_TAGS", "profile fits the product's tags")}
        out = []
        for i in range(len(rows)):
            best = sorted(((parts[k][i], k) for k in parts), reverse=True)[:3]
            out.append(tuple(names[k] for v, k in best if v > 0) or (names["age"],))
        return out

    def report(self, definition: Mapping[str, Any], n: int = 20, assumptions: Mapping[str, Any] | None = None,
               scorer: str = "model") -> dict:
        """The full analysis as JSON-ready data (conflicts with risk tags, warnings, targets, forecast)."""
        product = to_product(definition)
        allowed = self.eligibility(product)
        complement = (self.model.relations or {}).get("complement")
        found = conflicts(product, self.catalogue, complement)
        warns = warnings(product, self.x, allowed, self.catalogue)
        targets = self.targets(product, n, scorer)
        fc = forecast(product, int(allowed.sum()), self.history, ForecastAssumptions.from_mapping(assumptions),
                      self.catalogue)
        return {
            "product": {**asdict(product), "tags": list(product.tags)},
            "model_version": self.model_version, "scorer": scorer,
            "conflicts": [asdict(c) for c in found], "warnings": warns,
            "suitable_customers": int(allowed.sum()), "customers": int(len(allowed)),
            "targets": [{"customer_id": r.customer_id, "score": round(float(r.score), 6),
                         "match_score": int(r.match_score),
                         "reasons": [{"code": x.code, "text": x.text, "template": x.template, "params": dict(x.params)}
                                     for x in r.reasons]}
                        for r in targets.itertuples()],
            "forecast": fc,
        }

    def analyse(self, definition: Mapping[str, Any], n: int = 20, assumptions: Mapping[str, Any] | None = None
                ) -> ColdStartResult:
        """The serving view (``serving.engine.ColdStartResult``): conflicts with their risk tag, warnings."""
        rep = self.report(definition, n, assumptions)
        conflicts_ = tuple(Conflict(c["product_id"], c["relation"], float(c["strength"]), c["reason"], c["risk"])
                           for c in rep["conflicts"])
        warnings_ = tuple(ColdStartWarning(w["code"], w["severity"], w["message"], w["template"],
                                            tuple(sorted(w["params"].items()))) for w in rep["warnings"])
        targets = tuple(Target(t["customer_id"], t["match_score"],
                               tuple(Reason(r["code"], r["text"], r["template"], tuple(sorted(r["params"].items())))
                                     for r in t["reasons"]), t["score"])
                        for t in rep["targets"])
        fc = rep["forecast"]
        lines = assumption_lines(fc["assumptions"]) + (
            f"revenue range: CNY {fc['revenue_low_cny']:,.0f} - {fc['revenue_high_cny']:,.0f}",)
        stated = fc["assumptions"]
        parameters = tuple((name, float(stated[name])) for name in EDITABLE_ASSUMPTIONS if name in stated) + (
            ("n_similar", float(len(fc["similar_products"]))),)
        forecast_ = Forecast(fc["horizon_months"], fc["expected_adopters"], fc["adopters_low"], fc["adopters_high"],
                             fc["expected_revenue_cny"], tuple(fc["similar_products"]), lines,
                             fc["revenue_low_cny"], fc["revenue_high_cny"], parameters)
        return ColdStartResult(conflicts_, targets, forecast_, self.model_version, warnings_)
