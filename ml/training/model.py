"""The stage-one propensity model: one LightGBM over customer × product rows, calibrated.

Scores are calibrated probabilities of adopting a product in the next three months, so later
stages can multiply them by a product's value and compare across products.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from ml.core.logs import progress
from ml.features.pairs import feature_names, pair_matrix, product_table

DEFAULT_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_child_samples": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
    "num_threads": 2,
    "deterministic": True,  # the same data and seed give the same model: README figures reproduce
    "force_col_wise": True,
    "max_bin": 63,
}

CATEGORICAL = ["product_code", "category_code"]


def fit_booster(x: np.ndarray, y: np.ndarray, weight: np.ndarray | None, seed: int, rounds: int = 400,
                params: dict | None = None, valid: tuple | None = None, feval=None,
                patience: int = 40, progress_desc: str | None = None) -> lgb.Booster:
    """LightGBM on pair rows; early stopping on ``valid`` (x, y, weight) when given: on ``feval``
    (a LightGBM custom metric, e.g. MAP@5 of the validation cut-off) if given, else on logloss.
    ``progress_desc``: show a bar over the boosting rounds (it ends early when training stops early)."""
    params = {**DEFAULT_PARAMS, **(params or {}), "seed": seed}
    if feval is not None:
        params["metric"] = "None"  # stop on the custom metric alone
    names = feature_names()
    train = lgb.Dataset(x, y, weight=weight, feature_name=names, categorical_feature=CATEGORICAL,
                        free_raw_data=False)
    sets, callbacks = [train], []
    if valid is not None:
        sets = [lgb.Dataset(valid[0], valid[1], weight=valid[2], reference=train)]
        callbacks.append(lgb.early_stopping(patience, first_metric_only=True, verbose=False))
    bar = progress(rounds, progress_desc, unit="round") if progress_desc else None
    if bar is not None:
        def advance(env) -> None:
            bar.update(1)

        callbacks.append(advance)
    try:
        return lgb.train(params, train, num_boost_round=rounds, valid_sets=sets, feval=feval, callbacks=callbacks)
    finally:
        if bar is not None:
            bar.close()


@dataclass
class PropensityModel:
    """A booster, its calibrator, and the products and relations it scores with."""

    booster: lgb.Booster
    calibrator: IsotonicRegression | None
    products: list[str]
    relations: dict[str, np.ndarray] | None = None
    metadata: dict = field(default_factory=dict)

    def raw_scores(self, rows: np.ndarray) -> np.ndarray:
        return self.booster.predict(rows, raw_score=False)

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        if self.calibrator is None:
            return scores
        return np.clip(self.calibrator.predict(scores), 0.0, 1.0)

    def rows(self, customer: np.ndarray, products: pd.DataFrame | None = None) -> np.ndarray:
        products = products if products is not None else product_table(self.products)
        return pair_matrix(customer, products, self.relations)

    def predict(self, customer: np.ndarray, products: pd.DataFrame | None = None) -> np.ndarray:
        """(n, P) calibrated adoption probabilities for feature rows in layout order."""
        products = products if products is not None else product_table(self.products)
        rows = self.rows(customer, products)
        return self.calibrate(self.raw_scores(rows)).reshape(len(customer), len(products))

    def contributions(self, customer: np.ndarray, products: pd.DataFrame | None = None) -> np.ndarray:
        """(n, P, F + 1) LightGBM per-feature contributions (log-odds; last column is the bias)."""
        products = products if products is not None else product_table(self.products)
        rows = self.rows(customer, products)
        contrib = self.booster.predict(rows, pred_contrib=True)
        return contrib.reshape(len(customer), len(products), -1)

    def importance(self) -> pd.Series:
        gain = self.booster.feature_importance(importance_type="gain")
        return pd.Series(gain, index=self.booster.feature_name()).sort_values(ascending=False)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / "model.txt"))
        joblib.dump({"calibrator": self.calibrator, "products": self.products, "relations": self.relations},
                    folder / "calibration.joblib")
        (folder / "metadata.json").write_text(json.dumps(self.metadata, indent=2, default=str))

    @classmethod
    def load(cls, folder: Path) -> "PropensityModel":
        booster = lgb.Booster(model_file=str(folder / "model.txt"))
        extra = joblib.load(folder / "calibration.joblib")
        metadata = json.loads((folder / "metadata.json").read_text())
        return cls(booster=booster, calibrator=extra["calibrator"], products=extra["products"],
                   relations=extra["relations"], metadata=metadata)


def fit_calibrator(scores: np.ndarray, y: np.ndarray, weight: np.ndarray | None) -> IsotonicRegression:
    """Isotonic map from raw scores to probabilities, fitted on held-out training rows."""
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(scores, y, sample_weight=weight)
    return iso
