"""Test doubles for the serving tests: a deterministic fake engine and a tiny customer_360 generator.

The fake engine respects the engine Protocol and its contract (only suitable, unsuppressed products;
``UnknownCustomer`` for unknown ids) but its scores are hashes, not a model. It lives here, never in
``serving/``. gunicorn subprocesses load it with ``LINGXI_ENGINE=serving_fakes:FakeEngine`` and
``PYTHONPATH`` pointing at this folder (the testing hook of ``serving.config``).
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml.core.catalogue import load_catalogue
from ml.core.config import SEEDS_DIR
from ml.recommendation.contract import (
    ColdStartResult,
    ColdStartWarning,
    Conflict,
    Exclusion,
    Forecast,
    RankedProduct,
    Ranking,
    Reason,
    Target,
    UnknownCustomer,
)
from serving.store import Recommendation, ShownProduct

RISK_TOLERANCE = {"conservative": 1, "cautious": 2, "balanced": 3, "growth": 4, "aggressive": 5}
ASSET_BOUNDS = {"L1": (0, 50_000), "L2": (50_000, 200_000), "L3": (200_000, 500_000),
                "L4": (500_000, 2_000_000), "L5": (2_000_000, 8_000_000)}
TRIGGERS = ("salary_credit", "deposit_maturity", "card_replacement")


def _unit(*parts: str) -> float:
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FakeEngine:
    """Deterministic engine over the customer_360 snapshot of a data directory."""

    def __init__(self, data_dir: Path, *, fail_push: bool | int = False) -> None:
        self.catalogue = load_catalogue(SEEDS_DIR / "products.csv")
        frame = pd.read_parquet(Path(data_dir) / "marts" / "customer_360.parquet")
        self.customers = frame.set_index("customer_id").to_dict("index")
        self.fail_push = fail_push
        self.pushed: list[dict[str, Any]] = []
        # loaded from a published version: the model version names it (tests check no version mixes)
        manifest = Path(data_dir) / "manifest.json"
        self.model = f"fake-{json.loads(manifest.read_text())['version']}" if manifest.exists() else "fake-1"

    # -- Protocol ----------------------------------------------------------------------------
    def versions(self) -> Mapping[str, str]:
        return {"model": self.model, "features": "fake_features_v1"}

    def customer_profile(self, customer_id: str) -> Mapping[str, Any] | None:
        row = self.customers.get(customer_id)
        if row is None:
            return None
        return {"feature_service": "profile_v1", "age": int(row["age"]), "asset_level": row["asset_level"],
                "n_products": int(sum(bool(row[f"holds_{p.lower()}"]) for p in self.catalogue.ids)),
                "model": self.model}

    def _row(self, customer_id: str) -> dict[str, Any]:
        row = self.customers.get(customer_id)
        if row is None:
            raise UnknownCustomer(customer_id)
        return row

    def exclusions(self, row: Mapping[str, Any], product_id: str) -> list[str]:
        p = self.catalogue.get(product_id)
        codes = []
        risk = p.risk_level
        if risk > RISK_TOLERANCE[row["risk_preference"]]:
            codes.append("RISK_ABOVE_TOLERANCE")
        if risk >= 4 and row["age"] > 65:
            codes.append("AGE_LIMIT_HIGH_RISK")
        if row["assets_cny"] < p.min_investment_cny:
            codes.append("BELOW_MIN_INVESTMENT")
        if not p.target_age_min <= row["age"] <= p.target_age_max:
            codes.append("OUTSIDE_TARGET_AGE")
        if row[f"holds_{product_id.lower()}"]:
            codes.append("ALREADY_HELD")
        return codes

    def _rank(self, customer_id: str, k: int, explain: bool, suppressed: Mapping[str, str] | None,
              weight=lambda product_id: 1.0, stage: str = "1") -> Ranking:
        row = self._row(customer_id)
        suppressed = suppressed or {}
        scored, excluded = [], []
        for product_id in self.catalogue.ids:
            codes = self.exclusions(row, product_id)
            if product_id in suppressed:
                codes.append(suppressed[product_id])
            if codes:
                excluded.append(Exclusion(product_id, tuple(codes)))
                continue
            score = _unit(customer_id, product_id) * weight(product_id)
            scored.append((score, product_id))
        scored.sort(key=lambda t: (-t[0], t[1]))
        products = tuple(
            RankedProduct(pid, round(score, 6), int(min(100, score * 100)),
                          (Reason("FAKE_SCORE", f"stage {stage} hash score {score:.3f}"),),
                          self.catalogue.get(pid).tags)
            for score, pid in scored[:k])
        return Ranking(products, f"{self.model}-stage{stage}", tuple(excluded) if explain else ())

    def stage_one(self, customer_id: str, k: int, *, explain_exclusions: bool = False,
                  suppressed: Mapping[str, str] | None = None) -> Ranking:
        return self._rank(customer_id, k, explain_exclusions, suppressed)

    def stage_two(self, customer_id: str, shown: Sequence[str], feedback: Mapping[str, str], k: int, *,
                  explain_exclusions: bool = False, suppressed: Mapping[str, str] | None = None) -> Ranking:
        liked = {self.catalogue.get(p).category for p, r in feedback.items() if r == "interested"}
        disliked = {self.catalogue.get(p).category for p, r in feedback.items() if r == "not_interested"}

        def weight(product_id: str) -> float:
            category = self.catalogue.get(product_id).category
            return (2.0 if category in liked else 1.0) * (0.2 if category in disliked else 1.0)

        return self._rank(customer_id, k, explain_exclusions, suppressed, weight, stage="2")

    def cold_start(self, product: Mapping[str, Any], n: int,
                   assumptions: Mapping[str, float] | None = None) -> ColdStartResult:
        conflicts = tuple(
            Conflict(p.product_id, "substitute" if p.risk_label == product["risk_level"] else "overlap",
                     round(0.5 + 0.5 * _unit(product["product_id"], p.product_id), 4), f"same category {p.category}",
                     "high" if p.risk_label == product["risk_level"] else "medium")
            for p in self.catalogue if p.category == product["category"])
        warnings = ()
        if int(product["risk_level"][1]) >= 4 and product["target_age_max"] > 65:
            warnings = (ColdStartWarning("AGE_LIMIT_HIGH_RISK", "high", "R4+ products stop at 65"),)
        targets = []
        for customer_id, row in sorted(self.customers.items()):
            if int(product["risk_level"][1]) <= RISK_TOLERANCE[row["risk_preference"]] \
                    and product["target_age_min"] <= row["age"] <= product["target_age_max"]:
                targets.append(Target(customer_id, int(_unit(customer_id, product["product_id"]) * 100),
                                      (Reason("FAKE_MATCH", "suitable and hashed"),)))
        targets.sort(key=lambda t: (-t.match_score, t.customer_id))
        contact_rate = float((assumptions or {}).get("contact_rate", 0.2))  # the fake's one live assumption
        adopters = 50.0 * contact_rate
        forecast = Forecast(12, adopters, adopters / 2, adopters * 2, adopters * (product.get("annual_value_cny") or 100.0),
                            tuple(c.product_id for c in conflicts[:3]), (f"fake: {adopters:g} adopters",),
                            parameters=(("horizon_months", 12.0), ("contact_rate", contact_rate)))
        return ColdStartResult(conflicts, tuple(targets[:n]), forecast, "fake-1-cold", warnings)

    def push_feedback(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if self.fail_push:  # True: always; a number: that many pushes fail, then they succeed
            if not isinstance(self.fail_push, bool):
                self.fail_push -= 1
            raise ConnectionError("online store down")
        self.pushed.extend(dict(r) for r in rows)


FAKE_MANAGERS = ("M001", "M002", "M003", "M004")  # skewed books: 40 %, 30 %, 20 %, 10 %
FAKE_BRANCHES = {"M001": "320211-00", "M002": "320211-00", "M003": "320213-01", "M004": "320213-01"}


def make_customer_360(marts: Path, n: int = 400, seed: int = 11, *, events: bool = True, books: bool = True,
                      file_name: str = "customer_360.parquet") -> pd.DataFrame:
    """A small, deterministic customer_360 (and recent events, and the managers' books) with the columns
    serving expects. Every customer is in the book of one of ``FAKE_MANAGERS``."""
    rng = np.random.default_rng(seed)
    catalogue = load_catalogue(SEEDS_DIR / "products.csv")
    regions = pd.read_csv(SEEDS_DIR / "regions.csv", dtype=str)["region_code"].tolist()
    ids = [hashlib.md5(f"{seed}-{i}".encode()).hexdigest().upper() for i in range(n)]
    levels = rng.choice(list(ASSET_BOUNDS), size=n, p=[0.45, 0.3, 0.15, 0.07, 0.03])
    frame = pd.DataFrame({
        "customer_id": ids,
        "age": rng.integers(18, 90, size=n).astype("int32"),
        "gender": rng.choice(["M", "F"], size=n),
        "asset_level": levels,
        "assets_cny": [float(rng.uniform(*ASSET_BOUNDS[lv])) for lv in levels],
        "risk_preference": rng.choice(list(RISK_TOLERANCE), size=n),
        "region_code": rng.choice(regions, size=n),
    })
    for product_id in catalogue.ids:
        rate = 0.9 if product_id == "SAV_DEMAND" else 0.08
        frame[f"holds_{product_id.lower()}"] = (rng.random(n) < rate).astype("int32")  # 0/1, as dbt writes it
    for category in catalogue.category_names:
        cols = [f"holds_{p.lower()}" for p in catalogue.in_category(category)]
        frame[f"n_held_{category}"] = frame[cols].sum(axis=1).astype("int32")
    frame["as_of_ts"] = pd.Timestamp("2025-07-01")
    for trigger in TRIGGERS:
        days = rng.integers(0, 400, size=n).astype("float64")
        days[rng.random(n) < 0.3] = np.nan
        frame[f"days_since_{trigger}"] = pd.Series(days).astype("Int32")  # null = never
    marts.mkdir(parents=True, exist_ok=True)
    order = rng.permutation(n)  # unsorted on purpose: the loader sorts
    pq.write_table(pa.Table.from_pandas(frame.iloc[order], preserve_index=False), marts / file_name)
    if events:
        rows = []
        for cid in ids[: n // 2]:
            for j in range(3):
                rows.append({"customer_id": cid,
                             "event_time": pd.Timestamp("2025-06-01") + pd.Timedelta(days=int(rng.integers(0, 29)), hours=j),
                             "event_type": "salary_credit" if j == 0 else "product_trade",
                             "product_id": None if j == 0 else "SAV_DEMAND",
                             "amount": float(rng.uniform(100, 9000)), "channel": "system" if j == 0 else "mobile_banking"})
        pq.write_table(pa.Table.from_pylist(rows), marts / "customer_recent_events.parquet")
    if books:
        write_books(marts, ids, rng)
    return frame


def write_books(marts: Path, ids: Sequence[str], rng: np.random.Generator) -> pd.DataFrame:
    """``manager_books.parquet`` as the dbt mart writes it (one row per customer, sorted by manager)."""
    # A customer's manager follows from the id alone, so a customer keeps their manager in every version.
    share = np.array([int(hashlib.sha256(cid.encode()).hexdigest()[:8], 16) / 16**8 for cid in ids])
    managers = np.array(list(FAKE_MANAGERS))[np.searchsorted(np.cumsum([0.4, 0.3, 0.2, 0.1]), share, side="right")]
    frame = pd.DataFrame({
        "customer_id": list(ids),
        "branch_id": [FAKE_BRANCHES[m] for m in managers],
        "manager_id": managers,
        "branch_name_zh": ["总行营业部" if FAKE_BRANCHES[m].endswith("00") else "新吴支行" for m in managers],
        "branch_name_en": ["Head Office Business Department" if FAKE_BRANCHES[m].endswith("00") else "Xinwu Sub-branch"
                           for m in managers],
        "assigned_since": [pd.Timestamp("2023-01-01").date() + pd.Timedelta(days=int(d)).to_pytimedelta()
                           for d in rng.integers(0, 900, size=len(ids))],
        "assignment_reason": "initial",
        "as_of_ts": pd.Timestamp("2025-07-01"),
    }).sort_values(["manager_id", "customer_id"])
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), marts / "manager_books.parquet")
    return frame


def read_books(marts: Path) -> dict[str, list[str]]:
    """manager id -> the sorted customer ids of that book."""
    frame = pd.read_parquet(marts / "manager_books.parquet", columns=["customer_id", "manager_id"])
    return {m: sorted(group["customer_id"]) for m, group in frame.groupby("manager_id")}


# -- feedback-store rows for the store tests ------------------------------------------------------
T0 = datetime(2025, 7, 1, 2, 0, tzinfo=timezone.utc)


def make_rec(customer: str = "A" * 32, stage: int = 1, parent: str | None = None, manager: str | None = "M001",
             products=("SAV_TIME", "PRO_LIFE", "WLT_WMP"), at: datetime = T0) -> Recommendation:
    """A recommendation list as serving logs it (ids random, scores made up)."""
    shown = tuple(ShownProduct(p, i + 1, 0.9 - i / 10, 90 - i * 10, ({"code": "X", "text": "why"},), ("t",))
                  for i, p in enumerate(products))
    return Recommendation(uuid.uuid4().hex.upper(), customer, manager, stage, parent, "m-1", at, shown)


def record(store, rec: Recommendation, key: str, items, manager: str = "M001", at: datetime = T0,
           caller: str | None = None):
    """``store.record_feedback`` with the request hash serving computes (the caller: the manager's token)."""
    from serving.workflow import request_hash

    return store.record_feedback(idempotency_key=key, request_hash=request_hash(rec.recommendation_id, manager, items),
                                 recommendation=rec, manager_id=manager, items=items, recorded_at=at,
                                 caller=caller or f"manager:{manager}")


def make_version(data_dir: Path, version: str, n: int = 400, seed: int = 11, *, switch: bool = True) -> Path:
    """A published version of the fake bank: its customer snapshot and manifest under
    ``versions/<version>/`` (what ``ml.engine.publish`` assembles), then the pointer switched."""
    from ml.core import versions

    folder = versions.version_dir(data_dir, version)
    make_customer_360(folder / "marts", n=n, seed=seed)
    versions.write_manifest(folder, {"version": version, "model_version": f"fake-{version}"})
    if switch:
        versions.switch(data_dir, version)
    return folder


def slow_engine(data_dir: Path) -> FakeEngine:
    """``LINGXI_ENGINE=serving_fakes:slow_engine``: a fake engine that takes
    ``LINGXI_FAKE_ENGINE_SECONDS`` to load (a full-scale boot, in a test)."""
    import os
    import time

    time.sleep(float(os.environ.get("LINGXI_FAKE_ENGINE_SECONDS", "0")))
    return FakeEngine(data_dir)
