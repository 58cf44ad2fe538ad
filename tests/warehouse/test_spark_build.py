"""The same dbt models on Apache Spark (dbt-spark, session method) give the same marts as DuckDB.

Builds the models behind the serving and Feast exports (customer_360, the labels, the feature
snapshots, current holdings, recent events) on a local PySpark from the test-scale bank's raw
Parquet, and compares each export with the DuckDB build's (the shared ``warehouse_data_dir``):
row counts, column names and kinds, and per-column checksums (null count and the sum of the
hashes of every value in a canonical form, numbers rounded to six decimals). The dbt data tests
and unit tests run on DuckDB in test_dbt_build.py; `make warehouse-spark` runs them all on Spark.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from real_services import unavailable

from ml.core.config import PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.spark]

COMPARED_MARTS = ("customer_360", "labels_adoption", "customer_features_monthly", "holdings_current",
                  "customer_recent_events")
NUMBER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL")


def _require_java() -> None:
    """No Java: a failure under CI, a skip elsewhere (scripts/services.sh installs openjdk-17-jre-headless)."""
    if not shutil.which("java"):
        unavailable("java is not installed (the Spark build needs Java 17+)")


@pytest.fixture(scope="module")
def spark_data_dir(warehouse_data_dir, tmp_path_factory) -> Path:
    """The compared marts built on Spark from the shared bank's raw files, in a fresh data dir."""
    _require_java()
    data_dir = tmp_path_factory.mktemp("lingxi_spark")
    env = {**os.environ, "LINGXI_DATA_DIR": str(data_dir), "LINGXI_RAW_DIR": str(warehouse_data_dir / "raw"),
           "LINGXI_SPARK_CATALOG": "in-memory", "DBT_PROFILES_DIR": str(PROJECT_ROOT)}
    dbt = Path(sys.executable).with_name("dbt")
    selection = [f"+{name}" for name in COMPARED_MARTS]
    result = subprocess.run(
        [str(dbt), "build", "--target", "spark", "--select", *selection,
         "--exclude", "resource_type:test", "resource_type:unit_test",
         "--target-path", str(data_dir / "dbt_target"), "--log-path", str(data_dir / "dbt_logs")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        raise AssertionError(f"dbt build --target spark failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
    return data_dir


def _canonical(column: str, column_type: str) -> str:
    """A column's values in a form both engines' exports agree on: numbers of any width as doubles
    rounded to six decimals (beyond the last bits in which two engines' floating-point sums
    differ; + 0.0 turns -0.0 into 0.0), everything else as text."""
    quoted = f'"{column}"'
    if column_type.startswith(NUMBER_TYPES):
        return f"round(cast({quoted} as double), 6) + 0.0"
    return f"cast({quoted} as varchar)"


def _kind(column_type: str) -> str:
    return "number" if column_type.startswith(NUMBER_TYPES) else column_type


def mart_checksums(parquet: str) -> dict:
    """Row count, and per column its kind, non-null count and hash sum, of one Parquet export."""
    with duckdb.connect() as connection:
        source = f"read_parquet('{parquet}')"
        columns = connection.execute(f"select column_name, column_type from (describe select * from {source})").fetchall()
        sums = ", ".join(f'count("{name}"), sum(hash({_canonical(name, kind)}))' for name, kind in columns)
        row = connection.execute(f"select count(*), {sums} from {source}").fetchone()
    return {"rows": row[0],
            "columns": {name: (_kind(kind), row[1 + 2 * i], int(row[2 + 2 * i] or 0))
                        for i, (name, kind) in enumerate(columns)}}


def test_spark_build_ran_every_selected_model(spark_data_dir):
    results = json.loads((spark_data_dir / "dbt_target" / "run_results.json").read_text())["results"]
    models = {r["unique_id"]: r["status"] for r in results if r["unique_id"].startswith("model.")}
    assert {f"model.lingxi.{name}" for name in COMPARED_MARTS} <= set(models)
    assert all(status == "success" for status in models.values()), models


@pytest.mark.parametrize("mart", COMPARED_MARTS)
def test_spark_and_duckdb_marts_are_equal(mart, warehouse_data_dir, spark_data_dir):
    duck = mart_checksums(str(warehouse_data_dir / "marts" / f"{mart}.parquet"))
    spark_dir = spark_data_dir / "spark" / "marts" / f"{mart}.parquet"
    assert spark_dir.is_dir(), spark_dir
    spark = mart_checksums(f"{spark_dir}/*.parquet")
    assert spark["rows"] == duck["rows"] > 0
    assert list(spark["columns"]) == list(duck["columns"])
    different = {name: (duck["columns"][name], spark["columns"][name])
                 for name in duck["columns"] if duck["columns"][name] != spark["columns"][name]}
    assert not different, f"{mart}: columns whose kind, null count or checksum differ (duckdb, spark): {different}"


def test_checksums_see_a_changed_value(tmp_path):
    """The checksum is sensitive to one value moved past the rounding, and blind to float noise."""
    with duckdb.connect() as connection:
        for name, values in (("base", "(1, 0.1::double + 0.2::double), (2, 7.5::double)"),
                             ("noise", "(1, 0.3::double), (2, 7.5::double)"),
                             ("changed", "(1, 0.3::double), (2, 7.500002::double)")):
            connection.execute(f"copy (select * from (values {values}) t(id, amount)) to '{tmp_path / name}.parquet'")
    base, noise, changed = (mart_checksums(str(tmp_path / f"{name}.parquet")) for name in ("base", "noise", "changed"))
    assert base == noise
    assert base["columns"]["amount"] != changed["columns"]["amount"]
    assert base["columns"]["id"] == changed["columns"]["id"]
