"""The training sample: sampled customers -> Feast features -> model rows with weights.

Every (customer, cut-off) that adopted a cross-sell product in its label window is kept with all
its candidate products; of the others a share is kept, weighted 1 / share (see
``ml.training.dataset.sample_customers``). Features come from Feast's ``stage_one_v1`` service at each
cut-off (point in time); relation-graph features from product relations computed on everyone's
holdings before the first training cut-off.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from ml.core.catalogue import load_catalogue
from ml.core.config import Paths
from ml.core.logs import step_log, working
from ml.features.pairs import pairs_to_matrix
from ml.relations.compute import compute_relations
from ml.relations.graph import RelationGraph
from ml.relations.holdings import holdings_from_events
from ml.training.dataset import (
    build_pairs,
    candidate_pairs,
    choose_customer_rate,
    load_labels,
    sample_customers,
)
from ml.training.validation import CutoffRanking

log = step_log("train")


def relation_matrices(paths: Paths, before: date) -> dict[str, np.ndarray]:
    """Complement / substitute strengths between catalogue products (catalogue order), from every
    customer's holdings strictly before ``before`` (the raw event log; nothing after it leaks in)."""

    cat = load_catalogue()
    holdings = holdings_from_events(paths.raw / "events", before=before)
    graph = RelationGraph.from_pairs(compute_relations(holdings, cat), cat.ids)
    return {kind: graph.matrix(kind) for kind in ("complement", "substitute")}


@dataclass
class TrainingSet:
    """Model rows (x, y, w) with their customer, cut-off and product (index into ``products``)."""

    x: np.ndarray
    y: np.ndarray
    w: np.ndarray
    customer: np.ndarray
    cutoff: np.ndarray
    product: np.ndarray
    products: list[str]
    customers_per_cutoff: dict = field(default_factory=dict)  # every customer, sampled or not
    sampling: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, rows: np.ndarray) -> "TrainingSet":
        return TrainingSet(self.x[rows], self.y[rows], self.w[rows], self.customer[rows], self.cutoff[rows],
                           self.product[rows], self.products, self.customers_per_cutoff, self.sampling)

    def before(self, cutoff: date) -> np.ndarray:
        return self.cutoff < np.datetime64(pd.Timestamp(cutoff))

    def ranking(self) -> CutoffRanking:
        """Ranking metrics over this set's rows (one cut-off)."""
        stamps = np.unique(self.cutoff)
        if len(stamps) != 1:
            raise ValueError(f"ranking metrics need one cut-off, got {len(stamps)}")
        n_customers = self.customers_per_cutoff[pd.Timestamp(stamps[0])]
        return CutoffRanking(self.customer, self.product, self.y, self.w, len(self.products), n_customers)


def build_training_set(paths: Paths, store, products: list[str], cutoffs: list[date],
                       relations: dict[str, np.ndarray] | None, non_adopters_per_adopter: float,
                       seed: int, min_non_adopters: int = 0) -> TrainingSet:
    started = time.perf_counter()
    labels = load_labels(paths, cutoffs)
    per_cutoff = labels.snapshot_ts.value_counts()
    rate = choose_customer_rate(labels, products, non_adopters_per_adopter, min_non_adopters)
    kept = sample_customers(labels, products, rate, seed)
    del labels
    pairs = candidate_pairs(kept, products)
    log(f"{int(per_cutoff.sum()):,} customer x cut-off rows; kept every adopter and {rate:.4f} of the others "
        f"-> {len(kept):,} rows, {len(pairs):,} candidate pairs, {int(pairs.label.sum()):,} positives "
        f"({time.perf_counter() - started:.0f} s)")
    with working("point-in-time features from Feast"):
        data = build_pairs(store, pairs, products)
    del pairs
    log(f"{len(data):,} suitable pairs with point-in-time features from Feast ({time.perf_counter() - started:.0f} s)")
    x = pairs_to_matrix(data, relations)
    index = {p: i for i, p in enumerate(products)}
    return TrainingSet(
        x=x, y=data.label.to_numpy(np.int8), w=data.weight.to_numpy(np.float64),
        customer=data.customer_id.to_numpy(), cutoff=data.snapshot_ts.to_numpy("datetime64[ns]"),
        product=data.product_id.map(index).to_numpy(np.int16), products=products,
        customers_per_cutoff={pd.Timestamp(k): int(v) for k, v in per_cutoff.items()},
        sampling={"unit": "customer x cut-off", "adopters_kept": "all, weight 1",
                  "non_adopter_rate": rate, "non_adopter_weight": 1 / rate,
                  "non_adopters_per_adopter": non_adopters_per_adopter, "min_non_adopters": min_non_adopters,
                  "customer_cutoff_rows": int(per_cutoff.sum()), "kept_rows": int(len(kept)),
                  "suitable_pairs": int(len(data)), "positives": int(data.label.sum())})
