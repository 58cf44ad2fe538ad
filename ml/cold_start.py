"""New-product cold start: conflicts, target customers and an uptake forecast (issue #6).

    python -m ml.cold_start analyse --definition product.json [--n 20] [--assumptions a.json]
    python -m ml.cold_start evaluate --product PRO_CAR [--n 200] [--eval-data-dir DIR]

A product that has no history is known only by its attributes (category, risk level, minimum
investment, expected return, target ages, tags). Three answers:

1. **Conflicts** — existing products it would substitute or compete with (catalogue similarity,
   ``ml.relations.attribute_similarity``): *substitute* (same role: same category and similar,
   or a shared tag across categories) with risk ``high`` / ``medium`` by strength; *overlap*
   (same category, less similar, medium); *complement* (the relation graph's complements of its
   nearest existing product: a cross-sell opportunity, tagged ``low``). Plus warnings: risk
   concentration in the category, target ages the suitability rules will cut (R4+ over 65, minors),
   a minimum investment few customers reach, a return out of line with products of the same risk,
   a small suitable population.
2. **Targets** — the stage-one model scores every customer for the product through its
   attributes (one LightGBM over customer x product rows; the new product gets an unseen
   ``product_code`` and no relation-graph column). Only customers the product is suitable for
   (the rules applied to the product as if it were in the catalogue) are ranked; each target has
   a match score (percentile of the probability among the suitable population) and reasons.
3. **Forecast** — from the history of the most similar products: their 3-month adoption rate
   among suitable non-holders (labels mart, every cut-off), weighted by similarity; times the
   suitable population; over the horizon; with a contact effect; revenue = adopters x average
   balance x margin. Every assumption is explicit and overridable; the range spans the similar
   products' rates plus Poisson noise.

``evaluate`` holds one existing product out of training *entirely* (no rows, no relation-graph
column, no calibration rows), defines it only by its attributes and measures how its real adopters
in the held-out window rank: precision@N and lift against random and the rule-based score
(``ml.match_score.rule_scores``), plus the forecast against the real uptake. The held-out
product's ``holds_*`` customer feature stays in the layout: at the evaluation cut-off every
candidate has it at 0 (holders are excluded), so it cannot reveal the adopters; dropping it would
change the feature layout the Feast service serves.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml import suitability
from ml.catalogue import Catalogue, Product, load_catalogue
from ml.config import CUTOFFS, HOLDOUT_CUTOFF, LABEL_WINDOW_MONTHS, Paths
from ml.feature_layout import POSITION
from ml.pair_features import PRODUCT_ATTRIBUTES, CATEGORY_CODES, product_table
from serving.engine import ColdStartResult, ColdStartWarning, Conflict, Forecast, Reason, Target

SUBSTITUTE_SIMILARITY = 0.7      # same category and at least this similar: a substitute
HIGH_RISK_SIMILARITY = 0.8       # a substitute this similar: high cannibalisation risk
OVERLAP_SIMILARITY = 0.55        # same category, less similar: an overlap (medium)
CROSS_SUBSTITUTE_SIMILARITY = 0.4  # across categories: a shared tag and this similar
DEFAULT_MARGIN = {"savings": 0.01, "wealth": 0.008, "credit": 0.02, "protection": 0.2}
MARGIN_MEANING = {"savings": "net interest margin on the balance", "wealth": "annual fee on assets",
                  "credit": "net interest margin on the loan", "protection": "commission on the annual premium"}


def log(message: str) -> None:
    print(f"[cold_start] {message}", file=sys.stderr, flush=True)


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
    from ml.relations import attribute_similarity

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
        out.append({"code": "RISK_CONCENTRATION", "severity": "medium",
                    "message": f"{len(same)} {product.category} products at {product.risk_label} already "
                               f"({', '.join(q.product_id for q in same)}): the category's offer concentrates "
                               f"at this risk level"})
    if product.risk_level >= rules.high_risk_min_level and product.target_age_max > rules.high_risk_max_age:
        out.append({"code": "AGE_LIMIT_HIGH_RISK", "severity": "high",
                    "message": f"{product.risk_label} products cannot be offered over age "
                               f"{rules.high_risk_max_age:.0f}; the target range "
                               f"{product.target_age_min}-{product.target_age_max} will be cut"})
    if product.category in rules.adult_categories and product.target_age_min < rules.adult_min_age:
        out.append({"code": "BELOW_ADULT_AGE", "severity": "high",
                    "message": f"{product.category} products only from age {rules.adult_min_age:.0f}"})
    peers = [q.expected_return_pct for q in cat
             if q.risk_level == product.risk_level and q.category == product.category]
    if peers and product.expected_return_pct > max(peers) + 1.0:
        out.append({"code": "RETURN_ABOVE_RISK_PEERS", "severity": "high",
                    "message": f"expected return {product.expected_return_pct:.2f}% is above every "
                               f"{product.risk_label} {product.category} product (max {max(peers):.2f}%): "
                               f"check the risk rating (mis-selling risk)"})
    if x is not None and len(x):
        age = x[:, POSITION["age"]]
        in_range = (age >= product.target_age_min) & (age <= product.target_age_max)
        assets = np.expm1(x[:, POSITION["log_assets"]].astype(np.float64))
        reach = float(np.mean(assets[in_range] >= product.min_investment_cny)) if in_range.any() else 0.0
        if product.min_investment_cny > 0 and reach < 0.2:
            out.append({"code": "MIN_INVESTMENT_REACH", "severity": "medium",
                        "message": f"only {reach:.0%} of customers in the target ages hold the "
                                   f"CNY {product.min_investment_cny:,.0f} minimum at the bank"})
        if allowed is not None:
            share = float(np.mean(allowed))
            if share < 0.01:
                out.append({"code": "SMALL_SUITABLE_POPULATION", "severity": "medium",
                            "message": f"the product is suitable for only {share:.2%} of customers"})
    return out


# ------------------------------------------------------------------------------------------------
# 3. History of similar products and the forecast
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProductHistory:
    """Per catalogue product: adopters and suitable non-holders summed over label windows."""

    adopters: Mapping[str, int]
    at_risk: Mapping[str, int]
    cutoffs: tuple[str, ...]

    def rate(self, product_id: str) -> float:
        n = self.at_risk.get(product_id, 0)
        return self.adopters.get(product_id, 0) / n if n else float("nan")

    @classmethod
    def from_marts(cls, paths: Paths, cutoffs: Sequence[date] | None = None, exclude: Sequence[str] = (),
                   catalogue: Catalogue | None = None, batch: int = 500_000) -> "ProductHistory":
        """Adoption among suitable non-holders at each cut-off (labels mart x features mart)."""
        import duckdb

        cat = catalogue or load_catalogue()
        labels = [f"label_{p.lower()}" for p in cat.ids]
        where = ""
        if cutoffs:
            days = ", ".join(f"timestamp '{c.isoformat()}'" for c in cutoffs)
            where = f"where l.snapshot_ts in ({days})"
        query = f"""
            select f.age, f.risk_tolerance, f.log_assets, {', '.join('l.' + c for c in labels)}
            from read_parquet('{paths.marts / 'labels_adoption.parquet'}') l
            join read_parquet('{paths.marts / 'customer_features_monthly.parquet'}') f
              using (customer_id, snapshot_ts) {where}"""
        adopters = np.zeros(len(cat))
        at_risk = np.zeros(len(cat))
        used = set()
        con = duckdb.connect()
        reader = con.sql(query).to_arrow_reader(batch)
        for record in reader:
            frame = record.to_pandas()
            customers = pd.DataFrame({"age": frame["age"], "risk_tolerance": frame["risk_tolerance"],
                                      "assets_cny": np.expm1(frame["log_assets"].to_numpy(dtype=float))})
            allowed = suitability.eligibility(customers, catalogue=cat).allowed
            y = frame[labels].to_numpy(dtype=float)
            ok = allowed & ~np.isnan(y)
            adopters += np.where(ok, np.nan_to_num(y), 0).sum(axis=0)
            at_risk += ok.sum(axis=0)
        if cutoffs:
            used = {c.isoformat() for c in cutoffs}
        skip = set(exclude)
        return cls({p: int(a) for p, a in zip(cat.ids, adopters) if p not in skip},
                   {p: int(n) for p, n in zip(cat.ids, at_risk) if p not in skip}, tuple(sorted(used)))


@dataclass(frozen=True)
class ForecastAssumptions:
    """Every number the forecast rests on; any of them can be overridden."""

    horizon_months: int = 12
    contact_rate: float = 0.2          # share of the suitable population contacted in the horizon
    contact_uplift: float = 2.0        # conversion multiplier when contacted (vs the organic history)
    margin: float | None = None        # default: DEFAULT_MARGIN of the category
    average_balance_cny: float | None = None  # default: implied by similar products' annual values
    n_similar: int = 3
    z: float = 1.645                   # 90% Poisson band around the low/high rates

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> "ForecastAssumptions":
        values = dict(values or {})
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown forecast assumptions: {sorted(unknown)}")
        return cls(**values)


def similar_products(product: Product, history: ProductHistory, n: int, catalogue: Catalogue | None = None
                     ) -> list[tuple[str, float]]:
    """The ``n`` catalogue products most similar to ``product`` that have a history (same category
    first), with their similarity."""
    from ml.relations import attribute_similarity

    cat = catalogue or load_catalogue()
    savings = product.category == "savings"   # savings only compare with savings, cross-sell with cross-sell
    scored = [(attribute_similarity(product, q)["attribute_similarity"], q.product_id) for q in cat
              if history.at_risk.get(q.product_id, 0) > 0 and (q.category == "savings") == savings]
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [(pid, round(sim, 4)) for sim, pid in scored[:n]]


def forecast(product: Product, population: int, history: ProductHistory,
             assumptions: ForecastAssumptions | None = None, catalogue: Catalogue | None = None) -> dict:
    """Uptake and revenue over the horizon from similar products' history (a range, not a point)."""
    a = assumptions or ForecastAssumptions()
    cat = catalogue or load_catalogue()
    similar = similar_products(product, history, a.n_similar, cat)
    if not similar:
        raise ValueError("no similar product with a history")
    weights = np.array([s for _, s in similar])
    rates = np.array([history.rate(p) for p, _ in similar])
    rate = float(np.average(rates, weights=weights))
    periods = a.horizon_months / LABEL_WINDOW_MONTHS
    contact = 1.0 + a.contact_rate * (a.contact_uplift - 1.0)

    def adopters(r: float) -> float:
        return population * (1.0 - (1.0 - r) ** periods) * contact

    expected = adopters(rate)
    low = max(adopters(float(rates.min())) - a.z * math.sqrt(max(adopters(float(rates.min())), 0.0)), 0.0)
    high = adopters(float(rates.max())) + a.z * math.sqrt(adopters(float(rates.max())))
    margin = a.margin if a.margin is not None else DEFAULT_MARGIN[product.category]
    implied = [cat[p].annual_value_cny / DEFAULT_MARGIN[cat[p].category] for p, _ in similar]
    balance = a.average_balance_cny if a.average_balance_cny is not None else float(
        np.average(implied, weights=weights))
    balance = max(balance, product.min_investment_cny)
    per_adopter = balance * margin
    if product.annual_value_cny > 0 and a.average_balance_cny is None and a.margin is None:
        per_adopter = product.annual_value_cny
    years = a.horizon_months / 12
    revenue = {k: round(v * per_adopter * years / 2, 0)  # adopters join through the horizon: half a year on average
               for k, v in (("low", low), ("expected", expected), ("high", high))}
    stated = {
        "horizon_months": a.horizon_months,
        "suitable_population": population,
        "similar_products": {p: {"similarity": s, "rate_3m": round(history.rate(p), 6),
                                 "adopters": history.adopters[p], "suitable_non_holders": history.at_risk[p]}
                             for p, s in similar},
        "uptake_rate_3m": round(rate, 6),
        "uptake_rate_source": f"similarity-weighted 3-month adoption rate of {len(similar)} similar products among "
                              f"suitable non-holders, cut-offs {', '.join(history.cutoffs) or 'all'}",
        "contact_rate": a.contact_rate, "contact_uplift": a.contact_uplift,
        "margin": margin, "margin_meaning": MARGIN_MEANING[product.category],
        "average_balance_cny": round(balance, 0),
        "average_balance_source": ("given" if a.average_balance_cny is not None else
                                   "implied by similar products' annual value / their category margin"),
        "revenue_per_adopter_per_year_cny": round(per_adopter, 2),
        "revenue_timing": "adopters join evenly over the horizon (half the horizon's revenue on average)",
        "range": f"low/high: lowest/highest similar-product rate, widened by a {a.z:g}-sigma Poisson band",
    }
    return {"horizon_months": a.horizon_months, "expected_adopters": round(expected, 1),
            "adopters_low": round(low, 1), "adopters_high": round(high, 1),
            "expected_revenue_cny": revenue["expected"], "revenue_low_cny": revenue["low"],
            "revenue_high_cny": revenue["high"], "similar_products": [p for p, _ in similar],
            "assumptions": stated}


def assumption_lines(stated: Mapping[str, Any]) -> tuple[str, ...]:
    """The stated assumptions as short sentences (serving's Forecast carries strings)."""
    lines = [f"horizon: {stated['horizon_months']} months",
             f"suitable population: {stated['suitable_population']:,} customers",
             f"uptake rate: {stated['uptake_rate_3m']:.4%} per 3 months ({stated['uptake_rate_source']})"]
    for p, s in stated["similar_products"].items():
        lines.append(f"similar product {p}: similarity {s['similarity']:.2f}, 3-month rate {s['rate_3m']:.4%} "
                     f"({s['adopters']} of {s['suitable_non_holders']:,})")
    lines += [f"contact rate: {stated['contact_rate']:.0%} of the suitable population, conversion x"
              f"{stated['contact_uplift']:g} when contacted",
              f"margin: {stated['margin']:.2%} ({stated['margin_meaning']})",
              f"average balance: CNY {stated['average_balance_cny']:,.0f} ({stated['average_balance_source']})",
              f"revenue per adopter: CNY {stated['revenue_per_adopter_per_year_cny']:,.0f} a year; "
              f"{stated['revenue_timing']}", stated["range"]]
    return tuple(lines)


# ------------------------------------------------------------------------------------------------
# 2. Targets, and the analyser that puts everything together
# ------------------------------------------------------------------------------------------------
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

    @classmethod
    def from_paths(cls, paths: Paths) -> "ColdStartAnalyser":
        from ml.recommend import load_model, snapshot_features

        model, _ = load_model(paths)
        ids, x = snapshot_features(paths)
        return cls(paths, model, ids, x)

    @classmethod
    def for_engine(cls, engine) -> "ColdStartAnalyser":
        """One analyser per engine (the snapshot read once, lazily)."""
        analyser = getattr(engine, "_cold_start", None)
        if analyser is None:
            from ml.recommend import snapshot_features

            ids, x = snapshot_features(engine.paths)
            analyser = cls(engine.paths, engine.stage_one_scorer.model, ids, x, engine.catalogue)
            engine._cold_start = analyser
        return analyser

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
        from ml.recommend import suitability_inputs

        ext = extended_catalogue(product, self.catalogue)
        return suitability.eligibility(suitability_inputs(self.x), catalogue=ext).allowed[:, -1]

    def probabilities(self, product: Product, rows: np.ndarray | None = None, raw: bool = False):
        """Calibrated probabilities of the product for customer ``rows`` (and the raw booster
        probabilities with ``raw``: they order the customers within an isotonic step)."""
        from ml.pair_features import pair_matrix

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
        from ml.match_score import rule_scores

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
        # match score: percentile of the score among the suitable population (ties share the midpoint)
        below = np.searchsorted(np.sort(score), score[order], side="left")
        upto = np.searchsorted(np.sort(score), score[order], side="right")
        match = np.clip(np.round(100 * (below + upto) / 2 / max(len(score), 1)), 0, 100).astype(int)
        frame = pd.DataFrame({"customer_id": self.customer_ids[rows[order]], "score": score[order],
                              "match_score": match})
        if with_reasons:
            frame["reasons"] = self._reasons(product, rows[order]) if scorer == "model" else \
                self._rule_reasons(product, rows[order])
        return frame

    def _reasons(self, product: Product, rows: np.ndarray) -> list[tuple[Reason, ...]]:
        from ml.explain import PathExplainer, reasons
        from ml.pair_features import pair_matrix

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
        from ml.match_score import rule_components

        parts = rule_components(self.x[rows], asdict(product) | {"risk_level": product.risk_level})
        names = {"age": ("AGE_FITS_PRODUCT", "age fits the product"), "risk": ("RISK_APPETITE_FITS", "risk fits"),
                 "assets": ("ASSETS_COVER_MINIMUM", "assets cover the minimum"),
                 "category": ("USES_CATEGORY", f"uses {product.category} products"),
                 "trigger": ("RECENT_TRIGGER", "recent salary, deposit maturity or card event"),
                 "tags": ("PROFILE_FITS_TAGS", "profile fits the product's tags")}
        out = []
        for i in range(len(rows)):
            best = sorted(((parts[k][i], k) for k in parts), reverse=True)[:3]
            out.append(tuple(Reason(*names[k]) for v, k in best if v > 0) or (Reason(*names["age"]),))
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
                         "reasons": [{"code": x.code, "text": x.text} for x in r.reasons]}
                        for r in targets.itertuples()],
            "forecast": fc,
        }

    def analyse(self, definition: Mapping[str, Any], n: int = 20, assumptions: Mapping[str, Any] | None = None
                ) -> ColdStartResult:
        """The serving view (``serving.engine.ColdStartResult``): conflicts with their risk tag, warnings."""
        rep = self.report(definition, n, assumptions)
        conflicts_ = tuple(Conflict(c["product_id"], c["relation"], float(c["strength"]), c["reason"], c["risk"])
                           for c in rep["conflicts"])
        warnings_ = tuple(ColdStartWarning(w["code"], w["severity"], w["message"]) for w in rep["warnings"])
        targets = tuple(Target(t["customer_id"], t["match_score"],
                               tuple(Reason(r["code"], r["text"]) for r in t["reasons"])) for t in rep["targets"])
        fc = rep["forecast"]
        lines = assumption_lines(fc["assumptions"]) + (
            f"revenue range: CNY {fc['revenue_low_cny']:,.0f} - {fc['revenue_high_cny']:,.0f}",)
        forecast_ = Forecast(fc["horizon_months"], fc["expected_adopters"], fc["adopters_low"], fc["adopters_high"],
                             fc["expected_revenue_cny"], tuple(fc["similar_products"]), lines)
        return ColdStartResult(conflicts_, targets, forecast_, self.model_version, warnings_)


# ------------------------------------------------------------------------------------------------
# Evaluation: hold one product out of training entirely
# ------------------------------------------------------------------------------------------------
def train_without(paths: Paths, product_id: str, seed: int = 7, non_adopters_per_adopter: float | None = None):
    """The stage-one model trained and calibrated without any row of ``product_id`` (cached)."""
    from ml.dataset import target_products
    from ml.model import PropensityModel
    from ml.recommend import feature_store
    from ml.train import FIT_CUTOFFS, MIN_NON_ADOPTERS, NON_ADOPTERS_PER_ADOPTER, fit_propensity, training_data
    from ml.training_set import relation_matrices

    ratio = NON_ADOPTERS_PER_ADOPTER if non_adopters_per_adopter is None else non_adopters_per_adopter
    cache = paths.data / "cold_start" / f"without_{product_id}_seed{seed}_ratio{ratio:g}"
    if (cache / "model.txt").exists():
        return PropensityModel.load(cache)
    started = time.perf_counter()
    products = [p for p in target_products() if p != product_id]
    if len(products) == len(target_products()):
        raise ValueError(f"{product_id} is not a cross-sell product of the model")
    relations = relation_matrices(paths, FIT_CUTOFFS[0])
    j = load_catalogue().index(product_id)
    for matrix in relations.values():        # no relation-graph column or row for the held-out product
        matrix[j, :] = 0.0
        matrix[:, j] = 0.0
    data = training_data(paths, seed, ratio, MIN_NON_ADOPTERS, products, relations, feature_store(paths))
    rows = len(data.fit) + len(data.calibration)
    log(f"without {product_id}: {rows:,} rows ({time.perf_counter() - started:.0f} s)")
    booster, calibrator, _ = fit_propensity(data.fit, data.calibration, seed)
    model = PropensityModel(booster, calibrator, products, relations,
                            {"version": f"without-{product_id}", "held_out_product": product_id,
                             "negative_sampling": data.sampling, "rows": rows, "seed": seed,
                             "trained_seconds": round(time.perf_counter() - started, 1)})
    model.save(cache)
    log(f"without {product_id}: {booster.num_trees()} trees ({time.perf_counter() - started:.0f} s)")
    return model


def precision_curve(score: np.ndarray, y: np.ndarray, ns: Sequence[int], tie_break: np.ndarray) -> dict[int, float]:
    """Mean of ``y`` (0/1 labels, or probabilities) over the top ``n`` by ``score`` for each n."""
    order = np.lexsort((tie_break, -score))
    hits = np.cumsum(y[order])
    return {n: float(hits[min(n, len(y)) - 1] / min(n, len(y))) for n in ns if len(y)}


def evaluate(paths: Paths, product_id: str, n: int = 200, eval_paths: Paths | None = None, seed: int = 7,
             non_adopters_per_adopter: float | None = None) -> dict:
    """Hold ``product_id`` out of training, rank its real adopters at the held-out cut-off.

    Realised precision@N counts the adopters in the label window (few at test scale: noisy);
    ``expected_*`` uses the oracle's true adoption probabilities of the same customers (evaluation
    only), which has no outcome noise.
    """
    from sklearn.metrics import roc_auc_score

    from ml.dataset import load_labels
    from ml.match_score import rule_scores
    from ml.pair_features import pair_matrix
    from ml.recommend import load_model, snapshot_features

    started = time.perf_counter()
    cat = load_catalogue()
    held_out = cat[product_id]
    model = train_without(paths, product_id, seed, non_adopters_per_adopter)
    target_paths = eval_paths or paths
    labels = load_labels(target_paths, [HOLDOUT_CUTOFF])
    column = f"label_{product_id.lower()}"
    labels = labels[labels[column].notna()]              # non-holders at the cut-off
    # the cut-off's snapshot rows of the Feast source are the point-in-time features at the cut-off:
    # read column-wise instead of a historical join over a million entity rows
    snap_ids, snap_x = snapshot_features(target_paths, pd.Timestamp(HOLDOUT_CUTOFF))
    rows_of = pd.Index(snap_ids).get_indexer(labels.customer_id)
    labels = labels[rows_of >= 0]
    x = snap_x[rows_of[rows_of >= 0]]
    ids = labels.customer_id.to_numpy()
    merged = labels[["customer_id", column]].reset_index(drop=True)
    # the product defined by its attributes only, under a name the model has never seen
    definition = {"product_id": "NEW_" + product_id, "name": f"new {held_out.name_en}",
                  "category": held_out.category, "risk_level": held_out.risk_label,
                  "min_investment_cny": held_out.min_investment_cny,
                  "expected_return_pct": held_out.expected_return_pct, "target_age_min": held_out.target_age_min,
                  "target_age_max": held_out.target_age_max, "tags": list(held_out.tags),
                  "annual_value_cny": held_out.annual_value_cny}
    product = to_product(definition)
    analyser = ColdStartAnalyser(target_paths, model, ids, x, cat)
    allowed = analyser.eligibility(product)
    rows = np.flatnonzero(allowed)
    y = merged[column].to_numpy(dtype=float)[rows]
    truth = _oracle_probability(target_paths, product_id, ids[rows])
    p_model, raw_model = analyser.probabilities(product, rows, raw=True)
    scores = {"cold_model": p_model + 1e-9 * raw_model,           # isotonic ties: raw booster order
              "rule": rule_scores(x[rows], asdict(product) | {"risk_level": product.risk_level})}
    full, _ = load_model(paths)
    if product_id in full.products:   # the warm model (trained with the product): what cold start gives up
        raw = full.booster.predict(pair_matrix(x[rows], product_table([product_id]), full.relations))
        scores["warm_model"] = full.calibrate(raw) + 1e-9 * raw
    tie = pd.Series(ids[rows]).rank(method="first").to_numpy()  # deterministic tie-break by customer id
    ns = sorted({20, 50, 100, n, 500, 1000})
    base = float(y.mean()) if len(y) else float("nan")
    curves = {k: precision_curve(v, y, ns, tie) for k, v in scores.items()}
    expected = {k: precision_curve(v, truth, ns, tie) for k, v in scores.items()} if truth is not None else None
    auc = {k: (round(float(roc_auc_score(y, v)), 4) if 0 < y.sum() < len(y) else None) for k, v in scores.items()}
    # forecast check: 3 months, organic (no contact), history without the product and before the cut-off
    history = ProductHistory.from_marts(paths, cutoffs=[c for c in CUTOFFS if c <= date(2025, 1, 1)],
                                        exclude=[product_id], catalogue=cat)
    fc = forecast(product, int(allowed.sum()), history,
                  ForecastAssumptions(horizon_months=LABEL_WINDOW_MONTHS, contact_rate=0.0), cat)
    actual = int(y.sum())
    r5 = lambda v: round(float(v), 5)  # noqa: E731
    result = {
        "product_id": product_id, "n": n, "cutoff": HOLDOUT_CUTOFF.isoformat(),
        "bank_generator_seed": _seed(target_paths), "suitable_non_holders": int(len(rows)),
        "adopters": actual, "base_rate": round(base, 6),
        "precision_at_n": r5(curves["cold_model"][n]), "random_precision_at_n": r5(base),
        "rule_precision_at_n": r5(curves["rule"][n]),
        "lift": round(curves["cold_model"][n] / base, 3) if base > 0 else None,
        "rule_lift": round(curves["rule"][n] / base, 3) if base > 0 else None,
        "warm_precision_at_n": r5(curves["warm_model"][n]) if "warm_model" in curves else None,
        "auc": auc,
        "precision_curve": {"n": ns, **{k: [r5(c[m]) for m in ns] for k, c in curves.items()}, "random": r5(base)},
    }
    if expected is not None:
        base_expected = float(truth.mean())
        result["expected"] = {
            "note": "precision@N with the oracle's true adoption probability of each selected customer as the "
                    "hit (no outcome noise; evaluation only)",
            "precision_at_n": r5(expected["cold_model"][n]), "random_precision_at_n": r5(base_expected),
            "rule_precision_at_n": r5(expected["rule"][n]),
            "warm_precision_at_n": r5(expected["warm_model"][n]) if "warm_model" in expected else None,
            "lift": round(expected["cold_model"][n] / base_expected, 3),
            "rule_lift": round(expected["rule"][n] / base_expected, 3),
            "curve": {"n": ns, **{k: [r5(c[m]) for m in ns] for k, c in expected.items()}},
        }
    result.update({
        "forecast_check": {"horizon_months": LABEL_WINDOW_MONTHS, "contact_rate": 0.0,
                           "expected": fc["expected_adopters"], "low": fc["adopters_low"],
                           "high": fc["adopters_high"], "actual": actual,
                           "within_range": bool(fc["adopters_low"] <= actual <= fc["adopters_high"]),
                           "similar_products": fc["similar_products"]},
        "held_out_model": model.metadata,
        "decisions": "no training or calibration rows of the product, no relation-graph row/column, unseen "
                     "product_code; its holds_* customer feature stays (0 for every candidate)",
        "seconds": round(time.perf_counter() - started, 1),
    })
    return result


def _oracle_probability(paths: Paths, product_id: str, customer_ids: np.ndarray) -> np.ndarray | None:
    folder = paths.oracle / f"cutoff={HOLDOUT_CUTOFF.isoformat()}"
    if not folder.exists():
        return None
    table = pd.read_parquet(folder, columns=["customer_id", f"p_true__{product_id}"]).set_index("customer_id")
    return np.nan_to_num(table[f"p_true__{product_id}"].reindex(customer_ids).to_numpy(dtype=float))


def evaluate_many(paths: Paths, products: Sequence[str], n: int = 200, eval_paths: Sequence[Paths | None] = (None,),
                  seed: int = 7, non_adopters_per_adopter: float | None = None) -> dict:
    """:func:`evaluate` for several held-out products (and banks); the first is the headline,
    ``pooled`` averages precision@N over every (product, bank) evaluated."""
    runs = [evaluate(paths, p, n, e, seed, non_adopters_per_adopter) for p in products for e in eval_paths]
    head = dict(runs[0])
    keys = ("precision_at_n", "random_precision_at_n", "rule_precision_at_n")
    pooled = {k: round(float(np.mean([r[k] for r in runs])), 5) for k in keys}
    pooled["adopters"] = int(sum(r["adopters"] for r in runs))
    pooled["lift"] = round(pooled["precision_at_n"] / pooled["random_precision_at_n"], 3)
    pooled["rule_lift"] = round(pooled["rule_precision_at_n"] / pooled["random_precision_at_n"], 3)
    if all("expected" in r for r in runs):
        ex = {k: round(float(np.mean([r["expected"][k] for r in runs])), 5) for k in keys}
        ex["lift"] = round(ex["precision_at_n"] / ex["random_precision_at_n"], 3)
        ex["rule_lift"] = round(ex["rule_precision_at_n"] / ex["random_precision_at_n"], 3)
        pooled["expected"] = ex
    pooled["runs"] = [{"product_id": r["product_id"], "bank_generator_seed": r["bank_generator_seed"],
                       "adopters": r["adopters"], **{k: r[k] for k in keys}, "lift": r["lift"],
                       "expected_lift": r.get("expected", {}).get("lift"),
                       "expected_rule_lift": r.get("expected", {}).get("rule_lift"),
                       "auc": r["auc"], "forecast_within_range": r["forecast_check"]["within_range"]}
                      for r in runs]
    head["pooled"] = pooled
    return head


def _seed(paths: Paths):
    manifest = paths.raw / "_manifest.json"
    return json.loads(manifest.read_text()).get("seed") if manifest.exists() else None


def main(argv: list[str] | None = None) -> int:
    from ml.recommend import write_metrics

    parser = argparse.ArgumentParser(prog="python -m ml.cold_start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    an = sub.add_parser("analyse", help="conflicts, targets and forecast for a product definition (JSON)")
    an.add_argument("--definition", type=Path, required=True)
    an.add_argument("--n", type=int, default=20)
    an.add_argument("--assumptions", type=Path, default=None, help="JSON overriding forecast assumptions")
    an.add_argument("--scorer", choices=["model", "rule"], default="model")
    ev = sub.add_parser("evaluate", help="hold a product out of training and rank its real adopters")
    ev.add_argument("--product", nargs="+", default=["PRO_CAR"],
                    help="held-out product(s); the first is the headline, all are pooled")
    ev.add_argument("--n", type=int, default=200)
    ev.add_argument("--eval-data-dir", type=Path, default=None,
                    help="rank the adopters of another bank (an unseen generator seed) as the headline, the "
                         "development bank's held-out cut-off pooled in (default: only the development bank)")
    ev.add_argument("--seed", type=int, default=7)
    ev.add_argument("--non-adopters-per-adopter", type=float, default=None,
                    help="training sample size, as in python -m ml.train (default: the same as it)")
    ev.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    paths = Paths.from_env()
    if args.command == "analyse":
        definition = json.loads(args.definition.read_text())
        assumptions = json.loads(args.assumptions.read_text()) if args.assumptions else None
        result = ColdStartAnalyser.from_paths(paths).report(definition, args.n, assumptions, args.scorer)
    else:
        banks: list[Paths | None] = [None]
        if args.eval_data_dir:  # the unseen bank is the headline; the development bank's cut-off is pooled in
            banks.insert(0, Paths(data=args.eval_data_dir.resolve(), reports=paths.reports))
        result = evaluate_many(paths, args.product, args.n, banks, args.seed, args.non_adopters_per_adopter)
        if not args.no_write:
            write_metrics(paths, {"cold_start": result})
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
