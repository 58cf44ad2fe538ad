"""Customer: lookup by id; profile, holdings, events, trigger windows, suppressions, history."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ... import audit_log as audit
from ... import workflow
from .. import context as ctx
from ..blueprint import bp, nav_item
from ..sessions import login_required

nav_item("console.lookup", _l("Customer"), 20)
HISTORY_LISTS = 20


@bp.get("/customers")
@login_required()
def lookup():
    """The lookup form; a submitted id goes to that customer's page."""
    customer_id = request.args.get("customer_id", "").strip()
    if customer_id:
        return redirect(url_for("console.customer", customer_id=customer_id))
    return render_template("console/lookup.html")


def history(customer_id: str) -> list[dict]:
    """The lists this customer was shown, newest first, each product with its latest answer."""
    svc = ctx.services()
    return [workflow.recommendation_body(rec, svc, svc.store.feedback_for(rec.recommendation_id))
            for rec in svc.store.customer_recommendations(customer_id, HISTORY_LISTS)]


@bp.get("/customers/<customer_id>")
@login_required()
def customer(customer_id: str):
    """Everything about one customer of the signed-in manager's book (any book for an admin)."""
    reach = ctx.scope()
    customer_id = ctx.customer_id_or_404(customer_id)
    audit.note([customer_id])  # refused attempts are recorded too
    view = ctx.in_book(lambda: workflow.customer_view(ctx.services(), customer_id, reach))
    return render_template("console/customer.html", view=view, history=history(customer_id),
                           may_recommend=reach.acting_manager is not None)


@bp.post("/customers/<customer_id>/recommend")
@login_required("manager")
def recommend(customer_id: str):
    """Stage one, logged exactly as through the API (with its audit row), then its page."""
    reach = ctx.scope()
    customer_id = ctx.customer_id_or_404(customer_id)
    audit.note([customer_id])
    body = ctx.in_book(lambda: workflow.stage_one(ctx.services(), customer_id, 5, reach, False,
                                                  reads=audit.rows(302)))
    audit.recorded()  # logged with the list
    g.log_recommendation_id = body["recommendation_id"]
    if not body["products"]:
        flash(_("No suitable product is open to this customer right now."), "info")
    return redirect(url_for("console.recommendation", recommendation_id=body["recommendation_id"]))
