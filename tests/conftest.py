"""Shared fixtures: one test-scale synthetic bank per run, in a temporary folder.

Under pytest-xdist (``make test`` runs two workers) each stage of the bank is built once for the
whole run, by whichever worker asks first, in the run's temp dir that all workers share; the
others wait on a file lock and reuse it (the pattern of pytest-xdist's documentation).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

from ml.datagen import generate

TEST_CUSTOMERS = 20_000
TEST_SEED = 42


def _run_dir(tmp_path_factory) -> Path:
    """This run's temp dir, seen by every xdist worker (a worker's own base temp is a child of it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _once(tmp_path_factory, stage: str, build: Callable[[], None]) -> None:
    """Run ``build`` once per test run across workers; the others wait until it is done.

    A build that fails leaves no mark, so the next worker to ask tries again (and fails the same way)."""
    run_dir = _run_dir(tmp_path_factory)
    done = run_dir / f"{stage}.done"
    with FileLock(run_dir / f"{stage}.lock"):
        if not done.exists():
            build()
            done.touch()


# Under xdist, modules are handed to the workers in collection order (``--dist loadscope
# --no-loadscope-reorder``): the two longest chains start first, one per worker (training, and the
# Spark build), and the module that needs the trained bank after them comes last, so that no
# worker sits waiting on the other's lock.
FIRST = ("tests/ml/test_pipeline.py", "tests/warehouse/test_spark_build.py")
LAST = ("tests/serving/test_serving_publication.py",)


def pytest_collection_modifyitems(config, items) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def rank(item) -> int:
        module = item.nodeid.split("::", 1)[0]
        if module in FIRST:
            return FIRST.index(module) - len(FIRST)
        return 1 if module in LAST else 0

    items.sort(key=rank)  # stable: the order inside each group stays


@pytest.fixture(scope="session")
def raw_data_dir(tmp_path_factory) -> Path:
    """A data dir holding ``raw/`` and ``oracle/`` for 20k customers (seed 42).

    Set LINGXI_TEST_DATA_DIR to reuse one between local runs (it is generated there if empty).
    """
    from ml.datagen.generate import manifest_matches

    reuse = os.environ.get("LINGXI_TEST_DATA_DIR")
    data_dir = Path(reuse) if reuse else _run_dir(tmp_path_factory) / "lingxi_data"

    def build() -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        if not manifest_matches(data_dir / "raw", TEST_CUSTOMERS, TEST_SEED):
            generate(TEST_CUSTOMERS, TEST_SEED, data_dir / "raw", data_dir / "oracle", progress=False)

    _once(tmp_path_factory, "raw", build)
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
def warehouse_data_dir(raw_data_dir, tmp_path_factory) -> Path:
    """The test bank after ``dbt build``: DuckDB file and Parquet marts in the same data dir."""
    def build() -> None:
        if not (raw_data_dir / "marts" / "customer_features_monthly.parquet").exists():
            run_dbt_build(raw_data_dir)

    _once(tmp_path_factory, "warehouse", build)
    return raw_data_dir


@pytest.fixture(scope="session")
def feature_data_dir(warehouse_data_dir, tmp_path_factory) -> Path:
    """The test bank with Feast applied and the current snapshot materialised online."""
    from ml.core.config import Paths
    from ml.features.store import run

    _once(tmp_path_factory, "features",
          lambda: run(Paths(data=warehouse_data_dir, reports=warehouse_data_dir / "reports")))
    return warehouse_data_dir


@pytest.fixture(scope="session")
def trained_data_dir(feature_data_dir, tmp_path_factory) -> Path:
    """A data dir over the test bank with a trained, current model and an evaluation report.

    Its own dir (the bank's raw files and marts linked, its Feast registry re-pointed at its own
    links to the feature sources) that holds no oracle while training runs: models must never
    need it. The bank's oracle stays in place for the generator's tests on the other worker.
    """
    data_dir = _run_dir(tmp_path_factory) / "lingxi_trained"
    _once(tmp_path_factory, "trained", lambda: _train(feature_data_dir, data_dir))
    return data_dir


def _train(bank: Path, data_dir: Path) -> None:
    from ml.core.config import Paths
    from ml.engine.publish import repoint_sources
    from ml.evaluation.evaluate import evaluate
    from ml.features.snapshot import feature_store
    from ml.imbalance.strategy_review import review
    from ml.training.train import train

    shutil.rmtree(data_dir, ignore_errors=True)  # a failed attempt's remains
    for name in ("raw", "marts"):
        (data_dir / name).mkdir(parents=True)
        for item in (bank / name).iterdir():
            (data_dir / name / item.name).symlink_to(item)
    (data_dir / "feast").mkdir()
    for name in ("registry.db", "online_store.db"):
        shutil.copy(bank / "feast" / name, data_dir / "feast" / name)
    paths = Paths(data=data_dir, reports=data_dir / "reports")
    repoint_sources(feature_store(paths), bank, data_dir)
    assert not paths.oracle.exists()
    train(paths, seed=7, min_non_adopters=15_000)
    review(paths, max_rows=60_000)
    paths.oracle.symlink_to(bank / "oracle")  # evaluation measures against the oracle
    evaluate(paths)
