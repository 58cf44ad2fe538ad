"""Train the stage-one propensity models (``make train``).

    python -m ml.train [--negative-rate R] [--max-rows N] [--seed S] [--no-strategies]

Time-based split (docs in README, "Models"):
  * fit cut-offs      2024-07-01 .. 2024-12-01  (label windows end by 2025-03-01)
  * calibration       2025-01-01                (early stopping, isotonic calibration, model choice)
  * held out          2025-04-01                (only ``ml.evaluate`` touches it)
Writes a new version under data/models/ and marks it current.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from ml.config import CUTOFFS, HOLDOUT_CUTOFF, Paths
from ml.dataset import FEATURE_SERVICE, build_pairs, candidate_pairs, load_labels, sample_negatives, target_products
from ml.features import get_store
from ml.model import DEFAULT_PARAMS, PropensityModel, fit_booster, fit_calibrator
from ml.pair_features import pairs_to_matrix

# Customer profile columns the clustering-based negative sampler clusters on.
PROFILE_FEATURES = ["age", "gender_male", "urbanisation_code", "education_level", "marital_status_code",
                    "log_assets", "risk_tolerance", "card_tier", "tenure_years"]
from ml.registry import Registry, git_commit

FIT_CUTOFFS = list(CUTOFFS[:6])
CALIBRATION_CUTOFF = CUTOFFS[6]
assert CALIBRATION_CUTOFF.isoformat() == "2025-01-01" and HOLDOUT_CUTOFF.isoformat() == "2025-04-01"


def log(message: str) -> None:
    print(f"[train] {message}", file=sys.stderr, flush=True)


def relation_matrices(frame: pd.DataFrame, products: list[str]) -> dict[str, np.ndarray]:
    """Complement / substitute strengths between catalogue products (catalogue order), from
    co-holding at the first training cut-off (training data only)."""
    from ml.catalogue import load_catalogue
    from ml.relations.compute import compute_relations
    from ml.relations.graph import RelationGraph

    cat = load_catalogue()
    first = frame[frame.snapshot_ts == frame.snapshot_ts.min()].drop_duplicates("customer_id")
    held = [(cid, pid) for pid in cat.ids for cid in first.customer_id[first[f"holds_{pid.lower()}"] > 0]]
    holdings = pd.DataFrame(held, columns=["customer_id", "product_id"])
    graph = RelationGraph.from_pairs(compute_relations(holdings, cat), cat.ids)
    return {kind: graph.matrix(kind) for kind in ("complement", "substitute")}


def choose_negative_rate(pairs: pd.DataFrame, max_rows: int) -> float:
    positives = int(pairs.label.sum())
    negatives = len(pairs) - positives
    return float(min(1.0, max(max_rows - positives, 1) / max(negatives, 1)))


def train(paths: Paths, seed: int = 7, negative_rate: float | None = None, max_rows: int = 400_000,
          strategies: bool = True) -> Path:
    started = time.perf_counter()
    store = get_store(paths)
    products = target_products()
    labels = load_labels(paths, FIT_CUTOFFS + [CALIBRATION_CUTOFF])
    pairs = candidate_pairs(labels, products)
    rate = negative_rate if negative_rate is not None else choose_negative_rate(pairs, max_rows)
    sampled = sample_negatives(pairs, rate, seed)
    log(f"{len(pairs):,} candidate pairs, {int(pairs.label.sum()):,} positives; negatives kept at rate "
        f"{rate:.4f} -> {len(sampled):,} rows")
    data = build_pairs(store, sampled, products)
    log(f"{len(data):,} suitable rows with point-in-time features from Feast ({time.perf_counter() - started:.0f} s)")

    relations = relation_matrices(data, products)
    x = pairs_to_matrix(data, relations)
    y, w = data.label.to_numpy(), data.weight.to_numpy()
    fit = (data.snapshot_ts < pd.Timestamp(CALIBRATION_CUTOFF)).to_numpy()
    log(f"fit rows {fit.sum():,} ({int(y[fit].sum()):,} positives), calibration rows {(~fit).sum():,}")

    booster = fit_booster(x[fit], y[fit], w[fit], seed, valid=(x[~fit], y[~fit], w[~fit]))
    raw = booster.predict(x[~fit])
    calibrator = fit_calibrator(raw, y[~fit], w[~fit])
    log(f"LightGBM: {booster.best_iteration or booster.num_trees()} trees ({time.perf_counter() - started:.0f} s)")

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
        "negative_sampling": {"rate": rate, "weight_of_sampled_negative": 1 / rate,
                              "positives_kept": "all"},
        "rows": {"candidate_pairs": int(len(pairs)), "sampled": int(len(sampled)), "suitable": int(len(data)),
                 "fit": int(fit.sum()), "calibration": int((~fit).sum())},
        "params": {**DEFAULT_PARAMS, "seed": seed, "best_iteration": booster.best_iteration},
        "git_commit": git_commit(),
        "trained_seconds": round(time.perf_counter() - started, 1),
        "generator_seed": _generator_seed(paths),
    }
    model = PropensityModel(booster, calibrator, products, relations, metadata)
    model.save(folder)
    if strategies:
        _train_strategies(folder, x, y, w, fit, seed)
    registry.promote(folder.name)
    log(f"model {folder.name} is current ({time.perf_counter() - started:.0f} s)")
    return folder


def _generator_seed(paths: Paths) -> int | None:
    manifest = paths.raw / "_manifest.json"
    return json.loads(manifest.read_text()).get("seed") if manifest.exists() else None


def _train_strategies(folder: Path, x, y, w, fit, seed: int, max_rows: int = 300_000) -> None:
    """Every imbalance strategy, fitted on (a capped sample of) the fit rows, saved for evaluation."""
    from ml.imbalance import STRATEGIES, make_pipeline
    from ml.pair_features import feature_names

    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(fit)
    if len(rows) > max_rows:  # SMOTE/ADASYN neighbour search grows quadratically: same cap for all
        positives = rows[y[rows] == 1]
        negatives = rng.choice(rows[y[rows] == 0], max_rows - len(positives), replace=False)
        rows = np.sort(np.concatenate([positives, negatives]))
    names = feature_names()
    frame = pd.DataFrame(x[rows], columns=names)
    out = folder / "strategies"
    out.mkdir()
    for name in STRATEGIES:
        t = time.perf_counter()
        pipeline = make_pipeline(name, numeric=names, categorical=[], seed=seed, profile=PROFILE_FEATURES)
        pipeline.fit(frame, y[rows])
        joblib.dump(pipeline, out / f"{name}.joblib")
        log(f"strategy {name}: fitted on {len(rows):,} rows in {time.perf_counter() - t:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--negative-rate", type=float, default=None,
                        help="share of negatives kept before feature retrieval (default: to fit --max-rows)")
    parser.add_argument("--max-rows", type=int, default=400_000)
    parser.add_argument("--no-strategies", action="store_true", help="skip the imbalance-strategy comparison")
    args = parser.parse_args(argv)
    train(Paths.from_env(), args.seed, args.negative_rate, args.max_rows, strategies=not args.no_strategies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
