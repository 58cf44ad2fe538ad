"""The lists managers see, judged with customer-level 95% intervals.

The served list is ranked by the serving code itself (``StageOne.score_batch``: suitability as a
hard mask, calibrated probability x product value), the list the API and the nightly table return;
the propensity-only ranking is the same code with value weighting off (``LINGXI_VALUE_WEIGHTING=0``).
Baselines and oracles rank the held-out eligible products by their scores. For each list:
MAP@5, recall@5, value captured @5 (value of the window's adoptions the list holds / value of all
the window's adoptions) and the top-decile lift of its ranking key over the pooled eligible cells.

Two populations: every held-out customer, and the posterior oracle's fixed sample (all customers
up to 200,000, every k-th beyond; ``ml.datagen.posterior``), where the served list is set against
both oracles. Intervals: a Poisson bootstrap over customers (``ml.core.metrics.poisson_bootstrap``),
the same resamplings for every row of a population, so ratios are paired. The top-decile cut is
held at the full sample's score threshold in the replicates.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ml.core import metrics
from ml.core.config import HOLDOUT_CUTOFF, Paths
from ml.evaluation import list_metrics
from ml.recommendation.config import RecommendConfig
from ml.recommendation.stage_one import StageOne
from ml.training.model import PropensityModel

K = 5
REPLICATES = 1000
FIGURES = ("map_at_5", "recall_at_5", "top_decile_lift", "value_captured_at_5")
POSTERIOR_DIR = "posterior"


def posterior_scores(paths: Paths, customer_ids: np.ndarray, products: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(rows of ``customer_ids`` in the posterior oracle's sample, their (n, P) probabilities)."""
    folder = paths.oracle / POSTERIOR_DIR / f"cutoff={HOLDOUT_CUTOFF.isoformat()}"
    if not folder.exists():
        return None
    columns = [f"p_posterior__{p}" for p in products]
    table = pd.read_parquet(folder, columns=["customer_id", *columns])
    position = pd.Series(np.arange(len(customer_ids)), index=customer_ids)
    table = table[table.customer_id.isin(position.index)]
    rows = position.loc[table.customer_id].to_numpy()
    order = np.argsort(rows)
    scores = np.nan_to_num(table[columns].to_numpy(dtype=float)[order], nan=0.0)
    return rows[order], np.clip(scores, 0.0, 1.0)


class ListRanker:
    """The served and the propensity-only lists from the serving code path."""

    def __init__(self, model: PropensityModel):
        config = RecommendConfig.from_env()
        self.served = StageOne(model, replace(config, value_weighting=True))
        self.plain = StageOne(model, replace(config, value_weighting=False))
        self.values = self.served.values  # the value of an adoption: what value weighting ranks by

    def lists(self, features: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{name: ((n, K) listed positions, (n, P) ranking key)} for served and propensity-only."""
        batch = self.served.score_batch(features, K)
        key = self.served.ranking_key(batch.probabilities, batch.raw)
        plain_key = self.plain.ranking_key(batch.probabilities, batch.raw)
        return {"served": (batch.top, key),
                "propensity_only": (self.plain.rank(plain_key, batch.allowed, K), plain_key)}


def score_lists(scores: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Baselines and oracles: the K best eligible products by score."""
    return {name: (list_metrics.top_k_positions(s, mask, K), s) for name, s in scores.items()}


def judge(lists: dict, labels: np.ndarray, mask: np.ndarray, values: np.ndarray, ratios: dict,
          seed: int = 0, replicates: int = REPLICATES) -> dict:
    """Figures and intervals for every list on one population, and the paired ratios
    ``{name: (figure, numerator row, denominator row)}``."""
    names = list(lists)
    parts = []
    for name in names:
        top, key = lists[name]
        lift_key = np.where(np.isfinite(key), key, -1.0)  # cells a list may not show rank last
        parts.append(list_metrics.list_parts(top, labels, mask, values, lift_scores=lift_key))
    stacked = np.hstack(parts)
    n_parts = len(list_metrics.LIST_PARTS)
    sums, weights = metrics.poisson_bootstrap(stacked, replicates, seed)
    point = stacked.sum(axis=0)
    rows, samples = {}, {}
    for i, name in enumerate(names):
        cols = slice(i * n_parts, (i + 1) * n_parts)
        value = list_metrics.list_figures(point[cols], len(labels))
        samples[name] = list_metrics.list_figures(sums[:, cols], weights)
        rows[name] = {**{f: float(value[f]) for f in FIGURES},
                      "ci": {f: metrics.interval(samples[name][f]) for f in FIGURES}}
    out_ratios = {}
    for label, (figure, top, bottom) in ratios.items():
        if top in rows and bottom in rows:
            out_ratios[label] = {"figure": figure, "of": top, "over": bottom,
                                 "ratio": rows[top][figure] / rows[bottom][figure],
                                 "ci": metrics.interval(samples[top][figure] / samples[bottom][figure])}
    return {"n_customers": int(len(labels)), "rows": rows, "ratios": out_ratios}


ALL_RATIOS = {
    "served_vs_propensity_only_map": ("map_at_5", "served", "propensity_only"),
    "served_recall_vs_random": ("recall_at_5", "served", "random"),
    "served_recall_vs_popularity": ("recall_at_5", "served", "popularity"),
    "propensity_only_recall_vs_random": ("recall_at_5", "propensity_only", "random"),
    "propensity_only_recall_vs_popularity": ("recall_at_5", "propensity_only", "popularity"),
    "served_value_vs_propensity_only": ("value_captured_at_5", "served", "propensity_only"),
}
SAMPLE_RATIOS = {
    "served_vs_posterior_oracle": ("map_at_5", "served", "oracle_posterior"),
    "propensity_only_vs_posterior_oracle": ("map_at_5", "propensity_only", "oracle_posterior"),
    "served_vs_prior_oracle": ("map_at_5", "served", "oracle_prior"),
    "prior_vs_posterior_oracle": ("map_at_5", "oracle_prior", "oracle_posterior"),
    "served_value_vs_posterior_oracle_by_value": ("value_captured_at_5", "served", "oracle_posterior_by_value"),
}


def evaluate_lists(ranker: ListRanker, features: np.ndarray, labels: np.ndarray, mask: np.ndarray,
                   scores: dict[str, np.ndarray], posterior: tuple[np.ndarray, np.ndarray] | None,
                   replicates: int = REPLICATES) -> dict:
    """Every list on all held-out customers, and on the posterior oracle's sample against both oracles."""
    lists = {**ranker.lists(features), **score_lists(scores, mask)}
    out = {"k": K, "replicates": replicates, "method": __doc__.split("\n\n")[-1].replace("\n", " ").strip(),
           "all": judge(lists, labels, mask, ranker.values, ALL_RATIOS, replicates=replicates)}
    if posterior is not None:
        rows, p = posterior
        sample = {name: (top[rows], key[rows]) for name, (top, key) in lists.items()
                  if name in ("served", "propensity_only", "oracle_prior", "oracle_true")}
        sample.update(score_lists({"oracle_posterior": p}, mask[rows]))
        by_value = p * ranker.values[None, :]
        sample["oracle_posterior_by_value"] = (list_metrics.top_k_positions(by_value, mask[rows], K), by_value)
        out["sample"] = judge(sample, labels[rows], mask[rows], ranker.values, SAMPLE_RATIOS,
                              replicates=replicates)  # same seed: a sample of everyone gives the same intervals
    return out


def summary_keys(lists: dict) -> dict:
    """The summary's list figures: served and propensity-only (all customers), both oracles and the
    served list's ratio to the posterior oracle (the sample)."""
    rows = lists["all"]["rows"]
    out = {name: rows[name] for name in ("served", "propensity_only")}
    sample = lists.get("sample")
    if sample:
        for name, key in (("oracle_posterior", "oracle_posterior"), ("oracle_prior", "oracle_prior")):
            out[key] = {**sample["rows"][name], "n_customers": sample["n_customers"]}
        ratio = sample["ratios"]["served_vs_posterior_oracle"]
        out["served_vs_posterior_oracle"] = {"ratio": ratio["ratio"], "ci": ratio["ci"],
                                             "n_customers": sample["n_customers"]}
    return out
