"""The layout of ``stage_one_vector``: the model inputs Feast stores as one array per customer.

Feast's SQLite online store writes one row per (customer, feature) from Python; 75 named
features for 1.1M customers would not fit the nightly window (see README, "Feature store").
So the inputs travel as one ``Array(Float32)`` feature whose positions are named here, in the
column order of the dbt mart ``customer_features_monthly`` (a test keeps the two in step).
NULL ("never happened") travels as NaN, which LightGBM treats as missing.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

STAGE_ONE_FEATURES: tuple[str, ...] = (
    # profile
    "age", "gender_male", "is_wuxi", "urbanisation_code", "education_level", "marital_status_code",
    "asset_level", "log_assets", "risk_tolerance", "card_tier", "tenure_years",
    # holdings at the snapshot
    "holds_sav_demand", "holds_sav_time", "holds_sav_edu", "holds_sav_lcd", "holds_pro_life",
    "holds_pro_accident", "holds_pro_car", "holds_pro_annuity", "holds_pro_critical", "holds_crd_mortgage",
    "holds_crd_consumer", "holds_crd_business", "holds_crd_card", "holds_wlt_stock_fund",
    "holds_wlt_index_fund", "holds_wlt_mixed_fund", "holds_wlt_bond_fund", "holds_wlt_wmp",
    "holds_wlt_pension", "n_held_savings", "n_held_protection", "n_held_credit", "n_held_wealth",
    "n_products_held",
    # recency, frequency, monetary per category
    "n_savings_events_30d", "n_savings_events_90d", "n_savings_events_180d", "amount_savings_180d",
    "days_since_savings_event", "n_protection_events_30d", "n_protection_events_90d",
    "n_protection_events_180d", "amount_protection_180d", "days_since_protection_event",
    "n_credit_events_30d", "n_credit_events_90d", "n_credit_events_180d", "amount_credit_180d",
    "days_since_credit_event", "n_wealth_events_30d", "n_wealth_events_90d", "n_wealth_events_180d",
    "amount_wealth_180d", "days_since_wealth_event", "n_opens_180d", "n_redeems_180d", "n_closes_180d",
    # channels and activity
    "has_mobile_banking", "has_wechat", "has_online_banking", "n_channels_bound", "n_everyday_txn_30d",
    "n_everyday_txn_90d", "n_everyday_txn_prev_90d", "amount_everyday_90d", "activity_trend",
    "days_since_everyday_txn",
    # triggers
    "days_since_salary_credit", "n_salary_credits_90d", "avg_salary_amount_180d",
    "days_since_first_salary_credit", "days_since_deposit_maturity", "last_deposit_maturity_amount",
    "days_since_card_replacement",
)

POSITION = {name: i for i, name in enumerate(STAGE_ONE_FEATURES)}

VECTOR_FEATURE = "stage_one_vector"
FEATURE_SERVICE = "stage_one_v1"   # what the model reads: the Feast service training and serving share
PROFILE_SERVICE = "profile_v1"     # what the customer lookup shows


# Feedback aggregates per customer (the ``customer_feedback`` view, fed by push).
FEEDBACK_CATEGORIES = ("protection", "credit", "wealth", "savings")

FEEDBACK_RESPONSES = ("interested", "not_interested", "already_owns")

FEEDBACK_COLUMNS = tuple(f"fb_{r}_{c}" for r in FEEDBACK_RESPONSES for c in FEEDBACK_CATEGORIES)


# ... and per product: the latest answer to each product, as "PRODUCT_ID=response", sorted by product.
# Strings rather than positions so a product launched later needs no new layout.
LAST_ANSWERS_FEATURE = "fb_last_answers"


def last_answers(answers) -> list[str]:
    """(product_id, response, recorded_at) triples -> the latest answer per product, as the feature
    holds it. Ties on time go to the greater response name, as in ``ml.features``' nightly SQL."""
    latest: dict[str, tuple] = {}
    for product_id, response, recorded_at in answers:
        if product_id not in latest or (recorded_at, response) > latest[product_id]:
            latest[product_id] = (recorded_at, response)
    return [f"{product}={latest[product][1]}" for product in sorted(latest)]


def from_vectors(vectors) -> pd.DataFrame:
    """A column of ``stage_one_vector`` values (lists or arrays) -> named float32 frame."""
    matrix = np.full((len(vectors), len(STAGE_ONE_FEATURES)), np.nan, dtype=np.float32)
    for i, vector in enumerate(vectors):
        if vector is not None and len(vector):
            matrix[i] = np.asarray(vector, dtype=np.float32)
    return pd.DataFrame(matrix, columns=list(STAGE_ONE_FEATURES))
