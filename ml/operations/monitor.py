"""The conversion monitor: monthly per-product conversion, the bank's alert rule, a diagnosis and
a proposed rollback. ``make monitor`` writes ``reports/monitor.json``; ``make monitor-apply``
applies the proposal.

    python -m ml.operations.monitor check [--min-conversion 0.02] [--falling-months 3] [--min-shown 50]
    python -m ml.operations.monitor apply [--product P]

From the warehouse's ``recommendation_feedback`` mart (every served item with its latest answer and
whether the customer adopted it within the label window), lists served by the production model
(arm ``champion``, or lists logged before arms existed) are counted per month and product:
shown -> interested -> adopted. A product raises an alert when, in the latest month,

- its conversion (interested per shown item) is below ``min_conversion``, or
- it fell ``falling_months`` months in a row.

Months with fewer than ``min_shown`` items are not judged (noise). The diagnosis compares the alert
month with the month before the fall (the reference) segment by segment - age band, branch, risk
preference, value tier, life stage, region, model version - and names the segments whose change
explains most of the drop (shown share now x change of conversion), with the input features that
drifted most in the last nightly run (``reports/drift.json``). The proposal: roll back to the model
version that served most of the product's items in the last month it converted (the reference
month), unless that is the current version.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ml.core.config import Paths
from ml.core.reports import json_default
from ml.training.registry import Registry

MIN_CONVERSION = 0.02
FALLING_MONTHS = 3
MIN_SHOWN = 50
SEGMENTS = ("age_band", "branch_id", "risk_preference", "value_tier", "life_stage", "region_code", "model_version")
REPORT = "monitor.json"


def served_items(marts: Path) -> pd.DataFrame:
    """The mart's served items with the customer's branch and risk preference (production arm only)."""
    marts = Path(marts)
    path = marts / "recommendation_feedback.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no {path} (run `make warehouse` after the feedback export)")
    con = duckdb.connect()
    columns = {c[0] for c in con.execute("describe select * from read_parquet(?)", [str(path)]).fetchall()}
    arm = "f.arm" if "arm" in columns else "cast(null as varchar)"
    joins, extra = [], []
    for name, column, alias in (("customer_360", "risk_preference", "c"), ("manager_books", "branch_id", "b")):
        if (marts / f"{name}.parquet").exists():
            joins.append(f"left join read_parquet('{marts / name}.parquet') {alias} using (customer_id)")
            extra.append(f"{alias}.{column}")
        else:
            extra.append(f"cast(null as varchar) as {column}")
    frame = con.execute(f"""
        select f.customer_id, f.product_id, f.stage, f.created_month, f.response, f.is_adopted_in_window,
               split_part(f.model_version, '+', 1) as model_version, {arm} as arm,
               f.age_band, f.value_tier, f.life_stage, f.region_code, {', '.join(extra)}
        from read_parquet(?) f {' '.join(joins)}""", [str(path)]).df()
    return frame[frame["arm"].isna() | (frame["arm"] == "champion")]


def with_month(items: pd.DataFrame) -> pd.DataFrame:
    """``items`` with ``month`` (YYYY-MM) and ``interested`` (0/1) columns."""
    months = pd.to_datetime(items["created_month"]).to_numpy().astype("datetime64[M]").astype(str)
    return items.assign(month=months, interested=(items["response"] == "interested").astype(int))


def monthly(items: pd.DataFrame) -> pd.DataFrame:
    """Per (product, month): shown, interested, adopted, conversion, adoption rate."""
    frame = items.assign(adopted=items["is_adopted_in_window"].fillna(0).astype(int))
    out = frame.groupby(["product_id", "month"]).agg(shown=("interested", "size"), interested=("interested", "sum"),
                                                     adopted=("adopted", "sum")).reset_index()
    out["conversion"] = out["interested"] / out["shown"]
    out["adoption_rate"] = out["adopted"] / out["shown"]
    return out.sort_values(["product_id", "month"]).reset_index(drop=True)


def _rule(series: pd.DataFrame, min_conversion: float, falling_months: int) -> tuple[list[str], int | None]:
    """(reasons, index of the reference month) for one product's judged months, oldest first."""
    conv = series["conversion"].to_numpy()
    reasons, reference = [], None
    last = len(conv) - 1
    if conv[last] < min_conversion:
        reasons.append(f"conversion {conv[last]:.2%} in {series['month'].iloc[last]} is below {min_conversion:.2%}")
        good = np.flatnonzero(conv[:last] >= min_conversion)
        reference = int(good[-1]) if len(good) else None
    if len(conv) > falling_months and all(conv[i] < conv[i - 1] for i in range(last - falling_months + 1, last + 1)):
        start = last - falling_months
        reasons.append(f"conversion fell {falling_months} months in a row: "
                       + " -> ".join(f"{c:.2%}" for c in conv[start:]))
        reference = start
    return reasons, reference


def diagnose(items: pd.DataFrame, product: str, month: str, reference: str, top: int = 3) -> dict[str, Any]:
    """Segments whose conversion change explains most of the product's change between months
    (``items`` as ``with_month`` returns them)."""
    frame = items[items["product_id"] == product]
    now, then = frame[frame["month"] == month], frame[frame["month"] == reference]
    out: dict[str, Any] = {}
    movers = []
    for dim in SEGMENTS:
        a = now.groupby(dim, dropna=False)["interested"].agg(["size", "sum"])
        b = then.groupby(dim, dropna=False)["interested"].agg(["size", "sum"])
        rows = []
        for value in a.index.union(b.index):
            n_now, hit_now = (a.loc[value, "size"], a.loc[value, "sum"]) if value in a.index else (0, 0)
            n_then, hit_then = (b.loc[value, "size"], b.loc[value, "sum"]) if value in b.index else (0, 0)
            c_now = hit_now / n_now if n_now else None
            c_then = hit_then / n_then if n_then else None
            effect = (n_now / max(len(now), 1)) * (c_now - c_then) if c_now is not None and c_then is not None else 0.0
            rows.append({"segment": dim, "value": None if pd.isna(value) else str(value), "shown": int(n_now),
                         "shown_before": int(n_then), "conversion": None if c_now is None else round(c_now, 6),
                         "conversion_before": None if c_then is None else round(c_then, 6),
                         "effect": round(float(effect), 6)})
        rows.sort(key=lambda r: r["effect"])
        out[dim] = rows[:top]
        movers.extend(r for r in rows if r["effect"] < 0 and r["shown"] > 0 and r["shown_before"] > 0)
    movers.sort(key=lambda r: r["effect"])
    return {"compared": {"month": month, "reference": reference}, "top_movers": movers[:top * 2], "by_segment": out}


def check(paths: Paths, min_conversion: float = MIN_CONVERSION, falling_months: int = FALLING_MONTHS,
          min_shown: int = MIN_SHOWN, items: pd.DataFrame | None = None) -> dict[str, Any]:
    items = with_month(served_items(paths.marts) if items is None else items)
    table = monthly(items)
    registry = Registry(paths.models)
    current = registry.current()
    drift = _drift(paths)
    alerts = []
    for product, series in table.groupby("product_id"):
        judged = series[series["shown"] >= min_shown].reset_index(drop=True)
        if judged.empty:
            continue
        reasons, ref = _rule(judged, min_conversion, falling_months)
        if not reasons:
            continue
        month = judged["month"].iloc[-1]
        reference = judged["month"].iloc[ref] if ref is not None else None
        alert: dict[str, Any] = {
            "product_id": product, "month": month, "reasons": reasons,
            "funnel": judged[["month", "shown", "interested", "adopted", "conversion", "adoption_rate"]]
            .round(6).to_dict(orient="records"),
            "diagnosis": diagnose(items, product, month, reference) if reference else None,
            "inputs_drift": drift,
        }
        alert["rollback"] = _proposal(items, product, reference, current.name if current else None, registry)
        alerts.append(alert)
    return {"generated_at": datetime.now(timezone.utc).isoformat(),
            "rule": {"min_conversion": min_conversion, "falling_months": falling_months, "min_shown": min_shown},
            "current_model": current.name if current else None, "products_checked": int(table["product_id"].nunique()),
            "months": sorted(table["month"].unique().tolist()), "alerts": alerts}


def _proposal(items: pd.DataFrame, product: str, reference: str | None, current: str | None,
              registry: Registry) -> dict[str, Any]:
    if reference is None:
        return {"version": None, "why": "the product never converted above the threshold in the data"}
    rows = items[(items["product_id"] == product) & (items["month"] == reference)]
    version = str(rows["model_version"].value_counts().idxmax())
    if version == current:
        return {"version": None, "why": f"{reference} was served by the current model {version}: "
                                        "the drop is not a model change (see the diagnosis)"}
    if version not in registry.versions():
        return {"version": None, "why": f"{version} (served in {reference}) is no longer in the registry"}
    return {"version": version, "why": f"served most of {product}'s items in {reference}, its last month converting",
            "command": f"python -m ml.operations.monitor apply --product {product}"}


def _drift(paths: Paths) -> dict[str, Any] | None:
    path = paths.reports / "drift.json"
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    return {k: report.get(k) for k in ("flagged", "threshold", "drifted", "top", "reference_snapshot")}


def apply(paths: Paths, product: str | None = None) -> str:
    """Make the version the monitor proposed current (the first alert with a proposal, or ``product``'s)."""
    report = json.loads((paths.reports / REPORT).read_text())
    for alert in report.get("alerts", []):
        version = (alert.get("rollback") or {}).get("version")
        if version and (product is None or alert["product_id"] == product):
            Registry(paths.models).promote(version)
            return version
    raise ValueError("no alert in reports/monitor.json proposes a rollback"
                     + (f" for {product}" if product else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.operations.monitor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["check", "apply"],
                        help="check: write the alerts; apply: make the proposed version current, re-score and publish")
    parser.add_argument("--min-conversion", type=float, default=MIN_CONVERSION,
                        help="alert when a product's conversion in the latest month is below this")
    parser.add_argument("--falling-months", type=int, default=FALLING_MONTHS,
                        help="alert when a product's conversion fell this many months in a row")
    parser.add_argument("--min-shown", type=int, default=MIN_SHOWN,
                        help="months with fewer items shown are not judged")
    parser.add_argument("--product", default=None, help="apply: the alert of this product")
    args = parser.parse_args(argv)
    paths = Paths.from_env()
    if args.action == "apply":
        try:
            print(f"current: {apply(paths, args.product)}")
        except (ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    report = check(paths, args.min_conversion, args.falling_months, args.min_shown)
    path = paths.reports / REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=json_default) + "\n")
    for alert in report["alerts"]:
        print(f"ALERT {alert['product_id']} {alert['month']}: {'; '.join(alert['reasons'])}; "
              f"rollback: {alert['rollback'].get('version') or alert['rollback']['why']}")
    print(f"{len(report['alerts'])} alert(s) over {report['products_checked']} products: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
