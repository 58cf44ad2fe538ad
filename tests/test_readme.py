"""The README teaches from the repository alone, and states the demo's time only as measured."""
from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks.demo_timing import README_END, README_START, render_line, render_readme

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_demo_time_is_the_recorded_measurement():
    recorded = json.loads((ROOT / "docs" / "demo_timing.json").read_text())
    between = README[README.index(README_START) + len(README_START):README.index(README_END)].strip()
    assert between == render_line(recorded), "run `make bench-demo` (or `python -m benchmarks.demo_timing --record`)"
    assert recorded["stage_two"].startswith("learned-") and recorded["steps"]


def test_rendering_replaces_only_the_marked_line():
    record = {"measured_at": "2026-01-02T03:04:05+00:00", "machine_cores": 2, "scale": "demo",
              "load_average_1min": {"before": 0.4, "after": 1.2}, "seconds": 271.6, "cpu_seconds": 390.2,
              "install": {"seconds": 95.0}, "second_run": {"seconds": 6.2}}
    line = render_line(record)
    assert "4 min 32 s" in line and "390 s of CPU" in line and "1 min 35 s of installing" in line
    assert line.endswith("the second in 6 s.")
    text = f"before\n{README_START}\nold\n{README_END}\nafter\n"
    assert render_readme(text, record) == f"before\n{README_START}\n{line}\n{README_END}\nafter\n"


def test_links_stay_inside_the_repository():
    assert "../shared" not in README and "BRIEF.md" not in README
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
