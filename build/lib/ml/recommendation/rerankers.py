"""Stage-two policies: how the answers on the shown products re-rank the ones not yet shown.

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

Training data are sessions in the feedback-export format (``ml.core.feedback_log``): a stage-one
recommendation, its answers, and a stage-two recommendation (``parent_recommendation_id``) with its
answers. Features of each session are re-read point-in-time from Feast at the recommendation's
``created_at`` and scored by the current model. Until the bank has such logs, ``ml.evaluation.simulated_logs``
writes them from the development data: stage one as served, answers from the generator's feedback
simulator (oracle; development customers and cut-offs only), and an *exploration* stage two (K
products drawn uniformly from the remaining suitable ones) so every candidate is seen with every
kind of feedback. Evaluation (``ml.evaluation.replay``) runs on a bank of another generator seed.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.core.catalogue import Catalogue, load_catalogue
from ml.recommendation.config import RecommendConfig
from ml.relations import attribute_similarity

INTERESTED, NOT_INTERESTED, ALREADY_OWNS = 1, 2, 3

ANSWER_CODES = {"interested": INTERESTED, "not_interested": NOT_INTERESTED, "already_owns": ALREADY_OWNS}

ANSWER_NAMES = {v: k for k, v in ANSWER_CODES.items()}

CROSS_SELL = ("protection", "credit", "wealth")


EPS = 1e-6


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

    cat = catalogue or load_catalogue()
    pos = cat.indices(list(products))
    comp = np.zeros((len(products), len(products)))
    if relations and "complement" in relations:
        comp = np.asarray(relations["complement"], dtype=float)[np.ix_(pos, pos)]
    sim = np.array([[attribute_similarity(cat[a], cat[b])["attribute_similarity"] if a != b else 0.0
                     for b in products] for a in products])
    np.fill_diagonal(comp, 0.0)
    return comp, sim


def load_reranker(model_dir: Path, config: RecommendConfig):
    """The configured stage-two strategy for a model version; without a trained re-ranker
    (``reranker.json`` next to the model) the category rule on the stage-one probabilities."""

    path = model_dir / "reranker.json"
    learned = LearnedReranker.load(path) if path.exists() else None
    if config.stage_two == "one_step":
        return OneStep()
    if config.stage_two == "rule" or learned is None:
        return CategoryRule(prior=learned)
    return learned
