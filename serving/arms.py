"""Which engine answers a request: the champion, the challenger or the control's rule ranking.

A customer's arm is stable (``ml.engine.arms.assign``: a hash of the id with the experiment's
salt). A challenger exists only when the served version carries one (``engine.challenger``); while
it does, every request it does not serve is scored by it too, and that shadow list is logged with
the served one, never shown. Stage two stays in the arm of its stage-one list: the challenger
re-ranks its own lists, the control ranks the next products by the rule score.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

from ml.engine.arms import CHALLENGER, CHAMPION, CONTROL, ArmShares, assign
from ml.recommendation.contract import ALREADY_HELD, Ranking, RecommendationEngine

from .store import Recommendation, ShadowList

log = logging.getLogger("lingxi.serving")


def stage_one(engine: RecommendationEngine, shares: ArmShares, customer_id: str, k: int, explain: bool,
              suppressed: Mapping[str, str]) -> tuple[str, Ranking, ShadowList | None]:
    """(arm, the list served, the challenger's shadow list or None)."""
    challenger = getattr(engine, "challenger", None)
    arm = assign(customer_id, shares, has_challenger=challenger is not None)
    if arm == CONTROL and not hasattr(engine, "stage_one_control"):
        arm = CHAMPION  # an engine without the rule ranking has no control arm
    if arm == CONTROL:
        ranking = engine.stage_one_control(customer_id, k, suppressed=suppressed)
    else:
        ranking = (challenger if arm == CHALLENGER else engine).stage_one(
            customer_id, k, explain_exclusions=explain, suppressed=suppressed)
    shadow = _shadow(challenger, customer_id, k, suppressed) if challenger is not None and arm != CHALLENGER else None
    return arm, ranking, shadow


def stage_two(engine: RecommendationEngine, parent: Recommendation, feedback: Mapping[str, str], k: int,
              explain: bool, suppressed: Mapping[str, str]) -> tuple[str | None, Ranking]:
    """(arm, the re-ranked list) in the arm of the stage-one list ``parent``."""
    shown = [p.product_id for p in parent.products]
    challenger = getattr(engine, "challenger", None)
    arm = parent.arm
    if arm == CHALLENGER and challenger is None:
        arm = CHAMPION  # the challenger was promoted or withdrawn since
    if arm == CONTROL and hasattr(engine, "stage_one_control"):
        held = {p: ALREADY_HELD for p, r in feedback.items() if r == "already_owns"}
        return arm, engine.stage_one_control(parent.customer_id, k, suppressed={**suppressed, **held},
                                             also_blocked=shown)
    if arm == CONTROL:
        arm = CHAMPION
    target = challenger if arm == CHALLENGER else engine
    return arm, target.stage_two(parent.customer_id, shown, feedback, k, explain_exclusions=explain,
                                 suppressed=suppressed)


def _shadow(challenger: RecommendationEngine, customer_id: str, k: int,
            suppressed: Mapping[str, str]) -> ShadowList | None:
    """The challenger's list for this request (a failure only costs the log, never the request)."""
    try:
        ranking = challenger.stage_one(customer_id, k, suppressed=suppressed)
    except Exception as exc:  # noqa: BLE001
        log.warning("shadow scoring failed: %s", type(exc).__name__, extra={"event": "shadow_failed"})
        return None
    return ShadowList(CHALLENGER, ranking.model_version, tuple(p.product_id for p in ranking.products[:k]))
