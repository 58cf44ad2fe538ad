"""Suitability: the hard constraints every recommendation must satisfy.

The rules live in ``ml/core/suitability_rules.toml`` (versioned; ``RULES_VERSION``). This module
evaluates them for a whole customer table at once and returns an :class:`Eligibility`: a
``(n_customers, n_products)`` bitmask of reasons, one bit per rule, zero where the product is
suitable. Ranking goes through :func:`apply` or :func:`rank`, so no score — ``+inf`` included —
can bring an excluded product back; :func:`assert_all_suitable` audits finished rankings.

Products are in catalogue order (``ml.core.catalogue``). Typical use::

    elig = eligibility(customers, held)            # customers: age, risk_preference, assets_cny
    top = rank(scores, elig.allowed, k=10)         # (n, 10) catalogue indices, -1 = no product
    assert_all_suitable(top, customers, held)      # raises on any violation
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ml.core.catalogue import Catalogue, load_catalogue
from ml.core.suitability_rules import RULES, UNKNOWN_PRODUCT, SuitabilityRules


# ------------------------------------------------------------------------------------------------
# Customer inputs -> clean vectors (NaN / 0 = unknown, which fails closed)
# ------------------------------------------------------------------------------------------------
def risk_tolerance(customers: pd.DataFrame, rules: SuitabilityRules = RULES) -> np.ndarray:
    """Risk tolerance 1..5 per customer (int8), 0 where unknown.

    Reads ``risk_tolerance`` (1..5) and/or ``risk_preference`` (text, alias or a digit); when both
    are known and differ, the lower one wins.
    """
    if "risk_tolerance" not in customers and "risk_preference" not in customers:
        raise ValueError("customers need a risk_preference or risk_tolerance column")
    found: list[np.ndarray] = []
    if "risk_tolerance" in customers:
        found.append(_as_level(pd.to_numeric(customers["risk_tolerance"], errors="coerce").to_numpy(float)))
    if "risk_preference" in customers:
        codes, uniques = pd.factorize(customers["risk_preference"], use_na_sentinel=True)
        lookup = np.array([_parse_level(u, rules) for u in uniques] + [0], dtype=np.int8)
        found.append(lookup[codes])  # code -1 (missing) picks the trailing 0
    levels = found[0]
    for other in found[1:]:
        both = (levels > 0) & (other > 0)
        levels = np.where(both, np.minimum(levels, other), np.maximum(levels, other)).astype(np.int8)
    return levels


def _as_level(values: np.ndarray) -> np.ndarray:
    ok = np.isfinite(values) & (values == np.round(values)) & (values >= 1) & (values <= 5)
    return np.where(ok, np.nan_to_num(values), 0).astype(np.int8)


def _parse_level(value: object, rules: SuitabilityRules) -> int:
    text = str(value).strip().lower()
    if text in rules.risk_levels_by_name:
        return rules.risk_levels_by_name[text]
    try:
        number = float(text)
    except ValueError:
        return 0
    return int(number) if number in (1, 2, 3, 4, 5) else 0


def customer_age(customers: pd.DataFrame, rules: SuitabilityRules = RULES) -> np.ndarray:
    """Age per customer (float), NaN where missing or outside the valid range."""
    if "age" not in customers:
        raise ValueError("customers need an age column")
    age = pd.to_numeric(customers["age"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    lo, hi = rules.valid_age
    return np.where((age >= lo) & (age <= hi), age, np.nan)


def customer_assets(customers: pd.DataFrame, rules: SuitabilityRules = RULES) -> np.ndarray:
    """Assets (CNY) per customer, falling back to the ``asset_level`` floor; NaN where unknown."""
    assets = np.full(len(customers), np.nan)
    if "assets_cny" in customers:
        assets = pd.to_numeric(customers["assets_cny"], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan)
        assets = np.where(assets >= 0, assets, np.nan)  # negative or NaN: unknown
    elif "asset_level" not in customers:
        raise ValueError("customers need an assets_cny or asset_level column")
    if "asset_level" in customers:
        floor = customers["asset_level"].map(rules.asset_level_floor).to_numpy(
            dtype=np.float64, na_value=np.nan)
        assets = np.where(np.isnan(assets), floor, assets)
    return assets


# ------------------------------------------------------------------------------------------------
# Eligibility
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Eligibility:
    """Which products each customer may be offered, and why not.

    ``reasons[i, j]`` is the bitmask of every rule excluding product ``j`` (catalogue order) for
    customer row ``i``; 0 means suitable. ``allowed`` is ``reasons == 0``.
    """

    reasons: np.ndarray
    product_ids: tuple[str, ...]
    rules: SuitabilityRules = field(repr=False)

    @property
    def rules_version(self) -> str:
        return self.rules.version

    @cached_property
    def allowed(self) -> np.ndarray:
        return self.reasons == 0

    def codes(self, i: int, j: int) -> list[str]:
        """Reason codes for customer row ``i`` and product position ``j``."""
        return self.rules.decode(self.reasons[i, j])

    def excluded(self, i: int) -> list[dict]:
        """``[{"product_id", "reason_codes"}]`` for the products customer row ``i`` may not get."""
        row = self.reasons[i]
        return [{"product_id": self.product_ids[j], "reason_codes": self.rules.decode(row[j])}
                for j in np.flatnonzero(row)]

    def allowed_ids(self, i: int) -> list[str]:
        return [self.product_ids[j] for j in np.flatnonzero(self.reasons[i] == 0)]

    def reason_counts(self) -> dict[str, int]:
        """Number of excluded (customer, product) cells per reason code."""
        return {r.reason_code: int(np.count_nonzero(self.reasons & r.mask)) for r in self.rules.rules}

    def to_long(self, customer_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Excluded cells as rows (customer, product_id, reason_mask, reason_codes '|'-joined)."""
        rows, cols = np.nonzero(self.reasons)
        masks = self.reasons[rows, cols]
        width = 1 << (max(r.bit for r in self.rules.rules) + 1)
        decoded = np.array(["|".join(self.rules.decode(m)) for m in range(width)], dtype=object)
        customer = np.asarray(customer_ids, dtype=object)[rows] if customer_ids is not None else rows
        return pd.DataFrame({
            "customer": customer,
            "product_id": np.asarray(self.product_ids, dtype=object)[cols],
            "reason_mask": masks,
            "reason_codes": decoded[masks],
            "rules_version": self.rules.version,
        })


def eligibility(customers: pd.DataFrame, held: np.ndarray | None = None, *,
                catalogue: Catalogue | None = None,
                rules: SuitabilityRules | None = None) -> Eligibility:
    """Evaluate every rule for every (customer, product) cell, vectorised.

    ``customers``: one row per customer with ``age``, ``risk_preference`` and/or
    ``risk_tolerance``, and ``assets_cny`` (or ``asset_level``). ``held``: optional boolean
    ``(n, P)`` matrix in catalogue order of products already held (here, or reported in
    feedback as "already owns"); see :func:`held_matrix`.
    """
    cat = catalogue if catalogue is not None else load_catalogue()
    rules = rules if rules is not None else RULES
    n, n_products = len(customers), len(cat)
    tol = risk_tolerance(customers, rules)
    age = customer_age(customers, rules)
    assets = customer_assets(customers, rules)
    risk, min_inv = cat.risk_levels, cat.min_investment
    age_lo, age_hi = cat.age_min.astype(np.float64), cat.age_max.astype(np.float64)

    reasons = np.zeros((n, n_products), dtype=np.uint16)

    def exclude(rule_id: str, cond: np.ndarray) -> None:
        np.bitwise_or(reasons, np.uint16(rules.mask(rule_id)), out=reasons,
                      where=np.broadcast_to(cond, reasons.shape))

    col, row = (lambda v: v[:, None]), (lambda v: v[None, :])
    unknown_tol, unknown_age, unknown_assets = tol == 0, np.isnan(age), np.isnan(assets)

    # risk level within tolerance; unknown tolerance allows R1 only
    exclude("risk_tolerance", col(~unknown_tol) & (row(risk) > col(tol)))
    exclude("missing_data", col(unknown_tol) & row(risk > 1))
    # age rules (NaN comparisons are False, so unknown ages only hit the missing-data rule)
    high_risk = risk >= rules.high_risk_min_level
    exclude("high_risk_age", row(high_risk) & col(age > rules.high_risk_max_age))
    target = np.isin(cat.categories, list(rules.target_age_categories))
    exclude("target_age", row(target) & ((col(age) < row(age_lo)) | (col(age) > row(age_hi))))
    adult = np.isin(cat.categories, list(rules.adult_categories))
    exclude("adult_only", row(adult) & col(age < rules.adult_min_age))
    exclude("missing_data", col(unknown_age) & row(high_risk | target | adult))
    # minimum investment (equal is enough); unknown assets allow products without a minimum
    exclude("min_investment", col(assets) < row(min_inv))
    exclude("missing_data", col(unknown_assets) & row(min_inv > 0))
    if held is not None:
        held = np.asarray(held)
        if held.shape != (n, n_products):
            raise ValueError(f"held has shape {held.shape}, expected {(n, n_products)}")
        exclude("already_held", held.astype(bool))
    return Eligibility(reasons=reasons, product_ids=cat.ids, rules=rules)


def held_matrix(customer_ids: Sequence[str] | pd.Series, holdings: pd.DataFrame, *,
                catalogue: Catalogue | None = None) -> np.ndarray:
    """Boolean ``(n, P)`` matrix from a long ``(customer_id, product_id)`` table.

    Rows follow ``customer_ids``; holdings of unknown customers or products are ignored.
    """
    cat = catalogue if catalogue is not None else load_catalogue()
    position = pd.Index(pd.Series(customer_ids, dtype=object)).get_indexer(holdings["customer_id"])
    product = cat.indices(holdings["product_id"].to_numpy(dtype=object))
    ok = (position >= 0) & (product >= 0)
    held = np.zeros((len(customer_ids), len(cat)), dtype=bool)
    held[position[ok], product[ok]] = True
    return held


def check_customer(customer: Mapping[str, object], held_products: Iterable[str] = (), *,
                   catalogue: Catalogue | None = None,
                   rules: SuitabilityRules | None = None) -> list[dict]:
    """Excluded products of one customer: ``[{"product_id", "reason_codes": [...]}]``.

    ``held_products``: product ids held or reported as "already owns" (unknown ids ignored).
    """
    cat = catalogue if catalogue is not None else load_catalogue()
    held = np.zeros((1, len(cat)), dtype=bool)
    idx = cat.indices(list(held_products))
    held[0, idx[idx >= 0]] = True
    frame = pd.DataFrame([dict(customer)])
    return eligibility(frame, held, catalogue=cat, rules=rules).excluded(0)


# ------------------------------------------------------------------------------------------------
# Ranking under the constraints
# ------------------------------------------------------------------------------------------------
def apply(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """A float copy of ``scores`` with every excluded cell set to ``-inf``.

    Prefer :func:`rank` for top-K: a customer with fewer than K suitable products would
    otherwise get ``-inf`` products in a plain arg-sort.
    """
    scores = np.array(scores, dtype=np.float64)  # copy
    allowed = np.asarray(allowed, dtype=bool)
    if scores.shape != allowed.shape:
        raise ValueError(f"scores {scores.shape} and allowed {allowed.shape} differ in shape")
    scores[~allowed] = -np.inf
    return scores


def rank(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """Top-``k`` suitable products per row, best first: ``(n, k)`` catalogue positions, -1 padded.

    Only allowed cells can appear, whatever their score; an allowed product is never dropped
    while fewer than ``k`` are returned. NaN scores count as ``-inf``; ties keep catalogue order.
    """
    scores = np.asarray(scores, dtype=np.float64)
    allowed = np.asarray(allowed, dtype=bool)
    if scores.shape != allowed.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and allowed {allowed.shape} must be equal 2-D shapes")
    key = -scores
    key[np.isnan(key)] = np.inf          # allowed but unscored: like -inf
    key[~allowed] = np.nan               # excluded: NaN sorts after everything
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    ok = np.take_along_axis(allowed, order, axis=1)
    return np.where(ok, order, -1)


# ------------------------------------------------------------------------------------------------
# Auditing finished rankings
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SuitabilityAudit:
    """Result of checking rankings against the rules."""

    n_customers: int
    n_recommendations: int
    n_violations: int
    by_reason: dict[str, int]          # violating recommendations per reason (may overlap)
    violating_rows: np.ndarray         # customer row positions with at least one violation
    rules_version: str

    @property
    def ok(self) -> bool:
        return self.n_violations == 0


def _ranked_positions(ranked: Any, cat: Catalogue) -> np.ndarray:
    """Rankings as an ``(n, k)`` int matrix: catalogue position, -1 padding, -2 unknown product."""
    if isinstance(ranked, np.ndarray) and ranked.dtype.kind in "iu":
        pos = ranked.astype(np.int64).reshape(len(ranked), -1)
        return np.where((pos < -1) | (pos >= len(cat)), -2, pos)
    rows = list(ranked)  # a 2-D array of ids or a list of lists of ids
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    width = int(lengths.max(initial=0))
    flat = pd.Series([pid for r in rows for pid in r], dtype=object)
    padding = flat.isna().to_numpy() | (flat == "").to_numpy()
    found = cat.indices(flat.to_numpy())
    found = np.where(padding, -1, np.where(found < 0, -2, found))
    pos = np.full((len(rows), width), -1, dtype=np.int64)
    pos[np.repeat(np.arange(len(rows)), lengths), np.arange(len(flat)) - np.repeat(
        np.cumsum(lengths) - lengths, lengths)] = found
    return pos


def audit(ranked: Any, customers: pd.DataFrame, held: np.ndarray | None = None, *,
          catalogue: Catalogue | None = None, rules: SuitabilityRules | None = None) -> SuitabilityAudit:
    """Count unsuitable recommendations in finished rankings.

    ``ranked``: one ranking per customer row — an int matrix of catalogue positions (-1 padding,
    as :func:`rank` returns), a 2-D array of product ids, or a list of lists of product ids
    (``None``/``""`` as padding). A product id not in the catalogue counts as a violation
    (``UNKNOWN_PRODUCT``): its suitability cannot be shown.
    """
    cat = catalogue if catalogue is not None else load_catalogue()
    elig = eligibility(customers, held, catalogue=cat, rules=rules)
    pos = _ranked_positions(ranked, cat)
    if len(pos) != len(customers):
        raise ValueError(f"{len(pos)} rankings for {len(customers)} customers")
    valid = pos >= 0
    masks = np.zeros(pos.shape, dtype=np.uint16)
    masks[valid] = elig.reasons[np.nonzero(valid)[0], pos[valid]]
    unknown = pos == -2
    bad = (masks != 0) | unknown
    by_reason = {r.reason_code: int(np.count_nonzero(masks & r.mask)) for r in elig.rules.rules}
    by_reason[UNKNOWN_PRODUCT] = int(unknown.sum())
    return SuitabilityAudit(
        n_customers=len(customers),
        n_recommendations=int(valid.sum() + unknown.sum()),
        n_violations=int(bad.sum()),
        by_reason={k: v for k, v in by_reason.items() if v},
        violating_rows=np.flatnonzero(bad.any(axis=1)),
        rules_version=elig.rules_version,
    )


def assert_all_suitable(ranked_product_ids: Any, customers: pd.DataFrame,
                        held: np.ndarray | None = None, **kwargs) -> SuitabilityAudit:
    """:func:`audit`, raising ``AssertionError`` with a summary if any recommendation is unsuitable."""
    result = audit(ranked_product_ids, customers, held, **kwargs)
    if not result.ok:
        raise AssertionError(
            f"{result.n_violations} unsuitable recommendations out of {result.n_recommendations} "
            f"for {len(result.violating_rows)} customers (rules v{result.rules_version}): "
            f"{result.by_reason}; first rows {result.violating_rows[:10].tolist()}")
    return result
