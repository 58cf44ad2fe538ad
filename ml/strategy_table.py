"""The imbalance-strategy table: every strategy fitted on one sample, scored on the calibration cut-off.

Each strategy (``ml.imbalance.STRATEGIES``) is one imblearn pipeline fitted on the same share
of the fit rows (whole sampled customers, so the sample keeps its structure), with the rows'
sampling weights where the pipeline takes weights (EasyEnsemble does not). Every LightGBM
strategy uses the production model's parameters and number of trees, so the table isolates the
imbalance lever. Fitted pipelines are saved for ``ml.evaluate``, which scores them again on the
held-out cut-off.
"""
from __future__ import annotations

import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from ml.model import DEFAULT_PARAMS
from ml.training_set import TrainingSet, log

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
    from ml.imbalance import STRATEGIES, make_pipeline
    from ml.pair_features import feature_names

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
