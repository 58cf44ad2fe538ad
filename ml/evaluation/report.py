"""reports/report.html: the evaluation as tables and figures people can look at."""
from __future__ import annotations

import html
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402

matplotlib.use("Agg")

CURVES = ("model", "oracle_observable", "oracle_true", "rule_match_score", "popularity", "random")


def _thin(n: int, points: int = 4000) -> np.ndarray:
    """Indices of at most ``points`` evenly spread points of a curve (millions of cells at full scale)."""
    return np.unique(np.linspace(0, n - 1, min(n, points)).astype(int))


def _figure(path: Path) -> str:
    plt.tight_layout()
    plt.savefig(path, dpi=110)
    plt.close()
    return path.name


def _pr_curves(folder: Path, holdout, scores: dict) -> str:
    plt.figure(figsize=(6, 4.5))
    y = holdout.labels[holdout.eligible]
    for name in CURVES:
        if name in scores:
            p, r, _ = precision_recall_curve(y, scores[name][holdout.eligible])
            keep = _thin(len(r))
            plt.plot(r[keep], p[keep], label=name)
    plt.xlabel("recall")
    plt.ylabel("precision")
    plt.yscale("log")
    plt.title("Precision-recall, all eligible customer x product cells")
    plt.legend(fontsize=8, loc="upper right")
    return _figure(folder / "pr_curves.png")


def _gain_chart(folder: Path, holdout, scores: dict) -> str:
    plt.figure(figsize=(6, 4.5))
    y = holdout.labels[holdout.eligible].astype(float)
    for name in CURVES:
        if name in scores:
            order = np.argsort(-scores[name][holdout.eligible], kind="stable")
            gain = np.concatenate([[0], np.cumsum(y[order]) / y.sum()])
            share = np.linspace(0, 1, len(gain))
            keep = _thin(len(gain))
            plt.plot(share[keep], gain[keep], label=name)
    plt.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    plt.xlabel("share of eligible cells contacted (best first)")
    plt.ylabel("share of adoptions reached")
    plt.title("Cumulative gain")
    plt.legend(fontsize=8, loc="lower right")
    return _figure(folder / "gain_chart.png")


def _calibration(folder: Path, holdout, scores: dict) -> str:
    plt.figure(figsize=(5, 4.5))
    y = holdout.labels[holdout.eligible].astype(float)
    for name in ("model", "oracle_observable"):
        if name not in scores:
            continue
        s = scores[name][holdout.eligible]
        edges = np.unique(np.quantile(s, np.linspace(0, 1, 11)))
        bins = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, len(edges) - 2)
        mean_s = np.bincount(bins, s) / np.maximum(np.bincount(bins), 1)
        mean_y = np.bincount(bins, y) / np.maximum(np.bincount(bins), 1)
        plt.plot(mean_s, mean_y, "o-", label=name)
    top = max(plt.xlim()[1], plt.ylim()[1])
    plt.plot([0, top], [0, top], "k:", linewidth=0.8)
    plt.xlabel("predicted probability (decile mean)")
    plt.ylabel("observed adoption rate")
    plt.title("Calibration")
    plt.legend(fontsize=8, loc="upper left")
    return _figure(folder / "calibration.png")


def _importance(folder: Path, model) -> str:
    gain = model.importance().head(25)[::-1]
    plt.figure(figsize=(6, 6))
    plt.barh(gain.index, gain.to_numpy())
    plt.xlabel("total gain")
    plt.title("Feature importance (LightGBM gain), top 25")
    return _figure(folder / "feature_importance.png")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return html.escape(value)
    if isinstance(value, (bool, int, np.integer)):
        return f"{value:,}"
    return f"{value:.5f}" if abs(value) < 1 else f"{value:,.2f}"


def _table(rows: dict, columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["candidate", *columns])
    body = []
    for name, row in rows.items():
        cells = "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns)
        body.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _rows(training: dict, name: str) -> str:
    row = (training.get("calibration_table") or {}).get(name) or {}
    return f"{row['rows']:,}" if "rows" in row else "?"


def _lists(lists: dict) -> str:
    """The served list, the propensity ranking, baselines and oracles, with 95% intervals."""
    out = []
    for block, title in (("all", "every held-out customer"), ("sample", "the posterior oracle's sample")):
        if block not in lists:
            continue
        rows = lists[block]["rows"]
        cells = {name: {f: f"{row[f]:.5f} [{row['ci'][f][0]:.5f}, {row['ci'][f][1]:.5f}]"
                        for f in ("map_at_5", "recall_at_5", "top_decile_lift", "value_captured_at_5")}
                 for name, row in rows.items()}
        ratios = "; ".join(f"{html.escape(k)} {r['ratio']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"
                           for k, r in lists[block]["ratios"].items())
        out.append(f"<h2>Lists ({title}: {lists[block]['n_customers']:,} customers; 95% intervals)</h2>"
                   f"{_table(cells, ['map_at_5', 'recall_at_5', 'top_decile_lift', 'value_captured_at_5'])}"
                   f"<p>{ratios}</p>")
    return "".join(out)


def write_report(reports: Path, result: dict, holdout, scores: dict, model) -> Path:
    folder = reports / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    figures = [_pr_curves(folder, holdout, scores), _gain_chart(folder, holdout, scores),
               _calibration(folder, holdout, scores), _importance(folder, model)]
    s = result["summary"]
    columns = ["map_at_5", "ndcg_at_5", "recall_at_5", "precision_at_5", "pr_auc", "roc_auc",
               "top_decile_lift", "brier"]
    training = result["training"]
    sampling = training.get("negative_sampling") or {}
    chosen = training.get("chosen") or {}
    strategy_table = result.get("strategy_table") or {}
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Lingxi evaluation</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}</style></head><body>
<h1>Lingxi — stage-one evaluation</h1>
<p>Held-out cut-off {s['cutoff']}, generator seed {s['generator_seed']}, {s['n_customers']:,} customers,
model version {html.escape(str(s['model_version']))}. Regenerated by <code>python -m ml.evaluation.evaluate</code>.</p>
<p>Propensity ranking: MAP@5 {s['map_at_5']:.5f}; prior oracle {_cell(s['observable_oracle_map_at_5'])}; full oracle
{_cell(s['oracle_map_at_5'])}. Recall@5 {s['recall_at_5']:.3f}; top-decile lift {s['top_decile_lift']:.2f}; Brier {s['brier']:.6f}.</p>
{_lists(result.get('lists') or {})}
<h2>Model and baselines (every held-out customer)</h2>
{_table(result['strategies'], columns)}
<h2>Imbalance strategies (held out)</h2>
<p>Every strategy was fitted on the same sample of {_rows(training, 'strategy:none')} training rows
(the production model: {_rows(training, 'production')}) and is scored here on
{strategy_table.get('customers', 0):,} random held-out customers (of {strategy_table.get('of_customers', 0):,}),
with the model and the oracles on the same customers. Strategies are not calibrated, so no Brier score.</p>
{_table(strategy_table.get('rows', {}), columns)}
<h2>Model choice (calibration cut-off {html.escape(str(training.get('calibration_cutoff')))})</h2>
<p>Chosen: <b>{html.escape(str(chosen.get('candidate')))}</b> — {html.escape(str(chosen.get('reason')))}.
The choice looks only at the calibration cut-off, never at the held-out one.</p>
{_table(training.get('calibration_table') or {}, ['map_at_5', 'ndcg_at_5', 'recall_at_5', 'pr_auc', 'top_decile_lift', 'rows', 'seconds'])}
<p>Training sample: every (customer, cut-off) that adopted a cross-sell product, with all its candidate
products (weight 1), and a {sampling.get('non_adopter_rate', 1):.4f} share of the others, weighted
{sampling.get('non_adopter_weight', 1):.1f}× back (Horvitz-Thompson), sampled before the Feast point-in-time
retrieval, so the model's probabilities stay calibrated.</p>
{''.join(f'<h2>{html.escape(f.removesuffix(".png").replace("_", " "))}</h2><img src="figures/{f}">' for f in figures)}
<h2>Per product (model, and the observable oracle on the same cells)</h2>
{_table(result['per_product'], ['eligible', 'positives', 'pr_auc', 'oracle_pr_auc', 'roc_auc', 'oracle_roc_auc', 'top_decile_lift', 'oracle_top_decile_lift', 'mean_predicted', 'observed_rate'])}
</body></html>"""
    path = reports / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
