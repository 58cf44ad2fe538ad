"""The feedback simulator: how a customer answers when a manager shows a product.

Answers come from the oracle (evaluation only): ``already_owns`` when the customer holds the
product at another bank (or here), otherwise ``interested`` with the customer's true interest
probability, which shares the latent tastes behind adoption. Deterministic for a seed: the
same (customer, product) always gets the same answer, so replays are reproducible.
"""
from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow.parquet as pq

from ml.config import HOLDOUT_CUTOFF

RESPONSES = ("interested", "not_interested", "already_owns")


class FeedbackSimulator:
    """Answers for (customer, product) pairs at one cut-off, read from ``oracle_dir``."""

    def __init__(self, oracle_dir: Path, cutoff: date = HOLDOUT_CUTOFF, seed: int = 0):
        table = pq.read_table(Path(oracle_dir) / f"cutoff={cutoff.isoformat()}")
        self.seed = seed
        self.products = [c.split("__", 1)[1] for c in table.column_names if c.startswith("interest__")]
        self._product_index = {p: j for j, p in enumerate(self.products)}
        ids = table.column("customer_id").to_pylist()
        self._row = {cid: i for i, cid in enumerate(ids)}
        self.interest = np.column_stack([table.column(f"interest__{p}").to_numpy(zero_copy_only=False)
                                         for p in self.products])
        self.held_elsewhere = np.column_stack([table.column(f"held_elsewhere__{p}").to_numpy(zero_copy_only=False)
                                               for p in self.products])

    def customers(self) -> list[str]:
        return list(self._row)

    def _uniform(self, customer_id: str, product_id: str) -> float:
        digest = hashlib.blake2b(f"{self.seed}:{customer_id}:{product_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") / 2**64

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
