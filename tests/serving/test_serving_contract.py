"""Contracts with the parallel work: the real customer_360 mart loads, the engine conforms.

The mart test runs the shared test-scale pipeline (``warehouse_data_dir`` from ``tests/conftest.py``)
and skips until dbt exports ``marts/customer_360.parquet``; the engine check runs the Protocol checker
on the fake engine here (the ML team can run ``check_engine`` on ``ml.engine``)."""
from __future__ import annotations

import pytest
from serving_fakes import FakeEngine

from ml.core.catalogue import load_catalogue
from ml.core.config import SEEDS_DIR
from ml.recommendation.contract import check_engine
from serving import segments
from serving.snapshot import CORE_COLUMNS, load_snapshot, resolve_source

CATALOGUE = load_catalogue(SEEDS_DIR / "products.csv")


def test_fake_engine_conforms(data_dir, customer_ids):
    engine = FakeEngine(data_dir)
    for cid in customer_ids[:20]:
        assert check_engine(engine, cid) == []


def test_checker_catches_violations(data_dir, customer_ids):
    class Leaky(FakeEngine):
        def stage_one(self, customer_id, k, *, explain_exclusions=False, suppressed=None):
            return super().stage_one(customer_id, k, explain_exclusions=explain_exclusions, suppressed=None)

    problems = [p for cid in customer_ids[:20] for p in check_engine(Leaky(data_dir), cid)]
    assert any("suppressed" in p for p in problems)


@pytest.mark.slow
def test_real_customer_360_mart_loads(warehouse_data_dir):
    marts = warehouse_data_dir / "marts"
    if resolve_source(marts) is None:
        pytest.skip("dbt does not export marts/customer_360.parquet yet")
    snapshot = load_snapshot(resolve_source(marts), CATALOGUE)
    assert snapshot.rows > 0
    assert not [w for w in snapshot.warnings if "holding" in w or "trigger" in w or "malformed" in w], snapshot.warnings
    spec, limit, cursor = segments.parse_request(
        {"age": {"min": 30, "max": 50}, "not_holds": {"categories": ["wealth"]}, "limit": 10}, CATALOGUE)
    out = segments.query(snapshot, spec, limit, cursor)
    assert 0 < out["count"] < snapshot.rows and set(out["customers"][0]) >= set(CORE_COLUMNS)
