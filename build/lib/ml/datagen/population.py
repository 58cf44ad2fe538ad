"""Draw the bank's customers: observable profile and the latent factors no table shows."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from ml.core.config import EXTRACT_DATE, HISTORY_START, SEEDS_DIR
from ml.datagen import world

# Region mix: Wuxi districts dominate (85%), the rest are customers who moved or work elsewhere.
REGION_WEIGHTS = {
    "320213": 0.17, "320214": 0.14, "320211": 0.13, "320206": 0.11, "320205": 0.10,
    "320281": 0.12, "320282": 0.08, "320505": 0.025, "320506": 0.02, "320411": 0.025,
    "320102": 0.02, "310115": 0.02, "330106": 0.01, "110105": 0.01, "341122": 0.02,
}
URBANISATION_SCORE = {"urban": 1.0, "suburban": 0.5, "rural": 0.0}
YEARS_TO_EXTRACT = (EXTRACT_DATE - HISTORY_START).days / 365.25


@dataclass
class Population:
    """Customers of one chunk. Arrays are aligned; ``latent_*`` never leave the generator."""

    customer_id: np.ndarray  # object array of 32-char hex ids
    age0: np.ndarray  # fractional age on 2024-01-01
    male: np.ndarray
    region_code: np.ndarray
    urban: np.ndarray
    education: np.ndarray  # ordinal 0..4
    marital: np.ndarray  # index into world.MARITAL
    assets: np.ndarray  # CNY at this bank
    risk_tolerance: np.ndarray  # 1..5
    card: np.ndarray  # index into world.CARD_TYPES
    customer_since: np.ndarray  # datetime64[D]
    payroll_start: np.ndarray  # month index payroll begins (-1: before 2024; 99: never)
    salary: np.ndarray  # monthly salary (CNY) for payroll customers
    activity_rate: np.ndarray  # everyday transactions per month at month 0
    activity_slope: np.ndarray  # monthly log-change of the activity rate
    latent_category: np.ndarray  # (n, 4) taste per category
    latent_wealth: np.ndarray  # (n,) wealth held elsewhere
    latent_product: np.ndarray  # (n, P) product idiosyncrasy

    def __len__(self) -> int:
        return len(self.customer_id)

    @property
    def married(self) -> np.ndarray:
        return (self.marital == 1).astype(float)

    @property
    def log_assets(self) -> np.ndarray:
        return np.log10(np.maximum(self.assets, 1.0)) - 4.3

    def age_at_month(self, month: int) -> np.ndarray:
        return self.age0 + month / 12.0

    def asset_level(self) -> np.ndarray:
        return np.searchsorted(np.array(world.ASSET_LEVEL_BOUNDS), self.assets, side="right") + 1

    def latent_logit(self, catalogue: world.Catalogue) -> np.ndarray:
        """(n, P) latent log-odds term: invisible to any model, shared by adoption and interest."""
        cat = self.latent_category[:, catalogue.category_index()] * world.LATENT_CATEGORY_SD
        wealth = self.latent_wealth[:, None] * catalogue.latent_wealth_loading()[None, :]
        return cat + wealth + self.latent_product * world.LATENT_PRODUCT_SD

    def customers_table(self) -> pd.DataFrame:
        """The raw ``customers`` table exactly as docs/data_contract.md describes it."""
        levels = self.asset_level()
        return pd.DataFrame(
            {
                "customer_id": self.customer_id,
                "age": np.floor(self.age0 + YEARS_TO_EXTRACT).astype("int32"),
                "gender": np.where(self.male, "M", "F"),
                "region_code": self.region_code,
                "education": np.array(world.EDUCATION)[self.education],
                "marital_status": np.array(world.MARITAL)[self.marital],
                "asset_level": np.char.add("L", levels.astype(str)),
                "assets_cny": np.round(self.assets, 2),
                "risk_preference": np.array(world.RISK_PREFERENCES)[self.risk_tolerance - 1],
                "card_type": np.array(world.CARD_TYPES)[self.card],
                "customer_since": self.customer_since.astype("datetime64[D]"),
            }
        )


def customer_ids(seed: int, start: int, count: int) -> np.ndarray:
    """Stable 32-char uppercase MD5 ids, unique per (seed, index)."""
    return np.array(
        [hashlib.md5(f"lingxi:{seed}:{i}".encode()).hexdigest().upper() for i in range(start, start + count)],
        dtype=object,
    )


def _ordinal(rng: np.random.Generator, score: np.ndarray, cuts: tuple[float, ...]) -> np.ndarray:
    """Ordered categories from a latent score plus logistic noise."""
    noisy = score + rng.logistic(size=score.shape)
    return np.searchsorted(np.array(cuts), noisy)


def draw_population(rng: np.random.Generator, seed: int, start: int, count: int, n_products: int) -> Population:
    n = count
    regions = pd.read_csv(SEEDS_DIR / "regions.csv", dtype={"region_code": str}).set_index("region_code")
    codes = np.array(list(REGION_WEIGHTS))
    weights = np.array(list(REGION_WEIGHTS.values()))
    region = rng.choice(codes, size=n, p=weights / weights.sum())
    urban = regions.loc[region, "urbanisation"].map(URBANISATION_SCORE).to_numpy()

    component = rng.choice(3, size=n, p=[0.15, 0.55, 0.30])
    age0 = np.choose(component, [rng.normal(25, 5, n), rng.normal(42, 11, n), rng.normal(63, 10, n)])
    age0 = np.clip(age0, 16.0, 94.0)
    male = rng.random(n) < 0.49

    education = _ordinal(rng, -0.045 * (age0 - 45) + 0.8 * urban, (-1.6, 0.0, 1.1, 3.2))
    marital = np.zeros(n, dtype=int)
    p_married = np.clip((age0 - 22) / 10, 0, 0.82)
    u = rng.random(n)
    marital[u < p_married] = 1
    divorced = (u >= p_married) & (u < p_married + 0.07) & (age0 > 30)
    marital[divorced] = 2
    widowed = (marital == 1) & (rng.random(n) < np.clip((age0 - 62) / 50, 0, 0.45))
    marital[widowed] = 3

    log_assets = (4.3 + 0.012 * (np.clip(age0, 20, 70) - 45) + 0.15 * (education - 1.5)
                  + 0.25 * (urban - 0.5) + rng.normal(0, 0.72, n))
    assets = np.round(10 ** log_assets, 2)

    risk_score = (-0.05 * (age0 - 42) + 0.45 * (education - 1.5) + 0.5 * (log_assets - 4.3)
                  + 0.3 * male)
    risk_tolerance = _ordinal(rng, risk_score, (-0.6, 0.9, 2.3, 3.6)) + 1

    card_score = 0.9 * (log_assets - 4.3) + 0.3 * urban - 0.02 * (age0 - 45)
    card = _ordinal(rng, card_score, (0.2, 2.6, 4.0))

    since_years = np.minimum(rng.exponential(8.0, n), age0 - 16)
    customer_since = (np.datetime64(date(2024, 1, 1)) - (since_years * 365.25).astype("timedelta64[D]"))

    working = (age0 > 21) & (age0 < 58)
    payroll_start = np.full(n, 99)
    payroll_start[working & (rng.random(n) < 0.5)] = -1
    joiners = working & (payroll_start == 99) & (rng.random(n) < 0.12)
    payroll_start[joiners] = rng.integers(0, 18, joiners.sum())
    salary = np.round(np.exp(rng.normal(8.7, 0.45, n) + 0.1 * education), 0)

    activity_rate = np.exp(rng.normal(-1.35, 0.9, n) + 0.3 * urban - 0.01 * (age0 - 40))
    activity_slope = rng.normal(0.0, 0.04, n)

    return Population(
        customer_id=customer_ids(seed, start, n),
        age0=age0,
        male=male,
        region_code=region,
        urban=urban,
        education=education,
        marital=marital,
        assets=assets,
        risk_tolerance=risk_tolerance,
        card=card,
        customer_since=customer_since,
        payroll_start=payroll_start,
        salary=salary,
        activity_rate=activity_rate,
        activity_slope=activity_slope,
        latent_category=rng.normal(size=(n, len(world.CATEGORIES))),
        latent_wealth=rng.normal(size=n),
        latent_product=rng.normal(size=(n, n_products)),
    )
