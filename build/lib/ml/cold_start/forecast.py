"""Uptake forecast for a new product from the history of the most similar products.

Their 3-month adoption rate among suitable non-holders, weighted by similarity, times the
suitable population, over the horizon, with a contact effect; revenue = adopters x balance x
margin. Every assumption is explicit and overridable; the range spans the similar products' rates
plus Poisson noise.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from ml.core import suitability
from ml.core.catalogue import Catalogue, Product, load_catalogue
from ml.core.config import LABEL_WINDOW_MONTHS, Paths
from ml.relations import attribute_similarity

DEFAULT_MARGIN = {"savings": 0.01, "wealth": 0.008, "credit": 0.02, "protection": 0.2}

MARGIN_MEANING = {"savings": "net interest margin on the balance", "wealth": "annual fee on assets",
                  "credit": "net interest margin on the loan", "protection": "commission on the annual premium"}


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
