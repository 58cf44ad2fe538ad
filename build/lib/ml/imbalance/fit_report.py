"""The strategy table's report: markdown table, metrics JSON and charts (gains, PR curves)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ml.core.logs import step_log

log = step_log("fit_table")

REFERENCES = {
    "uci-bank": [
        {
            "name": "Moro, Cortez & Rita (2014), Decision Support Systems, full data (11% positives)",
            "roc_auc": 0.80, "capture_at_50": 0.79,
        },
        {
            "name": "project reference: plain LightGBM, no imbalance handling, 5-fold CV at 2% positives",
            "roc_auc": 0.784, "pr_auc": 0.146, "capture_at_50": 0.81, "lift_at_10": 5.8,
        },
    ],
}


def _clean(obj):
    """JSON-safe: NaN/inf -> null, numpy scalars -> Python, private keys dropped."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


def strategy_table_md(result: dict) -> str:
    """The strategies table as Markdown (CV mean ± std, then time split)."""
    chosen = result["selection"]["chosen"]
    lines = [
        "| strategy | sel. PR-AUC | CV ROC-AUC | CV PR-AUC | CV capture@50% | CV lift@10% "
        "| time ROC-AUC | time PR-AUC | time capture@50% | time lift@10% |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s, row in result["strategies"].items():
        cv, ts = row["cv"], row["time_split"]
        name = f"**{s}** (chosen)" if s == chosen else s
        if row["baseline"]:
            name += " — baseline"
        lines.append(
            f"| {name} | {_fmt(row['selection_cv']['pr_auc'])} "
            f"| {_fmt(cv['roc_auc'])} ± {_fmt(cv['roc_auc_std'])} "
            f"| {_fmt(cv['pr_auc'])} ± {_fmt(cv['pr_auc_std'])} "
            f"| {_fmt(cv['capture_at_50'])} ± {_fmt(cv['capture_at_50_std'])} "
            f"| {_fmt(cv['lift_at_10'], 2)} ± {_fmt(cv['lift_at_10_std'], 2)} "
            f"| {_fmt(ts['roc_auc'])} | {_fmt(ts['pr_auc'])} | {_fmt(ts['capture_at_50'])} "
            f"| {_fmt(ts['lift_at_10'], 2)} |"
        )
    return "\n".join(lines)


def write_report(out: dict, result: dict, report_dir: Path, charts: bool = True) -> None:
    """metrics.json, report.md and (unless ``charts=False``) PNG charts."""
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "metrics.json").write_text(json.dumps(_clean(out), indent=2, ensure_ascii=False) + "\n")
    d = out["data"]
    cv, ts = out["cv"], out["time_split"]
    lines = [
        f"# Imbalance strategies on `{Path(d['path']).name}`",
        "",
        f"Command: `{out['command']}`",
        "",
        "## Data",
        "",
        f"- {d['rows']:,} rows, {d['positives']:,} positives ({d['positive_rate']:.2%}); "
        f"target `{d['target']}`, positive class `{d['positive_label']}`, negative `{d['negative_label']}`.",
        f"- File: {d['rows_in_file']:,} rows, {d['positives_in_file']:,} positives "
        f"({d['positive_rate_in_file']:.2%})"
        + (f"; positives down-sampled (seed {out['seeds']['downsample']}) to {d['positive_rate_requested']:.2%} "
           "of rows before any split." if d["positive_rate_requested"] else "."),
        f"- Features: {len(d['columns_used']['numeric'])} numeric, {len(d['columns_used']['categorical'])} "
        f"categorical (one-hot inside each pipeline). Not used: "
        + (", ".join(f"`{c}` ({r})" for c, r in d["columns_dropped"].items()) or "none") + ".",
    ]
    if d["recipe"]["name"]:
        lines.append(f"- Recipe `{d['recipe']['name']}` (label-free features, `--recipe none` to switch off):")
        lines += [f"  - `{k}`: {v}" for k, v in d["recipe"]["features"].items()]
    lines += [
        f"- Time order: {d['time_order']}; time split = first {ts['train_rows']:,} rows train, "
        f"last {ts['test_rows']:,} rows ({ts['test_positives']} positives) test.",
        "",
        "## Chosen strategy",
        "",
        f"`{out['selection']['chosen']}` — {out['selection']['criterion']}.",
        "",
        "| evaluation | ROC-AUC | PR-AUC | capture@50% | lift@10% | Brier |",
        "|---|---|---|---|---|---|",
        f"| 5-fold stratified CV (mean ± std over folds) | {_fmt(cv['roc_auc'])} ± {_fmt(cv['std']['roc_auc'])} "
        f"| {_fmt(cv['pr_auc'])} ± {_fmt(cv['std']['pr_auc'])} "
        f"| {_fmt(cv['capture_at_50'])} ± {_fmt(cv['std']['capture_at_50'])} "
        f"| {_fmt(cv['lift_at_10'], 2)} ± {_fmt(cv['std']['lift_at_10'], 2)} | {_fmt(cv['brier'], 4)} |",
        f"| time split (last {ts['test_rows']:,} rows) | {_fmt(ts['roc_auc'])} | {_fmt(ts['pr_auc'])} "
        f"| {_fmt(ts['capture_at_50'])} | {_fmt(ts['lift_at_10'], 2)} | {_fmt(ts['brier'], 4)} |",
        f"| time split, calibrated (sigmoid) | {_fmt(ts['calibrated']['roc_auc'])} "
        f"| {_fmt(ts['calibrated']['pr_auc'])} | {_fmt(ts['calibrated']['capture_at_50'])} "
        f"| {_fmt(ts['calibrated']['lift_at_10'], 2)} | {_fmt(ts['calibrated']['brier'], 4)} |",
        "",
        f"Time split: mean predicted probability {ts['mean_predicted']:.4f} raw, "
        f"{ts['calibrated']['mean_predicted']:.4f} calibrated, vs. a test positive rate of "
        f"{ts['test_positive_rate']:.4f}.",
    ]
    refs = REFERENCES.get(d["recipe"]["name"] or "", [])
    if refs:
        lines += ["", "## References", "", "| reference | ROC-AUC | PR-AUC | capture@50% | lift@10% |",
                  "|---|---|---|---|---|"]
        for r in refs:
            lines.append(f"| {r['name']} | {_fmt(r.get('roc_auc'))} | {_fmt(r.get('pr_auc'))} "
                         f"| {_fmt(r.get('capture_at_50'), 2)} | {_fmt(r.get('lift_at_10'), 1)} |")
        lines.append(f"| **this run, CV, `{cv['strategy']}`** | {_fmt(cv['roc_auc'])} | {_fmt(cv['pr_auc'])} "
                     f"| {_fmt(cv['capture_at_50'])} | {_fmt(cv['lift_at_10'], 2)} |")
    lines += [
        "",
        "## All strategies",
        "",
        "Selection PR-AUC: 5-fold CV inside the training period (used to choose). CV: 5-fold stratified "
        "CV on all rows, mean ± std over folds. Time: trained on the first "
        f"{ts['train_rows']:,} rows, scored on the last {ts['test_rows']:,}.",
        "",
        strategy_table_md(result),
        "",
        "## Protocol",
        "",
        f"- Seeds: {out['seeds']}.",
        f"- LightGBM parameters (all LightGBM strategies): `{json.dumps(out['protocol']['lgbm_params'])}`; "
        f"samplers aim at a minority/majority row ratio of {out['protocol']['sampling_ratio']}. These are "
        "fixed inputs of the run (`ml.imbalance` defaults or `--lgbm`), not tuned on its folds.",
        "- Brier scores are of the raw probabilities; samplers and class weights inflate them, the "
        "calibrated row shows what calibration on training data recovers.",
        "- Every strategy is one imblearn pipeline (preprocess → sampler → estimator) fitted on training "
        "rows only; samplers never see validation or test rows.",
        "- lift@10% = positive rate in the top 10% of scores / overall positive rate; capture@50% = "
        "share of positives in the top half; ties are split evenly.",
        f"- Run time: {out['timing']['total_seconds']:.0f}s wall ({out['timing']['jobs']} worker(s)).",
    ]
    (report_dir / "report.md").write_text("\n".join(lines) + "\n")
    if not charts:
        return
    try:
        _charts(result, out, report_dir)
    except Exception as exc:  # charts are optional; never fail the run for them
        log(f"charts skipped: {exc!r}")


def _gains_curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gains with ties spread evenly (straight segments across a tied group)."""
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order], s[order]
    ends = np.r_[np.flatnonzero(np.diff(ss) != 0), len(ss) - 1]  # last row of every tie group
    x = np.r_[0, (ends + 1) / len(ss)]
    g = np.r_[0, np.cumsum(ys)[ends] / max(1, ys.sum())]
    return x, g


def _charts(result: dict, out: dict, report_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["strategies"])
    fig, ax = plt.subplots(figsize=(8, 4))
    vals = [result["strategies"][s]["cv"]["pr_auc"] for s in names]
    errs = [result["strategies"][s]["cv"]["pr_auc_std"] for s in names]
    colors = ["tab:orange" if s == out["selection"]["chosen"] else "tab:blue" for s in names]
    ax.bar(names, vals, yerr=errs, color=colors, capsize=3)
    ax.set_ylabel("PR-AUC (5-fold CV)")
    ax.set_title("Imbalance strategies")
    ax.tick_params(axis="x", rotation=40)
    fig.tight_layout()
    fig.savefig(report_dir / "strategies_pr_auc.png", dpi=110)
    plt.close(fig)

    y = out["_y"]
    test = out["_test_idx"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, title, scores_of, labels in (
        (axes[0], "5-fold CV (pooled out-of-fold)", lambda s: result["strategies"][s]["_oof"], y),
        (axes[1], "time split (test)", lambda s: result["strategies"][s]["_ts_scores"], y[test]),
    ):
        for s in dict.fromkeys([out["selection"]["chosen"], "none", "balanced_rf"]):
            if s not in result["strategies"]:
                continue
            ax.plot(*_gains_curve(labels, scores_of(s)), label=s)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="random (dummy)")
        ax.set_xlabel("share of rows contacted (by score)")
        ax.set_ylabel("share of positives captured")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(report_dir / "cumulative_gains.png", dpi=110)
    plt.close(fig)
