"""Today: the manager's call list (or an admin's view of any manager's), or a segment's."""
from __future__ import annotations

import numpy as np
from flask import current_app, render_template, request
from flask_babel import lazy_gettext as _l

from ... import audit_log as audit
from ... import call_list
from .. import context as ctx
from ..blueprint import bp, nav_item
from ..segment_form import MAX_CALL_LIST_CUSTOMERS, filter_args, segment_matches
from ..sessions import login_required

nav_item("console.today", _l("Today"), 10)


def policy() -> call_list.ContactPolicy:
    config = current_app.config
    return call_list.ContactPolicy(cooldown_days=int(config["LINGXI_CONTACT_COOLDOWN_DAYS"]),
                                   min_match=int(config["LINGXI_CALL_LIST_MIN_MATCH"]))


def _page_number() -> int:
    try:
        return max(1, int(request.args.get("page", "1")))
    except ValueError:
        return 1


@bp.get("/today")
@login_required()
def today():
    """Customers to call now, ranked by expected value, each with why now."""
    svc = ctx.services()
    reach = ctx.scope(request.args.get("manager"))
    from_segment = request.args.get("source") == "segment"
    snapshot = svc.snapshot()
    truncated = False
    if from_segment:
        matches, truncated = segment_matches(snapshot, request.args, reach)
        rows = np.flatnonzero(matches)
        truncated = truncated or len(rows) > MAX_CALL_LIST_CUSTOMERS
        ids = [snapshot.ids[i].decode("ascii") for i in rows[:MAX_CALL_LIST_CUSTOMERS]]
    else:
        ids = ctx.book_ids(reach.book)  # an admin picks a book first: the whole bank is not one call list
    result = call_list.build(svc, ctx.nightly(), ids, policy(), every_customer=from_segment)
    size = int(current_app.config["LINGXI_CALL_LIST_SIZE"])
    pages = max(1, -(-len(result.entries) // size))
    page = min(_page_number(), pages)
    entries = result.entries[(page - 1) * size: page * size]
    audit.note(e.customer_id for e in entries)
    return render_template(
        "console/today.html", result=result, entries=entries, first_rank=(page - 1) * size + 1, page=page,
        pages=pages, manager_id=reach.book, managers=ctx.managers(),
        book_size=int(snapshot.books.mask(reach.book).sum()) if reach.book else None,
        from_segment=from_segment, truncated=truncated, policy=policy(), window_days=svc.trigger_window_days,
        segment_limit=min(MAX_CALL_LIST_CUSTOMERS, ctx.segment_cap(reach) or MAX_CALL_LIST_CUSTOMERS),
        filters=filter_args(request.args))
