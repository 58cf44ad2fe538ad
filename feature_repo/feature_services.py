"""Versioned feature services: what models and endpoints ask for, never loose feature names."""
from feast import FeatureService

from features import customer_feedback, customer_features
from on_demand_features import contact_recency

stage_one_v1 = FeatureService(
    name="stage_one_v1",
    features=[customer_features, customer_feedback, contact_recency],
    description="Inputs of the stage-one ranking models, for training (historical) and serving (online).",
    owner="ml-platform@lingxi",
    tags={"version": "1"},
)

profile_v1 = FeatureService(
    name="profile_v1",
    features=[customer_features, customer_feedback],
    description="What the customer profile endpoint shows: the snapshot plus recorded feedback.",
    owner="ml-platform@lingxi",
    tags={"version": "1"},
)
