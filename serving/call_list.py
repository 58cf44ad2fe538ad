"""A manager's call list: whom to call today and why now.

From a set of customers (a manager's book, or a segment), keep those with a reason to call now — an
open trigger window (salary credit, deposit maturity, card replacement: the snapshot's trigger
columns within ``trigger_window_days``) or a high match score in the nightly stage-one lists — and
leave out the products a customer has declined or already owns (the same suppression rule as stage
one) and customers shown a list within the contact policy's cool-down. Rank by expected value: the
nightly score (probability x product value) of the best product still open to the customer.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from .nightly_lists import NightlyLists, Proposal
from .workflow import Services, suppressions_from

HIGH_SCORE = "high_score"


@dataclass(frozen=True)
class ContactPolicy:
    cooldown_days: int = 14   # no new call within this many days of the last list shown
    min_match: int = 80       # a nightly match score this high is a reason to call


@dataclass
class CallEntry:
    customer_id: str
    why_now: list[dict[str, Any]]   # {"reason": trigger name or "high_score", "days": .., "match_score": ..}
    proposal: Proposal | None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def expected_value(self) -> float:
        return self.proposal.expected_value if self.proposal else 0.0


@dataclass
class CallList:
    entries: list[CallEntry]
    considered: int
    left_out_contacted: int
    left_out_suppressed: int
    nightly_as_of: datetime | None


def _rows(snapshot, customer_ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The ids found in the snapshot and their rows (vectorised: a book has thousands of customers)."""
    if not len(customer_ids) or not snapshot.rows:
        return [], np.empty(0, dtype=np.int64)
    keys = np.asarray([c.upper() for c in customer_ids], dtype="S32")
    at = np.minimum(np.searchsorted(snapshot.ids, keys), snapshot.rows - 1)
    found = snapshot.ids[at] == keys
    return [customer_ids[j] for j in np.flatnonzero(found)], at[found]


def _open_windows(services: Services, snapshot, rows: np.ndarray) -> list[list[dict[str, Any]]]:
    """Per row, its open trigger windows (days since the event within the window), soonest first."""
    window = services.trigger_window_days
    days = {trigger: snapshot.days_since[trigger][rows].tolist() for trigger in snapshot.days_since}
    out = []
    for j in range(len(rows)):
        open_ = [(d, trigger) for trigger, values in days.items() if (d := values[j]) == d and d <= window]
        out.append([{"reason": trigger, "days": int(d)} for d, trigger in sorted(open_)])
    return out


def build(services: Services, nightly: NightlyLists, customer_ids: Sequence[str], policy: ContactPolicy, *,
          every_customer: bool = False) -> CallList:
    """The call list over ``customer_ids``. ``every_customer``: keep customers without a trigger or a
    high score too (a segment turned into a call list), still ranked by expected value."""
    snapshot = services.snapshot()
    now = services.clock()
    ids, rows = _rows(snapshot, customer_ids)
    windows = _open_windows(services, snapshot, rows)
    lists = nightly.lists(ids)
    judgements = services.store.judgements_of(ids)
    contacted = services.store.last_contacts(ids, now - timedelta(days=policy.cooldown_days))
    entries: list[CallEntry] = []
    left_contacted = left_suppressed = 0
    for cid, i, why in zip(ids, rows.tolist(), windows):
        listed = lists.get(cid, [])
        suppressed = suppressions_from(services, judgements[cid]) if cid in judgements else {}
        proposal = next((p for p in listed if p.product_id not in suppressed), None)
        if proposal is not None and proposal.match_score >= policy.min_match:
            why = why + [{"reason": HIGH_SCORE, "match_score": proposal.match_score}]
        if not why and not every_customer:
            continue
        if cid in contacted:
            left_contacted += 1
            continue
        if proposal is None and listed:
            left_suppressed += 1  # every product the nightly run found is declined or owned
            continue
        entries.append(CallEntry(cid, why, proposal, snapshot.summary(i)))
    entries.sort(key=lambda e: (-e.expected_value, _soonest(e), e.customer_id))
    return CallList(entries, len(ids), left_contacted, left_suppressed, nightly.as_of())


def _soonest(entry: CallEntry) -> float:
    days = [w["days"] for w in entry.why_now if w.get("days") is not None]
    return float(min(days)) if days else np.inf

