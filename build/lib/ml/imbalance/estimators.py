"""Estimators of the strategy table: class-balanced LightGBM and the popularity baseline."""
from __future__ import annotations

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted


class BalancedLGBMClassifier(LGBMClassifier):
    """LightGBM with positives up-weighted by sum(w_neg) / sum(w_pos) of the training rows.

    Numerically the same as LightGBM's ``scale_pos_weight`` set to the training fold's
    (weighted) negative/positive ratio -- it scales positive gradients and hessians -- but the
    ratio is computed at ``fit`` time, so one object works on any fold. The value used is kept
    in ``pos_weight_``.
    """

    def fit(self, X, y, sample_weight=None, **kwargs):  # noqa: D102
        yv = np.asarray(y)
        w = np.ones(len(yv)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        w_pos, w_neg = w[yv == 1].sum(), w[yv == 0].sum()
        if w_pos <= 0 or w_neg <= 0:
            raise ValueError("class_weight needs both classes with positive weight")
        self.pos_weight_ = float(w_neg / w_pos)
        return super().fit(X, y, sample_weight=np.where(yv == 1, w * self.pos_weight_, w), **kwargs)


class PopularityClassifier(ClassifierMixin, BaseEstimator):
    """Baseline: the smoothed positive rate of each row's group (first column of ``X``).

    ``rate(g) = (sum w*y in g + prior_strength * prior) / (sum w in g + prior_strength)``;
    unseen groups get the prior. With one column holding the product id this is the
    "recommend what is popular" baseline of the customer x product table.
    """

    def __init__(self, prior_strength: float = 10.0):
        self.prior_strength = prior_strength

    def fit(self, X, y, sample_weight=None):  # noqa: D102
        g = np.asarray(X)[:, 0]
        yv = np.asarray(y, dtype=float)
        w = np.ones(len(yv)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        self.classes_ = np.array([0, 1])
        self.prior_ = float((w * yv).sum() / w.sum())
        frame = pd.DataFrame({"g": g, "wy": w * yv, "w": w}).groupby("g")[["wy", "w"]].sum()
        rate = (frame["wy"] + self.prior_strength * self.prior_) / (frame["w"] + self.prior_strength)
        self.rates_ = rate.to_dict()
        return self

    def predict_proba(self, X):  # noqa: D102
        check_is_fitted(self, "rates_")
        g = pd.Series(np.asarray(X)[:, 0])
        p = g.map(self.rates_).fillna(self.prior_).to_numpy(dtype=float)
        return np.column_stack([1.0 - p, p])

    def predict(self, X):  # noqa: D102
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
