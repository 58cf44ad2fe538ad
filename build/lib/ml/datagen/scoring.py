"""Observable log-odds and suitability: the parts of the world a learner can see."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.datagen import world
from ml.datagen.population import Population


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class MonthState:
    """What the bank can see about a customer at the start of a month."""

    holdings: np.ndarray  # (n, P) bool
    bound: np.ndarray  # (n, 3) bool: mobile_banking, wechat, online_banking
    recent_triggers: np.ndarray  # (n, T) bool: trigger in the previous TRIGGER_WINDOW_MONTHS
    activity_90d: np.ndarray  # (n,) everyday transactions in the previous three months
    payroll: np.ndarray  # (n,) bool: salary credited here


class Scorer:
    """Per-product observable log-odds for a chunk of customers."""

    def __init__(self, catalogue: world.Catalogue):
        self.catalogue = catalogue
        c = catalogue
        self.peak, self.width = c.fit_array("age_peak"), c.fit_array("age_width")
        self.coef = {k: c.fit_array(k) for k in
                     ("married", "education", "log_assets", "urban", "payroll", "male", "card", "risk_headroom")}
        self.risk = c.risk
        self.min_investment = c.column("min_investment_cny").astype(float)
        self.age_min = c.column("target_age_min").astype(float)
        self.age_max = c.column("target_age_max").astype(float)
        self.relations = c.relation_matrix()
        self.triggers = c.trigger_matrix()
        self.channel = np.array(list(world.CHANNEL_EFFECT.values()))

    def profile(self, pop: Population, month: int, payroll: np.ndarray) -> np.ndarray:
        """Fit of the customer's profile to each product (n, P)."""
        age = pop.age_at_month(month)[:, None]
        fit = np.maximum(-0.5 * ((age - self.peak) / self.width) ** 2, -4.0)
        k = self.coef
        fit = fit + np.outer(pop.married, k["married"])
        fit += np.outer(pop.education - 1.5, k["education"])
        fit += np.outer(pop.log_assets, k["log_assets"])
        fit += np.outer(pop.urban - 0.5, k["urban"])
        fit += np.outer(payroll.astype(float), k["payroll"])
        fit += np.outer(pop.male.astype(float), k["male"])
        fit += np.outer(pop.card - 1.0, k["card"])
        headroom = np.clip(pop.risk_tolerance[:, None] - self.risk[None, :], 0, 2)
        return world.PROFILE_STRENGTH * (fit + headroom * k["risk_headroom"])

    def context(self, state: MonthState) -> np.ndarray:
        """Channels, activity, triggers and held products (n, P)."""
        per_customer = world.ACTIVITY_EFFECT * (np.log1p(state.activity_90d) - 1.0)
        for b, effect in enumerate(self.channel):
            per_customer = per_customer + effect * state.bound[:, b]
        out = np.repeat(per_customer[:, None], self.relations.shape[1], axis=1)
        # Both matrices are sparse: add column by column instead of dense matrix products.
        for t, p in zip(*np.nonzero(self.triggers)):
            out[:, p] += self.triggers[t, p] * state.recent_triggers[:, t]
        for src, dst in zip(*np.nonzero(self.relations)):
            out[:, dst] += self.relations[src, dst] * state.holdings[:, src]
        return out

    def observable(self, pop: Population, month: int, state: MonthState) -> np.ndarray:
        return self.profile(pop, month, state.payroll) + self.context(state)

    def suitable(self, pop: Population, month: int) -> np.ndarray:
        """The bank's suitability rules, which also hold in the data (n, P) bool."""
        age = pop.age_at_month(month)[:, None]
        ok = pop.risk_tolerance[:, None] >= self.risk[None, :]
        ok &= ~((self.risk[None, :] >= 4) & (age > world.HIGH_RISK_MAX_AGE))
        ok &= pop.assets[:, None] >= self.min_investment[None, :]
        ok &= (age >= self.age_min[None, :]) & (age <= self.age_max[None, :] + 0.999)
        return ok


def solve_base(logits: np.ndarray, eligible: np.ndarray, target: np.ndarray, iterations: int = 60) -> np.ndarray:
    """Per-column intercept b so that mean(eligible * sigmoid(b + logits)) == target (bisection)."""
    lo = np.full(logits.shape[1], -25.0)
    hi = np.full(logits.shape[1], 15.0)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        rate = (eligible * sigmoid(mid[None, :] + logits)).mean(axis=0)
        too_high = rate > target
        hi = np.where(too_high, mid, hi)
        lo = np.where(too_high, lo, mid)
    return (lo + hi) / 2
