"""docs/figures.json, the one source of the measured figures, and its two renderings.

    python -m ml.evaluation.figures                    # render README's section and docs/figures.md
    python -m ml.evaluation.figures --check            # exit 1 when either differs from the rendering
    python -m ml.evaluation.figures --record-uci DIR   # only record the UCI section from DIR/metrics.json

The evaluation (``python -m ml.evaluation.evaluate --figures``), the cold-start evaluation, the
benchmark (``python -m benchmarks.bench --figures``) and ``--record-uci`` each replace their own
section, stamped with its provenance (command, generator seed, scale, commit, date). ``make
figures`` renders README.md's "Measured figures" section (between the markers) and docs/figures.md;
a test fails when the README differs from the rendering. No figure is typed anywhere else.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from ml.core.config import PROJECT_ROOT, SCALES
from ml.core.reports import merge_report, read_report
from ml.evaluation import figures_render

FIGURES_JSON = PROJECT_ROOT / "docs" / "figures.json"
FIGURES_MD = PROJECT_ROOT / "docs" / "figures.md"
README = PROJECT_ROOT / "README.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def scale_name(customers: int | None) -> str:
    """``test`` / ``demo`` / ``full`` for the Makefile's scales, else the customer count."""
    names = {count: name for name, count in SCALES.items()}
    return names.get(customers, str(customers))


RENDERED = ("docs/figures.json", "docs/figures.md", "README.md")  # what recording and rendering rewrite


def code_commit() -> str:
    """The checkout's commit, ``-dirty`` when files other than the figures and their renderings
    differ from it (a run that records several sections rewrites docs/figures.json as it goes)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                      *(f":(exclude){p}" for p in RENDERED))
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if changed else "")


def machine() -> dict:
    """The machine as it was when a section was recorded: its cores, its 1-minute load average
    (timings on a machine other jobs share are slower than on an idle one) and the operator's note
    from ``LINGXI_FIGURES_NOTE`` (for instance that the machine was shared), when set."""
    out = {"cores": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)}
    note = os.environ.get("LINGXI_FIGURES_NOTE", "").strip()
    return {**out, "note": note} if note else out


def provenance(command: str, seed: int | None, customers: int | None, **extra) -> dict:
    """Where a section's figures came from, and on what machine state."""
    return {"command": command, "generator_seed": seed, "scale": scale_name(customers), "customers": customers,
            "commit": code_commit(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), **extra}


def rounded(value, digits: int = 6):
    """Floats to ``digits`` significant digits, recursively: the file stays small and readable."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if value == value else None
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def record(path: Path | str, name: str, section: dict) -> Path:
    """Replace section ``name`` of the figures file (other sections are kept)."""
    return merge_report(Path(path), {name: rounded(section)})


def record_uci(report_dir: Path, path: Path | str) -> Path:
    """The UCI benchmark's section from ``ml.imbalance.fit_table``'s report."""
    report = json.loads((Path(report_dir) / "metrics.json").read_text())
    data = report["data"]
    section = {
        "source": provenance(report["command"], report["seeds"]["downsample"], None,
                             rows=data["rows"], positives=data["positives"],
                             rows_in_file=data["rows_in_file"], recipe=data["recipe"]),
        "chosen": report["selection"]["chosen"],
        "cv": report["cv"], "time_split": report["time_split"], "intervals": report.get("intervals", {}),
        "seconds": report["timing"]["total_seconds"],
    }
    section["source"].pop("scale"), section["source"].pop("customers")
    return record(path, "uci", section)


def replace_between_markers(text: str, body: str) -> str:
    if START not in text or END not in text:
        raise ValueError(f"README.md has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{body.strip()}\n{END}{tail}"


def rendered(doc: dict) -> tuple[str, str]:
    """(README.md with its section rendered, docs/figures.md) from the figures document."""
    readme = replace_between_markers(README.read_text(encoding="utf-8"), figures_render.readme_section(doc))
    return readme, figures_render.full_page(doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.evaluation.figures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--figures", type=Path, default=FIGURES_JSON, help="the figures file to render from")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    parser.add_argument("--record-uci", type=Path, metavar="DIR", help="record the UCI report in DIR (no rendering)")
    args = parser.parse_args(argv)
    if args.record_uci:  # recording only: rendering is `make figures`, once every section is in
        record_uci(args.record_uci, args.figures)
        return 0
    readme, page = rendered(read_report(args.figures))
    if args.check:
        stale = [p.name for p, text in ((README, readme), (FIGURES_MD, page))
                 if not p.exists() or p.read_text(encoding="utf-8") != text]
        if stale:
            print(f"not the rendering of {args.figures.name}: {', '.join(stale)} (run make figures)", file=sys.stderr)
            return 1
        return 0
    README.write_text(readme, encoding="utf-8")
    FIGURES_MD.write_text(page, encoding="utf-8")
    print(f"rendered {README.name} ({START} .. {END}) and {FIGURES_MD.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
