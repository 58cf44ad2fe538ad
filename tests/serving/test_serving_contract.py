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


@pytest.mark.slow
def test_real_manager_books_load_with_the_snapshot(warehouse_data_dir):
    """The dbt mart manager_books: every customer of the snapshot in exactly one of ~250 books, and a
    manager's segment query reaches that book only."""
    import numpy as np
    import pyarrow.parquet as pq

    marts = warehouse_data_dir / "marts"
    source = resolve_source(marts)
    assert source is not None and source.manager_books == marts / "manager_books.parquet"
    snapshot = load_snapshot(source, CATALOGUE)
    books = snapshot.books
    assert books.loaded and not [w for w in snapshot.warnings if "manager_books" in w], snapshot.warnings
    assert int((books.manager[0] < 0).sum()) == 0                      # everyone has a manager
    assert 200 <= len(books.managers()) <= 270 and all(m.startswith("M") for m in books.managers())
    sizes = np.bincount(books.manager[0])
    assert sizes.sum() == snapshot.rows and sizes.max() > 3 * np.median(sizes)  # skewed books
    raw = pq.read_table(marts / "manager_books.parquet", columns=["customer_id", "manager_id"]).to_pylist()
    for row in raw[:: max(len(raw) // 200, 1)]:
        assert books.manager_of(snapshot.index_of(row["customer_id"])) == row["manager_id"]
    manager = books.managers()[0]
    spec, limit, cursor = segments.parse_request({"limit": 1000}, CATALOGUE)
    out = segments.query(snapshot, spec, limit, cursor, book=manager, cap=1000)
    assert out["count"] == int(books.mask(manager).sum()) > 0
    assert all(books.manager_of(snapshot.index_of(c["customer_id"])) == manager for c in out["customers"])
    entry = books.entry(snapshot.index_of(raw[0]["customer_id"]))
    assert entry["branch_name_zh"] and entry["assigned_since"] and entry["branch_id"]
