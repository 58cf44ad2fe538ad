"""One clock for what an answer says about time: the "as of" date.

``LINGXI_AS_OF`` chooses it: ``now`` (production: today in ``LINGXI_TIMEZONE``), ``data`` (the
date the served snapshot's data was cut, ``customer_360.as_of_ts``: a demo over last year's
synthetic bank reads as if it were that day) or a fixed ``YYYY-MM-DD``. Suppressions (their
since / until), the days in reasons and trigger windows, the call list and the dashboard's default
range all count on it. Records keep the wall clock (a list's ``created_at``, an answer's
``recorded_at``, the audit log): the as-of calendar is the wall calendar moved by a whole number of
days (``offset_days``), so a "not interested" still expires after exactly ``LINGXI_SUPPRESSION_DAYS``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class AsOfSetting:
    mode: str                 # "now" | "data" | "date"
    fixed: date | None = None

    @classmethod
    def parse(cls, text: str | None) -> "AsOfSetting":
        value = (text or "now").strip().lower()
        if value in ("now", "data"):
            return cls(value)
        if DATE.fullmatch(value):
            return cls("date", date.fromisoformat(value))
        raise ValueError(f"LINGXI_AS_OF must be now, data or a date YYYY-MM-DD (got {text!r})")


def data_date(snapshot_as_of: str | None, timezone: str) -> date | None:
    """The local date the snapshot's data was cut (None when the mart does not say)."""
    if not snapshot_as_of:
        return None
    try:
        moment = datetime.fromisoformat(snapshot_as_of)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(ZoneInfo(timezone)).date()


@dataclass(frozen=True)
class AsOf:
    """The as-of date of one request, with the numbers that convert to and from the wall calendar."""

    date: date                   # the answer's "today"
    offset_days: int             # as-of date - wall date (0 in production)
    data_date: date | None       # when the snapshot's data was cut
    mode: str

    @property
    def data_age_days(self) -> int:
        """Days from the data's date to the as-of date: add to a "days since" of the snapshot."""
        return (self.date - self.data_date).days if self.data_date is not None else 0

    def shift(self, moment: datetime | None) -> datetime | None:
        """A wall-clock moment on the as-of calendar."""
        return None if moment is None else moment + timedelta(days=self.offset_days)

    def to_wall(self, day: date) -> date:
        return day - timedelta(days=self.offset_days)

    def body(self) -> dict[str, object]:
        return {"date": self.date.isoformat(), "source": self.mode,
                "data_date": self.data_date.isoformat() if self.data_date else None}


def resolve(setting: AsOfSetting, wall_now: datetime, timezone: str, snapshot_as_of: str | None) -> AsOf:
    wall_today = wall_now.astimezone(ZoneInfo(timezone)).date()
    cut = data_date(snapshot_as_of, timezone)
    if setting.mode == "date" and setting.fixed is not None:
        day = setting.fixed
    elif setting.mode == "data" and cut is not None:
        day = cut
    else:
        day = wall_today
    return AsOf(day, (day - wall_today).days, cut, setting.mode)
