"""Train the stage-two re-ranker from logged sessions in the feedback log's format.

    python -m ml.recommendation.rerank_training [--logs DIR] [--interest-model NAME]

Each session is a stage-one list, its answers and a stage-two list with its answers; features are
re-read point-in-time from Feast at the list's ``created_at`` and scored by the current model. The
same code trains on a bank's exported answers or on simulated ones (``ml.evaluation.simulated_logs``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml.core.catalogue import load_catalogue
from ml.core.config import DEFAULT_INTEREST_MODEL, INTEREST_MODELS, Paths
from ml.core.logs import step_log, working
from ml.features.layout import STAGE_ONE_FEATURES
from ml.features.snapshot import feature_store
from ml.recommendation.rerankers import (
    ANSWER_CODES,
    CROSS_SELL,
    INTERESTED,
    NOT_INTERESTED,
    LearnedReranker,
    Sessions,
    _categories,
    _logit,
    _sigmoid,
    relation_inputs,
)
from ml.recommendation.stage_one import StageOne
from ml.relations import RelationGraph, compute_relations, holdings_from_events
from ml.training.dataset import fetch_features
from ml.training.registry import load_model

LOG_SUBDIR = "simulated_feedback"


log = step_log("rerank")


def _interest_model(name: str | None) -> str:
    return name or DEFAULT_INTEREST_MODEL


def log_dir(paths: Paths, interest_model: str | None = None) -> Path:
    """Where ``simulate-logs`` writes the sessions of an interest model (the default's: data/simulated_feedback)."""
    model = _interest_model(interest_model)
    return paths.data / (LOG_SUBDIR if model == _interest_model(None) else f"{LOG_SUBDIR}-{model}")


def reranker_file(model_dir: Path, interest_model: str | None = None) -> Path:
    """The re-ranker trained on an interest model's sessions, next to the model (serving loads reranker.json)."""
    model = _interest_model(interest_model)
    return model_dir / ("reranker.json" if model == _interest_model(None) else f"reranker-{model}.json")


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------
@dataclass
class TrainingSet:
    """Stage-one sessions and the answered stage-two products (one row per product shown)."""

    sessions: Sessions
    customer_id: np.ndarray           # (n,)
    second: np.ndarray                # (n, P) int8 answers in stage two (0 = not shown there)


def fit(data: TrainingSet, relations: Mapping[str, np.ndarray] | None, c: float = 1.0,
        metadata: dict | None = None) -> LearnedReranker:
    """Fit the interest prior on stage-one answers, then the feedback model on stage-two answers."""
    from sklearn.linear_model import LogisticRegression

    s = data.sessions
    n, P = s.p.shape
    comp, sim = relation_inputs(s.products, relations)
    eye = np.eye(P)
    # 1. interest prior: every stage-one answer, logit p and a per-product intercept
    first = (s.answers == INTERESTED) | (s.answers == NOT_INTERESTED)
    rows, cols = np.nonzero(first)
    x_prior = np.column_stack([eye[cols], _logit(s.p[rows, cols])])
    y_prior = (s.answers[rows, cols] == INTERESTED).astype(int)
    prior = LogisticRegression(C=c, fit_intercept=False, max_iter=2000).fit(x_prior, y_prior)
    prior_intercept, prior_slope = prior.coef_[0][:P], float(prior.coef_[0][P])
    category_rate = np.array([y_prior[np.isin(cols, np.flatnonzero(_categories(s.products) == cat_))].mean()
                              if np.isin(cols, np.flatnonzero(_categories(s.products) == cat_)).any() else 0.1
                              for cat_ in CROSS_SELL])
    # 2. full model on the stage-two answers (already owns counts as "not interested")
    model = LearnedReranker(s.products, prior_intercept, prior_slope, np.zeros(P), 0.0,
                            np.zeros(len(LearnedReranker.feature_names())), category_rate, comp, sim)
    feats = model.features(s)                                      # (n, P, F)
    rows, cols = np.nonzero(data.second > 0)
    x = np.column_stack([eye[cols], _logit(s.p[rows, cols]), feats[rows, cols]])
    y = (data.second[rows, cols] == INTERESTED).astype(int)
    full = LogisticRegression(C=c, fit_intercept=False, max_iter=5000).fit(x, y)
    coef = full.coef_[0]
    model.intercept, model.slope, model.weights = coef[:P], float(coef[P]), coef[P + 1:]
    model.metadata = {**(metadata or {}), "n_sessions": int(n), "n_prior_rows": int(len(y_prior)),
                      "n_rows": int(len(y)), "interest_rate_stage_two": float(y.mean()),
                      "weights": dict(zip(model.feature_names(), np.round(model.weights, 4).tolist()))}
    return model


def load_logs(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(recommendations, feedback) of a feedback export folder (``ml/core/feedback_log.py`` layout)."""
    recs = pd.read_parquet(folder / "recommendations")
    feedback = pd.read_parquet(folder / "feedback")
    return recs, feedback


def sessions_from_logs(recs: pd.DataFrame, feedback: pd.DataFrame, products: Sequence[str]
                       ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Pair each stage-one recommendation with its stage-two child.

    Returns (sessions frame: customer_id, created_at, recommendation_id; answers (n, P) of stage one;
    answers (n, P) of stage two), the latest answer per (recommendation, product).
    """
    index = {p: j for j, p in enumerate(products)}
    latest = feedback.sort_values("recorded_at").drop_duplicates(["recommendation_id", "product_id"], keep="last")
    one = recs[recs.stage == 1].drop_duplicates("recommendation_id")[["recommendation_id", "customer_id",
                                                                       "created_at"]]
    two = recs[recs.stage == 2].drop_duplicates("recommendation_id")[["recommendation_id",
                                                                       "parent_recommendation_id"]]
    one = one[one.recommendation_id.isin(two.parent_recommendation_id)].reset_index(drop=True)
    child = dict(zip(two.parent_recommendation_id, two.recommendation_id))
    row_of = {rid: i for i, rid in enumerate(one.recommendation_id)}
    row_of.update({child[rid]: i for rid, i in list(row_of.items())})
    stage_of = {**{rid: 1 for rid in one.recommendation_id}, **{child[rid]: 2 for rid in one.recommendation_id}}
    first = np.zeros((len(one), len(products)), dtype=np.int8)
    second = np.zeros_like(first)
    for rid, pid, response in zip(latest.recommendation_id, latest.product_id, latest.response):
        i, j = row_of.get(rid), index.get(pid)
        if i is None or j is None or response not in ANSWER_CODES:
            continue
        (first if stage_of[rid] == 1 else second)[i, j] = ANSWER_CODES[response]
    return one, first, second


def training_set(paths: Paths, logs: Path, model, with_first: bool = False):
    """Logged sessions + point-in-time features from Feast + the model's stage-one probabilities
    (and, ``with_first``, the time of the earliest session)."""

    recs, feedback = load_logs(logs)
    products = tuple(model.products)
    frame, first, second = sessions_from_logs(recs, feedback, products)
    entities = pd.DataFrame({"customer_id": frame.customer_id, "snapshot_ts": pd.to_datetime(frame.created_at)})
    with working(f"point-in-time features of {len(entities):,} sessions"):
        features = fetch_features(feature_store(paths), entities)
    features = features.drop_duplicates(["customer_id", "snapshot_ts"])
    merged = entities.merge(features, on=["customer_id", "snapshot_ts"], how="left")
    x = merged[list(STAGE_ONE_FEATURES)].to_numpy(np.float32)
    p = StageOne(model).probabilities(x)
    data = TrainingSet(Sessions(products, p, first), frame.customer_id.to_numpy(), second)
    if with_first:
        earliest = pd.to_datetime(frame.created_at).min() if len(frame) else None
        return data, (None if earliest is None or pd.isna(earliest) else earliest.to_pydatetime())
    return data


def train(paths: Paths, logs: Path | None = None, c: float = 1.0, validate: float = 0.2, seed: int = 0,
          out: Path | None = None, interest_model: str | None = None) -> Path:
    """Fit the learned re-ranker for the current model from logged sessions (default: the simulated
    sessions of ``interest_model``); saves ``reranker_file`` next to the model unless ``out``."""

    started = time.perf_counter()
    model, folder = load_model(paths)
    logs = logs or log_dir(paths, interest_model)
    data, first_session = training_set(paths, logs, model, with_first=True)
    log(f"{len(data.customer_id):,} logged sessions from {logs} ({time.perf_counter() - started:.0f} s)")
    relations, graph_source = relation_graph(paths, first_session, model.relations)
    report = {}
    if validate:
        report = _validate(data, relations, c, validate, seed)
        log(f"validation on {validate:.0%} of customers: {_rounded(report)}")
    manifest = logs / "_manifest.json"
    source = json.loads(manifest.read_text()) if manifest.exists() else {}
    meta = {"trained_on": source.get("source", "logs"), "interest_model": source.get("interest_model"),
            "logs": str(logs), "model_version": model.metadata.get("version"),
            "validation": report, "C": c, "relation_graph": graph_source}
    reranker = fit(data, relations, c, meta)
    path = out or reranker_file(folder, interest_model)
    reranker.save(path)
    log(f"saved {path} ({time.perf_counter() - started:.0f} s): {_rounded(reranker.metadata['weights'])}")
    return path


def _rounded(value, digits: int = 4):
    """Floats in a (nested) value rounded for a log line."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v, digits) for v in value]
    return value


def relation_graph(paths: Paths, before, fallback: Mapping[str, np.ndarray] | None
                   ) -> tuple[Mapping[str, np.ndarray] | None, str]:
    """The product relation graph (``ml.relations``) from every customer's holdings before the first
    logged session (raw events), or the model's own graph when the events are not available."""

    events = paths.raw / "events"
    if before is None or not events.exists():
        return fallback, "model"
    cat = load_catalogue()
    graph = RelationGraph.from_pairs(compute_relations(holdings_from_events(events, before=before), cat), cat.ids)
    relations = {kind: graph.matrix(kind) for kind in ("complement", "substitute")}
    n = int((np.triu(relations["complement"]) > 0).sum())
    log(f"relation graph from holdings before {before}: {n} complement pairs")
    return relations, f"holdings before {before}: {n} complement pairs"


def _validate(data: TrainingSet, relations, c: float, share: float, seed: int) -> dict:
    """Log loss of the stage-two answers on held-out customers: prior-only vs with feedback."""
    customers = np.unique(data.customer_id)
    rng = np.random.default_rng(seed)
    held = np.isin(data.customer_id, rng.choice(customers, int(len(customers) * share), replace=False))
    def part(m: np.ndarray) -> TrainingSet:
        s = data.sessions
        return TrainingSet(Sessions(s.products, s.p[m], s.answers[m]), data.customer_id[m], data.second[m])
    model = fit(part(~held), relations, c)
    test = part(held)
    base, full = model.logits(test.sessions)
    rows, cols = np.nonzero(test.second > 0)
    y = (test.second[rows, cols] == INTERESTED).astype(float)

    def loss(z):
        q = np.clip(_sigmoid(z[rows, cols]), 1e-9, 1 - 1e-9)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))
    return {"rows": int(len(y)), "log_loss_without_feedback": round(loss(base), 5),
            "log_loss_with_feedback": round(loss(full), 5)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.recommendation.rerank_training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logs", type=Path, default=None,
                        help=f"feedback export folder (default: the interest model's data/{LOG_SUBDIR}[-MODEL])")
    parser.add_argument("--interest-model", choices=INTEREST_MODELS, default=DEFAULT_INTEREST_MODEL,
                        help="whose simulated sessions to train on (names the output reranker[-MODEL].json)")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic fit")
    parser.add_argument("--out", type=Path, default=None, help="where to save it (default: the model's reranker.json)")
    args = parser.parse_args(argv)
    print(train(Paths.from_env(), args.logs, args.C, out=args.out, interest_model=args.interest_model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
