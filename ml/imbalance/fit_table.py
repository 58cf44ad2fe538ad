"""Every imbalance strategy on any flat labelled table (CSV or Parquet), cross-validated.

    python -m ml.imbalance.fit_table --data FILE --target COLUMN [--positive VALUE] [--report DIR]

Stratified folds for the table, a time split for calibration where the table has an order; the
same candidates (``ml.imbalance.pipelines``) and metrics (PR-AUC, ROC-AUC, lift, capture) as the
bank's own model.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.model_selection import StratifiedKFold

from ml.core import metrics as M
from ml.core.logs import step_log
from ml.imbalance import tabular
from ml.imbalance.fit_report import _clean, write_report
from ml.imbalance.pipelines import (
    BASELINES,
    DEFAULT_LGBM_PARAMS,
    GROUP_BASELINES,
    SAMPLING_RATIO,
    STRATEGIES,
    calibrate,
    make_pipeline,
)

ALL_STRATEGIES = {**STRATEGIES, **GROUP_BASELINES}

HEADLINE = ("roc_auc", "pr_auc", "capture_at_50", "lift_at_10")

FOLD_METRICS = HEADLINE + ("brier", "precision_at_10", "recall_at_10", "lift_at_5", "lift_at_20")

INTERVAL_REPLICATES = 1000


#: Published / previously measured numbers a recipe's data set can be compared with.


log = step_log("fit_table")


@dataclass
class Dataset:
    X: pd.DataFrame
    y: np.ndarray
    numeric: list[str]
    categorical: list[str]
    description: dict


def load_dataset(
    path: str | Path,
    target: str,
    *,
    drop: list[str] | None = None,
    time_order: str | None = None,
    positive_rate: float | None = None,
    positive_label: str | None = None,
    recipe: str = "auto",
    seed: int = 7,
) -> Dataset:
    """Steps 1-5 of the module docstring; returns features, labels and their description."""
    df, fmt = tabular.read_table(path)
    rows_in_file = len(df)
    if target not in df.columns:
        raise SystemExit(f"target column {target!r} not in {list(df.columns)}")
    drop = [c for c in (drop or []) if c]
    missing = [c for c in drop if c not in df.columns]
    if missing:
        raise SystemExit(f"--drop columns not in the file: {missing}")
    if time_order is not None and time_order not in df.columns:
        raise SystemExit(f"--time-order column {time_order!r} not in the file")
    df = df.drop(columns=drop)
    n_missing_target = int(df[target].isna().sum())
    df = df[df[target].notna()].reset_index(drop=True)

    df, recipe_used, recipe_notes = tabular.apply_recipe(df, recipe)
    y_all, pos_label, neg_label = tabular.binarize_target(df[target], positive_label)
    positives_in_file = int(y_all.sum())

    if positive_rate is not None:
        keep = tabular.downsample_positives(y_all, positive_rate, seed)
        df = df.iloc[keep].reset_index(drop=True)
        y_all = y_all[keep]

    if time_order is not None:
        order_key = df[time_order]
        if not pd.api.types.is_numeric_dtype(order_key):
            parsed = pd.to_datetime(order_key, errors="coerce")
            order_key = parsed if parsed.notna().mean() > 0.95 else order_key.astype(str)
        order = np.argsort(order_key.to_numpy(), kind="stable")
        df = df.iloc[order].reset_index(drop=True)
        y_all = y_all[order]

    features = df.drop(columns=[target] + ([time_order] if time_order else []))
    cols = tabular.split_columns(features)
    renames = tabular.safe_names(cols.used)
    X = tabular.prepare_features(features, cols).rename(columns=renames)
    numeric = [renames[c] for c in cols.numeric]
    categorical = [renames[c] for c in cols.categorical]

    dropped = {c: "--drop" for c in drop}
    dropped.update(cols.excluded)
    if time_order:
        dropped[time_order] = "--time-order (ordering only)"
    description = {
        "path": str(path),
        **fmt,
        "target": target,
        "positive_label": pos_label,
        "negative_label": neg_label,
        "rows_in_file": rows_in_file,
        "rows_missing_target": n_missing_target,
        "positives_in_file": positives_in_file,
        "positive_rate_in_file": positives_in_file / max(1, rows_in_file - n_missing_target),
        "positive_rate_requested": positive_rate,
        "rows": int(len(X)),
        "positives": int(y_all.sum()),
        "positive_rate": float(y_all.mean()),
        "columns_used": {"numeric": numeric, "categorical": categorical},
        "columns_dropped": dropped,
        "columns_renamed": {k: v for k, v in renames.items() if k != v},
        "recipe": {"name": recipe_used, "features": recipe_notes},
        "time_order": time_order or "file order",
    }
    return Dataset(X=X, y=y_all.astype(int), numeric=numeric, categorical=categorical,
                   description=description)


def _fit_predict(strategy: str, data: Dataset, train_idx, test_idx, seed: int, options: dict,
                 calibrate_cv=None) -> tuple[np.ndarray, float]:
    """Fit one strategy on ``train_idx`` and score ``test_idx``; returns (scores, seconds).

    With ``calibrate_cv`` (a splitter) the pipeline is sigmoid-calibrated on out-of-fold scores
    of the training rows (:func:`ml.imbalance.calibrate` with ``cv=``) before scoring.
    """
    t0 = time.perf_counter()
    pipe = make_pipeline(strategy, data.numeric, data.categorical, seed, **options)
    X, y = data.X, data.y
    if calibrate_cv is None:
        pipe.fit(X.iloc[train_idx], y[train_idx])
        scores = pipe.predict_proba(X.iloc[test_idx])[:, 1]
    else:
        cal = calibrate(pipe, X.iloc[train_idx], y[train_idx], method="sigmoid", cv=calibrate_cv)
        scores = cal.predict_proba(X.iloc[test_idx])[:, 1]
    return scores, time.perf_counter() - t0


def _task(task: tuple, data: Dataset, seed: int, options: dict):
    kind, strategy, i, train_idx, test_idx = task
    return kind, strategy, i, _fit_predict(strategy, data, train_idx, test_idx, seed, options)


def _fold_metrics(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    rep = M.binary_report(y, s, fracs=(0.05, 0.10, 0.20, 0.50))
    return {k: rep.get(k, float("nan")) for k in FOLD_METRICS}


def _summarise_folds(folds: list[dict]) -> dict:
    out = {}
    for k in FOLD_METRICS:
        vals = np.array([f[k] for f in folds], dtype=float)
        out[k] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
        out[f"{k}_std"] = float(np.nanstd(vals, ddof=1)) if np.isfinite(vals).sum() > 1 else float("nan")
    return out


def run(
    data: Dataset,
    *,
    seed: int = 7,
    folds: int = 5,
    test_share: float = 0.2,
    strategies: list[str] | None = None,
    jobs: int = 2,
    options: dict | None = None,
) -> dict:
    """Evaluate every strategy (selection CV, CV, time split) and choose one.

    ``popularity`` is included when ``options["popularity_by"]`` names a group column.
    """
    options = dict(options or {})
    if strategies:
        names = list(strategies)
    else:  # baselines first, then the levers
        names = ["dummy"] + (["popularity"] if options.get("popularity_by") else [])
        names += [s for s in STRATEGIES if s != "dummy"]
    unknown = [s for s in names if s not in ALL_STRATEGIES]
    if unknown:
        raise SystemExit(f"unknown strategies {unknown}; choose from {list(ALL_STRATEGIES)}")
    n = len(data.y)
    n_train = int(round(n * (1 - test_share)))
    train_idx, test_idx = np.arange(n_train), np.arange(n_train, n)
    if data.y[train_idx].sum() < folds or data.y[train_idx].sum() == n_train:
        raise SystemExit("too few positives in the training period for the selection CV")

    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    full_splits = list(skf.split(np.zeros(n), data.y))
    sel_splits = [(train_idx[a], train_idx[b]) for a, b in skf.split(np.zeros(n_train), data.y[train_idx])]

    tasks = []
    for s in names:
        for i, (a, b) in enumerate(sel_splits):
            tasks.append(("selection", s, i, a, b))
        for i, (a, b) in enumerate(full_splits):
            tasks.append(("cv", s, i, a, b))
        tasks.append(("time_split", s, 0, train_idx, test_idx))
    log(f"{len(names)} strategies, {len(tasks)} fits on {jobs} worker(s)")

    results: dict[tuple[str, str], dict[int, tuple[np.ndarray, float]]] = {}
    started = time.perf_counter()
    parallel = Parallel(n_jobs=jobs, return_as="generator_unordered")
    jobs_iter = parallel(delayed(_task)(t, data, seed, options) for t in tasks)
    per_strategy_left = {s: 2 * folds + 1 for s in names}
    for done, (kind, s, i, out) in enumerate(jobs_iter, 1):
        results.setdefault((kind, s), {})[i] = out
        per_strategy_left[s] -= 1
        if per_strategy_left[s] == 0:
            log(f"{done}/{len(tasks)} fits done; {s} complete ({time.perf_counter() - started:.0f}s)")

    table: dict[str, dict] = {}
    for s in names:
        sel = results[("selection", s)]
        sel_folds = [_fold_metrics(data.y[sel_splits[i][1]], sel[i][0]) for i in range(folds)]
        cv = results[("cv", s)]
        cv_folds = [_fold_metrics(data.y[full_splits[i][1]], cv[i][0]) for i in range(folds)]
        oof = np.empty(n)
        for i, (_, b) in enumerate(full_splits):
            oof[b] = cv[i][0]
        ts_scores, ts_sec = results[("time_split", s)][0]
        table[s] = {
            "description": ALL_STRATEGIES[s],
            "baseline": s in BASELINES,
            "selection_cv": _summarise_folds(sel_folds),
            "cv": {**_summarise_folds(cv_folds), "pooled": _fold_metrics(data.y, oof)},
            "time_split": _fold_metrics(data.y[test_idx], ts_scores),
            "fit_seconds": {
                "selection_cv": float(sum(v[1] for v in sel.values())),
                "cv": float(sum(v[1] for v in cv.values())),
                "time_split": float(ts_sec),
            },
        }
        table[s]["_oof"] = oof
        table[s]["_ts_scores"] = ts_scores

    chosen = max(names, key=lambda s: (np.nan_to_num(table[s]["selection_cv"]["pr_auc"], nan=-1.0), -names.index(s)))
    log(f"chosen by selection-CV PR-AUC: {chosen}; calibrating it on the time split")
    cal_scores, cal_sec = _fit_predict(chosen, data, train_idx, test_idx, seed, options, calibrate_cv=skf)
    calibrated = _fold_metrics(data.y[test_idx], cal_scores)
    calibrated["mean_predicted"] = float(cal_scores.mean())
    raw_ts = table[chosen]["_ts_scores"]
    log(f"bootstrap intervals of {chosen}'s time split and pooled out-of-fold scores")
    intervals = {"method": f"row bootstrap, {INTERVAL_REPLICATES} replicates, 95% percentile intervals",
                 "time_split": M.binary_intervals(data.y[test_idx], raw_ts, INTERVAL_REPLICATES, seed),
                 "cv_pooled": M.binary_intervals(data.y, table[chosen]["_oof"], INTERVAL_REPLICATES, seed)}

    def headline(block: dict) -> dict:
        return {k: block[k] for k in HEADLINE} | {"brier": block.get("brier", float("nan"))}

    return {
        "selection": {
            "criterion": "mean PR-AUC over stratified 5-fold CV on the training period (first "
                         f"{1 - test_share:.0%} of rows); time-split test rows never used",
            "chosen": chosen,
            "scores": {s: table[s]["selection_cv"]["pr_auc"] for s in names},
        },
        "cv": {
            "strategy": chosen,
            "folds": folds,
            **headline(table[chosen]["cv"]),
            "std": {k: table[chosen]["cv"][f"{k}_std"] for k in HEADLINE},
            "pooled": headline(table[chosen]["cv"]["pooled"]),
        },
        "time_split": {
            "strategy": chosen,
            "train_rows": int(n_train),
            "test_rows": int(n - n_train),
            "train_positives": int(data.y[train_idx].sum()),
            "test_positives": int(data.y[test_idx].sum()),
            **headline(table[chosen]["time_split"]),
            "mean_predicted": float(raw_ts.mean()),
            "test_positive_rate": float(data.y[test_idx].mean()),
            "calibrated": {
                "method": "sigmoid (Platt) on out-of-fold scores of the training period "
                          "(CalibratedClassifierCV, ensemble=False, same 5 folds as the selection CV)",
                **headline(calibrated),
                "mean_predicted": calibrated["mean_predicted"],
                "seconds": cal_sec,
            },
        },
        "intervals": intervals,
        "strategies": table,
        "wall_seconds_fits": time.perf_counter() - started,
    }


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ml.imbalance.fit_table", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="CSV (any common delimiter) or Parquet file")
    p.add_argument("--target", required=True, help="binary target column")
    p.add_argument("--positive-label", default=None, help="target value meaning 'positive' if not obvious")
    p.add_argument("--drop", default="", help="comma-separated columns to leave out (e.g. leaking ones)")
    p.add_argument("--time-order", default=None, help="column to order rows by (default: file order)")
    p.add_argument("--positive-rate", type=float, default=None, help="down-sample positives to this share of rows")
    p.add_argument("--seed", type=int, default=7, help="seed for down-sampling, folds and models")
    p.add_argument("--report", required=True, help="output directory")
    p.add_argument("--strategies", default=None, help="comma-separated subset of strategies (default: all)")
    p.add_argument("--popularity-by", default=None, help="group column for the popularity baseline")
    p.add_argument("--recipe", default="auto", help="feature recipe: auto (detect), none, or a name")
    p.add_argument("--folds", type=int, default=5, help="folds of the stratified cross-validation")
    p.add_argument("--test-share", type=float, default=0.2, help="last share of rows for the time split")
    p.add_argument("--sampling-ratio", type=float, default=SAMPLING_RATIO,
                   help="minority/majority row ratio the samplers aim at")
    p.add_argument("--lgbm", default=None, metavar="JSON",
                   help="LightGBM parameters overriding ml.imbalance.DEFAULT_LGBM_PARAMS, e.g. "
                        "'{\"num_leaves\": 31}'")
    p.add_argument("--jobs", type=int, default=2, help="parallel fits (processes)")
    p.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    t0 = time.perf_counter()
    log(f"reading {args.data}")
    data = load_dataset(
        args.data, args.target,
        drop=[c.strip() for c in args.drop.split(",")] if args.drop else [],
        time_order=args.time_order, positive_rate=args.positive_rate,
        positive_label=args.positive_label, recipe=args.recipe, seed=args.seed,
    )
    d = data.description
    log(f"{d['rows']:,} rows, {d['positives']:,} positives ({d['positive_rate']:.2%}), "
        f"{len(data.numeric)} numeric + {len(data.categorical)} categorical features"
        + (f", recipe {d['recipe']['name']}" if d["recipe"]["name"] else ""))
    t_load = time.perf_counter() - t0
    lgbm_params = json.loads(args.lgbm) if args.lgbm else {}
    if not isinstance(lgbm_params, dict):
        raise SystemExit("--lgbm must be a JSON object")
    options = {"sampling_ratio": args.sampling_ratio, **lgbm_params}
    if args.popularity_by:
        options["popularity_by"] = tabular.safe_names([args.popularity_by])[args.popularity_by]
    strategies = [s.strip() for s in args.strategies.split(",")] if args.strategies else None
    result = run(data, seed=args.seed, folds=args.folds, test_share=args.test_share,
                 strategies=strategies, jobs=args.jobs, options=options)
    total = time.perf_counter() - t0
    import imblearn
    import lightgbm
    import sklearn

    out = {
        "command": "python -m ml.imbalance.fit_table " + " ".join(sys.argv[1:] if argv is None else argv),
        "data": d,
        "seeds": {"downsample": args.seed, "cv_split": args.seed, "models": args.seed},
        "protocol": {
            "cv": f"stratified {args.folds}-fold, shuffled (seed {args.seed}), all rows; mean over folds",
            "time_split": f"first {1 - args.test_share:.0%} of rows ({d['time_order']}) train, last "
                          f"{args.test_share:.0%} test",
            "selection": result["selection"]["criterion"],
            "lgbm_params": {**DEFAULT_LGBM_PARAMS, **lgbm_params},
            "sampling_ratio": args.sampling_ratio,
        },
        "selection": result["selection"],
        "cv": result["cv"],
        "time_split": result["time_split"],
        "intervals": result["intervals"],
        "strategies": result["strategies"],
        "timing": {
            "total_seconds": total,
            "load_seconds": t_load,
            "fits_wall_seconds": result["wall_seconds_fits"],
            "jobs": args.jobs,
            "cpu_count": os.cpu_count(),
        },
        "versions": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "imbalanced-learn": imblearn.__version__,
            "lightgbm": lightgbm.__version__,
        },
        "_y": data.y,
        "_test_idx": np.arange(result["time_split"]["train_rows"], len(data.y)),
    }
    write_report(out, result, Path(args.report), charts=not args.no_charts)
    log(f"done in {total:.0f}s: {args.report}/metrics.json, report.md")
    return _clean(out)

if __name__ == "__main__":
    main()
