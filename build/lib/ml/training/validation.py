"""Ranking metrics on a sampled cut-off: what early stopping and model choice look at.

The training sample (``ml.training.dataset.sample_customers``) keeps every customer who adopted, with all
their candidate products, and a share of the others weighted back. MAP@5 and recall@5 depend
only on the adopters' rankings (a customer without an adoption scores 0), so on the sample they
are exact, not estimates; PR-AUC and the top-decile lift pool all cells and use the weights.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from ml.core import metrics

K = 5


class CutoffRanking:
    """Long rows (customer, product, label, weight) of one cut-off, ready for ranking metrics.

    ``n_customers``: every customer at the cut-off (sampled or not), MAP@5's denominator.
    """

    def __init__(self, customer: np.ndarray, product: np.ndarray, y: np.ndarray, w: np.ndarray,
                 n_products: int, n_customers: int):
        self.y = np.asarray(y, dtype=np.int8)
        self.w = np.asarray(w, dtype=np.float64)
        # hash the ids: np.unique / np.isin on object arrays of ids sort with Python comparisons,
        # which took minutes on a full-scale calibration cut-off
        codes, _ = pd.factorize(np.asarray(customer))
        adopter = np.zeros(codes.max() + 1 if len(codes) else 0, dtype=bool)
        adopter[codes[self.y == 1]] = True
        self.rows = np.flatnonzero(adopter[codes])
        self.row_customer = (np.cumsum(adopter) - 1)[codes[self.rows]]
        self.row_product = np.asarray(product)[self.rows]
        self.shape = (int(adopter.sum()), n_products)
        self.labels = np.zeros(self.shape, dtype=bool)
        self.labels[self.row_customer, self.row_product] = self.y[self.rows] == 1
        self.ineligible = np.ones(self.shape, dtype=bool)
        self.ineligible[self.row_customer, self.row_product] = False
        self.n_customers = int(n_customers)
        # positive cells, for the fast MAP@5 early stopping calls every boosting round
        self.pos_customer, self.pos_product = np.nonzero(self.labels)
        self.n_positive = np.bincount(self.pos_customer, minlength=self.shape[0])

    def _matrix(self, scores: np.ndarray) -> np.ndarray:
        out = np.zeros(self.shape)
        out[self.row_customer, self.row_product] = np.asarray(scores, dtype=np.float64)[self.rows]
        return out

    def map_at_5(self, scores: np.ndarray) -> float:
        """Kaggle MAP@5 over every customer at the cut-off (same as ``metrics.map_at_k``, ties
        broken by product column, in O(positives x products))."""
        if not self.shape[0]:
            return 0.0
        matrix = np.where(self.ineligible, -np.inf, self._matrix(scores))
        own = matrix[self.pos_customer, self.pos_product][:, None]
        rows = matrix[self.pos_customer]
        columns = np.arange(self.shape[1])[None, :]
        rank = ((rows > own) | ((rows == own) & (columns < self.pos_product[:, None]))).sum(axis=1)
        order = np.lexsort((rank, self.pos_customer))  # by customer, then rank
        customer, rank = self.pos_customer[order], rank[order]
        first = np.searchsorted(customer, customer)  # first positive of the same customer
        hits_so_far = np.arange(len(customer)) - first + 1
        precision = np.where(rank < K, hits_so_far / (rank + 1), 0.0)
        total = np.bincount(customer, precision, minlength=self.shape[0])
        ap = np.divide(total, np.minimum(self.n_positive, K), out=np.zeros(self.shape[0]), where=self.n_positive > 0)
        return float(ap.sum() / self.n_customers)

    def report(self, scores: np.ndarray) -> dict:
        scores = np.asarray(scores, dtype=np.float64)
        ranking = metrics.ranking_report(self._matrix(scores), self.labels, self.ineligible, ks=(K,))
        share = self.shape[0] / self.n_customers
        return {"map_at_5": ranking[f"map@{K}"] * share, "ndcg_at_5": ranking[f"ndcg@{K}"] * share,
                "recall_at_5": ranking[f"recall@{K}"], "pr_auc": weighted_pr_auc(self.y, scores, self.w),
                "top_decile_lift": weighted_lift(self.y, scores, self.w)}

    def lightgbm_metric(self):
        """A LightGBM ``feval``: ("map@5", value, higher is better) on this cut-off's rows."""
        def feval(preds, _dataset):
            return "map@5", self.map_at_5(preds), True
        return feval


def weighted_pr_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> float:
    return float(average_precision_score(y, s, sample_weight=w)) if np.any(y == 1) else float("nan")


def weighted_lift(y: np.ndarray, s: np.ndarray, w: np.ndarray, frac: float = 0.10) -> float:
    """Weighted positive rate in the top ``frac`` of the weight (by score) over the overall rate.
    A group of tied scores straddling the cut counts pro rata, so a constant score has lift 1."""
    y, w = np.asarray(y, dtype=np.float64), np.asarray(w, dtype=np.float64)
    overall = np.sum(w * y) / w.sum()
    if overall == 0:
        return float("nan")
    levels, group = np.unique(-np.asarray(s, dtype=np.float64), return_inverse=True)  # best score first
    weight = np.bincount(group, w, minlength=len(levels))
    positive = np.bincount(group, w * y, minlength=len(levels))
    cut = frac * w.sum()
    before = np.concatenate([[0.0], np.cumsum(weight)[:-1]])
    share = np.clip((cut - before) / weight, 0.0, 1.0)
    return float(np.sum(positive * share) / cut / overall)
