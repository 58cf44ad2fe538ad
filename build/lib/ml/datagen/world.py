"""The planted structure of the synthetic bank: what drives what.

Everything a learner could find lives here, in one readable place. The simulation
(`simulate.py`) turns these numbers into customers, holdings and events; the oracle
(`oracle.py`) turns them into true probabilities. See docs/synthetic_bank.md.

A product's monthly adoption log-odds for a customer is

    base + profile fit + channel + activity + triggers + relations(held products) + latent

where every term but ``latent`` is computable from the raw tables, and ``latent`` is a
per-customer draw (taste for each category, wealth held elsewhere, product idiosyncrasy)
that appears in no table.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.core.catalogue import CATEGORIES
from ml.core.config import SEEDS_DIR

RISK_PREFERENCES = ("conservative", "cautious", "balanced", "growth", "aggressive")
EDUCATION = ("primary", "secondary", "vocational", "bachelor", "postgraduate")
MARITAL = ("single", "married", "divorced", "widowed")
CARD_TYPES = ("social_security", "debit_standard", "debit_gold", "debit_platinum")
ASSET_LEVEL_BOUNDS = (50_000.0, 200_000.0, 500_000.0, 2_000_000.0)  # L1 | L2 | L3 | L4 | L5
HIGH_RISK_MAX_AGE = 65  # no R4/R5 product for older customers: the bank's rule, also true in the data


@dataclass(frozen=True)
class ProductFit:
    """How a customer's observable profile shifts one product's log-odds."""

    age_peak: float
    age_width: float
    married: float = 0.0
    education: float = 0.0
    log_assets: float = 0.0
    urban: float = 0.0
    payroll: float = 0.0
    male: float = 0.0
    card: float = 0.0
    risk_headroom: float = 0.0  # per level of tolerance above the product's risk level
    hold_rate: float = 0.0  # share of customers holding it on 2024-01-01
    monthly_adoption: float = 0.0  # share of customers adopting it in an average month
    monthly_close: float = 0.0  # share of holders closing it in a month


FITS: dict[str, ProductFit] = {
    "SAV_DEMAND": ProductFit(45, 40, hold_rate=0.985, monthly_adoption=0.0005, monthly_close=0.0),
    "SAV_TIME": ProductFit(55, 18, 0.2, 0.0, 0.6, card=0.2, hold_rate=0.25, monthly_adoption=0.004, monthly_close=0.012),
    "SAV_EDU": ProductFit(36, 6, 1.2, 0.3, 0.3, 0.2, 0.3, card=0.1, hold_rate=0.02, monthly_adoption=0.0005, monthly_close=0.004),
    "SAV_LCD": ProductFit(55, 15, 0.2, 0.1, 1.5, 0.2, card=0.3, hold_rate=0.02, monthly_adoption=0.0008, monthly_close=0.01),
    "PRO_LIFE": ProductFit(38, 9, 0.9, 0.3, 0.5, 0.2, 0.3, 0.1, 0.2, hold_rate=0.004, monthly_adoption=0.0005, monthly_close=0.004),
    "PRO_ACCIDENT": ProductFit(38, 14, 0.2, 0.0, 0.1, 0.0, 0.4, 0.3, hold_rate=0.005, monthly_adoption=0.0007, monthly_close=0.03),
    "PRO_CAR": ProductFit(40, 11, 0.4, 0.2, 0.6, 0.5, 0.3, 0.6, 0.3, hold_rate=0.0025, monthly_adoption=0.0004, monthly_close=0.03),
    "PRO_ANNUITY": ProductFit(52, 7, 0.5, 0.2, 0.9, 0.2, 0.1, 0.0, 0.3, hold_rate=0.002, monthly_adoption=0.0003, monthly_close=0.003),
    "PRO_CRITICAL": ProductFit(40, 8, 0.7, 0.3, 0.3, 0.2, 0.3, 0.0, 0.1, hold_rate=0.003, monthly_adoption=0.0004, monthly_close=0.004),
    "CRD_MORTGAGE": ProductFit(33, 6, 1.0, 0.3, 0.3, 0.6, 0.8, 0.1, 0.2, hold_rate=0.007, monthly_adoption=0.0006, monthly_close=0.006),
    "CRD_CONSUMER": ProductFit(30, 7, 0.0, 0.0, -0.3, 0.3, 0.7, 0.2, hold_rate=0.004, monthly_adoption=0.0007, monthly_close=0.04),
    "CRD_BUSINESS": ProductFit(42, 8, 0.4, 0.0, 0.5, 0.2, -0.8, 0.6, 0.3, hold_rate=0.0025, monthly_adoption=0.0004, monthly_close=0.025),
    "CRD_CARD": ProductFit(31, 8, 0.0, 0.4, 0.2, 0.4, 0.8, 0.0, 0.4, hold_rate=0.008, monthly_adoption=0.0009, monthly_close=0.008),
    "WLT_STOCK_FUND": ProductFit(35, 9, 0.0, 0.6, 0.6, 0.4, 0.2, 0.4, 0.3, 0.6, hold_rate=0.0012, monthly_adoption=0.0003, monthly_close=0.03),
    "WLT_INDEX_FUND": ProductFit(33, 9, 0.0, 0.7, 0.4, 0.4, 0.3, 0.2, 0.3, 0.6, hold_rate=0.0015, monthly_adoption=0.0004, monthly_close=0.03),
    "WLT_MIXED_FUND": ProductFit(42, 11, 0.0, 0.4, 0.6, 0.3, 0.1, 0.0, 0.3, 0.5, hold_rate=0.002, monthly_adoption=0.0004, monthly_close=0.03),
    "WLT_BOND_FUND": ProductFit(52, 12, 0.0, 0.3, 0.7, 0.2, 0.0, 0.0, 0.3, 0.2, hold_rate=0.0025, monthly_adoption=0.0004, monthly_close=0.03),
    "WLT_WMP": ProductFit(55, 12, 0.0, 0.2, 1.0, 0.2, 0.0, 0.0, 0.3, 0.1, hold_rate=0.006, monthly_adoption=0.0008, monthly_close=0.035),
    "WLT_PENSION": ProductFit(52, 5, 0.3, 0.2, 0.6, 0.2, 0.3, 0.0, 0.2, hold_rate=0.0012, monthly_adoption=0.0003, monthly_close=0.01),
}

# Held product (row) -> change in another product's log-odds (column). Positive: complement.
# Negative: substitute (customers pick one of the two).
RELATIONS: dict[tuple[str, str], float] = {
    ("CRD_MORTGAGE", "PRO_LIFE"): 1.3,
    ("CRD_MORTGAGE", "PRO_CRITICAL"): 1.1,
    ("CRD_MORTGAGE", "PRO_ACCIDENT"): 0.6,
    ("CRD_MORTGAGE", "CRD_CONSUMER"): 0.4,
    ("CRD_CARD", "CRD_CONSUMER"): 0.8,
    ("CRD_BUSINESS", "PRO_ACCIDENT"): 0.6,
    ("CRD_BUSINESS", "CRD_CARD"): 0.6,
    ("CRD_CONSUMER", "PRO_CAR"): 0.7,
    ("SAV_LCD", "WLT_WMP"): 0.9,
    ("SAV_EDU", "PRO_CRITICAL"): 0.5,
    ("WLT_BOND_FUND", "WLT_MIXED_FUND"): 0.6,
    ("PRO_LIFE", "PRO_ACCIDENT"): 0.4,
    ("WLT_STOCK_FUND", "WLT_INDEX_FUND"): -8.0,
    ("WLT_INDEX_FUND", "WLT_STOCK_FUND"): -8.0,
    ("WLT_BOND_FUND", "WLT_WMP"): -5.0,
    ("WLT_WMP", "WLT_BOND_FUND"): -5.0,
    ("CRD_CONSUMER", "CRD_BUSINESS"): -5.0,
    ("CRD_BUSINESS", "CRD_CONSUMER"): -5.0,
    ("PRO_ANNUITY", "WLT_PENSION"): -5.0,
    ("WLT_PENSION", "PRO_ANNUITY"): -5.0,
}

# Trigger events raise adoption in the two months after them (the bank sees about twice the
# usual conversion in those windows). Values are log-odds shifts by category or product.
TRIGGER_WINDOW_MONTHS = 2
TRIGGERS: dict[str, dict[str, float]] = {
    "new_payroll": {"credit": 0.9, "protection": 0.4, "wealth": 0.3},
    "deposit_maturity": {"wealth": 0.9, "WLT_WMP": 1.2, "SAV_LCD": 0.9, "SAV_TIME": 0.8, "PRO_ANNUITY": 0.6},
    "card_replacement": {"protection": 1.0, "credit": 1.0, "wealth": 1.0},
}
PROFILE_STRENGTH = 1.9  # scales every profile-fit term: how sharply needs follow the observable profile
CHANNEL_EFFECT = {"mobile_banking": 0.35, "wechat": 0.15, "online_banking": 0.1}
ACTIVITY_EFFECT = 0.3  # per unit of log1p(everyday transactions in the last 90 days)

# Latent factors (appear in no table). Loadings on the log-odds scale.
LATENT_CATEGORY_SD = 1.25  # taste for a category: shared by every product in it
LATENT_WEALTH_SD = 0.6  # wealth held elsewhere: raises wealth/protection, lowers credit needs
LATENT_WEALTH_SIGN = {"savings": 0.3, "protection": 0.8, "credit": -0.5, "wealth": 1.0}
LATENT_PRODUCT_SD = 0.6  # product idiosyncrasy

HELD_ELSEWHERE_RATE = 0.015  # base share of customers holding a non-savings product at another bank
# Interest is a softer answer than adoption, and says more about taste than about need:
# interest log-odds = observable log-odds + INTEREST_LATENT_WEIGHT * latent + INTEREST_SHIFT.
INTEREST_SHIFT = 5.0
INTEREST_LATENT_WEIGHT = 1.5


@dataclass(frozen=True)
class Catalogue:
    """The product seed in array form, in seed order."""

    frame: pd.DataFrame

    @classmethod
    def load(cls) -> "Catalogue":
        frame = pd.read_csv(SEEDS_DIR / "products.csv")
        missing = set(frame.product_id) ^ set(FITS)
        if missing:
            raise ValueError(f"products.csv and world.FITS disagree on {sorted(missing)}")
        return cls(frame=frame)

    @property
    def ids(self) -> list[str]:
        return list(self.frame.product_id)

    @property
    def categories(self) -> np.ndarray:
        return self.frame.category.to_numpy()

    @property
    def risk(self) -> np.ndarray:
        return self.frame.risk_level.str[1].astype(int).to_numpy()

    @property
    def targets(self) -> np.ndarray:
        """Products the bank wants to cross-sell: everything but savings."""
        return (self.frame.category != "savings").to_numpy()

    def column(self, name: str) -> np.ndarray:
        return self.frame[name].to_numpy()

    def fit_array(self, attribute: str) -> np.ndarray:
        return np.array([getattr(FITS[p], attribute) for p in self.ids], dtype=np.float64)

    def relation_matrix(self) -> np.ndarray:
        index = {p: i for i, p in enumerate(self.ids)}
        matrix = np.zeros((len(index), len(index)))
        for (src, dst), value in RELATIONS.items():
            matrix[index[src], index[dst]] = value
        return matrix

    def trigger_matrix(self) -> np.ndarray:
        """(trigger, product) log-odds shift, trigger order as in TRIGGERS."""
        out = np.zeros((len(TRIGGERS), len(self.ids)))
        for t, effects in enumerate(TRIGGERS.values()):
            for j, (pid, cat) in enumerate(zip(self.ids, self.categories)):
                out[t, j] = effects.get(pid, effects.get(cat, 0.0))
        return out

    def latent_wealth_loading(self) -> np.ndarray:
        return np.array([LATENT_WEALTH_SIGN[c] for c in self.categories]) * LATENT_WEALTH_SD

    def category_index(self) -> np.ndarray:
        return np.array([CATEGORIES.index(c) for c in self.categories])

    def latent_sd(self) -> np.ndarray:
        """Standard deviation of each product's total latent log-odds term."""
        return np.sqrt(LATENT_CATEGORY_SD**2 + self.latent_wealth_loading() ** 2 + LATENT_PRODUCT_SD**2)
