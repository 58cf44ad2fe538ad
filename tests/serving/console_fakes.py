"""Test double for the console: nightly stage-one lists for the fake customer_360 of ``serving_fakes``
(the real ones come from the nightly batch, ``scores/stage_one.parquet``)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from serving_fakes import FakeEngine


def make_nightly_lists(data_dir: Path, k: int = 5, customer_ids: list[str] | None = None) -> pd.DataFrame:
    """``scores/stage_one.parquet`` as the nightly batch writes it, from the fake engine's stage one
    (for ``customer_ids``, default everyone)."""
    engine = FakeEngine(data_dir)
    catalogue = engine.catalogue
    rows = []
    for customer_id in sorted(customer_ids if customer_ids is not None else engine.customers):
        for rank, item in enumerate(engine.stage_one(customer_id, k).products, start=1):
            value = catalogue.get(item.product_id).annual_value_cny
            rows.append({"customer_id": customer_id, "stage": 1, "rank": rank, "product_id": item.product_id,
                         "probability": item.score, "score": item.score * value,
                         "match_score": item.match_score, "model_version": "fake-1"})
    frame = pd.DataFrame(rows)
    (data_dir / "scores").mkdir(exist_ok=True)
    frame.to_parquet(data_dir / "scores" / "stage_one.parquet", index=False)
    return frame


def write_breakdown(marts: Path) -> None:
    """A small ``monthly_effect_breakdown`` mart (the dbt model's columns): the bank, one branch, one
    manager, one product, in February and March 2025."""
    from datetime import date

    rows = []
    for month, n in ((date(2025, 2, 1), 100), (date(2025, 3, 1), 160)):
        for dimension, value in (("bank", "all"), ("branch", "320211-00"), ("manager", "M001"), ("product", "WLT_WMP")):
            rows.append({"report_month": month, "dimension": dimension, "dimension_value": value,
                         "n_recommendations": n, "n_recommended_customers": n // 4, "n_customers": 400,
                         "coverage": n / 4 / 400, "n_answered": n // 2, "n_interested": n // 5,
                         "interest_rate": (n // 5) / (n // 2), "n_conversions": n // 20,
                         "n_converted_customers": n // 20, "attributed_value_cny": 600.0 * (n // 20)})
    pd.DataFrame(rows).to_parquet(marts / "monthly_effect_breakdown.parquet")


def publish_fake_versions(data_dir: Path, n: int = 2) -> list[str]:
    """``n`` finished versions whose marts link to ``data_dir/marts`` (with a small monthly breakdown), each
    with a model's metadata; the newest is made current."""
    import json

    from ml.core.versions import switch, version_dir, write_manifest

    ids = []
    for i in range(n):
        version = f"2025070{i + 1}T021500000000Z"
        folder = version_dir(data_dir, version)
        (folder / "marts").mkdir(parents=True)
        for item in (data_dir / "marts").iterdir():
            if item.name != "monthly_effect_breakdown.parquet":  # the test bank's is empty: no feedback export
                (folder / "marts" / item.name).symlink_to(item.resolve())
        write_breakdown(folder / "marts")
        model = folder / "models" / f"2025070{i + 1}T010000000000-test"
        model.mkdir(parents=True)
        (model / "metadata.json").write_text(json.dumps({
            "data_snapshot": "2025-04-01", "rows": {"fit": 1000 + i},
            "calibration_table": {"production": {"map_at_5": 0.2 + i / 100, "trees": 100 + i}}}))
        write_manifest(folder, {"version": version, "published_at": f"2025-07-0{i + 1}T02:15:00+00:00",
                                "model_version": model.name, "model_dir": model.name})
        ids.append(version)
    switch(data_dir, ids[-1])
    return ids
