"""Test doubles for the console: a ``manager_books`` mart and nightly stage-one lists for the fake
customer_360 of ``serving_fakes`` (the real marts come from dbt and the nightly batch)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from serving_fakes import FakeEngine

BRANCHES = (("320211-00", "无锡滨湖支行", "Wuxi Binhu sub-branch"), ("320213-00", "无锡梁溪支行", "Wuxi Liangxi sub-branch"))


def make_manager_books(marts: Path, managers: tuple[str, ...] = ("M001", "M002")) -> pd.DataFrame:
    """Every customer of ``customer_360`` in one book, dealt round-robin over ``managers``."""
    ids = sorted(pd.read_parquet(marts / "customer_360.parquet", columns=["customer_id"])["customer_id"])
    rows = []
    for n, customer_id in enumerate(ids):
        branch = BRANCHES[n % len(BRANCHES)]
        rows.append({"customer_id": customer_id, "branch_id": branch[0], "manager_id": managers[n % len(managers)],
                     "branch_name_zh": branch[1], "branch_name_en": branch[2], "branch_region_code": "320211",
                     "assigned_since": "2024-01-01", "assignment_reason": "initial",
                     "as_of_ts": pd.Timestamp("2025-07-01")})
    frame = pd.DataFrame(rows)
    frame.to_parquet(marts / "manager_books.parquet", index=False)
    return frame


def make_nightly_lists(data_dir: Path, k: int = 5, customer_ids: list[str] | None = None) -> pd.DataFrame:
    """``scores/stage_one.parquet`` as the nightly batch writes it, from the fake engine's stage one
    (for ``customer_ids``, default everyone)."""
    engine = FakeEngine(data_dir)
    catalogue = engine.catalogue
    rows = []
    for customer_id in sorted(customer_ids if customer_ids is not None else engine.customers):
        for rank, item in enumerate(engine.stage_one(customer_id, k).products, start=1):
            rows.append({"customer_id": customer_id, "stage": 1, "rank": rank, "product_id": item.product_id,
                         "probability": item.score, "score": item.score * catalogue.get(item.product_id).annual_value_cny,
                         "match_score": item.match_score, "model_version": "fake-1"})
    frame = pd.DataFrame(rows)
    (data_dir / "scores").mkdir(exist_ok=True)
    frame.to_parquet(data_dir / "scores" / "stage_one.parquet", index=False)
    return frame
