"""The conversion monitor: a planted drop raises an alert, names the segment, proposes a rollback."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.core.config import Paths
from ml.operations import monitor
from ml.training.registry import Registry

OLD, NEW = "20250101T000000000000-aaaaaaa", "20250401T000000000000-bbbbbbb"
MONTHS = ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"]
AGE_BANDS = ("18-29", "30-44", "45-59", "60+")


def _planted(rng: np.random.Generator) -> pd.DataFrame:
    """Six months of served items: WLT_BOND_FUND converts 12% until March under OLD; from April
    (model NEW) its conversion among customers 60+ collapses a little more each month. SAV_TIME
    stays at 8% throughout; CRD_CARD is always low (1.5%). Answers are planted exactly (the first
    round(p x n) items of each age band are interested), so the drop is the only signal."""
    rows = []
    for m, month in enumerate(MONTHS):
        version = OLD if m < 3 else NEW
        for product, base in (("WLT_BOND_FUND", 0.12), ("SAV_TIME", 0.08), ("CRD_CARD", 0.015)):
            for i in range(800):
                band = AGE_BANDS[i % 4]
                p = base
                if product == "WLT_BOND_FUND" and m >= 3 and band == "60+":
                    p = base * (1 - 0.3 * (m - 2))  # 60+: 12% -> 8.4% -> 4.8% -> 1.2%
                rows.append({"customer_id": f"C{m}{i:05d}", "product_id": product, "stage": 1,
                             "created_month": pd.Timestamp(f"{month}-01"),
                             "response": "interested" if i // 4 < round(p * 200) else "not_interested",
                             "is_adopted_in_window": int(rng.random() < p / 3), "model_version": version,
                             "arm": "champion", "age_band": band, "value_tier": "mass", "life_stage": "x",
                             "region_code": "R1", "risk_preference": "balanced", "branch_id": f"B{i % 3}"})
    return pd.DataFrame(rows)


@pytest.fixture
def paths(tmp_path) -> Paths:
    paths = Paths(data=tmp_path / "data", reports=tmp_path / "reports")
    for version in (OLD, NEW):
        (paths.models / version).mkdir(parents=True)
    registry = Registry(paths.models)
    registry.promote(OLD)
    registry.promote(NEW)
    return paths


def test_a_planted_drop_raises_an_alert_with_diagnosis_and_rollback(paths):
    items = _planted(np.random.default_rng(0))
    report = monitor.check(paths, min_conversion=0.02, falling_months=3, min_shown=50, items=items)
    by_product = {a["product_id"]: a for a in report["alerts"]}
    assert "SAV_TIME" not in by_product  # a steady product raises nothing
    bond = by_product["WLT_BOND_FUND"]
    assert bond["month"] == "2025-06" and any("fell 3 months" in r for r in bond["reasons"])
    assert [f["month"] for f in bond["funnel"]] == MONTHS
    assert bond["funnel"][-1]["conversion"] < bond["funnel"][2]["conversion"]
    diagnosis = bond["diagnosis"]
    assert diagnosis["compared"] == {"month": "2025-06", "reference": "2025-03"}
    assert diagnosis["by_segment"]["age_band"][0]["value"] == "60+"  # the segment that moved
    assert diagnosis["top_movers"][0]["segment"] in {"age_band", "model_version"}
    assert bond["rollback"]["version"] == OLD  # the version under which the product converted
    # the low product is below the threshold every month: nothing to roll back to
    card = by_product.get("CRD_CARD")
    if card is not None:
        assert card["rollback"]["version"] is None


def test_apply_makes_the_proposed_version_current(paths):
    report = monitor.check(paths, items=_planted(np.random.default_rng(0)))
    paths.reports.mkdir(parents=True, exist_ok=True)
    (paths.reports / monitor.REPORT).write_text(json.dumps(report, default=str))
    assert Registry(paths.models).current().name == NEW
    assert monitor.apply(paths, "WLT_BOND_FUND") == OLD
    assert Registry(paths.models).current().name == OLD


def test_a_steady_month_raises_nothing(paths):
    items = _planted(np.random.default_rng(0))
    items = items[items["product_id"] == "SAV_TIME"]
    assert monitor.check(paths, items=items)["alerts"] == []
