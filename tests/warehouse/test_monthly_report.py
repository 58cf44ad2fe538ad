"""The monthly effect report from the marts: the dbt mart ``monthly_effect_breakdown`` over an
exported feedback log, then ``python -m serving.monthly_report`` (the HTML and the PDF printed by
headless Chromium) and the console page over the same mart."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ml.core.config import PROJECT_ROOT

# the models between the feedback export and the report (the rest of the warehouse is the test bank's)
REBUILT = ("stg_feedback__recommendations", "stg_feedback__responses", "int_recommendation_outcomes",
           "recommendation_feedback", "monthly_effect_breakdown")
WRITTEN = ("recommendation_feedback.parquet", "monthly_effect_breakdown.parquet")


def _dbt(args: list[str], data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LINGXI_DATA_DIR": str(data_dir), "DBT_PROFILES_DIR": str(PROJECT_ROOT)}
    dbt = Path(sys.executable).with_name("dbt")
    return subprocess.run([str(dbt), *args, "--target-path", str(data_dir / "dbt_target"),
                           "--log-path", str(data_dir / "dbt_logs")],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)


def write_feedback_export(data_dir: Path, marts: Path) -> None:
    """Two months of lists for 60 customers of three books: stage one (three products), stage two
    (one), answers; February's lists on 30 customers, March's on all 60."""
    out = data_dir / "feedback_export"
    (out / "recommendations").mkdir(parents=True)
    (out / "feedback").mkdir(parents=True)
    con = duckdb.connect()
    con.execute(f"""
        create table picked as
        select customer_id, manager_id, row_number() over (order by manager_id, customer_id) as n
        from (select customer_id, manager_id, row_number() over (partition by manager_id order by customer_id) as k
              from read_parquet('{marts}/manager_books.parquet')
              where manager_id in (select manager_id from read_parquet('{marts}/manager_books.parquet')
                                   group by 1 order by count(*) desc, 1 limit 3))
        where k <= 20""")
    con.execute("""
        create table recs as
        with lists as (
            select customer_id, manager_id, n, m.month,
                   cast(m.month || '-10 10:00:00' as timestamp) + (n * interval 1 minute) as created_at
            from picked, (values ('2025-02'), ('2025-03')) m(month)
            where m.month = '2025-03' or n <= 30)
        select 'r1-' || month || '-' || customer_id || '-' || p.product_id as recommendation_id, customer_id,
               manager_id, 1 as stage, cast(null as varchar) as parent_recommendation_id, p.product_id,
               cast(p.rank as integer) as rank, 0.5 as score, 60 as match_score, 'test' as model_version, created_at
        from lists, (values ('WLT_WMP', 1), ('CRD_CARD', 2), ('PRO_CAR', 3)) p(product_id, rank)
        union all
        select 'r2-' || month || '-' || customer_id, customer_id, manager_id, 2, 'r1-' || month || '-' || customer_id,
               'PRO_LIFE', 1, 0.6, 70, 'test', created_at + interval 5 minute
        from lists""")
    con.execute("""
        create table fb as
        select 'f-' || recommendation_id as feedback_id, recommendation_id, customer_id, product_id, manager_id,
               case when stage = 2 or product_id = 'WLT_WMP' then 'interested' else 'not_interested' end as response,
               created_at + interval 2 minute as recorded_at, 'k-' || recommendation_id as idempotency_key
        from recs where product_id <> 'CRD_CARD'""")
    con.execute(f"copy recs to '{out}/recommendations/part-00000.parquet' (format parquet)")
    con.execute(f"copy fb to '{out}/feedback/part-00000.parquet' (format parquet)")
    con.close()


@pytest.fixture(scope="module")
def report_data(warehouse_data_dir, tmp_path_factory) -> Path:
    """A copy of the warehouse with the feedback export and the feedback marts rebuilt."""
    data_dir = tmp_path_factory.mktemp("monthly") / "data"
    data_dir.mkdir()
    (data_dir / "raw").symlink_to(warehouse_data_dir / "raw")
    shutil.copy(warehouse_data_dir / "warehouse.duckdb", data_dir / "warehouse.duckdb")
    (data_dir / "marts").mkdir()
    for item in (warehouse_data_dir / "marts").iterdir():  # read-only links; what the build writes is new
        if item.name not in WRITTEN and not item.name.startswith("_dbt_invocation"):
            (data_dir / "marts" / item.name).symlink_to(item.resolve())
    write_feedback_export(data_dir, data_dir / "marts")
    result = _dbt(["build", "--select", *REBUILT], data_dir)
    assert result.returncode == 0, result.stdout[-4000:]
    return data_dir


def test_the_mart_counts_the_exported_log(report_data):
    with duckdb.connect() as con:
        mart = f"read_parquet('{report_data}/marts/monthly_effect_breakdown.parquet')"
        export = f"read_parquet('{report_data}/feedback_export/recommendations/*.parquet')"
        for month, customers in (("2025-02", 30), ("2025-03", 60)):
            row = con.execute(f"""select n_recommendations, n_recommended_customers, n_answered, n_interested
                                  from {mart} where dimension = 'bank' and strftime(report_month, '%Y-%m') = ?""",
                              [month]).fetchone()
            served = con.execute(f"select count(*) from {export} where strftime(created_at, '%Y-%m') = ?",
                                 [month]).fetchone()[0]
            # per customer: 4 shown, 3 answered (CRD_CARD never), 2 interested (WLT_WMP, stage two's PRO_LIFE)
            assert row == (served, customers, 3 * customers, 2 * customers) and served == 4 * customers
        managers = con.execute(f"""select sum(n_recommendations) from {mart}
                                   where dimension = 'manager' and strftime(report_month, '%Y-%m') = '2025-03'""").fetchone()[0]
        assert managers == 240


def test_the_command_writes_the_report_as_html_and_pdf(report_data, tmp_path):
    from console_report_check import require_chromium

    require_chromium()
    env = {**os.environ, "LINGXI_DATA_DIR": str(report_data), "LINGXI_REPORTS_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "serving.monthly_report", "--month", "2025-03"],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    pdf = tmp_path / "monthly" / "effect-2025-03.zh_CN.pdf"
    html = (tmp_path / "monthly" / "effect-2025-03.zh_CN.html").read_text(encoding="utf-8")
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000
    assert "月度成效报告" in html and 'id="kpi-n_recommendations">240<' in html
    assert "+120" in html  # against February: 240 - 120 recommendations
    bad = subprocess.run([sys.executable, "-m", "serving.monthly_report", "--month", "2025-13"],
                         cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr
