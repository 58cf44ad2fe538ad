"""Recommend: stage one as cards, answers per product, stage two on the same page."""
from __future__ import annotations

import uuid

from flask import g, redirect, render_template, request, url_for

from ml.recommendation.contract import RESPONSES

from ... import audit_log as audit
from ... import workflow
from ...errors import ApiError
from ...store import Recommendation
from ...validation import HEX32, IDEMPOTENCY_KEY
from .. import context as ctx
from ..blueprint import bp
from ..sessions import login_required

K = 5


def _load(recommendation_id: str) -> Recommendation:
    """The logged list, if its customer is in the signed-in manager's book (any list for an admin)."""
    if not HEX32.fullmatch(recommendation_id):
        raise ctx.refusal("unknown_recommendation")
    rec = ctx.in_book(lambda: workflow.load_recommendation(ctx.services(), recommendation_id.upper(), g.scope))
    audit.note([rec.customer_id])
    return rec


def _body(rec: Recommendation) -> dict:
    svc = ctx.services()
    return workflow.recommendation_body(rec, svc, svc.store.feedback_for(rec.recommendation_id))


def _answers() -> list[tuple[str, str]]:
    """(product, response) for every card answered (fields ``answer-<product id>``)."""
    items = [(key[len("answer-"):], value) for key, value in request.form.items()
             if key.startswith("answer-") and value in RESPONSES]
    if not items:
        raise ApiError(422, "no_answers", "choose an answer for at least one product")
    return items


@bp.get("/recommendations/<recommendation_id>")
@login_required()
def recommendation(recommendation_id: str):
    """A logged list as cards; ``then`` names the stage-two list made from it, shown below."""
    ctx.scope()
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
    reach = ctx.scope()
    if reach.acting_manager is None:
        raise ApiError(403, "manager_only", "only a manager records answers")
    rec = _load(recommendation_id)
    key = request.form.get("idempotency_key", "")
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(400, "invalid_value", "the form's key is missing")
    svc = ctx.services()
    workflow.record_feedback(svc, rec, reach.acting_manager, key, _answers(), g.principal.caller)
    second = None
    if rec.stage == 1:
        second = workflow.stage_two(svc, rec, K, reach.acting_manager, False, reads=audit.rows(200))
        audit.recorded()  # logged with the list
    if not ctx.is_htmx():  # without JavaScript: back to the page, both lists on it
        first_id = rec.parent_recommendation_id if rec.stage == 2 else rec.recommendation_id
        second_id = rec.recommendation_id if rec.stage == 2 else second["recommendation_id"]
        return redirect(url_for("console.recommendation", recommendation_id=first_id, then=second_id))
    return render_template("console/_stage_two.html", rec=second or _body(rec), saved=True,
                           form_key=uuid.uuid4().hex)
