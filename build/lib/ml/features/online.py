"""One customer's features from the Feast online store (the API's read path)."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd

from ml.features.layout import FEEDBACK_COLUMNS, VECTOR_FEATURE

FEEDBACK_VIEW = "customer_feedback"


class CustomerNotFound(LookupError):
    """The online store has no snapshot for this customer (never a row of nulls)."""


class OnlineFeatures:
    """Serving's view of the feature store: one customer's ``stage_one_v1`` features, and push."""

    PUSH_SOURCE = "customer_feedback_push"

    def __init__(self, store, service: str = "stage_one_v1"):
        self.store = store
        self.service = store.get_feature_service(service)

    def get(self, customer_id: str, contact_ts: datetime | None = None) -> dict:
        contact_ts = contact_ts or datetime.now(timezone.utc)
        row = self.store.get_online_features(
            features=self.service, entity_rows=[{"customer_id": customer_id, "contact_ts": contact_ts}]).to_dict()
        values = {name: column[0] for name, column in row.items()}
        if not values.get(VECTOR_FEATURE):
            raise CustomerNotFound(customer_id)
        return values

    def push_feedback(self, aggregates: pd.DataFrame) -> int:
        """Write customers' feedback aggregates (columns as customer_feedback) to the online store,
        except where the online row is as new or newer; returns the number of customers written.

        A customer's answers only ever grow, so "newer" is more answers counted, then a later last
        answer: an older count never overwrites a newer one, whichever worker pushes it late. The
        read and the write are two steps: callers that push concurrently hold one lock around them
        (serving's ``push_lock``)."""
        from feast.data_source import PushMode

        if aggregates.empty:
            return 0
        newer = self._newer(aggregates)
        if newer.any():
            self.store.push(self.PUSH_SOURCE, aggregates[newer], to=PushMode.ONLINE)
        return int(newer.sum())

    def _newer(self, aggregates: pd.DataFrame) -> np.ndarray:
        names = [*FEEDBACK_COLUMNS, "fb_last_response_ts"]
        online = self.store.get_online_features(
            features=[f"{FEEDBACK_VIEW}:{name}" for name in names],
            entity_rows=[{"customer_id": c} for c in aggregates["customer_id"]]).to_dict()
        count_online = np.sum([[v or 0 for v in online[c]] for c in FEEDBACK_COLUMNS], axis=0)
        count_new = aggregates[list(FEEDBACK_COLUMNS)].to_numpy().sum(axis=1)
        last_online, last_new = _utc(online["fb_last_response_ts"]), _utc(aggregates["fb_last_response_ts"])
        later = (last_online.isna() | (last_new > last_online)).to_numpy()
        return (count_new > count_online) | ((count_new == count_online) & later)


def _utc(values) -> pd.Series:
    """Timestamps as Feast returns or takes them (datetimes, epoch seconds or None) -> UTC series."""
    series = pd.Series(list(values), dtype=object)
    if series.map(lambda v: isinstance(v, (int, float, np.integer, np.floating))).any():
        series = series.map(lambda v: pd.Timestamp(v, unit="s", tz="UTC") if v is not None else None)
    return pd.to_datetime(series, utc=True)
