"""Feast over the dbt marts: layout, point-in-time retrieval, online/offline consistency, push."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ml.core.config import Paths
from ml.features.layout import (
    FEEDBACK_COLUMNS,
    LAST_ANSWERS_FEATURE,
    STAGE_ONE_FEATURES,
    VECTOR_FEATURE,
    from_vectors,
    last_answers,
)
from ml.features.online import CustomerNotFound, OnlineFeatures
from ml.features.store import build_feedback_source, get_store

CURRENT = pd.Timestamp("2025-07-01")


@pytest.fixture(scope="module")
def store(feature_data_dir):
    return get_store(Paths(data=feature_data_dir, reports=feature_data_dir / "reports"))


@pytest.fixture(scope="module")
def vectors(feature_data_dir) -> pd.DataFrame:
    return pd.read_parquet(feature_data_dir / "feast" / "sources" / "customer_feature_vectors.parquet")


def test_layout_matches_the_dbt_mart(feature_data_dir):
    mart = pq.read_schema(feature_data_dir / "marts" / "customer_features_monthly.parquet").names
    assert tuple(n for n in mart if n not in ("customer_id", "snapshot_ts")) == STAGE_ONE_FEATURES


def test_vectors_equal_the_mart(feature_data_dir, vectors):
    mart = pd.read_parquet(feature_data_dir / "marts" / "customer_features_monthly.parquet")
    sample = mart.sample(300, random_state=1)
    joined = sample.merge(vectors, on=["customer_id", "snapshot_ts"])
    assert len(joined) == len(sample)
    expected = joined[list(STAGE_ONE_FEATURES)].to_numpy(dtype=np.float32, na_value=np.nan)
    got = from_vectors(joined[VECTOR_FEATURE]).to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True)


def test_historical_is_point_in_time(store, vectors):
    customer = vectors.customer_id.iloc[0]
    rows = vectors[vectors.customer_id == customer].set_index("snapshot_ts")
    entity = pd.DataFrame({"customer_id": [customer, customer],
                           "event_timestamp": [pd.Timestamp("2025-04-01"), pd.Timestamp("2025-04-15")],
                           "contact_ts": pd.Timestamp("2025-04-01", tz="UTC")})
    got = store.get_historical_features(entity_df=entity, features=store.get_feature_service("stage_one_v1")).to_df()
    got = got.sort_values("event_timestamp")
    # both dates see the 2025-04-01 snapshot: never the current one from July
    for vector in got[VECTOR_FEATURE]:
        np.testing.assert_array_equal(np.asarray(vector, np.float32), np.asarray(rows.loc["2025-04-01", VECTOR_FEATURE], np.float32))


def test_online_equals_historical_for_the_same_customer_and_time(store, vectors):
    online = OnlineFeatures(store)
    customers = vectors[vectors.snapshot_ts == CURRENT].customer_id.sample(25, random_state=3).tolist()
    entity = pd.DataFrame({"customer_id": customers, "event_timestamp": CURRENT,
                           "contact_ts": pd.Timestamp("2025-07-02", tz="UTC")})
    historical = store.get_historical_features(entity_df=entity, features=online.service).to_df()
    historical = historical.set_index("customer_id")
    for customer in customers:
        served = online.get(customer, datetime(2025, 7, 2, tzinfo=timezone.utc))
        np.testing.assert_array_equal(np.asarray(served[VECTOR_FEATURE], np.float32),
                                      np.asarray(historical.loc[customer, VECTOR_FEATURE], np.float32))


def test_missing_customer_is_not_found(store):
    with pytest.raises(CustomerNotFound):
        OnlineFeatures(store).get("0" * 32)


def test_push_reaches_the_online_store(store, vectors):
    online = OnlineFeatures(store)
    customer = vectors.customer_id.iloc[7]
    answered = datetime(2025, 7, 1, 10, 0, tzinfo=timezone.utc)
    row = {c: 0 for c in FEEDBACK_COLUMNS} | {"fb_not_interested_wealth": 2, "fb_interested_credit": 1}
    answers = ["CRD_PLAT=interested", "WLT_FUND=not_interested"]
    online.push_feedback(pd.DataFrame([{"customer_id": customer, "event_timestamp": answered,
                                        "fb_last_response_ts": answered, **row, LAST_ANSWERS_FEATURE: answers}]))
    served = online.get(customer, datetime(2025, 7, 3, 10, 0, tzinfo=timezone.utc))
    assert served["fb_not_interested_wealth"] == 2 and served["fb_interested_credit"] == 1
    assert list(served[LAST_ANSWERS_FEATURE]) == answers
    assert served["days_since_last_contact"] == pytest.approx(2.0)
    assert served["contacted_last_30d"] == 1


def test_an_older_push_never_overwrites_a_newer_one(store):
    """Two workers push one customer; the one that read fewer answers lands last. The online row keeps
    the count with more answers (then the later last answer), whatever the order of arrival."""
    import uuid

    online = OnlineFeatures(store)
    customer, other = (uuid.uuid4().hex.upper() for _ in range(2))  # new each run: the store may be reused
    first, second = datetime(2025, 7, 1, 9, 0, tzinfo=timezone.utc), datetime(2025, 7, 1, 9, 5, tzinfo=timezone.utc)

    def row(when, answers, who=customer):
        counts = {c: 0 for c in FEEDBACK_COLUMNS} | {"fb_interested_credit": len(answers)}
        return {"customer_id": who, "event_timestamp": when, "fb_last_response_ts": when, **counts,
                LAST_ANSWERS_FEATURE: answers}

    def served():
        values = store.get_online_features(
            features=["customer_feedback:fb_interested_credit", f"customer_feedback:{LAST_ANSWERS_FEATURE}"],
            entity_rows=[{"customer_id": customer}]).to_dict()
        return values["fb_interested_credit"][0], list(values[LAST_ANSWERS_FEATURE][0])

    older, newer = row(first, ["CRD_PLAT=interested"]), row(second, ["CRD_CARD=interested", "CRD_PLAT=interested"])
    assert online.push_feedback(pd.DataFrame([newer])) == 1
    assert online.push_feedback(pd.DataFrame([older])) == 0  # the late, older read: skipped
    assert served() == (2, newer[LAST_ANSWERS_FEATURE])
    assert online.push_feedback(pd.DataFrame([newer])) == 0  # the same again: nothing to write
    later = row(second.replace(minute=9), ["CRD_CARD=interested", "CRD_PLAT=not_interested"])
    assert online.push_feedback(pd.DataFrame([later, row(first, ["CRD_PLAT=interested"], other)])) == 2
    assert served() == (2, later[LAST_ANSWERS_FEATURE])


def test_feedback_source_keeps_the_latest_answer_per_product(tmp_path):
    products = pd.read_csv(Path(__file__).resolve().parents[2] / "seeds" / "products.csv").product_id.tolist()
    a, b = products[1], products[2]
    t = pd.Timestamp("2025-07-01 09:00")
    export = tmp_path / "feedback_export" / "feedback"
    export.mkdir(parents=True)
    answers = pd.DataFrame({
        "customer_id": ["c1", "c1", "c1", "c2"],
        "product_id": [a, b, a, a],
        "response": ["not_interested", "interested", "interested", "already_owns"],
        "recorded_at": [t, t, t + pd.Timedelta(days=3), t]})
    answers.to_parquet(export / "part-0.parquet")
    build_feedback_source(Paths(data=tmp_path, reports=tmp_path / "reports"))
    source = pd.read_parquet(tmp_path / "feast" / "sources" / "customer_feedback.parquet")
    for (customer, when), rows in source.groupby(["customer_id", "event_timestamp"]):
        seen = answers[(answers.customer_id == customer) & (answers.recorded_at <= when)]
        expected = last_answers(zip(seen.product_id, seen.response, seen.recorded_at))
        assert all(list(v) == expected for v in rows[LAST_ANSWERS_FEATURE])
    latest = source[source.customer_id == "c1"].sort_values("event_timestamp").iloc[-1]
    assert list(latest[LAST_ANSWERS_FEATURE]) == sorted([f"{a}=interested", f"{b}=interested"])
