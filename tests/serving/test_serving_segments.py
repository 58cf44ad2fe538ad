"""Segment filtering and paging against a pandas oracle; snapshot loading and atomic switching."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_fakes import make_customer_360

from ml.core.catalogue import load_catalogue
from ml.core.config import SEEDS_DIR
from serving import segments
from serving.errors import ApiError
from serving.snapshot import SnapshotManager, load_snapshot, resolve_source

CATALOGUE = load_catalogue(SEEDS_DIR / "products.csv")
TRIGGERS = ("salary_credit", "deposit_maturity", "card_replacement")


class Pair(tuple):
    def __repr__(self) -> str:  # keep Hypothesis' failure reports short
        return "<customer_360 frame, snapshot>"


@pytest.fixture(scope="module")
def frame_and_snapshot(tmp_path_factory):
    marts = tmp_path_factory.mktemp("seg") / "marts"
    frame = make_customer_360(marts, n=600, seed=5)
    return Pair((frame, load_snapshot(resolve_source(marts), CATALOGUE)))


def oracle(frame: pd.DataFrame, body: dict) -> list[str]:
    """The same filter, written the slow and obvious way."""
    m = pd.Series(True, index=frame.index)
    if "age" in body:
        m &= frame.age.between(body["age"].get("min", -1), body["age"].get("max", 10**6))
    if "assets_cny" in body:
        m &= frame.assets_cny.between(body["assets_cny"].get("min", -1), body["assets_cny"].get("max", 1e99))
    if "asset_levels" in body:
        m &= frame.asset_level.isin(body["asset_levels"])
    if "risk_preferences" in body:
        m &= frame.risk_preference.isin(body["risk_preferences"])
    if "regions" in body:
        def ok(code):
            return any(code[:2] == r[:2] if r.endswith("0000") else code[:4] == r[:4] if r.endswith("00") else code == r
                       for r in body["regions"])
        m &= frame.region_code.map(ok)
    for key, want in (("holds", True), ("not_holds", False)):
        for p in body.get(key, {}).get("products", []):
            m &= frame[f"holds_{p.lower()}"].astype(bool) == want
        for c in body.get(key, {}).get("categories", []):
            m &= (frame[f"n_held_{c}"] > 0) == want
    if "trigger" in body:
        types = body["trigger"].get("types", TRIGGERS)
        recent = pd.Series(False, index=frame.index)
        for t in types:
            recent |= frame[f"days_since_{t}"].fillna(10**6) <= body["trigger"]["within_days"]
        m &= recent
    return sorted(frame.customer_id[m])


def run(snapshot, body: dict) -> tuple[int, list[str]]:
    """Page through all results with small pages; return (count, ids in order)."""
    ids, cursor, count = [], None, None
    for _ in range(1000):
        page_body = {**body, "limit": 7, **({"cursor": cursor} if cursor else {})}
        spec, limit, cur = segments.parse_request(page_body, CATALOGUE)
        out = segments.query(snapshot, spec, limit, cur)
        count = out["count"] if count is None else count
        assert out["count"] == count  # the count does not depend on the page
        ids += [c["customer_id"] for c in out["customers"]]
        cursor = out["next_cursor"]
        if cursor is None:
            return count, ids
    raise AssertionError("paging did not terminate")


products = st.sampled_from(sorted(CATALOGUE.ids))
categories = st.sampled_from(CATALOGUE.category_names)
holding = st.fixed_dictionaries({}, optional={"products": st.lists(products, min_size=1, max_size=2, unique=True),
                                              "categories": st.lists(categories, min_size=1, max_size=2, unique=True)})
bodies = st.fixed_dictionaries({}, optional={
    "age": st.tuples(st.integers(0, 100), st.integers(0, 60)).map(lambda t: {"min": t[0], "max": min(150, t[0] + t[1])}),
    "assets_cny": st.integers(0, 3_000_000).map(lambda v: {"min": v}),
    "asset_levels": st.lists(st.sampled_from(["L1", "L2", "L3", "L4", "L5"]), min_size=1, max_size=3, unique=True),
    "risk_preferences": st.lists(st.sampled_from(["conservative", "cautious", "balanced", "growth", "aggressive"]),
                                 min_size=1, max_size=3, unique=True),
    "regions": st.lists(st.sampled_from(["320200", "320000", "320213", "110000", "330106", "999999"]),
                        min_size=1, max_size=3, unique=True),
    "holds": holding,
    "not_holds": holding,
    "trigger": st.fixed_dictionaries({"within_days": st.integers(0, 400)},
                                     optional={"types": st.lists(st.sampled_from(TRIGGERS), min_size=1, unique=True)}),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_filter_matches_oracle_and_pages_cover_all(frame_and_snapshot, body):
    frame, snapshot = frame_and_snapshot
    if any(not v for v in (body.get("holds", 1), body.get("not_holds", 1))):
        body = {k: v for k, v in body.items() if v}
    expected = oracle(frame, body)
    count, ids = run(snapshot, body)
    assert count == len(expected)
    assert ids == expected  # every match once, in id order, across pages


def test_count_only_and_summary(frame_and_snapshot):
    frame, snapshot = frame_and_snapshot
    spec, limit, cursor = segments.parse_request({"limit": 0}, CATALOGUE)
    out = segments.query(snapshot, spec, limit, cursor)
    assert out["count"] == len(frame) and out["customers"] == [] and out["next_cursor"] is None
    row = frame.sort_values("customer_id").iloc[0]
    spec, limit, cursor = segments.parse_request({"limit": 1}, CATALOGUE)
    first = segments.query(snapshot, spec, limit, cursor)["customers"][0]
    assert first["customer_id"] == row.customer_id and first["age"] == row.age
    assert first["region_code"] == row.region_code and first["asset_level"] == row.asset_level


@pytest.mark.parametrize("body, status", [
    ({"age": {"min": 50, "max": 40}}, 422),
    ({"assets_cny": {"min": 5.0, "max": 4.5}}, 422),
    ({"limit": 5.0}, 200),
    ({"age": {"min": -1}}, 400),
    ({"age": {"min": "30"}}, 400),
    ({"age": {"minimum": 30}}, 400),
    ({"age": None}, 400),
    ({"limit": 1001}, 400),
    ({"limit": -1}, 400),
    ({"limit": 1.5}, 400),
    ({"limit": True}, 400),
    ({"asset_levels": []}, 400),
    ({"asset_levels": ["L9"]}, 400),
    ({"asset_levels": ["L1", "L1"]}, 400),
    ({"regions": ["3202"]}, 400),
    ({"regions": ["320200\n"]}, 400),
    ({"holds": {"products": ["NOPE_PRODUCT"]}}, 422),
    ({"holds": {"categories": ["toys"]}}, 422),
    ({"holds": {"products": ["bad id"]}}, 400),
    ({"trigger": {"types": ["salary_credit"]}}, 400),
    ({"trigger": {"within_days": 5, "types": ["birthday"]}}, 400),
    ({"cursor": "!!!"}, 400),
    ({"cursor": ""}, 400),
    ({"unknown": 1}, 400),
    ({"assets_cny": {"min": float("inf")}}, 400),
])
def test_bad_requests(frame_and_snapshot, body, status):
    _, snapshot = frame_and_snapshot
    if status == 200:
        spec, limit, cursor = segments.parse_request(body, CATALOGUE)
        assert segments.query(snapshot, spec, limit, cursor)["count"] >= 0
        return
    with pytest.raises(ApiError) as err:
        spec, limit, cursor = segments.parse_request(body, CATALOGUE)
        segments.query(snapshot, spec, limit, cursor)
    assert err.value.status == status


def test_cursor_from_another_snapshot_is_409(frame_and_snapshot):
    _, snapshot = frame_and_snapshot
    cursor = segments.encode_cursor("some-older-version", "A" * 32)
    with pytest.raises(ApiError) as err:
        segments.query(snapshot, segments.SegmentFilter(), 5, cursor)
    assert err.value.status == 409 and err.value.code == "snapshot_changed"


def test_loader_normalises_and_warns(tmp_path: Path):
    marts = tmp_path / "marts"
    frame = make_customer_360(marts, n=50, events=False)
    frame.loc[0, "customer_id"] = "not-an-id"
    frame.loc[1, "customer_id"] = frame.loc[2, "customer_id"].lower()  # duplicate once upper-cased
    frame = frame.drop(columns=["holds_wlt_pension", "n_held_wealth", "days_since_card_replacement"])
    frame.to_parquet(marts / "customer_360.parquet")
    snapshot = load_snapshot(resolve_source(marts), CATALOGUE)
    assert snapshot.rows == 48
    text = " ".join(snapshot.warnings)
    assert "malformed" in text and "duplicate" in text and "holds_wlt_pension" in text
    assert "days_since_card_replacement" in text and "customer_recent_events" in text
    assert not snapshot.holds["WLT_PENSION"].any()
    assert np.isnan(snapshot.days_since["card_replacement"]).all()
    i = snapshot.index_of(frame.loc[3, "customer_id"].lower())
    assert i is not None and snapshot.summary(i)["customer_id"] == frame.loc[3, "customer_id"]
    # the wealth category falls back to the product flags
    expected = frame[[f"holds_{p.lower()}" for p in CATALOGUE.in_category("wealth") if p != "WLT_PENSION"]].astype(bool).any(axis=1)
    got = [bool(snapshot.holds_category["wealth"][snapshot.index_of(c)]) for c in frame.customer_id[3:]]
    assert got == list(expected[3:])


def test_missing_required_column_is_an_error(tmp_path: Path):
    marts = tmp_path / "marts"
    make_customer_360(marts, n=20, events=False).drop(columns=["risk_preference"]).to_parquet(marts / "customer_360.parquet")
    manager = SnapshotManager(marts, CATALOGUE, check_seconds=0, background=False)
    assert not manager.refresh() and manager.current() is None
    assert "risk_preference" in manager.last_error


def test_swap_by_pointer_keeps_in_flight_snapshot(tmp_path: Path):
    marts = tmp_path / "marts"
    make_customer_360(marts / "v1", n=30, seed=1, events=False)
    (marts / "_CURRENT").write_text("v1")
    manager = SnapshotManager(marts, CATALOGUE, check_seconds=0, background=False)
    assert manager.refresh()
    in_flight = manager.current()
    assert in_flight.version == "v1"
    make_customer_360(marts / "v2", n=45, seed=2, events=False)
    tmp = marts / "_CURRENT.tmp"
    tmp.write_text("v2")
    os.replace(tmp, marts / "_CURRENT")  # how the pipeline publishes
    now = manager.current()
    assert now.version == "v2" and now.rows == 45
    assert in_flight.rows == 30 and in_flight.version == "v1"  # the old object is untouched
    (marts / "_CURRENT").write_text("../etc")
    assert manager.current() is now and "does not name" in manager.last_error


def test_swap_by_file_replace_and_torn_file(tmp_path: Path):
    marts = tmp_path / "marts"
    make_customer_360(marts, n=30, seed=1, events=False)
    manager = SnapshotManager(marts, CATALOGUE, check_seconds=0, background=False)
    manager.refresh()
    first = manager.current()
    (marts / "customer_360.parquet").write_bytes(b"PAR1 half a file")  # a writer that did not rename
    assert manager.current() is first and manager.last_error  # keeps answering from the old snapshot
    make_customer_360(marts, n=40, seed=3, events=False, file_name="next.parquet")
    os.replace(marts / "next.parquet", marts / "customer_360.parquet")
    assert manager.current().rows == 40 and manager.last_error is None


def test_background_reload(tmp_path: Path):
    marts = tmp_path / "marts"
    make_customer_360(marts, n=30, seed=1, events=False)
    manager = SnapshotManager(marts, CATALOGUE, check_seconds=0, background=True)
    manager.refresh()
    make_customer_360(marts, n=35, seed=2, events=False, file_name="next.parquet")
    os.replace(marts / "next.parquet", marts / "customer_360.parquet")
    assert manager.current().rows == 30  # this request is not blocked by the load
    deadline = time.monotonic() + 10
    while manager.current().rows != 35 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert manager.current().rows == 35
