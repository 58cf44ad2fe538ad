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
