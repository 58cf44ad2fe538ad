"""On-demand features: combine stored feedback with the time of the current contact."""
from feast import Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64

from data_sources import contact_context
from features import customer_feedback


@on_demand_feature_view(
    sources=[customer_feedback, contact_context],
    schema=[Field(name="days_since_last_contact", dtype=Float64),
            Field(name="contacted_last_30d", dtype=Int64)],
    mode="python",  # row-at-a-time: cheaper than pandas for single-customer serving requests
    description="Contact recency at request time: the bank's contact policy limits calls within 30 days.",
    owner="ml-platform@lingxi",
)
def contact_recency(inputs: dict) -> dict:
    # Feast ships this function by its source: everything it needs is imported inside it.
    from datetime import datetime, timezone

    def as_utc(value):
        if value is None:
            return None
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, tz=timezone.utc)
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    days, recent = [], []
    for last, now in zip(inputs["fb_last_response_ts"], inputs["contact_ts"]):
        last, now = as_utc(last), as_utc(now)
        gap = None if last is None or now is None else (now - last).total_seconds() / 86400.0
        days.append(gap)
        recent.append(int(gap is not None and gap <= 30))
    return {"days_since_last_contact": days, "contacted_last_30d": recent}
