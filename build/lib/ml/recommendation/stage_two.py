"""Stage two, vectorised: re-rank the products not yet shown with the answers on the shown ones.

"already owns" answers become holding corrections first; shown and suppressed products are
blocked; suitability stays a hard mask. By default the learned re-ranker's P(interested | answers)
ranks (the two-step accuracy the bank measures); ``objective="value"`` keeps stage one's.
"""
from __future__ import annotations

import numpy as np

from ml.recommendation.rerankers import ALREADY_OWNS, Sessions
from ml.recommendation.stage_one import (
    TIE_EPS,
    BatchLists,
    StageOne,
    apply_reported_holdings,
)

STAGE_TWO_CHUNK = 100_000  # customers per stage-two block in batch mode (about 0.5 GB of re-ranker features)


# ------------------------------------------------------------------------------------------------
# Stage two, vectorised
# ------------------------------------------------------------------------------------------------
def shown_mask(top: np.ndarray, n_products: int) -> np.ndarray:
    """(n, K) ranked product positions, padded with -1 in short lists -> (n, P) bool "was shown"."""
    shown = np.zeros((len(top), n_products), dtype=bool)
    rows, slots = np.nonzero(top >= 0)
    shown[rows, top[rows, slots]] = True
    return shown


def stage_two_batch(stage_one: StageOne, reranker, x: np.ndarray, shown: np.ndarray, answers: np.ndarray, k: int,
                    reported: np.ndarray | None = None, blocked: np.ndarray | None = None,
                    prior: np.ndarray | None = None, p_first: np.ndarray | None = None,
                    raw_first: np.ndarray | None = None, objective: str = "interest") -> BatchLists:
    """Stage two for many customers.

    ``x``: features as at stage one (before this session's corrections); ``shown`` (n, P) bool and
    ``answers`` (n, P) int8 codes (``ml.recommendation.rerankers.ANSWER_CODES``) over the model's products;
    ``reported``: (n, P_all) products known held *before* the session; ``blocked``: (n, P)
    suppressed products; ``prior``: (n, 3, 4) earlier feedback counts; ``p_first`` / ``raw_first``:
    the stage-one calibrated / raw probabilities of every product (computed when not given);
    ``objective``: ``interest`` ranks by the re-ranker's P(interested | answers) when it has an
    interest model (``probabilities`` are then interest probabilities, ``kind="interest"``),
    ``value`` by probability x lift x value. Answers "already owns" become holding corrections;
    shown products are never shown again.
    """

    if len(x) > STAGE_TWO_CHUNK:  # the re-ranker's (n, P, features) array: bounded memory for the nightly batch
        parts = []
        for start in range(0, len(x), STAGE_TWO_CHUNK):
            cut = slice(start, start + STAGE_TWO_CHUNK)
            pick = lambda a: None if a is None else a[cut]  # noqa: E731
            parts.append(stage_two_batch(stage_one, reranker, x[cut], shown[cut], answers[cut], k, pick(reported),
                                         pick(blocked), pick(prior), pick(p_first), pick(raw_first), objective))
        return BatchLists(*(np.concatenate([getattr(b, f) for b in parts]) for f in ("top", "probabilities",
                                                                                     "allowed", "x", "raw")),
                          kind=parts[0].kind)
    x_first = apply_reported_holdings(x, reported, stage_one.catalogue)
    if p_first is None:
        p_first, raw_first = stage_one.predict(x_first)
    else:
        raw_first = raw_first if raw_first is not None else np.zeros_like(p_first)
    owns = np.zeros((len(x), len(stage_one.catalogue)), dtype=bool)
    owns[:, stage_one.positions] = answers == ALREADY_OWNS
    now = owns if reported is None else (owns | reported)
    x_now = apply_reported_holdings(x, now, stage_one.catalogue)
    elig = stage_one.eligibility(x_now, now)
    block = shown.copy() if blocked is None else (shown | blocked)
    allowed = stage_one.allowed(elig, block)
    p_now, raw_now = p_first.copy(), raw_first.copy()
    changed = owns.any(axis=1)
    if changed.any():
        p_now[changed], raw_now[changed] = stage_one.predict(x_now[changed])
    sessions = Sessions(products=stage_one.products, p=p_first, answers=answers, prior=prior)
    interest = getattr(reranker, "interest", None)
    if objective == "interest" and interest is not None:
        score = np.where(allowed, interest(sessions, p_now), np.nan)
        with np.errstate(invalid="ignore", over="ignore"):
            key = np.nan_to_num(score, nan=-np.inf) + TIE_EPS * np.nan_to_num(raw_now)
        top = stage_one.rank(key, allowed, k)
        return BatchLists(top=top, probabilities=score, allowed=allowed, x=x_now, raw=raw_now, kind="interest")
    lift = reranker.lift(sessions)
    p2 = np.where(allowed, p_now * lift, np.nan)
    top = stage_one.rank(stage_one.ranking_key(p2, raw_now * lift), allowed, k)
    return BatchLists(top=top, probabilities=p2, allowed=allowed, x=x_now, raw=raw_now * lift)
