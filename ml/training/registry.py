"""Versioned model directory: each training run writes a new version; serving loads CURRENT.

    data/models/
      20250701T021500-ab12cd3/   model.txt, calibration.joblib, metadata.json, strategies/
      CURRENT                    the version serving loads (the champion)
      CHALLENGER                 a version served to a slice of customers and scored in shadow
                                 for everyone else (absent: no challenger)
      HISTORY                    versions that were current, oldest first (for rollback)

    python -m ml.training.registry list | current | challenger [VERSION | --clear]
                                 | promote [VERSION] | rollback

``promote`` without a version promotes the challenger (and empties its slot); ``rollback`` makes
the previously current version current again. Serving picks either up from the next published
version (``make promote`` / ``make rollback`` re-score and publish).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from ml.core.config import PROJECT_ROOT, Paths
from ml.training.model import PropensityModel


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Registry:
    def __init__(self, root: Path):
        self.root = Path(root)

    def new_version(self) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        folder = self.root / f"{stamp}-{git_commit().replace('-dirty', 'd')}"
        folder.mkdir(parents=True)
        return folder

    def versions(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.exists() else []

    def current(self) -> Path | None:
        pointer = self.root / "CURRENT"
        if not pointer.exists():
            return None
        return self.root / pointer.read_text().strip()

    def _history(self) -> list[str]:
        path = self.root / "HISTORY"
        return path.read_text().split() if path.exists() else []

    def _write(self, name: str, text: str) -> None:
        tmp = self.root / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.root / name)  # atomic: serving never reads a half-written pointer

    def challenger(self) -> Path | None:
        pointer = self.root / "CHALLENGER"
        if not pointer.exists():
            return None
        name = pointer.read_text().strip()
        return self.root / name if name else None

    def set_challenger(self, version: str) -> Path:
        if version not in self.versions():
            raise ValueError(f"no model version {version!r} in {self.root}")
        current = self.current()
        if current is not None and current.name == version:
            raise ValueError(f"{version} is the current model: a challenger must be another version")
        self._write("CHALLENGER", version + "\n")
        return self.root / version

    def clear_challenger(self) -> None:
        (self.root / "CHALLENGER").unlink(missing_ok=True)

    def promote(self, version: str | None = None) -> Path:
        """Make ``version`` current (None: the challenger, whose slot is then emptied)."""
        if version is None:
            challenger = self.challenger()
            if challenger is None:
                raise ValueError("no challenger to promote (name a version)")
            version = challenger.name
        if version not in self.versions():
            raise ValueError(f"no model version {version!r} in {self.root}")
        history = [v for v in self._history() if v != version] + [version]
        self._write("HISTORY", "\n".join(history) + "\n")
        self._write("CURRENT", version + "\n")
        challenger = self.challenger()
        if challenger is not None and challenger.name == version:
            self.clear_challenger()
        return self.root / version

    def rollback(self) -> Path:
        """Make the previously current version current again."""
        history = self._history()
        if len(history) < 2:
            raise ValueError("no earlier version to roll back to")
        previous = history[-2]
        self._write("HISTORY", "\n".join(history[:-1]) + "\n")
        self._write("CURRENT", previous + "\n")
        return self.root / previous


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------
def load_model(paths: Paths) -> tuple[PropensityModel, Path]:
    folder = Registry(paths.models).current()
    if folder is None:
        raise FileNotFoundError(f"no current model under {paths.models} (run `make train`)")
    return PropensityModel.load(folder), folder


def load_challenger(paths: Paths) -> tuple[PropensityModel, Path] | None:
    """The registered challenger, or None."""
    folder = Registry(paths.models).challenger()
    if folder is None or not folder.is_dir():
        return None
    return PropensityModel.load(folder), folder


def describe(folder: Path) -> dict:
    """A version's date, training rows, trees and calibration metrics (from its metadata.json)."""
    meta_path = folder / "metadata.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    production = (meta.get("calibration_table") or {}).get("production", {})
    stamp = folder.name.split("-")[0]
    try:
        trained = datetime.strptime(stamp, "%Y%m%dT%H%M%S%f").replace(tzinfo=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        trained = "?"
    return {"version": folder.name, "trained": trained, "data_snapshot": meta.get("data_snapshot"),
            "fit_rows": (meta.get("rows") or {}).get("fit"), "trees": production.get("trees"),
            "map_at_5": production.get("map_at_5"), "recall_at_5": production.get("recall_at_5"),
            "top_decile_lift": production.get("top_decile_lift")}


def _cell(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.training.registry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["list", "current", "challenger", "rollback", "promote"],
                        help="list versions with their metrics, print the current one, register (or print) the "
                             "challenger, go back one, or make VERSION (default: the challenger) current")
    parser.add_argument("version", nargs="?", help="a version (a folder name from `list`)")
    parser.add_argument("--clear", action="store_true", help="with `challenger`: remove the challenger")
    args = parser.parse_args(argv)
    registry = Registry(Paths.from_env().models)
    try:
        if args.action == "list":
            current, challenger = registry.current(), registry.challenger()
            print("  version                                trained (UTC)       data to     fit rows  trees  "
                  "MAP@5   recall@5  lift@10%  (calibration cut-off; * = current, c = challenger)")
            for v in registry.versions():
                d = describe(registry.root / v)
                mark = "*" if current and current.name == v else "c" if challenger and challenger.name == v else " "
                print(f"{mark} {v:<38} {d['trained']:<19} "
                      f"{_cell(d['data_snapshot']):<11} {_cell(d['fit_rows']):>8} {_cell(d['trees']):>6}  "
                      f"{_cell(d['map_at_5'], 3):<7} {_cell(d['recall_at_5'], 3):<9} {_cell(d['top_decile_lift'], 3)}")
        elif args.action == "current":
            print(registry.current() or "none")
        elif args.action == "challenger":
            if args.clear:
                registry.clear_challenger()
                print("challenger: none")
            elif args.version:
                print(f"challenger: {registry.set_challenger(args.version).name}")
            else:
                print(registry.challenger() or "none")
        elif args.action == "rollback":
            print(f"current: {registry.rollback().name}")
        else:
            print(f"current: {registry.promote(args.version).name}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0

if __name__ == "__main__":
    sys.exit(main())
