"""Data sources: Parquet the pipeline writes under $LINGXI_DATA_DIR, and the feedback push.

Paths are resolved from the environment when `feast apply` imports this file; nothing is read.
"""
import os
from pathlib import Path

from feast import Field, FileSource, PushSource, RequestSource
from feast.types import UnixTimestamp

_SOURCES = Path(os.environ.get("LINGXI_DATA_DIR", "data")).resolve() / "feast" / "sources"

customer_feature_vectors = FileSource(
    name="customer_feature_vectors",
    path=str(_SOURCES / "customer_feature_vectors.parquet"),
    timestamp_field="snapshot_ts",
    description="Monthly point-in-time snapshots plus the current one, as model-input vectors.",
    owner="analytics-engineering@lingxi",
    tags={"dbt_model": "customer_features_monthly", "built_by": "ml.features"},
)

customer_feedback_history = FileSource(
    name="customer_feedback_history",
    path=str(_SOURCES / "customer_feedback.parquet"),
    timestamp_field="event_timestamp",
    description="Per-customer feedback aggregates after each recorded answer (from the feedback store).",
    owner="ml-platform@lingxi",
    tags={"dbt_source": "feedback", "built_by": "ml.features"},
)

customer_feedback_push = PushSource(
    name="customer_feedback_push",
    batch_source=customer_feedback_history,
    description="Serving pushes a customer's updated feedback aggregates the moment feedback is stored.",
    owner="ml-platform@lingxi",
)

contact_context = RequestSource(
    name="contact_context",
    schema=[Field(name="contact_ts", dtype=UnixTimestamp, description="When the manager is talking to the customer.")],
    description="Request-time inputs sent by the CRM.",
    owner="ml-platform@lingxi",
)
