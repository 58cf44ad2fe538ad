"""docs/figures.json is the one source: README's section and docs/figures.md are its rendering."""
from __future__ import annotations

import json

import pytest

from ml.core.config import PROJECT_ROOT
from ml.evaluation import figures, figures_render
from ml.evaluation.figures import END, START


def _document() -> dict:
    return json.loads(figures.FIGURES_JSON.read_text())


def test_readme_section_is_the_rendering_of_docs_figures_json():
    readme, page = figures.rendered(_document())
    assert (PROJECT_ROOT / "README.md").read_text(encoding="utf-8") == readme, "run make figures"
    assert figures.FIGURES_MD.read_text(encoding="utf-8") == page, "run make figures"
    assert figures.main(["--check"]) == 0


def test_the_measured_section_is_between_markers_and_has_no_typed_numbers_outside_them():
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    head, rest = text.split(START)
    section, tail = rest.split(END)
    assert "## Measured figures" in head.splitlines()[-2:] or head.rstrip().endswith("## Measured figures")
    assert figures_render.NOTICE in section


def test_every_section_has_provenance():
    doc = _document()
    assert {"lists"} <= set(doc)
    for name, section in doc.items():
        source = section["source"]
        assert {"command", "commit", "date", "generator_seed"} <= set(source), name
    lists = doc["lists"]
    assert lists["source"]["scale"] and lists["source"]["customers"]
    for block in ("all", "sample"):
        for row in lists[block]["rows"].values():
            for figure in figures_render.LIST_FIGURES:
                lo, hi = row["ci"][figure]
                assert lo <= row[figure] <= hi


def test_a_section_the_document_lacks_is_absent_not_typed():
    doc = _document()
    short = {"lists": doc["lists"]}
    text = figures_render.readme_section(short)
    assert "### The lists managers see" in text
    assert "Cold start" not in text and "UCI" not in text and "nightly job" not in text
    assert figures_render.readme_section({}) == figures_render.readme_section({}).strip() + "\n"


def test_replacing_between_markers_keeps_the_rest(tmp_path):
    text = f"# T\n\n## Measured figures\n\n{START}\nold\n{END}\n\n## After\n"
    out = figures.replace_between_markers(text, "new")
    assert out == f"# T\n\n## Measured figures\n\n{START}\nnew\n{END}\n\n## After\n"
    with pytest.raises(ValueError):
        figures.replace_between_markers("no markers", "new")


def test_record_replaces_one_section_and_rounds(tmp_path):
    path = tmp_path / "figures.json"
    figures.record(path, "a", {"x": 1 / 3, "source": {"command": "c"}})
    figures.record(path, "b", {"y": [2 / 3, float("nan")]})
    figures.record(path, "a", {"x": 0.25})
    assert json.loads(path.read_text()) == {"a": {"x": 0.25}, "b": {"y": [0.666667, None]}}


def test_provenance_records_the_machine_state_and_the_operators_note(monkeypatch):
    monkeypatch.setenv("LINGXI_FIGURES_NOTE", "shared with other jobs")
    source = figures.provenance("cmd", 5, 20_000)
    assert source["scale"] == "test" and source["machine"]["note"] == "shared with other jobs"
    assert source["machine"]["cores"] >= 1 and source["machine"]["load_average_1m"] >= 0
    line = figures_render.source_line(source)
    assert "load average" in line and "shared with other jobs" in line
    monkeypatch.delenv("LINGXI_FIGURES_NOTE")
    assert "note" not in figures.provenance("cmd", 5, 20_000)["machine"]
