"""The imbalance-strategy review (``make strategies``): every strategy fitted on one sample and
scored on the calibration cut-off, next to the current production model.

    python -m ml.imbalance.strategy_review [--rows N]

It is not part of the nightly job: it refits ten candidates to check the training recipe, so it
runs when the recipe or the data changes (``make pipeline`` runs it after training). It rebuilds
the current model version's training rows with that version's sampling and seed, so the table
compares like with like.

Each strategy (``ml.imbalance.STRATEGIES``) is one imblearn pipeline fitted on the same share
of the fit rows (whole sampled customers, so the sample keeps its structure), with the rows'
sampling weights where the pipeline takes weights (EasyEnsemble does not). Every LightGBM
strategy uses the production model's parameters and number of trees, so the table isolates the
imbalance lever. Fitted pipelines and the table go into the version's ``strategies/`` folder;
``ml.evaluation.evaluate`` scores them again on the held-out cut-off.
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

from ml.core.config import Paths
from ml.features.pairs import feature_names
from ml.imbalance.pipelines import STRATEGIES, make_pipeline
from ml.training.model import DEFAULT_PARAMS
from ml.training.registry import Registry
from ml.training.train import training_data
from ml.training.training_set import TrainingSet, log

STRATEGY_ROWS = 300_000  # the table's sample of the fit rows (SMOTE, ADASYN and forests are slow)

TABLE_FILE = "table.json"


# Customer profile columns the clustering-based negative sampler clusters on.
PROFILE_FEATURES = ["age", "gender_male", "urbanisation_code", "education_level", "marital_status_code",
                    "log_assets", "risk_tolerance", "card_tier", "tenure_years"]


def lightgbm_params(trees: int) -> dict:
    """The production LightGBM's parameters in scikit-learn names (for the pipelines)."""
    p = DEFAULT_PARAMS
    return {"n_estimators": max(int(trees), 1), "learning_rate": p["learning_rate"], "num_leaves": p["num_leaves"],
            "min_child_samples": p["min_child_samples"], "colsample_bytree": p["feature_fraction"],
            "subsample": p["bagging_fraction"], "subsample_freq": p["bagging_freq"], "reg_lambda": p["lambda_l2"],
            "max_bin": p.get("max_bin", 255)}


def table_sample(fit: TrainingSet, max_rows: int, seed: int) -> TrainingSet:
    """Whole (customer, cut-off) groups of ``fit``, about ``max_rows`` rows, weights scaled back."""
    if len(fit) <= max_rows:
        return fit
    groups, first = np.unique(np.char.add(fit.customer.astype(str), fit.cutoff.astype(str)), return_inverse=True)
    share = max_rows / len(fit)
    keep = np.random.default_rng(seed).random(len(groups)) < share
    sample = fit.subset(np.flatnonzero(keep[first]))
    sample.w = sample.w / share
    return sample


def fit_strategies(folder: Path, fit: TrainingSet, calibration: TrainingSet, seed: int, max_rows: int,
                   trees: int) -> dict:
    """Fit, save and score every strategy; returns {name: calibration metrics + rows + seconds}."""

    names = feature_names()
    ranking = calibration.ranking()
    sample = table_sample(fit, max_rows, seed)
    frame = pd.DataFrame(sample.x, columns=names)
    valid = pd.DataFrame(calibration.x, columns=names)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in STRATEGIES:
        started = time.perf_counter()
        pipeline = make_pipeline(name, numeric=names, categorical=[], seed=seed, profile=PROFILE_FEATURES,
                                 n_jobs=2, **lightgbm_params(trees))
        weighted = name != "easy_ensemble"  # imblearn's EasyEnsemble takes no sample weights
        pipeline.fit(frame, sample.y, sample_weight=sample.w if weighted else None)
        joblib.dump(pipeline, folder / f"{name}.joblib")
        scores = pipeline.predict_proba(valid)[:, 1]
        out[f"strategy:{name}"] = {**ranking.report(scores), "rows": len(sample), "weighted": weighted,
                                   "deployable": False, "seconds": round(time.perf_counter() - started, 1)}
        log(f"strategy {name}: {len(sample):,} rows, calibration MAP@5 {out[f'strategy:{name}']['map_at_5']:.5f} "
            f"({time.perf_counter() - started:.0f} s)")
    return out


def choose(table: dict) -> tuple[str, str]:
    """The best candidate on calibration MAP@5 among those that can serve (a LightGBM booster, for
    per-prediction contributions), and why."""
    deployable = {name: row for name, row in table.items() if row.get("deployable", name == "production")}
    best = max(table, key=lambda name: table[name]["map_at_5"])
    chosen = max(deployable, key=lambda name: deployable[name]["map_at_5"])
    reason = f"best calibration MAP@5 {table[chosen]['map_at_5']:.5f}"
    if best != chosen:
        reason += (f"; {best} scored higher ({table[best]['map_at_5']:.5f}) but cannot give LightGBM "
                   "per-prediction contributions, so it is reported, not served")
    return chosen, reason


def review(paths: Paths, max_rows: int = STRATEGY_ROWS) -> dict:
    """Fit every strategy for the current model version; write and return its table."""

    folder = Registry(paths.models).current()
    if folder is None:
        raise SystemExit("no current model: run `make train` first")
    metadata = json.loads((folder / "metadata.json").read_text())
    sampling, params = metadata["negative_sampling"], metadata["params"]
    data = training_data(paths, params["seed"], sampling["non_adopters_per_adopter"], sampling["min_non_adopters"])
    table = {"production": metadata["calibration_table"]["production"]}
    table.update(fit_strategies(folder / "strategies", data.fit, data.calibration, params["seed"], max_rows,
                                trees=params["best_iteration"]))
    chosen, reason = choose(table)
    out = {"model_version": folder.name, "rows": table, "chosen": {"candidate": chosen, "reason": reason},
           "training_rows": {"fit": len(data.fit), "calibration": len(data.calibration)}}
    (folder / "strategies" / TABLE_FILE).write_text(json.dumps(out, indent=2) + "\n")
    log(f"chosen: {chosen} ({reason})")
    return out


def load_review(folder: Path) -> dict | None:
    """The strategy review of a model version, or None if it has not been run."""
    path = folder / "strategies" / TABLE_FILE
    return json.loads(path.read_text()) if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.imbalance.strategy_review", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=STRATEGY_ROWS, help="fit rows in the strategies' sample")
    args = parser.parse_args(argv)
    review(Paths.from_env(), args.rows)
    return 0

if __name__ == "__main__":
    sys.exit(main())
