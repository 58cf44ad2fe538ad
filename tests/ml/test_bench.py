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
