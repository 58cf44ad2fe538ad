"""One customer's features from the Feast online store (the API's read path)."""
from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from ml.features.layout import VECTOR_FEATURE


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

    def push_feedback(self, aggregates: "pd.DataFrame") -> None:
        """Write customers' new feedback aggregates (columns as customer_feedback) to the online store."""
        from feast.data_source import PushMode

        self.store.push(self.PUSH_SOURCE, aggregates, to=PushMode.ONLINE)
