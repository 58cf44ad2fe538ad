"""Train the stage-one propensity model (``make train``).

    python -m ml.training.train [--non-adopters-per-adopter R] [--seed S]

Time-based split (README, "Models"):
  * fit cut-offs      2024-07-01 .. 2024-12-01  (label windows end by 2025-03-01)
  * calibration       2025-01-01                (early stopping, isotonic calibration, model choice)
  * held out          2025-04-01                (only ``ml.evaluation.evaluate`` touches it)

Sampling: every (customer, cut-off) that adopted a cross-sell product is kept with all its
candidate products; of the others a share is kept and weighted back (``ml.training.training_set``).
The LightGBM stops on MAP@5 of the calibration cut-off and is calibrated there. Writes a new
version under data/models/ and marks it current. The imbalance-strategy review
(``ml.imbalance.strategy_review``, ``make strategies``) refits the alternatives for that version outside the
nightly window.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.core.config import CUTOFFS, HOLDOUT_CUTOFF, Paths
from ml.features import drift
from ml.features.layout import STAGE_ONE_FEATURES
from ml.features.snapshot import snapshot_features
from ml.features.store import get_store
from ml.training.dataset import FEATURE_SERVICE, target_products
from ml.training.model import (
    DEFAULT_PARAMS,
    PropensityModel,
    fit_booster,
    fit_calibrator,
)
from ml.training.registry import Registry, git_commit
from ml.training.training_set import (
    TrainingSet,
    build_training_set,
    log,
    relation_matrices,
)

FIT_CUTOFFS = list(CUTOFFS[:6])

CALIBRATION_CUTOFF = CUTOFFS[6]

assert CALIBRATION_CUTOFF.isoformat() == "2025-01-01" and HOLDOUT_CUTOFF.isoformat() == "2025-04-01"

NON_ADOPTERS_PER_ADOPTER = 1.0  # (customer, cut-off) rows without an adoption kept per adopting one

MIN_NON_ADOPTERS = 50_000        # ... and at least this many (or all): a small bank keeps more

MAX_ROUNDS = 300

PATIENCE = 40


@dataclass
class TrainingData:
    """The sampled rows of the fit cut-offs and of the calibration cut-off, and the relations."""

    fit: TrainingSet
    calibration: TrainingSet
    relations: dict[str, np.ndarray]
    sampling: dict


def training_data(paths: Paths, seed: int, non_adopters_per_adopter: float = NON_ADOPTERS_PER_ADOPTER,
                  min_non_adopters: int = MIN_NON_ADOPTERS, products: list[str] | None = None,
                  relations: dict[str, np.ndarray] | None = None, store=None) -> TrainingData:
    """Sample, retrieve point-in-time features from Feast, split fit / calibration by cut-off.
    Defaults: every target product, relations from holdings before the first fit cut-off, the
    feature store of ``paths`` (cold start passes its own products and relations)."""
    started = time.perf_counter()
    if relations is None:
        relations = relation_matrices(paths, FIT_CUTOFFS[0])
        log(f"product relations from holdings before {FIT_CUTOFFS[0]} ({time.perf_counter() - started:.0f} s)")
    data = build_training_set(paths, get_store(paths) if store is None else store,
                              target_products() if products is None else products,
                              FIT_CUTOFFS + [CALIBRATION_CUTOFF], relations, non_adopters_per_adopter, seed,
                              min_non_adopters)
    fit_rows = data.before(CALIBRATION_CUTOFF)
    fit, calibration = data.subset(np.flatnonzero(fit_rows)), data.subset(np.flatnonzero(~fit_rows))
    log(f"fit rows {len(fit):,} ({int(fit.y.sum()):,} positives), calibration rows {len(calibration):,} "
        f"({int(calibration.y.sum()):,} positives)")
    return TrainingData(fit, calibration, relations, data.sampling)


def train(paths: Paths, seed: int = 7, non_adopters_per_adopter: float = NON_ADOPTERS_PER_ADOPTER,
          max_rounds: int = MAX_ROUNDS, min_non_adopters: int = MIN_NON_ADOPTERS) -> Path:
    started, cpu = time.perf_counter(), time.process_time()
    data = training_data(paths, seed, non_adopters_per_adopter, min_non_adopters)
    fit, calibration, relations, products = data.fit, data.calibration, data.relations, data.fit.products

    booster, calibrator, report = fit_propensity(fit, calibration, seed, max_rounds)
    table = {"production": {**report, "rows": len(fit), "trees": booster.best_iteration, "deployable": True,
                            "seconds": round(time.perf_counter() - started, 1)}}
    log(f"LightGBM: {booster.best_iteration} trees, calibration MAP@5 {report['map_at_5']:.5f} "
        f"({time.perf_counter() - started:.0f} s)")

    registry = Registry(paths.models)
    folder = registry.new_version()
    metadata = {
        "version": folder.name,
        "feature_service": FEATURE_SERVICE,
        "model_shape": "one LightGBM over customer x product rows with product attributes",
        "data_snapshot": HOLDOUT_CUTOFF.isoformat(),
        "fit_cutoffs": [c.isoformat() for c in FIT_CUTOFFS],
        "calibration_cutoff": CALIBRATION_CUTOFF.isoformat(),
        "products": products,
        "negative_sampling": data.sampling,
        "rows": {"fit": len(fit), "calibration": len(calibration)},
        "params": {**DEFAULT_PARAMS, "seed": seed, "best_iteration": booster.best_iteration,
                   "max_rounds": max_rounds, "early_stopping": f"MAP@5 of the calibration cut-off, patience {PATIENCE}"},
        "calibration_table": table,
        "relations": {kind: int(np.count_nonzero(m)) for kind, m in relations.items()},
        "git_commit": git_commit(),
        "generator_seed": paths.generator_seed(),
    }
    metadata["trained_seconds"] = round(time.perf_counter() - started, 1)
    metadata["trained_cpu_seconds"] = round(time.process_time() - cpu, 1)
    PropensityModel(booster, calibrator, products, relations, metadata).save(folder)
    save_feature_profile(paths, folder, CALIBRATION_CUTOFF.isoformat())
    registry.promote(folder.name)
    log(f"model {folder.name} is current ({metadata['trained_seconds']:.0f} s, {metadata['trained_cpu_seconds']:.0f} s CPU)")
    return folder


def save_feature_profile(paths: Paths, folder: Path, snapshot: str) -> None:
    """The binned inputs of the snapshot the model was calibrated on: the reference the nightly
    drift check compares tonight's snapshot with (``ml.features.drift``)."""
    _, x = snapshot_features(paths, snapshot=snapshot)
    drift.save_profile(folder, drift.profile(x, STAGE_ONE_FEATURES, snapshot))


def fit_propensity(fit: TrainingSet, calibration: TrainingSet, seed: int, max_rounds: int = MAX_ROUNDS):
    """LightGBM on the fit rows, stopped on the calibration cut-off's MAP@5 and calibrated there
    (isotonic, weighted). Returns the booster, the calibrator and the calibration metrics."""
    ranking = calibration.ranking()
    booster = fit_booster(fit.x, fit.y, fit.w, seed, rounds=max_rounds, feval=ranking.lightgbm_metric(),
                          valid=(calibration.x, calibration.y, calibration.w), patience=PATIENCE,
                          progress_desc="LightGBM")
    raw = booster.predict(calibration.x)
    return booster, fit_calibrator(raw, calibration.y, calibration.w), ranking.report(raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.training.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7, help="seed of the sampling and of LightGBM")
    parser.add_argument("--non-adopters-per-adopter", type=float, default=NON_ADOPTERS_PER_ADOPTER,
                        help="customers without an adoption kept per adopting customer (each cut-off)")
    parser.add_argument("--min-non-adopters", type=int, default=MIN_NON_ADOPTERS,
                        help="keep at least this many customer x cut-off rows without an adoption (or all); "
                             "fewer train faster (the demo's quick model)")
    args = parser.parse_args(argv)
    train(Paths.from_env(), args.seed, args.non_adopters_per_adopter, min_non_adopters=args.min_non_adopters)
    return 0

if __name__ == "__main__":
    sys.exit(main())
