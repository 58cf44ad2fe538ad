"""The monthly effect report: a page in the console and a PDF from the command line.

    python -m serving.monthly_report --month 2025-03 [--lang zh_CN|en] [--out DIR]   (make report-monthly)

Recommendations, coverage, interest rate, conversions and attributed value for the bank, by branch,
manager and product, each against the previous month. Every figure is read from the mart
``monthly_effect_breakdown`` (dbt, exported as ``marts/monthly_effect_breakdown.parquet``), nothing
from the feedback store or the model. The PDF is the same HTML printed by Debian's headless
Chromium (``scripts/services.sh report`` installs it), so no PDF library and no download.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml.core.catalogue import load_catalogue

MART = "monthly_effect_breakdown.parquet"
BOOKS = "manager_books.parquet"
MONTH = re.compile(r"^(20[0-9]{2})-(0[1-9]|1[0-2])$")
METRICS = ("n_recommendations", "n_recommended_customers", "n_customers", "coverage", "n_answered", "n_interested",
           "interest_rate", "n_conversions", "n_converted_customers", "attributed_value_cny")
CHROMIUM = Path("/usr/bin/chromium")


class ReportError(RuntimeError):
    """The month or the mart is unusable."""


def parse_month(text: str) -> date:
    match = MONTH.match(text or "")
    if not match:
        raise ReportError(f"{text!r} is not a month YYYY-MM")
    return date(int(match[1]), int(match[2]), 1)


def previous_month(month: date) -> date:
    return date(month.year - 1, 12, 1) if month.month == 1 else date(month.year, month.month - 1, 1)


def _rows(table: pa.Table, month: date) -> dict[tuple[str, str], dict[str, Any]]:
    picked = table.filter(pc.equal(table["report_month"], pa.scalar(month, pa.date32()))).to_pylist()
    return {(r["dimension"], r["dimension_value"]): {m: float(r[m]) if r[m] is not None else None for m in METRICS}
            for r in picked}


def _names(marts: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """(dimension, id) -> (Chinese, English) names of branches and products."""
    names = {("product", p.product_id): (p.name_zh, p.name_en) for p in load_catalogue()}
    books = marts / BOOKS
    if books.exists():
        columns = ["branch_id", "branch_name_zh", "branch_name_en"]
        if set(columns) <= set(pq.read_schema(books).names):
            branches = pq.read_table(books, columns=columns).group_by(columns).aggregate([]).to_pylist()
            for row in branches:
                if row["branch_id"] is not None:
                    names[("branch", row["branch_id"])] = (row["branch_name_zh"] or row["branch_id"],
                                                           row["branch_name_en"] or row["branch_id"])
    return names


def _change(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None else now - before


def load(marts: Path, month: date) -> dict[str, Any]:
    """The report of ``month``: the bank's figures and every branch, manager and product, each with the
    previous month's figures and the change."""
    path = Path(marts) / MART
    if not path.exists():
        raise ReportError(f"no {path}: run `make warehouse` (dbt builds monthly_effect_breakdown)")
    before_month = previous_month(month)
    table = pq.read_table(path, columns=["report_month", "dimension", "dimension_value", *METRICS])
    table = table.set_column(0, "report_month", pc.cast(table["report_month"], pa.date32()))
    now, before = _rows(table, month), _rows(table, before_month)
    months = sorted({m.strftime("%Y-%m") for m in pc.unique(table["report_month"]).to_pylist()})
    names = _names(Path(marts))
    groups: dict[str, list[dict[str, Any]]] = {"bank": [], "branch": [], "manager": [], "product": []}
    for key in sorted(set(now) | set(before)):
        dimension, value = key
        current, previous = now.get(key), before.get(key)
        zh, en = names.get(key, (value, value))
        groups[dimension].append({
            "id": value, "name_zh": zh, "name_en": en, "now": current, "before": previous,
            "change": {m: _change((current or {}).get(m), (previous or {}).get(m)) for m in METRICS}})
    for dimension in ("branch", "manager", "product"):  # most recommended first
        groups[dimension].sort(key=lambda g: (-(g["now"] or {}).get("n_recommendations", 0) or 0, g["id"]))
    return {"month": month.strftime("%Y-%m"), "previous": before_month.strftime("%Y-%m"), "months": months,
            "bank": groups["bank"][0] if groups["bank"] else None, "branches": groups["branch"],
            "managers": groups["manager"], "products": groups["product"], "metrics": METRICS}


# -- the PDF -------------------------------------------------------------------------------------------
def render_html(report: dict[str, Any], language: str, data_dir: Path) -> str:
    """The report as one self-contained HTML document (styles inline), in ``language``."""
    from flask import Flask, render_template

    from . import i18n
    from .console import filters

    app = Flask("lingxi_report", template_folder=str(Path(__file__).parent / "console" / "templates"))
    app.config.update(LINGXI_DATA_DIR=str(data_dir), LINGXI_TIMEZONE="Asia/Shanghai")
    i18n.init_app(app)
    filters.init_app(app)
    css = (Path(__file__).parent / "console" / "static" / "console.css").read_text(encoding="utf-8")
    with app.test_request_context(f"{i18n.CONSOLE_PREFIX}/reports/monthly",
                                  headers={"Cookie": f"{i18n.COOKIE}={language}"}):
        return render_template("console/monthly_report_print.html", report=report, css=css)


def print_pdf(html: Path, pdf: Path, timeout: float = 120.0) -> None:
    """Headless Chromium prints ``html`` to ``pdf`` (A4, no header or footer)."""
    if not CHROMIUM.exists():
        raise ReportError(f"{CHROMIUM} is missing: run `bash scripts/services.sh report` (as root)")
    with tempfile.TemporaryDirectory(prefix="lingxi-report-") as profile:
        command = [str(CHROMIUM), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--no-first-run", "--disable-background-networking", "--disable-component-update",
                   f"--user-data-dir={profile}", "--no-pdf-header-footer", "--print-to-pdf-no-header",
                   f"--print-to-pdf={pdf}", html.resolve().as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        raise ReportError(f"chromium could not print the report: {result.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    from ml.core.config import Paths

    parser = argparse.ArgumentParser(prog="python -m serving.monthly_report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--month", required=True, help="the month, YYYY-MM")
    parser.add_argument("--lang", default="zh_CN", choices=("zh_CN", "en"), help="the report's language")
    parser.add_argument("--out", type=Path, default=None, help="folder (default: $LINGXI_REPORTS_DIR/monthly)")
    args = parser.parse_args(argv)
    paths = Paths.from_env()
    out = args.out or paths.reports / "monthly"
    try:
        report = load(paths.marts, parse_month(args.month))
        out.mkdir(parents=True, exist_ok=True)
        html = out / f"effect-{report['month']}.{args.lang}.html"
        html.write_text(render_html(report, args.lang, paths.data), encoding="utf-8")
        pdf = html.with_suffix(".pdf")
        print_pdf(html, pdf)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{pdf} ({pdf.stat().st_size:,} bytes), {html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
