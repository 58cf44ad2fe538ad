"""The feedback simulator: how a customer answers when a manager shows a product.

Answers come from the generator's truth (evaluation only): ``already_owns`` when the customer holds
the product at another bank (or here), otherwise ``interested`` with the customer's *interest*
probability. Deterministic for a seed: the same (customer, product) always gets the same answer,
so replays are reproducible. Two interest models (``INTEREST_MODELS``), both built from the same
latent tastes that drive adoption:

* ``category`` (default) — the brief's picture of a conversation ("everything wealth-related
  rejected but credit welcomed: down-weight wealth, look deeper in credit"). A customer is *open*
  or *closed* to each cross-sell category; openness is drawn once per (customer, category) with
  probability sigmoid(INTEREST_LATENT_WEIGHT x the customer's latent category taste, wealth held
  elsewhere included). Closed: not interested in any product of the category. Open: interested in
  a product with sigmoid(observable log-odds + INTEREST_LATENT_WEIGHT x product idiosyncrasy +
  ``OPEN_FIT_SHIFT``), the same need the adoption model has. The latent category taste thus acts
  on the whole category at once instead of adding a little to each product's odds.
* ``additive`` — the oracle's ``interest__`` column: observable log-odds + INTEREST_LATENT_WEIGHT x
  (category + wealth + product latent) + INTEREST_SHIFT, one independent answer per product.
  Here a category taste only shifts each product's log-odds, and most of an answer's variation is
  the observable need stage one already ranks by: answers say little the model does not know.

The ``category`` model needs the latent factors, which appear in no table (the oracle stores only
``interest``): they are re-drawn from the generator's seed exactly as the generator drew them
(``draw_population`` is the first draw of every chunk), checked against the oracle's customer ids;
the observable log-odds is recovered from the oracle's ``interest`` column. No raw or oracle file
changes.
"""
from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow.parquet as pq

from ml.core.config import DEFAULT_INTEREST_MODEL, HOLDOUT_CUTOFF, INTEREST_MODELS
from ml.datagen import world
from ml.datagen.generate import GENERATOR_VERSION
from ml.datagen.population import draw_population

RESPONSES = ("interested", "not_interested", "already_owns")
# Only the simulator uses this. Chosen once, on the development bank (seed 42, 20k customers), so
# that the category model's mean interest over every suitable (customer, cross-sell product) pair
# equals the additive model's (about 6%): the models differ in how answers hang together, not in
# how often customers say yes. `python -m ml.datagen.feedback --calibrate` recomputes it.
OPEN_FIT_SHIFT = 7.06


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _hash_uniform(seed: int, key: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


class FeedbackSimulator:
    """Answers for (customer, product) pairs at one cut-off, read from ``oracle_dir``."""

    def __init__(self, oracle_dir: Path, cutoff: date = HOLDOUT_CUTOFF, seed: int = 0,
                 interest_model: str = DEFAULT_INTEREST_MODEL):
        if interest_model not in INTEREST_MODELS:
            raise ValueError(f"interest_model must be one of {INTEREST_MODELS}, got {interest_model!r}")
        table = pq.read_table(Path(oracle_dir) / f"cutoff={cutoff.isoformat()}")
        self.seed = seed
        self.interest_model = interest_model
        self.products = [c.split("__", 1)[1] for c in table.column_names if c.startswith("interest__")]
        self._product_index = {p: j for j, p in enumerate(self.products)}
        ids = table.column("customer_id").to_pylist()
        self._row = {cid: i for i, cid in enumerate(ids)}
        additive = np.column_stack([table.column(f"interest__{p}").to_numpy(zero_copy_only=False)
                                    for p in self.products]).astype(np.float64)
        self.held_elsewhere = np.column_stack([table.column(f"held_elsewhere__{p}").to_numpy(zero_copy_only=False)
                                               for p in self.products])
        if interest_model == "additive":
            self.interest = additive
        else:
            latents = LatentFactors.redraw(Path(oracle_dir), np.asarray(ids, dtype=object))
            self.open_probability = latents.open_probability(self.products)
            self.open = self._draw_open(ids)
            self.interest = category_interest(additive, latents, self.products, self.open)

    def _draw_open(self, ids: Sequence[str]) -> np.ndarray:
        """(n, categories) realised openness: one deterministic draw per (customer, category)."""
        u = np.array([[_hash_uniform(self.seed, f"open:{cid}:{cat}") for cat in world.CATEGORIES] for cid in ids])
        return u < self.open_probability

    def customers(self) -> list[str]:
        return list(self._row)

    def _uniform(self, customer_id: str, product_id: str) -> float:
        return _hash_uniform(self.seed, f"{customer_id}:{product_id}")

    def interest_probability(self, customer_id: str, product_id: str) -> float:
        """True chance of an 'interested' answer (nan when the customer already holds it here)."""
        return float(self.interest[self._row[customer_id], self._product_index[product_id]])

    def respond(self, customer_id: str, product_ids: Sequence[str]) -> list[str]:
        """One answer per shown product."""
        row = self._row.get(customer_id)
        if row is None:
            raise KeyError(f"customer {customer_id} is not in the oracle")
        answers = []
        for pid in product_ids:
            j = self._product_index.get(pid)
            if j is None:  # savings products are not in the cross-sell oracle: never a lead
                answers.append("not_interested")
            elif self.held_elsewhere[row, j] or np.isnan(self.interest[row, j]):
                answers.append("already_owns")
            else:
                answers.append("interested" if self._uniform(customer_id, pid) < self.interest[row, j]
                               else "not_interested")
        return answers


class LatentFactors:
    """The generator's latent factors of some customers, re-drawn from its seed."""

    def __init__(self, category: np.ndarray, wealth: np.ndarray, product: np.ndarray):
        self.category, self.wealth, self.product = category, wealth, product  # (n, 4), (n,), (n, 19)
        self.catalogue = world.Catalogue.load()

    @classmethod
    def redraw(cls, oracle_dir: Path, customer_ids: np.ndarray) -> "LatentFactors":
        meta = json.loads((Path(oracle_dir) / "world.json").read_text())
        if str(meta.get("generator_version")) != GENERATOR_VERSION:
            raise ValueError(f"{oracle_dir} was written by generator version {meta.get('generator_version')}; "
                             f"the latent factors can only be re-drawn for version {GENERATOR_VERSION}")
        seed, customers, chunk = int(meta["seed"]), int(meta["customers"]), int(meta["chunk_size"])
        n_products = len(world.Catalogue.load().ids)
        index = {cid: i for i, cid in enumerate(customer_ids)}
        category = np.full((len(customer_ids), len(world.CATEGORIES)), np.nan)
        wealth = np.full(len(customer_ids), np.nan)
        product = np.full((len(customer_ids), n_products), np.nan)
        for chunk_index, start in enumerate(range(0, customers, chunk)):
            rng = np.random.default_rng([seed, chunk_index])  # as ml.datagen.simulate.simulate_chunk
            pop = draw_population(rng, seed, start, min(chunk, customers - start), n_products)
            rows = np.array([index.get(cid, -1) for cid in pop.customer_id])
            mine = rows >= 0
            category[rows[mine]] = pop.latent_category[mine]
            wealth[rows[mine]] = pop.latent_wealth[mine]
            product[rows[mine]] = pop.latent_product[mine]
        if np.isnan(wealth).any():
            raise ValueError(f"{int(np.isnan(wealth).sum())} oracle customers are not in the re-drawn population")
        return cls(category, wealth, product)

    def columns(self, products: Sequence[str]) -> np.ndarray:
        return np.array([self.catalogue.ids.index(p) for p in products])

    def total(self, products: Sequence[str]) -> np.ndarray:
        """(n, len(products)) the latent log-odds term, as ``Population.latent_logit``."""
        cols = self.columns(products)
        cat = self.category[:, self.catalogue.category_index()[cols]] * world.LATENT_CATEGORY_SD
        wealth = self.wealth[:, None] * self.catalogue.latent_wealth_loading()[cols][None, :]
        return cat + wealth + self.product[:, cols] * world.LATENT_PRODUCT_SD

    def open_probability(self, products: Sequence[str]) -> np.ndarray:
        """(n, categories) chance of being open to each category: its latent taste (with wealth)."""
        del products
        loading = np.array([world.LATENT_WEALTH_SIGN[c] for c in world.CATEGORIES]) * world.LATENT_WEALTH_SD
        taste = self.category * world.LATENT_CATEGORY_SD + self.wealth[:, None] * loading[None, :]
        return _sigmoid(world.INTEREST_LATENT_WEIGHT * taste)


def observable_logit(additive: np.ndarray, latents: LatentFactors, products: Sequence[str]) -> np.ndarray:
    """The observable log-odds at the cut-off, recovered from the oracle's additive interest."""
    p = np.clip(additive, 1e-12, 1 - 1e-7)
    return (np.log(p) - np.log1p(-p) - world.INTEREST_LATENT_WEIGHT * latents.total(products)
            - world.INTEREST_SHIFT)


def category_interest(additive: np.ndarray, latents: LatentFactors, products: Sequence[str],
                      open_: np.ndarray) -> np.ndarray:
    """(n, P) P(interested) under the category model, given the realised openness (NaN kept)."""
    cols = latents.columns(products)
    fit = (observable_logit(additive, latents, products)
           + world.INTEREST_LATENT_WEIGHT * world.LATENT_PRODUCT_SD * latents.product[:, cols] + OPEN_FIT_SHIFT)
    category = latents.catalogue.category_index()[cols]
    return np.where(open_[:, category], _sigmoid(fit), 0.0) + np.where(np.isnan(additive), np.nan, 0.0)


def calibrate_open_fit_shift(oracle_dir: Path, cutoff: date = HOLDOUT_CUTOFF) -> dict:
    """The ``OPEN_FIT_SHIFT`` that gives the category model the additive model's mean interest over
    every (customer, cross-sell product) pair not held here (expected openness; bisection)."""
    sim = FeedbackSimulator(oracle_dir, cutoff, interest_model="additive")
    latents = LatentFactors.redraw(Path(oracle_dir), np.asarray(sim.customers(), dtype=object))
    products = sim.products
    cols = latents.columns(products)
    base = (observable_logit(sim.interest, latents, products)
            + world.INTEREST_LATENT_WEIGHT * world.LATENT_PRODUCT_SD * latents.product[:, cols])
    p_open = latents.open_probability(products)[:, latents.catalogue.category_index()[cols]]
    ok = ~np.isnan(sim.interest)
    target = float(sim.interest[ok].mean())
    lo, hi = -10.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (p_open * _sigmoid(base + mid))[ok].mean() < target else (lo, mid)
    return {"open_fit_shift": round((lo + hi) / 2, 3), "mean_interest": round(target, 5),
            "mean_open_probability": round(float(p_open[ok].mean()), 4), "pairs": int(ok.sum())}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ml.datagen.feedback", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--oracle", type=Path, required=True, help="a bank's oracle folder")
    parser.add_argument("--cutoff", default=HOLDOUT_CUTOFF.isoformat(),
                        help="the cut-off (YYYY-MM-DD) whose customers the calibration simulates")
    parser.add_argument("--calibrate", action="store_true", help="recompute OPEN_FIT_SHIFT (see above)")
    args = parser.parse_args(argv)
    if args.calibrate:
        print(json.dumps(calibrate_open_fit_shift(args.oracle, date.fromisoformat(args.cutoff)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
