"""Replay evaluation: deterministic for a seed, honest intervals, every list suitable, merged report."""
from __future__ import annotations

import json

import numpy as np
import pytest
from test_recommend import bank_dir, tiny_relations  # noqa: F401  (bank_dir is a fixture)
from test_rerank import simulate

from ml.core.config import Paths
from ml.core.reports import write_metrics
from ml.evaluation.replay import replay
from ml.evaluation.replay_report import bootstrap, summary
from ml.recommendation.rerank_training import TrainingSet, fit
from ml.training.registry import Registry

REQUIRED = {"one_step_hit_rate", "rule_hit_rate", "learned_hit_rate", "uplift", "n_sessions",
            "one_step_hit_rate_ci95", "rule_hit_rate_ci95", "learned_hit_rate_ci95", "uplift_ci95"}


@pytest.fixture(scope="module")
def replay_bank(bank_dir):  # noqa: F811
    """The private test bank with a learned re-ranker next to its (tiny) model."""
    sessions, second, _ = simulate(2000, seed=7)
    reranker = fit(TrainingSet(sessions, np.arange(2000).astype(str), second), tiny_relations(),
                   metadata={"trained_on": "synthetic"})
    reranker.save(Registry(bank_dir / "models").current() / "reranker.json")
    return bank_dir


def test_bootstrap_is_deterministic_and_brackets_the_mean():
    rng = np.random.default_rng(0)
    values = {"a": rng.poisson(0.3, 500).astype(float), "b": rng.poisson(0.4, 500).astype(float)}
    one = bootstrap(values, {"ratio": ("b", "a")}, 300, seed=1)
    assert one == bootstrap(values, {"ratio": ("b", "a")}, 300, seed=1)
    for key in ("a", "b"):
        assert one[key][0] <= values[key].mean() <= one[key][1]
    assert one["ratio"][0] <= values["b"].mean() / values["a"].mean() <= one["ratio"][1]


def test_replay_is_deterministic_and_suitable(replay_bank, tmp_path):
    paths = Paths(data=replay_bank, reports=tmp_path)
    with pytest.raises(SystemExit):                                   # same generator seed: refused
        replay(paths, replay_bank, k=5, sessions=150, seed=3, n_boot=50)
    first = replay(paths, replay_bank, k=5, sessions=150, seed=3, n_boot=100, allow_same_seed=True)
    second = replay(paths, replay_bank, k=5, sessions=150, seed=3, n_boot=100, allow_same_seed=True)
    first.pop("seconds"), second.pop("seconds")
    assert first == second
    assert REQUIRED <= set(first) and first["n_sessions"] == 150
    assert first["suitability_violations"] == 0 and first["lists_audited"] >= 4 * 150
    for name in ("one_step", "rule", "learned"):
        low, high = first[f"{name}_hit_rate_ci95"]
        assert low <= first[f"{name}_hit_rate"] <= high
    assert first["expected"]["ceiling"] >= max(first["expected"][s] for s in ("one_step", "rule", "learned")) - 1e-9
    buckets = first["by_products_left"]
    assert sum(b["n_sessions"] for b in buckets) == 150 and first["interest_model"] == "category"
    assert buckets[0]["products_left"] == "1-5" and buckets[0]["uplift"] == 1.0 == buckets[0]["ceiling_uplift"]
    other = replay(paths, replay_bank, k=5, sessions=150, seed=4, n_boot=100, allow_same_seed=True)
    assert other["one_step_hit_rate"] != first["one_step_hit_rate"] or other["rule_hit_rate"] != first["rule_hit_rate"]


def test_replay_of_the_additive_interest_model(replay_bank, tmp_path):
    paths = Paths(data=replay_bank, reports=tmp_path)
    result = replay(paths, replay_bank, k=3, sessions=100, seed=3, n_boot=50, allow_same_seed=True,
                    interest_model="additive", reranker=Registry(replay_bank / "models").current() / "reranker.json")
    assert result["interest_model"] == "additive" and result["k"] == 3 and result["suitability_violations"] == 0
    assert set(summary(result)) >= REQUIRED


def test_metrics_are_merged_not_overwritten(tmp_path):
    paths = Paths(data=tmp_path, reports=tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"summary": {"map_at_5": 0.1}}))
    write_metrics(paths.reports, {"two_stage": {"uplift": 1.1}})
    write_metrics(paths.reports, {"cold_start": {"lift": 3.0}})
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data == {"summary": {"map_at_5": 0.1}, "two_stage": {"uplift": 1.1}, "cold_start": {"lift": 3.0}}
