"""How well cold start finds a product's adopters: hold it out of training, rank its real adopters.

    python -m ml.evaluation.cold_start --product PRO_CAR [--n 200] [--eval-data-dir DIR]

``evaluate`` holds one existing product out of training *entirely* (no rows, no relation-graph
column, no calibration rows), defines it only by its attributes and measures how its real adopters
in the held-out window rank: precision@N and lift against random and the rule-based score
(``ml.recommendation.match_score.rule_scores``), plus the forecast against the real uptake. The
held-out product's ``holds_*`` customer feature stays in the layout: at the evaluation cut-off every
candidate has it at 0 (holders are excluded), so it cannot reveal the adopters; dropping it would
change the feature layout the Feast service serves. The oracle is read only here, for reference.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ml.cold_start.analyser import ColdStartAnalyser
from ml.cold_start.definition import to_product
from ml.cold_start.forecast import ForecastAssumptions, ProductHistory, forecast
from ml.cold_start.holdout import train_without
from ml.core import metrics
from ml.core.catalogue import load_catalogue
from ml.core.config import CUTOFFS, HOLDOUT_CUTOFF, LABEL_WINDOW_MONTHS, Paths
from ml.core.reports import write_metrics
from ml.evaluation import list_metrics
from ml.features.pairs import pair_matrix, product_table
from ml.features.snapshot import snapshot_features
from ml.recommendation.match_score import rule_scores
from ml.training.dataset import load_labels
from ml.training.registry import load_model


def precision_curve(score: np.ndarray, y: np.ndarray, ns: Sequence[int], tie_break: np.ndarray) -> dict[int, float]:
    """Mean of ``y`` (0/1 labels, or probabilities) over the top ``n`` by ``score`` for each n."""
    order = np.lexsort((tie_break, -score))
    hits = np.cumsum(y[order])
    return {n: float(hits[min(n, len(y)) - 1] / min(n, len(y))) for n in ns if len(y)}


def evaluate(paths: Paths, product_id: str, n: int = 200, eval_paths: Paths | None = None, seed: int = 7,
             non_adopters_per_adopter: float | None = None) -> dict:
    """Hold ``product_id`` out of training, rank its real adopters at the held-out cut-off.

    Realised precision@N counts the adopters in the label window (few at test scale: noisy);
    ``expected_*`` uses the oracle's true adoption probabilities of the same customers (evaluation
    only), which has no outcome noise.
    """
    from sklearn.metrics import roc_auc_score


    started = time.perf_counter()
    cat = load_catalogue()
    held_out = cat[product_id]
    model = train_without(paths, product_id, seed, non_adopters_per_adopter)
    target_paths = eval_paths or paths
    labels = load_labels(target_paths, [HOLDOUT_CUTOFF])
    column = f"label_{product_id.lower()}"
    labels = labels[labels[column].notna()]              # non-holders at the cut-off
    # the cut-off's snapshot rows of the Feast source are the point-in-time features at the cut-off:
    # read column-wise instead of a historical join over a million entity rows
    snap_ids, snap_x = snapshot_features(target_paths, pd.Timestamp(HOLDOUT_CUTOFF))
    rows_of = pd.Index(snap_ids).get_indexer(labels.customer_id)
    labels = labels[rows_of >= 0]
    x = snap_x[rows_of[rows_of >= 0]]
    ids = labels.customer_id.to_numpy()
    merged = labels[["customer_id", column]].reset_index(drop=True)
    # the product defined by its attributes only, under a name the model has never seen
    definition = {"product_id": "NEW_" + product_id, "name": f"new {held_out.name_en}",
                  "category": held_out.category, "risk_level": held_out.risk_label,
                  "min_investment_cny": held_out.min_investment_cny,
                  "expected_return_pct": held_out.expected_return_pct, "target_age_min": held_out.target_age_min,
                  "target_age_max": held_out.target_age_max, "tags": list(held_out.tags),
                  "annual_value_cny": held_out.annual_value_cny}
    product = to_product(definition)
    analyser = ColdStartAnalyser(target_paths, model, ids, x, cat)
    allowed = analyser.eligibility(product)
    rows = np.flatnonzero(allowed)
    y = merged[column].to_numpy(dtype=float)[rows]
    truth = _oracle_probability(target_paths, product_id, ids[rows])
    p_model, raw_model = analyser.probabilities(product, rows, raw=True)
    scores = {"cold_model": p_model + 1e-9 * raw_model,           # isotonic ties: raw booster order
              "rule": rule_scores(x[rows], asdict(product) | {"risk_level": product.risk_level})}
    full, _ = load_model(paths)
    if product_id in full.products:   # the warm model (trained with the product): what cold start gives up
        raw = full.booster.predict(pair_matrix(x[rows], product_table([product_id]), full.relations))
        scores["warm_model"] = full.calibrate(raw) + 1e-9 * raw
    tie = pd.Series(ids[rows]).rank(method="first").to_numpy()  # deterministic tie-break by customer id
    ns = sorted({20, 50, 100, n, 500, 1000})
    base = float(y.mean()) if len(y) else float("nan")
    curves = {k: precision_curve(v, y, ns, tie) for k, v in scores.items()}
    intervals = {name: _precision_interval(v, y, n, tie) for name, v in scores.items()} if len(y) else {}
    expected = {k: precision_curve(v, truth, ns, tie) for k, v in scores.items()} if truth is not None else None
    auc = {k: (round(float(roc_auc_score(y, v)), 4) if 0 < y.sum() < len(y) else None) for k, v in scores.items()}
    # forecast check: 3 months, organic (no contact), history without the product and before the cut-off
    history = ProductHistory.from_marts(paths, cutoffs=[c for c in CUTOFFS if c <= date(2025, 1, 1)],
                                        exclude=[product_id], catalogue=cat)
    fc = forecast(product, int(allowed.sum()), history,
                  ForecastAssumptions(horizon_months=LABEL_WINDOW_MONTHS, contact_rate=0.0), cat)
    actual = int(y.sum())
    r5 = lambda v: round(float(v), 5)  # noqa: E731
    result = {
        "product_id": product_id, "n": n, "cutoff": HOLDOUT_CUTOFF.isoformat(),
        "bank_generator_seed": target_paths.generator_seed(), "bank_customers": int(len(snap_ids)),
        "suitable_non_holders": int(len(rows)),
        "adopters": actual, "base_rate": round(base, 6),
        "precision_at_n": r5(curves["cold_model"][n]), "random_precision_at_n": r5(base),
        "rule_precision_at_n": r5(curves["rule"][n]),
        "lift": round(curves["cold_model"][n] / base, 3) if base > 0 else None,
        "rule_lift": round(curves["rule"][n] / base, 3) if base > 0 else None,
        "warm_precision_at_n": r5(curves["warm_model"][n]) if "warm_model" in curves else None,
        "auc": auc,
        "intervals": intervals,
        "precision_curve": {"n": ns, **{k: [r5(c[m]) for m in ns] for k, c in curves.items()}, "random": r5(base)},
    }
    if expected is not None:
        base_expected = float(truth.mean())
        result["expected"] = {
            "note": "precision@N with the oracle's true adoption probability of each selected customer as the "
                    "hit (no outcome noise; evaluation only)",
            "precision_at_n": r5(expected["cold_model"][n]), "random_precision_at_n": r5(base_expected),
            "rule_precision_at_n": r5(expected["rule"][n]),
            "warm_precision_at_n": r5(expected["warm_model"][n]) if "warm_model" in expected else None,
            "lift": round(expected["cold_model"][n] / base_expected, 3),
            "rule_lift": round(expected["rule"][n] / base_expected, 3),
            "curve": {"n": ns, **{k: [r5(c[m]) for m in ns] for k, c in expected.items()}},
        }
    result.update({
        "forecast_check": {"horizon_months": LABEL_WINDOW_MONTHS, "contact_rate": 0.0,
                           "expected": fc["expected_adopters"], "low": fc["adopters_low"],
                           "high": fc["adopters_high"], "actual": actual,
                           "within_range": bool(fc["adopters_low"] <= actual <= fc["adopters_high"]),
                           "similar_products": fc["similar_products"]},
        "held_out_model": model.metadata,
        "decisions": "no training or calibration rows of the product, no relation-graph row/column, unseen "
                     "product_code; its holds_* customer feature stays (0 for every candidate)",
        "seconds": round(time.perf_counter() - started, 1),
    })
    return result


def _precision_interval(score: np.ndarray, y: np.ndarray, n: int, tie: np.ndarray) -> dict:
    """Hits in the top ``n``, an exact (Clopper-Pearson) interval of precision@n and a customer
    bootstrap interval of its lift over the base rate (whose own uncertainty it includes)."""
    ranked = y[np.lexsort((tie, -score))]
    top = min(n, len(y))
    hits = int(ranked[:top].sum())
    return {"hits": hits, "n": top, "precision_ci": metrics.binomial_interval(hits, top),
            "lift_ci": list_metrics.top_n_lift_interval(ranked, top)}


def figures_section(result: dict, command: str, generator_seed: int | None) -> dict:
    """The ``cold_start`` section of docs/figures.json (the headline bank and product); ``generator_seed``
    is the development bank's, where the held-out-product model was trained."""
    from ml.evaluation.figures import provenance

    base = result["random_precision_at_n"]
    rows = {}
    for key, name in (("precision_at_n", "cold_model"), ("rule_precision_at_n", "rule"),
                      ("warm_precision_at_n", "warm_model")):
        ci = result["intervals"].get(name)
        if result.get(key) is not None and ci:
            rows[key] = {"value": result[key], "ci": ci["precision_ci"], "hits": ci["hits"],
                         "lift": result[key] / base if base else None, "lift_ci": ci["lift_ci"]}
    fc = result["forecast_check"]
    return {"source": provenance(command, generator_seed, result.get("bank_customers"), eval_generator_seed=result["bank_generator_seed"],
                                 cutoff=result["cutoff"]),
            "product_id": result["product_id"], "n": result["n"],
            "suitable_non_holders": result["suitable_non_holders"], "adopters": result["adopters"],
            "random_precision_at_n": base, **rows,
            "forecast": {k: fc[k] for k in ("expected", "low", "high", "actual")},
            "seconds": result["seconds"]}


def _oracle_probability(paths: Paths, product_id: str, customer_ids: np.ndarray) -> np.ndarray | None:
    folder = paths.oracle / f"cutoff={HOLDOUT_CUTOFF.isoformat()}"
    if not folder.exists():
        return None
    table = pd.read_parquet(folder, columns=["customer_id", f"p_true__{product_id}"]).set_index("customer_id")
    return np.nan_to_num(table[f"p_true__{product_id}"].reindex(customer_ids).to_numpy(dtype=float))


def evaluate_many(paths: Paths, products: Sequence[str], n: int = 200, eval_paths: Sequence[Paths | None] = (None,),
                  seed: int = 7, non_adopters_per_adopter: float | None = None) -> dict:
    """:func:`evaluate` for several held-out products (and banks); the first is the headline,
    ``pooled`` averages precision@N over every (product, bank) evaluated."""
    runs = [evaluate(paths, p, n, e, seed, non_adopters_per_adopter) for p in products for e in eval_paths]
    head = dict(runs[0])
    keys = ("precision_at_n", "random_precision_at_n", "rule_precision_at_n")
    pooled = {k: round(float(np.mean([r[k] for r in runs])), 5) for k in keys}
    pooled["adopters"] = int(sum(r["adopters"] for r in runs))
    pooled["lift"] = round(pooled["precision_at_n"] / pooled["random_precision_at_n"], 3)
    pooled["rule_lift"] = round(pooled["rule_precision_at_n"] / pooled["random_precision_at_n"], 3)
    if all("expected" in r for r in runs):
        ex = {k: round(float(np.mean([r["expected"][k] for r in runs])), 5) for k in keys}
        ex["lift"] = round(ex["precision_at_n"] / ex["random_precision_at_n"], 3)
        ex["rule_lift"] = round(ex["rule_precision_at_n"] / ex["random_precision_at_n"], 3)
        pooled["expected"] = ex
    pooled["runs"] = [{"product_id": r["product_id"], "bank_generator_seed": r["bank_generator_seed"],
                       "adopters": r["adopters"], **{k: r[k] for k in keys}, "lift": r["lift"],
                       "expected_lift": r.get("expected", {}).get("lift"),
                       "expected_rule_lift": r.get("expected", {}).get("rule_lift"),
                       "auc": r["auc"], "forecast_within_range": r["forecast_check"]["within_range"]}
                      for r in runs]
    head["pooled"] = pooled
    return head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.evaluation.cold_start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--product", nargs="+", default=["PRO_CAR"],
                        help="held-out product(s); the first is the headline, all are pooled")
    parser.add_argument("--n", type=int, default=200, help="targets ranked per product (precision@N)")
    parser.add_argument("--eval-data-dir", type=Path, default=None,
                        help="rank the adopters of another bank (an unseen generator seed) as the headline, the "
                             "development bank's held-out cut-off pooled in (default: only the development bank)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the training sample")
    parser.add_argument("--non-adopters-per-adopter", type=float, default=None,
                        help="training sample size, as in python -m ml.training.train (default: the same as it)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave reports/metrics.json alone")
    parser.add_argument("--figures", type=Path, default=None,
                        help="also record the headline's figures in this file (docs/figures.json)")
    args = parser.parse_args(argv)
    paths = Paths.from_env()
    banks: list[Paths | None] = [None]
    if args.eval_data_dir:  # the unseen bank is the headline; the development bank's cut-off is pooled in
        banks.insert(0, Paths(data=args.eval_data_dir.resolve(), reports=paths.reports))
    result = evaluate_many(paths, args.product, args.n, banks, args.seed, args.non_adopters_per_adopter)
    if not args.no_write:
        write_metrics(paths.reports, {"cold_start": result})
    if args.figures:
        from ml.evaluation.figures import record

        command = "python -m ml.evaluation.cold_start " + " ".join(sys.argv[1:] if argv is None else argv)
        record(args.figures, "cold_start", figures_section(result, command, paths.generator_seed()))
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
