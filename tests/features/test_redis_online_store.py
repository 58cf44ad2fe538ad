"""The scale-out online store: the same feature repo on Redis serves what the SQLite store serves.

Runs against ``LINGXI_TEST_REDIS_URL`` ("host:port") when set, else a throwaway ``redis-server``
on a free loopback port (``scripts/services.sh test`` installs Debian's package; without it the
tests fail under CI and are skipped with the reason elsewhere).
"""
from __future__ import annotations

import os
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from real_services import redis_server

from ml.core.config import Paths
from ml.features.layout import FEEDBACK_COLUMNS, VECTOR_FEATURE
from ml.features.online import CustomerNotFound, OnlineFeatures
from ml.features.store import apply, get_store, materialize

CURRENT = pd.Timestamp("2025-07-01")


@pytest.fixture(scope="module")
def redis_address(tmp_path_factory):
    if os.environ.get("LINGXI_TEST_REDIS_URL"):
        yield os.environ["LINGXI_TEST_REDIS_URL"]
        return
    with redis_server(tmp_path_factory.mktemp("redis")) as address:
        yield address


@pytest.fixture(scope="module")
def redis_store(feature_data_dir, redis_address):
    """Apply and materialise the repo with feature_store.redis.yaml (its own registry file)."""
    paths = Paths(data=feature_data_dir, reports=feature_data_dir / "reports")
    # the server may be new while the data dir is reused: forget what an earlier run materialised
    (paths.feast / "registry.redis.db").unlink(missing_ok=True)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LINGXI_FEAST_CONFIG", "feature_store.redis.yaml")
        env.setenv("LINGXI_REDIS_URL", redis_address)
        apply(paths)
        materialize(paths)
        yield get_store(paths)


@pytest.fixture(scope="module")
def sqlite_online(feature_data_dir):
    return OnlineFeatures(get_store(Paths(data=feature_data_dir, reports=feature_data_dir / "reports")))


def test_redis_serves_what_sqlite_serves(redis_store, sqlite_online, feature_data_dir):
    assert redis_store.config.online_store.type == "redis"
    vectors = pd.read_parquet(feature_data_dir / "feast" / "sources" / "customer_feature_vectors.parquet",
                              columns=["customer_id", "snapshot_ts"])
    customers = vectors[vectors.snapshot_ts == CURRENT].customer_id.sample(25, random_state=5).tolist()
    online = OnlineFeatures(redis_store)
    contact = datetime(2025, 7, 2, tzinfo=timezone.utc)
    for customer in customers:
        np.testing.assert_array_equal(np.asarray(online.get(customer, contact)[VECTOR_FEATURE], np.float32),
                                      np.asarray(sqlite_online.get(customer, contact)[VECTOR_FEATURE], np.float32))


def test_redis_missing_customer_is_not_found(redis_store):
    with pytest.raises(CustomerNotFound):
        OnlineFeatures(redis_store).get("f" * 32)


def test_push_reaches_redis(redis_store, feature_data_dir):
    vectors = pd.read_parquet(feature_data_dir / "feast" / "sources" / "customer_feature_vectors.parquet",
                              columns=["customer_id"])
    customer = vectors.customer_id.iloc[11]
    online = OnlineFeatures(redis_store)
    answered = datetime(2025, 7, 1, 9, 0, tzinfo=timezone.utc)
    row = {c: 0 for c in FEEDBACK_COLUMNS} | {"fb_interested_credit": 3}
    online.push_feedback(pd.DataFrame([{"customer_id": customer, "event_timestamp": answered,
                                        "fb_last_response_ts": answered, **row, "fb_last_answers": []}]))
    served = online.get(customer, datetime(2025, 7, 1, 21, 0, tzinfo=timezone.utc))
    assert served["fb_interested_credit"] == 3
    assert served["days_since_last_contact"] == pytest.approx(0.5)
