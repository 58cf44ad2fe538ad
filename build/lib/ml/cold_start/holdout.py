"""Train the propensity model with one product held out entirely (rows, relation column, calibration)."""
from __future__ import annotations

import time

from ml.core.catalogue import load_catalogue
from ml.core.config import Paths
from ml.core.logs import step_log
from ml.features.snapshot import feature_store
from ml.training.dataset import target_products
from ml.training.model import PropensityModel
from ml.training.train import (
    FIT_CUTOFFS,
    MIN_NON_ADOPTERS,
    NON_ADOPTERS_PER_ADOPTER,
    fit_propensity,
    training_data,
)
from ml.training.training_set import relation_matrices

log = step_log("cold_start")


# ------------------------------------------------------------------------------------------------
# Evaluation: hold one product out of training entirely
# ------------------------------------------------------------------------------------------------
def train_without(paths: Paths, product_id: str, seed: int = 7, non_adopters_per_adopter: float | None = None):
    """The stage-one model trained and calibrated without any row of ``product_id`` (cached)."""

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
