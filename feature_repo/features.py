"""Feature views: model inputs per snapshot, and feedback aggregates fed by push."""
from datetime import timedelta

from feast import FeatureView, Field
from feast.types import Array, Float32, Int64, String, UnixTimestamp

from data_sources import customer_feature_vectors, customer_feedback_push
from entities import customer
from ml.features.layout import FEEDBACK_COLUMNS, LAST_ANSWERS_FEATURE, STAGE_ONE_FEATURES, VECTOR_FEATURE

customer_features = FeatureView(
    name="customer_features",
    entities=[customer],
    ttl=timedelta(days=45),  # monthly snapshots: a row older than a month and a half is stale
    schema=[Field(name=VECTOR_FEATURE, dtype=Array(Float32),
                  description="Model inputs in the order of ml.features.layout.STAGE_ONE_FEATURES "
                              f"({len(STAGE_ONE_FEATURES)} values; NaN = never happened).")],
    source=customer_feature_vectors,
    online=True,
    description="Profile, holdings, recency/frequency/monetary, channels, activity and triggers at a snapshot.",
    owner="ml-platform@lingxi",
    tags={"dbt_model": "customer_features_monthly", "layout": "ml.features.layout"},
)

customer_feedback = FeatureView(
    name="customer_feedback",
    entities=[customer],
    ttl=timedelta(days=365),
    schema=[Field(name=name, dtype=Int64) for name in FEEDBACK_COLUMNS]
    + [Field(name="fb_last_response_ts", dtype=UnixTimestamp,
             description="When the customer last answered a manager."),
       Field(name=LAST_ANSWERS_FEATURE, dtype=Array(String),
             description="The latest answer to each product, as PRODUCT_ID=response, sorted by product.")],
    source=customer_feedback_push,
    online=True,
    description="What the customer told account managers: counts per response and category, latest answer per product.",
    owner="ml-platform@lingxi",
    tags={"dbt_source": "feedback"},
)
