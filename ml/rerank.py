"""Stage two: re-rank the products not yet shown with the customer's answers on the shown ones.

    python -m ml.rerank simulate-logs [--cutoffs 2025-02-01 2025-03-01] [--seed S] [--out DIR]
    python -m ml.rerank train [--logs DIR]

Stage two ranks the products not yet shown, under the same suitability filter, by one of two
objectives (``RecommendConfig.stage_two_objective``):

* ``interest`` (default) — P(interested | the answers so far): what the bank's two-step accuracy
  counts. Needs an interest model (the learned re-ranker, or the rule on top of its prior).
* ``value`` — stage one's probability × value, times the strategy's multiplicative *lift*.

Strategies:

* :class:`OneStep` — (a) the next K of the stage-one ranking (feedback ignored), always.
* :class:`PriorOnly` — (a') the learned interest prior, feedback ignored (a decomposition row).
* :class:`CategoryRule` — (b) the fixed rule: × ``up`` per "interested" and × ``down`` per "not
  interested" in the candidate's category (on the interest prior when one is available).
* :class:`LearnedReranker` — (c) learned from logged feedback sessions. A logistic model of
  "interested in B" given the session:

      logit P(interested in B) = a[B] + b · logit p_B                       (interest prior)
                               + w · f(B, answers on the shown products)     (feedback)

  where f has, per answered category c: the *surprise* Σ (answer − prior interest) of the shown
  products of c (a score-test form of the Bayesian update of the customer's latent taste for c),
  the counts of interested / not-interested answers, separately for B's own category and for each
  other category (category tastes are correlated through wealth held elsewhere), plus the relation
  graph's complement strengths and the catalogue similarity from interested and rejected products
  to B, and "already owns" counts. The lift is P(interested | feedback) / P(interested | none):
  the interest prior only calibrates the surprise and never re-orders candidates by itself.

Training data are sessions in the feedback-export format (``serving/export.py``): a stage-one
recommendation, its answers, and a stage-two recommendation (``parent_recommendation_id``) with its
answers. Features of each session are re-read point-in-time from Feast at the recommendation's
``created_at`` and scored by the current model. Until the bank has such logs, ``simulate-logs``
writes them from the development data: stage one as served, answers from the generator's feedback
simulator (oracle; development customers and cut-offs only), and an *exploration* stage two (K
products drawn uniformly from the remaining suitable ones) so every candidate is seen with every
kind of feedback. Evaluation (``ml.replay``) runs on a bank of another generator seed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ml.catalogue import Catalogue, load_catalogue
from ml.config import Paths

INTERESTED, NOT_INTERESTED, ALREADY_OWNS = 1, 2, 3
ANSWER_CODES = {"interested": INTERESTED, "not_interested": NOT_INTERESTED, "already_owns": ALREADY_OWNS}
ANSWER_NAMES = {v: k for k, v in ANSWER_CODES.items()}
CROSS_SELL = ("protection", "credit", "wealth")
FEEDBACK_CATEGORIES = ("protection", "credit", "wealth", "savings")  # order of the fb_* prior counts
LOG_SUBDIR = "simulated_feedback"
EPS = 1e-6


def log(message: str) -> None:
    print(f"[rerank] {message}", file=sys.stderr, flush=True)


def _interest_model(name: str | None) -> str:
    from ml.datagen.feedback import DEFAULT_INTEREST_MODEL

    return name or DEFAULT_INTEREST_MODEL


def log_dir(paths: Paths, interest_model: str | None = None) -> Path:
    """Where ``simulate-logs`` writes the sessions of an interest model (the default's: data/simulated_feedback)."""
    model = _interest_model(interest_model)
    return paths.data / (LOG_SUBDIR if model == _interest_model(None) else f"{LOG_SUBDIR}-{model}")


def reranker_file(model_dir: Path, interest_model: str | None = None) -> Path:
    """The re-ranker trained on an interest model's sessions, next to the model (serving loads reranker.json)."""
    model = _interest_model(interest_model)
    return model_dir / ("reranker.json" if model == _interest_model(None) else f"reranker-{model}.json")


@dataclass
class Sessions:
    """A batch of stage-one sessions over the model's products (columns)."""

    products: tuple[str, ...]
    p: np.ndarray                     # (n, P) stage-one probabilities (NaN: not scored)
    answers: np.ndarray               # (n, P) int8: 0 not shown / no answer, else ANSWER_CODES
    prior: np.ndarray | None = None   # (n, 3, 4) earlier answers [response, FEEDBACK_CATEGORIES]

    def __post_init__(self) -> None:
        self.p = np.asarray(self.p, dtype=np.float64)
        self.answers = np.asarray(self.answers, dtype=np.int8)
        if self.p.shape != self.answers.shape or self.p.shape[1] != len(self.products):
            raise ValueError(f"p {self.p.shape} and answers {self.answers.shape} must be (n, {len(self.products)})")


def random_answers(rng: np.random.Generator, shown: np.ndarray, rates=(0.3, 0.6, 0.1)) -> np.ndarray:
    """Answers drawn at random for the shown cells (used to stress the rules in the batch check)."""
    draw = rng.choice([INTERESTED, NOT_INTERESTED, ALREADY_OWNS], size=shown.shape, p=rates).astype(np.int8)
    return np.where(shown, draw, 0).astype(np.int8)


# ------------------------------------------------------------------------------------------------
# Fixed strategies
# ------------------------------------------------------------------------------------------------
class OneStep:
    """(a) feedback ignored: the continuation of the stage-one ranking (probability x value)."""

    name = "one_step"
    version = "one_step"
    interest = None                   # no interest model: always ranks like stage one

    def lift(self, sessions: Sessions) -> np.ndarray:
        return np.ones(sessions.p.shape)


class PriorOnly:
    """(a') feedback ignored, but ranked by the learned *interest prior* of each product (the
    learned model with every answer removed): separates what the stage-two objective (interest
    rather than adoption x value) gains from what the answers gain."""

    name = "prior_only"

    def __init__(self, learned: "LearnedReranker"):
        self.learned = learned
        self.version = f"prior-{learned.version}"

    def lift(self, sessions: Sessions) -> np.ndarray:
        return np.ones(sessions.p.shape)

    def interest(self, sessions: Sessions, p: np.ndarray) -> np.ndarray:
        return self.learned.base_interest(p)


@dataclass
class CategoryRule:
    """(b) re-weight categories: × ``up`` per interested and × ``down`` per not-interested answer
    in the candidate's category (earlier sessions' answers count the same). With a learned
    ``prior`` it re-weights the interest prior (the same objective as the learned re-ranker),
    otherwise the stage-one probability."""

    up: float = 2.0
    down: float = 0.5
    prior: "LearnedReranker | None" = None
    name: str = "rule"

    @property
    def version(self) -> str:
        return f"rule-up{self.up:g}-down{self.down:g}" + ("-on-interest-prior" if self.prior is not None else "")

    @property
    def interest(self):
        return None if self.prior is None else self._interest

    def _interest(self, sessions: Sessions, p: np.ndarray) -> np.ndarray:
        return np.clip(self.prior.base_interest(p) * self.lift(sessions), 0.0, 1.0)

    def lift(self, sessions: Sessions) -> np.ndarray:
        cats = _categories(sessions.products)
        onehot = _onehot(cats)                                      # (P, C)
        n_int = (sessions.answers == INTERESTED).astype(float) @ onehot
        n_not = (sessions.answers == NOT_INTERESTED).astype(float) @ onehot
        if sessions.prior is not None:
            n_int = n_int + sessions.prior[:, 0, : len(CROSS_SELL)]
            n_not = n_not + sessions.prior[:, 1, : len(CROSS_SELL)]
        factor = self.up ** n_int * self.down ** n_not             # (n, C)
        return factor @ onehot.T


def _categories(products: Sequence[str], catalogue: Catalogue | None = None) -> np.ndarray:
    cat = catalogue or load_catalogue()
    return np.array([cat[p].category for p in products], dtype=object)


def _onehot(categories: np.ndarray) -> np.ndarray:
    return np.stack([(categories == c).astype(float) for c in CROSS_SELL], axis=1)


# ------------------------------------------------------------------------------------------------
# The learned re-ranker
# ------------------------------------------------------------------------------------------------
def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.nan_to_num(p, nan=EPS), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * z))


@dataclass
class LearnedReranker:
    """(c) a logistic model of interest given the session's answers (see the module doc)."""

    products: tuple[str, ...]
    prior_intercept: np.ndarray           # (P,) a[B] of the interest prior
    prior_slope: float                    # b
    intercept: np.ndarray                 # (P,) a[B] in the full model
    slope: float
    weights: np.ndarray                   # (F,) feedback feature weights
    category_prior_rate: np.ndarray       # (C,) mean interest per category (for earlier answers)
    complement: np.ndarray                # (P, P) relation graph: shown A -> candidate B
    similarity: np.ndarray                # (P, P) catalogue similarity
    metadata: dict = field(default_factory=dict)
    name: str = "learned"

    @property
    def version(self) -> str:
        return f"learned-{self.metadata.get('trained_on', 'unknown')}"

    # -- features -------------------------------------------------------------------------------
    @staticmethod
    def feature_names() -> list[str]:
        names = ["surprise_same", "n_interested_same", "n_not_interested_same"]
        names += [f"surprise_{b}_from_{a}" for b in CROSS_SELL for a in CROSS_SELL if a != b]
        names += [f"n_interested_{b}_from_{a}" for b in CROSS_SELL for a in CROSS_SELL if a != b]
        names += ["complement_from_interested", "complement_from_rejected",
                  "similarity_from_interested", "similarity_from_rejected",
                  "n_already_owns_same", "n_already_owns_other"]
        return names

    def prior_interest(self, p: np.ndarray) -> np.ndarray:
        return _sigmoid(self.prior_intercept[None, :] + self.prior_slope * _logit(p))

    def features(self, sessions: Sessions) -> np.ndarray:
        return session_features(sessions, self.prior_interest(sessions.p), self.category_prior_rate,
                                 self.complement, self.similarity)

    def logits(self, sessions: Sessions) -> tuple[np.ndarray, np.ndarray]:
        """(base logit without feedback, full logit) for every (session, product)."""
        base = self.intercept[None, :] + self.slope * _logit(sessions.p)
        return base, base + self.features(sessions) @ self.weights

    def predict(self, sessions: Sessions) -> np.ndarray:
        return _sigmoid(self.logits(sessions)[1])

    def base_interest(self, p: np.ndarray) -> np.ndarray:
        """P(interested) of each product with no answers (from its stage-one probability)."""
        return _sigmoid(self.intercept[None, :] + self.slope * _logit(p))

    def interest(self, sessions: Sessions, p: np.ndarray) -> np.ndarray:
        """P(interested | the session's answers) of each product, ``p``: its current stage-one
        probability (after this session's holding corrections)."""
        return _sigmoid(self.intercept[None, :] + self.slope * _logit(p) + self.features(sessions) @ self.weights)

    def lift(self, sessions: Sessions) -> np.ndarray:
        base, full = self.logits(sessions)
        return _sigmoid(full) / np.maximum(_sigmoid(base), 1e-12)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        payload = {"products": list(self.products), "prior_intercept": self.prior_intercept.tolist(),
                   "prior_slope": self.prior_slope, "intercept": self.intercept.tolist(), "slope": self.slope,
                   "feature_names": self.feature_names(), "weights": self.weights.tolist(),
                   "category_prior_rate": self.category_prior_rate.tolist(),
                   "complement": self.complement.tolist(), "similarity": self.similarity.tolist(),
                   "metadata": self.metadata}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "LearnedReranker":
        raw = json.loads(Path(path).read_text())
        if raw["feature_names"] != cls.feature_names():
            raise ValueError(f"{path}: re-ranker features changed; retrain it")
        return cls(products=tuple(raw["products"]), prior_intercept=np.asarray(raw["prior_intercept"]),
                   prior_slope=float(raw["prior_slope"]), intercept=np.asarray(raw["intercept"]),
                   slope=float(raw["slope"]), weights=np.asarray(raw["weights"]),
                   category_prior_rate=np.asarray(raw["category_prior_rate"]),
                   complement=np.asarray(raw["complement"]), similarity=np.asarray(raw["similarity"]),
                   metadata=raw.get("metadata", {}))


def session_features(sessions: Sessions, prior_interest: np.ndarray, category_rate: np.ndarray,
                     complement: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """(n, P, F) feedback features of every candidate (order of ``LearnedReranker.feature_names``)."""
    ans = sessions.answers
    onehot = _onehot(_categories(sessions.products))              # (P, C)
    interested = (ans == INTERESTED).astype(float)
    rejected = (ans == NOT_INTERESTED).astype(float)
    owns = (ans == ALREADY_OWNS).astype(float)
    answered = interested + rejected
    surprise = answered * (interested - np.nan_to_num(prior_interest, nan=0.0))
    s_cat = surprise @ onehot                                      # (n, C)
    n_int, n_not, n_own = interested @ onehot, rejected @ onehot, owns @ onehot
    if sessions.prior is not None:                                 # earlier sessions' answers
        earlier_int = sessions.prior[:, 0, : len(CROSS_SELL)]
        earlier_not = sessions.prior[:, 1, : len(CROSS_SELL)]
        s_cat = s_cat + earlier_int * (1 - category_rate[None, :]) - earlier_not * category_rate[None, :]
        n_int, n_not = n_int + earlier_int, n_not + earlier_not
        n_own = n_own + sessions.prior[:, 2, : len(CROSS_SELL)]
    same = lambda per_cat: per_cat @ onehot.T                      # noqa: E731  (n, C) -> (n, P)
    feats = [same(s_cat), same(n_int), same(n_not)]
    for b in range(len(CROSS_SELL)):
        for a in range(len(CROSS_SELL)):
            if a != b:
                feats.append(s_cat[:, [a]] * onehot[None, :, b])
    for b in range(len(CROSS_SELL)):
        for a in range(len(CROSS_SELL)):
            if a != b:
                feats.append(n_int[:, [a]] * onehot[None, :, b])
    feats += [interested @ complement, rejected @ complement, interested @ similarity, rejected @ similarity,
              same(n_own), (n_own.sum(axis=1, keepdims=True) - same(n_own))]
    return np.stack(feats, axis=2)


def relation_inputs(products: Sequence[str], relations: Mapping[str, np.ndarray] | None,
                    catalogue: Catalogue | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(complement, similarity) (P, P) over ``products``: the model's relation graph and the
    catalogue's attribute similarity (0 on the diagonal)."""
    from ml.relations import attribute_similarity

    cat = catalogue or load_catalogue()
    pos = cat.indices(list(products))
    comp = np.zeros((len(products), len(products)))
    if relations and "complement" in relations:
        comp = np.asarray(relations["complement"], dtype=float)[np.ix_(pos, pos)]
    sim = np.array([[attribute_similarity(cat[a], cat[b])["attribute_similarity"] if a != b else 0.0
                     for b in products] for a in products])
    np.fill_diagonal(comp, 0.0)
    return comp, sim


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
    """(recommendations, feedback) of a feedback export folder (``serving/export.py`` layout)."""
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
    from ml.dataset import fetch_features
    from ml.feature_layout import STAGE_ONE_FEATURES
    from ml.recommend import StageOne, feature_store

    recs, feedback = load_logs(logs)
    products = tuple(model.products)
    frame, first, second = sessions_from_logs(recs, feedback, products)
    entities = pd.DataFrame({"customer_id": frame.customer_id, "snapshot_ts": pd.to_datetime(frame.created_at)})
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
    from ml.recommend import load_model

    started = time.perf_counter()
    model, folder = load_model(paths)
    logs = logs or log_dir(paths, interest_model)
    data, first_session = training_set(paths, logs, model, with_first=True)
    log(f"{len(data.customer_id):,} logged sessions from {logs} ({time.perf_counter() - started:.0f} s)")
    relations, graph_source = relation_graph(paths, first_session, model.relations)
    report = {}
    if validate:
        report = _validate(data, relations, c, validate, seed)
        log(f"validation on {validate:.0%} of customers: {report}")
    manifest = logs / "_manifest.json"
    source = json.loads(manifest.read_text()) if manifest.exists() else {}
    meta = {"trained_on": source.get("source", "logs"), "interest_model": source.get("interest_model"),
            "logs": str(logs), "model_version": model.metadata.get("version"),
            "validation": report, "C": c, "relation_graph": graph_source}
    reranker = fit(data, relations, c, meta)
    path = out or reranker_file(folder, interest_model)
    reranker.save(path)
    log(f"saved {path} ({time.perf_counter() - started:.0f} s): {reranker.metadata['weights']}")
    return path


def relation_graph(paths: Paths, before, fallback: Mapping[str, np.ndarray] | None
                   ) -> tuple[Mapping[str, np.ndarray] | None, str]:
    """The product relation graph (``ml.relations``) from every customer's holdings before the first
    logged session (raw events), or the model's own graph when the events are not available."""
    from ml.relations import RelationGraph, compute_relations, holdings_from_events

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


# ------------------------------------------------------------------------------------------------
# Simulated logs (development data only)
# ------------------------------------------------------------------------------------------------
def simulate_logs(paths: Paths, cutoffs: Sequence[date], k: int = 5, seed: int = 101,
                  out: Path | None = None, limit: int | None = None, interest_model: str | None = None) -> Path:
    """Write simulated sessions (stage one as served, simulated answers, exploration stage two)
    for the development bank's customers at ``cutoffs`` in the feedback-export format."""
    from ml.dataset import fetch_features
    from ml.datagen.feedback import DEFAULT_INTEREST_MODEL, FeedbackSimulator
    from ml.feature_layout import STAGE_ONE_FEATURES
    from ml.recommend import StageOne, feature_store, load_model

    interest_model = interest_model or DEFAULT_INTEREST_MODEL
    started = time.perf_counter()
    model, _ = load_model(paths)
    s1 = StageOne(model)
    out = out or log_dir(paths, interest_model)
    store = feature_store(paths)
    rng = np.random.default_rng(seed)
    rec_rows, fb_rows = [], []
    for cutoff in cutoffs:
        sim = FeedbackSimulator(paths.oracle, cutoff, seed=seed, interest_model=interest_model)
        ids = np.array(sorted(sim.customers()))
        if limit:
            ids = ids[:limit]
        created = datetime(cutoff.year, cutoff.month, cutoff.day, 10, 0, 0)
        features = fetch_features(store, pd.DataFrame({"customer_id": ids, "snapshot_ts": pd.Timestamp(created)}))
        features = features.set_index("customer_id").reindex(ids)
        ok = features["age"].notna().to_numpy()
        ids, x = ids[ok], features.loc[ok, list(STAGE_ONE_FEATURES)].to_numpy(np.float32)
        first = s1.score_batch(x, k)
        for i, cid in enumerate(ids):
            top = [int(j) for j in first.top[i] if j >= 0]
            if not top:
                continue
            remaining = np.flatnonzero(first.allowed[i] & ~np.isin(np.arange(len(s1.products)), top))
            if len(remaining) == 0:
                continue
            second = rng.choice(remaining, size=min(k, len(remaining)), replace=False).tolist()
            parent = _id("rec", seed, cid, cutoff, 1)
            for stage, shown, rid in ((1, top, parent), (2, second, _id("rec", seed, cid, cutoff, 2))):
                products = [s1.products[j] for j in shown]
                answers = sim.respond(cid, products)
                at = created + timedelta(minutes=5 * stage)
                for rank, (j, pid, response) in enumerate(zip(shown, products, answers), start=1):
                    p = float(first.probabilities[i, j])
                    rec_rows.append((rid, cid, "SIMULATED", stage, parent if stage == 2 else None, pid, rank, p,
                                     int(s1.match(np.array([p]), np.array([j]))[0]), s1.model_version, at))
                    fb_rows.append((_id("fb", seed, cid, cutoff, stage, pid), rid, cid, pid, "SIMULATED",
                                    response, at + timedelta(minutes=2), f"{rid}#{pid}"))
        log(f"{cutoff}: {len(ids):,} customers simulated ({time.perf_counter() - started:.0f} s)")
    _write_export(out, rec_rows, fb_rows, {"source": f"simulated-seed{seed}-{'+'.join(str(c) for c in cutoffs)}",
                                           "generator_seed": _generator_seed(paths), "k": k,
                                           "interest_model": interest_model,
                                           "stage_two_policy": "uniform over remaining suitable products"})
    return out


def _id(*parts) -> str:
    return hashlib.md5("|".join(map(str, parts)).encode()).hexdigest().upper()


def _generator_seed(paths: Paths):
    manifest = paths.raw / "_manifest.json"
    return json.loads(manifest.read_text()).get("seed") if manifest.exists() else None


def _write_export(out: Path, rec_rows: list, fb_rows: list, manifest: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from serving.export import SCHEMAS

    for name, rows in (("recommendations", rec_rows), ("feedback", fb_rows)):
        schema = SCHEMAS[name]
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        columns = list(zip(*rows)) if rows else [[] for _ in schema]
        table = pa.Table.from_arrays([pa.array(col, type=f.type) for col, f in zip(columns, schema)], schema=schema)
        pq.write_table(table, folder / "part-00000.parquet")
    counts = {"recommendations": len(rec_rows), "feedback": len(fb_rows)}
    (out / "_manifest.json").write_text(json.dumps({**manifest, "rows": counts}, indent=2))


def main(argv: list[str] | None = None) -> int:
    from ml.datagen.feedback import DEFAULT_INTEREST_MODEL, INTEREST_MODELS

    parser = argparse.ArgumentParser(prog="python -m ml.rerank", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate-logs", help="simulated feedback sessions on the development data")
    sim.add_argument("--cutoffs", nargs="+", default=["2025-02-01", "2025-03-01"])
    sim.add_argument("--k", type=int, default=5)
    sim.add_argument("--seed", type=int, default=101)
    sim.add_argument("--limit", type=int, default=None, help="customers per cut-off (default: all)")
    sim.add_argument("--out", type=Path, default=None)
    sim.add_argument("--interest-model", choices=INTEREST_MODELS, default=DEFAULT_INTEREST_MODEL,
                     help="the feedback simulator's interest model (ml.datagen.feedback)")
    tr = sub.add_parser("train", help="fit the learned re-ranker for the current model")
    tr.add_argument("--logs", type=Path, default=None,
                    help=f"feedback export folder (default: the interest model's data/{LOG_SUBDIR}[-MODEL])")
    tr.add_argument("--interest-model", choices=INTEREST_MODELS, default=DEFAULT_INTEREST_MODEL,
                    help="whose simulated sessions to train on (names the output reranker[-MODEL].json)")
    tr.add_argument("--C", type=float, default=1.0)
    tr.add_argument("--out", type=Path, default=None, help="where to save it (default: the model's reranker.json)")
    args = parser.parse_args(argv)
    paths = Paths.from_env()
    if args.command == "simulate-logs":
        print(simulate_logs(paths, [date.fromisoformat(c) for c in args.cutoffs], args.k, args.seed, args.out,
                            args.limit, args.interest_model))
    else:
        print(train(paths, args.logs, args.C, out=args.out, interest_model=args.interest_model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
