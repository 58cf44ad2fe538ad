"""Champion, challenger and control compared on the logged lists: ``make impact``.

    python -m ml.operations.impact [--export DIR] [--since YYYY-MM-DD] [--min-lift 0.15]

Each stage-one list is logged with the arm that served it (``champion``: the current model,
``challenger``: the registered challenger, ``control``: the rule-based match score). Per arm:

- **conversion** = interested answers per shown item (the latest answer on each item counts;
  unanswered items count as shown, not converted);
- **adoption** = items the customer opened within the label window per shown item, where the data
  has adoptions (the warehouse's ``recommendation_feedback`` mart does; the raw export does not).

95% intervals by bootstrap over *customers* (a customer's lists and answers move together), and
for the difference challenger - champion. The bank's rule: promote when the challenger converts at
least ``min_lift`` (15%) better than the champion **and** the interval of the difference excludes
zero. Writes ``reports/impact.json``.
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

ARMS = ("champion", "challenger", "control")
MIN_LIFT = 0.15
BOOTSTRAP = 1000
MART = "recommendation_feedback.parquet"


# -- reading -----------------------------------------------------------------------------------
def items_from_marts(marts: Path) -> pd.DataFrame:
    """Served items with their latest answer and adoption flag, from the warehouse's mart."""
    path = Path(marts) / MART
    if not path.exists():
        raise FileNotFoundError(f"no {path} (run `make warehouse` after the feedback export)")
    con = duckdb.connect()
    columns = {c[0] for c in con.execute("describe select * from read_parquet(?)", [str(path)]).fetchall()}
    arm = "arm" if "arm" in columns else "cast(null as varchar)"
    return con.execute(f"""
        select recommendation_id, customer_id, stage, product_id, {arm} as arm, model_version, created_at,
               response, cast(is_adopted_in_window as double) as adopted
        from read_parquet(?)""", [str(path)]).df()


def items_from_export(export_dir: Path) -> pd.DataFrame:
    """Served items with their latest answer, from the feedback export (no adoptions there)."""
    export_dir = Path(export_dir)
    con = duckdb.connect()
    recs = f"read_parquet('{export_dir / 'recommendations'}/*.parquet', union_by_name = true)"
    fb_glob = export_dir / "feedback"
    answers = (f"""select recommendation_id, product_id, response from (
                      select *, row_number() over (partition by recommendation_id, product_id
                                                   order by recorded_at desc, feedback_id desc) as n
                      from read_parquet('{fb_glob}/*.parquet', union_by_name = true)) where n = 1"""
               if any(fb_glob.glob("*.parquet")) else
               "select null::varchar as recommendation_id, null::varchar as product_id, null::varchar as response where false")
    columns = {c[0] for c in con.execute(f"describe select * from {recs}").fetchall()}
    arm = "r.arm" if "arm" in columns else "cast(null as varchar)"
    return con.execute(f"""
        select r.recommendation_id, r.customer_id, r.stage, r.product_id, {arm} as arm, r.model_version,
               r.created_at, a.response, cast(null as double) as adopted
        from {recs} r left join ({answers}) a using (recommendation_id, product_id)""").df()


# -- the comparison ----------------------------------------------------------------------------
def _per_customer(items: pd.DataFrame) -> pd.DataFrame:
    frame = items.assign(interested=(items["response"] == "interested").astype(np.int64), shown=1)
    has_adoptions = frame["adopted"].notna().all() and len(frame) > 0
    frame["adopted"] = frame["adopted"].fillna(0.0)
    out = frame.groupby("customer_id")[["shown", "interested", "adopted"]].sum()
    out.attrs["has_adoptions"] = has_adoptions
    return out


def _bootstrap(numerator: np.ndarray, shown: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """``n_boot`` resampled ratios sum(numerator) / sum(shown), customers drawn with replacement."""
    n = len(shown)
    out = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, n, n)
        out[b] = numerator[pick].sum() / max(shown[pick].sum(), 1)
    return out


def _interval(draws: np.ndarray) -> list[float]:
    return [round(float(np.quantile(draws, 0.025)), 6), round(float(np.quantile(draws, 0.975)), 6)]


def compare_arms(items: pd.DataFrame, min_lift: float = MIN_LIFT, n_boot: int = BOOTSTRAP, seed: int = 0,
                 stage: int = 1) -> dict[str, Any]:
    """The report: each arm's conversion (and adoption) with intervals, and whether to promote."""
    items = items[(items["stage"] == stage) & items["arm"].isin(ARMS)]
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {"stage": stage, "rule": {"min_lift": min_lift, "interval": 0.95, "bootstrap": n_boot,
                                                       "resampled": "customers"}}
    draws: dict[str, dict[str, np.ndarray]] = {}
    for arm in ARMS:
        rows = items[items["arm"] == arm]
        customers = _per_customer(rows)
        entry: dict[str, Any] = {"customers": int(len(customers)), "lists": int(rows["recommendation_id"].nunique()),
                                 "shown": int(customers["shown"].sum()),
                                 "interested": int(customers["interested"].sum()),
                                 "model_versions": sorted(str(v) for v in rows["model_version"].dropna().unique())[-5:]}
        if len(customers) == 0:
            report[arm] = {**entry, "conversion": None, "ci": None, "adoption": None}
            continue
        shown = customers["shown"].to_numpy(np.float64)
        conv = _bootstrap(customers["interested"].to_numpy(np.float64), shown, rng, n_boot)
        draws[arm] = {"conversion": conv}
        entry.update(conversion=round(entry["interested"] / entry["shown"], 6), ci=_interval(conv), adoption=None)
        if customers.attrs["has_adoptions"]:
            adopted = customers["adopted"].to_numpy(np.float64)
            adopt = _bootstrap(adopted, shown, rng, n_boot)
            draws[arm]["adoption"] = adopt
            entry["adoption"] = {"adopted": int(adopted.sum()), "rate": round(float(adopted.sum() / shown.sum()), 6),
                                 "ci": _interval(adopt)}
        report[arm] = entry
    for other in ("challenger", "control"):
        report[f"{other}_vs_champion"] = _difference(report, draws, other)
    report["promote"], report["reason"] = _decide(report, min_lift)
    return report


def _difference(report: dict, draws: dict, arm: str) -> dict[str, Any] | None:
    if arm not in draws or "champion" not in draws:
        return None
    a, b = draws[arm]["conversion"], draws["champion"]["conversion"]
    base = report["champion"]["conversion"]
    out = {"difference": round(report[arm]["conversion"] - base, 6), "ci": _interval(a - b),
           "lift": round(report[arm]["conversion"] / base - 1, 6) if base else None,
           "lift_ci": _interval(a / np.maximum(b, 1e-12) - 1) if base else None}
    if "adoption" in draws[arm] and "adoption" in draws["champion"]:
        out["adoption_difference_ci"] = _interval(draws[arm]["adoption"] - draws["champion"]["adoption"])
    return out


def _decide(report: dict, min_lift: float) -> tuple[bool, str]:
    diff = report.get("challenger_vs_champion")
    if diff is None:
        return False, "no challenger or no champion lists to compare"
    lift, (low, high) = diff["lift"], diff["ci"]
    if lift is None:
        return False, "the champion converted nothing: no lift can be computed"
    if lift < min_lift:
        return False, f"challenger lift {lift:+.1%} is below the required {min_lift:+.0%}"
    if low <= 0:
        return False, f"lift {lift:+.1%}, but the 95% interval of the difference [{low:.4f}, {high:.4f}] includes zero"
    return True, f"lift {lift:+.1%} >= {min_lift:+.0%} and the 95% interval of the difference [{low:.4f}, {high:.4f}] excludes zero"


def write_report(paths: Paths, report: dict[str, Any]) -> Path:
    path = paths.reports / "impact.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=json_default) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.operations.impact", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, default=None,
                        help="read a feedback export folder instead of the warehouse mart (no adoptions)")
    parser.add_argument("--since", default=None, help="only lists served on or after this date")
    parser.add_argument("--min-lift", type=float, default=MIN_LIFT, help="required relative lift (default 0.15)")
    parser.add_argument("--bootstrap", type=int, default=BOOTSTRAP, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    args = parser.parse_args(argv)
    paths = Paths.from_env()
    items = items_from_export(args.export) if args.export else items_from_marts(paths.marts)
    if args.since:
        items = items[pd.to_datetime(items["created_at"]) >= pd.Timestamp(args.since)]
    report = {"generated_at": datetime.now(timezone.utc).isoformat(),
              "source": str(args.export) if args.export else str(paths.marts / MART), "since": args.since,
              **compare_arms(items, args.min_lift, args.bootstrap, args.seed)}
    path = write_report(paths, report)
    summary = {arm: {k: report[arm].get(k) for k in ("customers", "shown", "conversion", "ci")} for arm in ARMS}
    print(json.dumps({**summary, "promote": report["promote"], "reason": report["reason"], "report": str(path)},
                     indent=2, default=json_default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
