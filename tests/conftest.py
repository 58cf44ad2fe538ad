"""Shared fixtures: one test-scale synthetic bank per session, in a temporary folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ml.datagen import generate

TEST_CUSTOMERS = 20_000
TEST_SEED = 42


@pytest.fixture(scope="session")
def raw_data_dir(tmp_path_factory) -> Path:
    """A data dir holding ``raw/`` and ``oracle/`` for 20k customers (seed 42).

    Set LINGXI_TEST_DATA_DIR to reuse one between local runs (it is generated there if empty).
    """
    reuse = os.environ.get("LINGXI_TEST_DATA_DIR")
    data_dir = Path(reuse) if reuse else tmp_path_factory.mktemp("lingxi_data")
    from ml.datagen.generate import manifest_matches

    if not manifest_matches(data_dir / "raw", TEST_CUSTOMERS, TEST_SEED):
        generate(TEST_CUSTOMERS, TEST_SEED, data_dir / "raw", data_dir / "oracle", progress=False)
    return data_dir


def run_dbt_build(data_dir: Path) -> None:
    """dbt build into ``data_dir`` (raw/ must exist); target and logs stay inside it."""
    import subprocess
    import sys

    from ml.core.config import PROJECT_ROOT

    env = {**os.environ, "LINGXI_DATA_DIR": str(data_dir), "DBT_PROFILES_DIR": str(PROJECT_ROOT)}
    dbt = Path(sys.executable).with_name("dbt")
    result = subprocess.run([str(dbt), "build", "--target-path", str(data_dir / "dbt_target"),
                             "--log-path", str(data_dir / "dbt_logs")],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"dbt build failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}")


@pytest.fixture(scope="session")
def warehouse_data_dir(raw_data_dir) -> Path:
    """The test bank after ``dbt build``: DuckDB file and Parquet marts in the same data dir."""
    if not (raw_data_dir / "marts" / "customer_features_monthly.parquet").exists():
        run_dbt_build(raw_data_dir)
    return raw_data_dir


@pytest.fixture(scope="session")
def feature_data_dir(warehouse_data_dir) -> Path:
    """The test bank with Feast applied and the current snapshot materialised online."""
    from ml.core.config import Paths
    from ml.features.store import run

    run(Paths(data=warehouse_data_dir, reports=warehouse_data_dir / "reports"))
    return warehouse_data_dir


@pytest.fixture(scope="session")
def trained_data_dir(feature_data_dir) -> Path:
    """The test bank with a trained, current model and an evaluation report.

    Training runs with the oracle folder moved away: models must never need it.
    """
    from ml.core.config import Paths
    from ml.evaluation.evaluate import evaluate
    from ml.imbalance.strategy_review import review
    from ml.training.train import train

    paths = Paths(data=feature_data_dir, reports=feature_data_dir / "reports")
    hidden = feature_data_dir / "oracle.hidden"
    (feature_data_dir / "oracle").rename(hidden)
    try:
        train(paths, seed=7, min_non_adopters=15_000)
        review(paths, max_rows=60_000)
    finally:
        hidden.rename(feature_data_dir / "oracle")
    evaluate(paths)
    return feature_data_dir
