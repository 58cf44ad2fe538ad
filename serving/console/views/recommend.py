"""Recommend: stage one as cards, answers per product, stage two on the same page."""
from __future__ import annotations

import uuid

from flask import redirect, render_template, request, url_for

from ml.recommendation.contract import RESPONSES

from ... import workflow
from ...errors import ApiError
from ...store import Recommendation
from ...validation import HEX32, IDEMPOTENCY_KEY
from .. import context as ctx
from ..blueprint import bp
from ..sessions import login_required

K = 5


def _load(recommendation_id: str) -> Recommendation:
    """The logged list, if its customer is in the signed-in manager's book."""
    if not HEX32.fullmatch(recommendation_id):
        raise ApiError(404, "unknown_recommendation", "no recommendation with this id")
    rec = workflow.load_recommendation(ctx.services(), recommendation_id.upper())
    ctx.require_visible(rec.customer_id)
    return rec


def _body(rec: Recommendation) -> dict:
    svc = ctx.services()
    return workflow.recommendation_body(rec, svc, svc.store.feedback_for(rec.recommendation_id))


def _answers() -> list[tuple[str, str]]:
    """(product, response) for every card answered (fields ``answer-<product id>``)."""
    items = []
    for key, value in request.form.items():
        if key.startswith("answer-") and value in RESPONSES:
            items.append((key[len("answer-"):], value))
    if not items:
        raise ApiError(422, "no_answers", "choose an answer for at least one product")
    return items


@bp.get("/recommendations/<recommendation_id>")
@login_required()
def recommendation(recommendation_id: str):
    """A logged list as cards; ``then`` names the stage-two list made from it, shown below."""
    rec = _load(recommendation_id)
    second = _load(request.args["then"]) if request.args.get("then") else None
    if second is not None and second.parent_recommendation_id != rec.recommendation_id:
        second = None
    return render_template("console/recommend.html", first=_body(rec),
                           second=_body(second) if second is not None else None, form_key=uuid.uuid4().hex)


@bp.post("/recommendations/<recommendation_id>/answers")
@login_required()
def answers(recommendation_id: str):
    """Record the answers (idempotent by the form's key), then re-rank: stage two appears below."""
    rec = _load(recommendation_id)
    manager_id = ctx.acting_manager()
    if manager_id is None:
        raise ApiError(403, "manager_only", "only a manager records answers")
    key = request.form.get("idempotency_key", "")
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(400, "invalid_value", "the form's key is missing")
    svc = ctx.services()
    workflow.record_feedback(svc, rec, manager_id, key, _answers())
    second = workflow.stage_two(svc, rec, K, manager_id, False) if rec.stage == 1 else None
    if not ctx.is_htmx():  # without JavaScript: back to the page, both lists on it
        first_id = rec.parent_recommendation_id if rec.stage == 2 else rec.recommendation_id
        second_id = rec.recommendation_id if rec.stage == 2 else second["recommendation_id"]
        return redirect(url_for("console.recommendation", recommendation_id=first_id, then=second_id))
    return render_template("console/_stage_two.html", rec=second or _body(rec), saved=True,
                           form_key=uuid.uuid4().hex)

