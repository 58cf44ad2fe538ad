"""Training and evaluation end to end at test scale: artefacts, report, honest comparisons."""
from __future__ import annotations

import json
import re

import pytest

from ml.core.config import Paths
from ml.imbalance.strategy_review import load_review
from ml.training.registry import Registry

SUMMARY_KEYS = {"map_at_5", "oracle_map_at_5", "observable_oracle_map_at_5", "ndcg_at_5", "recall_at_5",
                "precision_at_5", "pr_auc", "top_decile_lift", "brier", "n_customers", "positive_rate",
                "generator_seed", "cutoff"}
STRATEGIES = {"none", "class_weight", "smote", "adasyn", "random_under", "cluster_negatives"}


@pytest.fixture(scope="module")
def report(trained_data_dir) -> dict:
    return json.loads((trained_data_dir / "reports" / "metrics.json").read_text())


def test_model_version_is_complete_and_current(trained_data_dir):
    registry = Registry(Paths(data=trained_data_dir, reports=trained_data_dir).models)
    current = registry.current()
    metadata = json.loads((current / "metadata.json").read_text())
    assert metadata["feature_service"] == "stage_one_v1"
    assert metadata["data_snapshot"] == "2025-04-01" and metadata["git_commit"]
    sampling = metadata["negative_sampling"]
    assert 0 < sampling["non_adopter_rate"] <= 1.0 and metadata["params"]["seed"] == 7
    assert sampling["non_adopter_weight"] == pytest.approx(1 / sampling["non_adopter_rate"])
    assert (current / "model.txt").exists() and (current / "calibration.joblib").exists()


def test_strategy_review_compares_every_strategy_with_production_on_the_calibration_cutoff(trained_data_dir):
    current = Registry(Paths(data=trained_data_dir, reports=trained_data_dir).models).current()
    metadata = json.loads((current / "metadata.json").read_text())
    review = load_review(current)
    assert review["model_version"] == current.name
    table = review["rows"]
    assert {f"strategy:{name}" for name in STRATEGIES} | {"production"} <= set(table)
    assert table["production"] == metadata["calibration_table"]["production"]
    assert review["training_rows"] == metadata["rows"]  # it rebuilt the version's own sample
    assert table["strategy:none"]["rows"] <= metadata["rows"]["fit"]
    chosen = review["chosen"]["candidate"]
    deployable = [name for name, row in table.items() if row.get("deployable", name == "production")]
    assert chosen in deployable
    assert table[chosen]["map_at_5"] == max(table[name]["map_at_5"] for name in deployable)
    assert metadata["params"]["best_iteration"] > 0
    assert set(metadata["relations"]) == {"complement", "substitute"}  # empty at 20k: too few co-holders


def test_rollback_marks_the_previous_version_current(trained_data_dir, tmp_path):
    registry = Registry(tmp_path)
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
        registry.promote(name)
    assert registry.current().name == "v2"
    assert registry.rollback().name == "v1" and registry.current().name == "v1"
    with pytest.raises(ValueError):
        registry.rollback()


def test_summary_has_every_key_other_tools_read(report):
    summary = report["summary"]
    assert SUMMARY_KEYS <= set(summary)
    assert summary["cutoff"] == "2025-04-01" and summary["generator_seed"] == 42
    assert summary["n_customers"] == 20_000


def test_model_beats_baselines_and_stays_below_the_oracle(report):
    table = report["evaluation"]["strategies"]
    model = table["model"]["map_at_5"]
    assert model > 1.3 * table["random"]["map_at_5"]
    assert model > table["popularity"]["map_at_5"]
    assert model < table["oracle_true"]["map_at_5"]
    assert report["summary"]["recall_at_5"] > 0.6


def test_every_strategy_is_reported(report):
    table = report["evaluation"]["strategy_table"]
    names = {k.split(":", 1)[1] for k in table["rows"] if k.startswith("strategy:")}
    assert STRATEGIES <= names and {"model", "oracle_observable"} <= set(table["rows"])
    assert table["customers"] == table["of_customers"] == 20_000  # all of them at test scale
    assert "rule_match_score" in report["evaluation"]["strategies"]


def test_probabilities_are_calibrated(report):
    per_product = report["evaluation"]["per_product"]
    predicted = sum(p["mean_predicted"] * p["eligible"] for p in per_product.values())
    observed = sum(p["observed_rate"] * p["eligible"] for p in per_product.values())
    assert abs(predicted - observed) < 0.35 * observed


def test_report_has_figures(trained_data_dir):
    reports = trained_data_dir / "reports"
    page = (reports / "report.html").read_text()
    for figure in ("pr_curves", "gain_chart", "calibration", "feature_importance"):
        assert f"figures/{figure}.png" in page and (reports / "figures" / f"{figure}.png").stat().st_size > 5_000
    text = re.sub(r"<[^>]+>|figures/\S+|version [^,.<]+", " ", page)  # numbers a reader sees, not ids
    assert not re.findall(r"\d\.\d{7,}", text), "figures are rounded to their precision"


LIST_FIGURES = {"map_at_5", "recall_at_5", "top_decile_lift", "value_captured_at_5"}


def test_summary_judges_the_served_list_against_both_oracles_with_intervals(report):
    summary = report["summary"]
    for name in ("served", "propensity_only"):
        row = summary[name]
        assert LIST_FIGURES <= set(row) and set(row["ci"]) == LIST_FIGURES
        for figure in LIST_FIGURES:
            lo, hi = row["ci"][figure]
            assert lo <= row[figure] <= hi
    for name in ("oracle_posterior", "oracle_prior"):
        assert summary[name]["n_customers"] == 20_000  # the sample is everyone at test scale
        lo, hi = summary[name]["ci"]["map_at_5"]
        assert lo <= summary[name]["map_at_5"] <= hi
    ratio = summary["served_vs_posterior_oracle"]
    sample = report["evaluation"]["lists"]["sample"]["rows"]
    assert ratio["ratio"] == pytest.approx(sample["served"]["map_at_5"] / sample["oracle_posterior"]["map_at_5"])
    assert ratio["ci"][0] <= ratio["ratio"] <= ratio["ci"][1]
    # the posterior oracle knows less than the full oracle
    assert summary["oracle_posterior"]["map_at_5"] < sample["oracle_true"]["map_at_5"]


def test_the_served_list_is_the_serving_code_path(trained_data_dir, report):
    """The evaluated served list is what StageOne (the API's and the nightly table's code) returns."""
    import numpy as np

    from ml.evaluation.evaluate import HoldoutSet
    from ml.evaluation.served import ListRanker
    from ml.recommendation.stage_one import StageOne
    from ml.training.registry import load_model

    paths = Paths(data=trained_data_dir, reports=trained_data_dir / "reports")
    model, _ = load_model(paths)
    holdout = HoldoutSet(paths, model.products).subset(np.arange(500))
    served, _ = ListRanker(model).lists(holdout.features)["served"]
    assert (served == StageOne(model).score_batch(holdout.features, 5).top).all()
    values = report["evaluation"]["lists"]["all"]["rows"]
    assert values["served"]["value_captured_at_5"] >= values["propensity_only"]["value_captured_at_5"] - 0.05
