"""Train the stage-one propensity model (``make train``).

    python -m ml.train [--non-adopters-per-adopter R] [--seed S] [--no-strategies]

Time-based split (README, "Models"):
  * fit cut-offs      2024-07-01 .. 2024-12-01  (label windows end by 2025-03-01)
  * calibration       2025-01-01                (early stopping, isotonic calibration, model choice)
  * held out          2025-04-01                (only ``ml.evaluate`` touches it)

Sampling: every (customer, cut-off) that adopted a cross-sell product is kept with all its
candidate products; of the others a share is kept and weighted back (``ml.training_set``).
The LightGBM stops on MAP@5 of the calibration cut-off. The imbalance-strategy table is fitted on
a smaller sample of the same fit rows and scored on the same calibration cut-off; the production
model is the candidate with the best calibration MAP@5 (``choose``). Writes a new version under
data/models/ and marks it current.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ml.config import CUTOFFS, HOLDOUT_CUTOFF, Paths
from ml.dataset import FEATURE_SERVICE, target_products
from ml.features import get_store
from ml.model import DEFAULT_PARAMS, PropensityModel, fit_booster, fit_calibrator
from ml.registry import Registry, git_commit
from ml.training_set import TrainingSet, build_training_set, log, relation_matrices

FIT_CUTOFFS = list(CUTOFFS[:6])
CALIBRATION_CUTOFF = CUTOFFS[6]
assert CALIBRATION_CUTOFF.isoformat() == "2025-01-01" and HOLDOUT_CUTOFF.isoformat() == "2025-04-01"

NON_ADOPTERS_PER_ADOPTER = 1.0  # (customer, cut-off) rows without an adoption kept per adopting one
MIN_NON_ADOPTERS = 50_000        # ... and at least this many (or all): a small bank keeps more
MAX_ROUNDS = 300
PATIENCE = 40
STRATEGY_ROWS = 300_000  # the strategy table's sample of the fit rows (SMOTE, ADASYN, forests are slow)


def train(paths: Paths, seed: int = 7, non_adopters_per_adopter: float = NON_ADOPTERS_PER_ADOPTER,
          strategies: bool = True, strategy_rows: int = STRATEGY_ROWS, max_rounds: int = MAX_ROUNDS,
          min_non_adopters: int = MIN_NON_ADOPTERS) -> Path:
    started, cpu = time.perf_counter(), time.process_time()
    products = target_products()
    relations = relation_matrices(paths, FIT_CUTOFFS[0])
    log(f"product relations from holdings before {FIT_CUTOFFS[0]} ({time.perf_counter() - started:.0f} s)")
    data = build_training_set(paths, get_store(paths), products, FIT_CUTOFFS + [CALIBRATION_CUTOFF], relations,
                              non_adopters_per_adopter, seed, min_non_adopters)
    fit_rows = data.before(CALIBRATION_CUTOFF)
    fit, calibration = data.subset(np.flatnonzero(fit_rows)), data.subset(np.flatnonzero(~fit_rows))
    log(f"fit rows {len(fit):,} ({int(fit.y.sum()):,} positives), calibration rows {len(calibration):,} "
        f"({int(calibration.y.sum()):,} positives)")

    booster, calibrator, report = fit_propensity(fit, calibration, seed, max_rounds)
    table = {"production": {**report, "rows": len(fit), "trees": booster.best_iteration,
                            "seconds": round(time.perf_counter() - started, 1)}}
    log(f"LightGBM: {booster.best_iteration} trees, calibration MAP@5 {report['map_at_5']:.5f} "
        f"({time.perf_counter() - started:.0f} s)")

    registry = Registry(paths.models)
    folder = registry.new_version()
    if strategies:
        from ml.strategy_table import fit_strategies

        table.update(fit_strategies(folder / "strategies", fit, calibration, seed, strategy_rows,
                                    trees=booster.best_iteration))
    chosen, reason = choose(table)
    log(f"chosen: {chosen} ({reason})")
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
        "chosen": {"candidate": chosen, "reason": reason},
        "relations": {kind: int(np.count_nonzero(m)) for kind, m in relations.items()},
        "git_commit": git_commit(),
        "generator_seed": _generator_seed(paths),
    }
    metadata["trained_seconds"] = round(time.perf_counter() - started, 1)
    metadata["trained_cpu_seconds"] = round(time.process_time() - cpu, 1)
    PropensityModel(booster, calibrator, products, relations, metadata).save(folder)
    registry.promote(folder.name)
    log(f"model {folder.name} is current ({metadata['trained_seconds']:.0f} s, {metadata['trained_cpu_seconds']:.0f} s CPU)")
    return folder


def fit_propensity(fit: TrainingSet, calibration: TrainingSet, seed: int, max_rounds: int = MAX_ROUNDS):
    """LightGBM on the fit rows, stopped on the calibration cut-off's MAP@5 and calibrated there
    (isotonic, weighted). Returns the booster, the calibrator and the calibration metrics."""
    ranking = calibration.ranking()
    booster = fit_booster(fit.x, fit.y, fit.w, seed, rounds=max_rounds, feval=ranking.lightgbm_metric(),
                          valid=(calibration.x, calibration.y, calibration.w), patience=PATIENCE)
    raw = booster.predict(calibration.x)
    return booster, fit_calibrator(raw, calibration.y, calibration.w), ranking.report(raw)


def choose(table: dict) -> tuple[str, str]:
    """The production candidate: best MAP@5 on the calibration cut-off among the candidates that
    can serve (a LightGBM booster, for per-prediction contributions)."""
    deployable = {name: row for name, row in table.items() if row.get("deployable", name == "production")}
    best = max(table, key=lambda name: table[name]["map_at_5"])
    chosen = max(deployable, key=lambda name: deployable[name]["map_at_5"])
    reason = f"best calibration MAP@5 {table[chosen]['map_at_5']:.5f}"
    if best != chosen:
        reason += (f"; {best} scored higher ({table[best]['map_at_5']:.5f}) but cannot give LightGBM "
                   "per-prediction contributions, so it is reported, not served")
    return chosen, reason


def _generator_seed(paths: Paths) -> int | None:
    manifest = paths.raw / "_manifest.json"
    return json.loads(manifest.read_text()).get("seed") if manifest.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--non-adopters-per-adopter", type=float, default=NON_ADOPTERS_PER_ADOPTER,
                        help="customers without an adoption kept per adopting customer (each cut-off)")
    parser.add_argument("--no-strategies", action="store_true", help="skip the imbalance-strategy comparison")
    args = parser.parse_args(argv)
    train(Paths.from_env(), args.seed, args.non_adopters_per_adopter, strategies=not args.no_strategies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
