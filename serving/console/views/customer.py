"""Customer: lookup by id; profile, holdings, events, trigger windows, suppressions, history."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

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
    out = []
    for rec in svc.store.customer_recommendations(customer_id, HISTORY_LISTS):
        out.append(workflow.recommendation_body(rec, svc, svc.store.feedback_for(rec.recommendation_id)))
    return out


@bp.get("/customers/<customer_id>")
@login_required()
def customer(customer_id: str):
    """Everything about one customer of the manager's book."""
    customer_id = ctx.customer_id_or_404(customer_id)
    ctx.require_visible(customer_id)
    svc = ctx.services()
    view = workflow.customer_view(svc, customer_id)
    books = ctx.books()
    return render_template("console/customer.html", view=view, history=history(customer_id),
                           manager_id=books.manager_of(customer_id), branch=books.branch_of(customer_id),
                           catalogue=svc.catalogue)


@bp.post("/customers/<customer_id>/recommend")
@login_required()
def recommend(customer_id: str):
    """Stage one, logged exactly as through the API, then its page."""
    customer_id = ctx.customer_id_or_404(customer_id)
    ctx.require_visible(customer_id)
    body = workflow.stage_one(ctx.services(), customer_id, 5, ctx.acting_manager(), False)
    if not body["products"]:
        flash(_("No suitable product is open to this customer right now."), "info")
    return redirect(url_for("console.recommendation", recommendation_id=body["recommendation_id"]))
