"""Where things live and the calendar every stage shares.

Everything generated goes under one data directory (``LINGXI_DATA_DIR``, default ``data``) so a
test can point the whole pipeline at a temporary folder. Reports go to ``LINGXI_REPORTS_DIR``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

SEEDS_DIR = PROJECT_ROOT / "seeds"


# The calendar of the bank's extract (see docs/data_contract.md).
HISTORY_START = date(2024, 1, 1)

EXTRACT_DATE = date(2025, 7, 1)  # events run up to, not including, this day

CUTOFFS = tuple(date(2024 + (6 + i) // 12, (6 + i) % 12 + 1, 1) for i in range(10))  # 2024-07-01 .. 2025-04-01

LABEL_WINDOW_MONTHS = 3

HOLDOUT_CUTOFF = CUTOFFS[-1]

# The feedback simulator's interest models (evaluation only); the default one's simulated sessions
# and re-ranker take the plain names (data/simulated_feedback, reranker.json).
INTEREST_MODELS = ("category", "additive")
DEFAULT_INTEREST_MODEL = "category"

SCALES = {"test": 20_000, "demo": 100_000, "full": 1_108_828}


def customers_for_scale(scale: str | int) -> int:
    """Translate ``SCALE`` (a name or a number) into a customer count."""
    text = str(scale).strip().lower()
    if text in SCALES:
        return SCALES[text]
    count = int(text.replace("_", ""))
    if count < 100:
        raise ValueError(f"scale {scale!r} is too small (need at least 100 customers)")
    return count


@dataclass(frozen=True)
class Paths:
    """All generated locations, derived from one data directory."""

    data: Path
    reports: Path

    @classmethod
    def from_env(cls) -> "Paths":
        data = Path(os.environ.get("LINGXI_DATA_DIR", PROJECT_ROOT / "data"))
        reports = Path(os.environ.get("LINGXI_REPORTS_DIR", PROJECT_ROOT / "reports"))
        return cls(data=data.resolve(), reports=reports.resolve())

    @property
    def raw(self) -> Path:
        return Path(os.environ.get("LINGXI_RAW_DIR", self.data / "raw"))

    def generator_seed(self) -> int | None:
        """The synthetic bank's generator seed (from the raw data's manifest), None for a real bank's data."""
        manifest = self.raw / "_manifest.json"
        return json.loads(manifest.read_text()).get("seed") if manifest.exists() else None

    @property
    def oracle(self) -> Path:
        return self.data / "oracle"

    @property
    def warehouse(self) -> Path:
        return self.data / "warehouse.duckdb"

    @property
    def marts(self) -> Path:
        """Parquet exports of the marts Feast and serving read (never the DuckDB file)."""
        return self.data / "marts"

    @property
    def feast(self) -> Path:
        return self.data / "feast"

    @property
    def models(self) -> Path:
        return self.data / "models"

    @property
    def feedback_db(self) -> Path:
        return self.data / "feedback.db"
