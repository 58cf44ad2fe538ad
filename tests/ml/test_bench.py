"""benchmarks.bench times what the Makefile runs: the same steps, the same order, each step's own usage."""
from __future__ import annotations

import re
import sys

import pytest

from benchmarks import bench
from ml.core.config import PROJECT_ROOT, Paths


def _prerequisites(target: str) -> list[str]:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    line = re.search(rf"^{target}:([^#\n]*)", makefile, re.MULTILINE)
    assert line, f"no {target} target in the Makefile"
    return line.group(1).split()


def test_nightly_steps_are_the_make_nightly_targets_in_order():
    assert list(bench.NIGHTLY) == _prerequisites("nightly")


def test_pipeline_steps_are_make_pipeline_in_order():
    expanded = []
    for target in _prerequisites("pipeline"):
        expanded += (_prerequisites(target) if target in ("nightly", "report")
                     else ["datagen" if target == "data" else target])
    assert list(bench.PIPELINE) == expanded
    assert set(bench.step_commands(1000, 1, Paths(data=PROJECT_ROOT / "x", reports=PROJECT_ROOT / "y"))) == set(bench.PIPELINE)


def test_run_step_sums_its_commands_and_keeps_a_printed_json_object():
    py = sys.executable
    result = bench.run_step("demo", [[py, "-c", "print('not json')"],
                                     [py, "-c", "import json; print('Materializing 2 feature views'); "
                                                "print(json.dumps({'materialize_s': 1.5}, indent=2))"]], env=None)
    assert result["detail"] == {"materialize_s": 1.5}
    assert result["seconds"] >= 0 and result["cpu_seconds"] >= 0 and result["peak_rss_mb"] > 0


def test_a_failing_step_stops_the_benchmark():
    with pytest.raises(SystemExit, match="step broken failed"):
        bench.run_step("broken", [[sys.executable, "-c", "raise SystemExit(3)"]], env=None)


def test_serving_figures_give_the_median_run_and_the_range_of_runs():
    def run(p95, errors, best):
        load = {"target_rps": 500.0, "rps": 499.0, "p50_ms": 4.0, "p95_ms": p95, "p99_ms": 2 * p95,
                "errors": errors, "duration_s": 60.0}
        return {"stage_one": load, "max_rps_p95_under_100ms": best, "workers": 2,
                "durability": {"acknowledged": 10, "present_after_restart": 10, "duplicates": 0}}

    out = bench.serving_figures([run(10.0, 0, 500), run(30.0, 1, 600), run(12.0, 0, 500)])
    p95 = out["loads"]["stage_one"]["p95_ms"]
    assert out["repeats"] == 3 and p95["median"] == 12.0 and p95["range"] == [10.0, 30.0]
    assert out["loads"]["stage_one"]["errors"] == {"total": 1, "runs": [0, 1, 0]}
    assert out["loads"]["stage_one"]["label"] == "stage one, 500/s for 60 s"
    assert out["max_rps_p95_under_100ms"]["median"] == 500 and out["durability"]["acknowledged"] == 30
