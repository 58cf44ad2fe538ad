"""Champion / challenger / control through the API: stable arms, shadow lists, logged and exported;
and an older feedback store migrated in place."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from serving_fakes import FakeEngine, make_rec

from ml.engine.arms import ArmShares, assign
from ml.recommendation.contract import Ranking
from serving import create_app
from serving.export import export
from serving.store import ShadowList, open_store

V1 = "/api/v1"
SHARES = {"LINGXI_CHALLENGER_SHARE": 0.3, "LINGXI_CONTROL_SHARE": 0.2, "LINGXI_ARM_SALT": "test-salt"}


class ArmedEngine(FakeEngine):
    """The fake engine with a challenger (another fake model) and the control's rule ranking."""

    def __init__(self, data_dir, **kwargs) -> None:
        super().__init__(data_dir, **kwargs)
        self.challenger = FakeEngine(data_dir)
        self.challenger.model = "fake-challenger"
        self.control_calls: list[tuple[str, tuple[str, ...]]] = []

    def stage_one_control(self, customer_id, k, *, suppressed=None, also_blocked=()) -> Ranking:
        self.control_calls.append((customer_id, tuple(also_blocked)))
        ranking = self._rank(customer_id, k + len(also_blocked), False, suppressed, stage="control")
        products = tuple(p for p in ranking.products if p.product_id not in set(also_blocked))[:k]
        return Ranking(products, "rules-v1", ())


@pytest.fixture
def armed(app_config, data_dir):
    engine = ArmedEngine(data_dir)
    app = create_app({**app_config, "LINGXI_ENGINE": engine, **SHARES})
    yield app, engine
    app.extensions["lingxi"].store.close()


def test_each_customer_meets_one_arm_and_the_challenger_scores_the_rest_in_shadow(armed, auth, books, data_dir):
    app, engine = armed
    client, store = app.test_client(), app.extensions["lingxi"].store
    shares = ArmShares(challenger=0.3, control=0.2, salt="test-salt")
    seen: dict[str, set[str]] = {}
    lists = []
    for cid in books["M001"][:60] * 2:  # every customer twice: the arm must not change
        body = client.post(f"{V1}/recommendations", json={"customer_id": cid}, headers=auth("manager")).json
        rec = store.get_recommendation(body["recommendation_id"])
        seen.setdefault(cid, set()).add(rec.arm)
        lists.append((cid, body, rec))
    assert all(len(arms) == 1 for arms in seen.values())
    arms = {cid: next(iter(a)) for cid, a in seen.items()}
    assert arms == {cid: assign(cid, shares) for cid in arms}
    assert set(arms.values()) == {"champion", "challenger", "control"}
    for cid, body, rec in lists:
        expected = {"champion": "fake-1-stage1", "challenger": "fake-challenger-stage1", "control": "rules-v1"}
        assert body["model_version"] == expected[rec.arm]
        shadow = store.shadow_for(rec.recommendation_id)
        if rec.arm == "challenger":
            assert shadow is None
        else:  # logged, not shown: the challenger's own list for this customer
            assert shadow == ShadowList("challenger", "fake-challenger-stage1",
                                        tuple(p.product_id for p in engine.challenger.stage_one(cid, 5).products))
    # stage two stays in the arm of its stage-one list
    for arm in ("champion", "challenger", "control"):
        cid, body, rec = next(item for item in lists if item[2].arm == arm)
        shown = [p["product_id"] for p in body["products"]]
        client.post(f"{V1}/recommendations/{rec.recommendation_id}/feedback",
                    json={"items": [{"product_id": shown[0], "response": "interested"}]},
                    headers={**auth("manager"), "Idempotency-Key": f"arm-{arm}"})
        two = client.post(f"{V1}/recommendations/{rec.recommendation_id}/stage-two", json={}, headers=auth("manager")).json
        assert store.get_recommendation(two["recommendation_id"]).arm == arm
        if arm == "control":
            assert engine.control_calls[-1] == (cid, tuple(shown)) and not set(shown) & {
                p["product_id"] for p in two["products"]}
        else:
            assert two["model_version"] == ("fake-challenger-stage2" if arm == "challenger" else "fake-1-stage2")
    # the arm goes out with the feedback export
    out = data_dir / "feedback_export"
    export(store, out)
    exported = pq.read_table(out / "recommendations").to_pandas()
    assert set(exported["arm"]) == {"champion", "challenger", "control"}
    by_list = exported.groupby("recommendation_id")["arm"].first()
    assert all(by_list[rec.recommendation_id] == rec.arm for _, _, rec in lists if rec.products)


def test_without_a_challenger_nobody_is_in_its_arm(app_config, auth, books, data_dir):
    app = create_app({**app_config, **SHARES})  # the plain fake engine: no challenger, no control ranking
    client, store = app.test_client(), app.extensions["lingxi"].store
    for cid in books["M001"][:30]:
        body = client.post(f"{V1}/recommendations", json={"customer_id": cid}, headers=auth("manager")).json
        rec = store.get_recommendation(body["recommendation_id"])
        assert rec.arm == "champion" and store.shadow_for(rec.recommendation_id) is None
    store.close()


def test_an_older_store_is_migrated_and_keeps_its_lists(store_url):
    store = open_store(store_url)
    old = make_rec()
    with store._write() as cur:  # make it a store from before arms: no column, no shadow table, version 1
        cur.execute("DROP TABLE recommendation_shadow")
        cur.execute("ALTER TABLE recommendation_lists DROP COLUMN arm")
        cur.execute("UPDATE lingxi_schema SET version = 1")
        cur.execute(store._sql("INSERT INTO recommendation_lists (recommendation_id, customer_id, manager_id, stage,"
                               " parent_recommendation_id, model_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"),
                    (old.recommendation_id, old.customer_id, old.manager_id, 1, None, "v-old",
                     store._ts_in(old.created_at)))
    store.close()
    for _ in range(2):  # the migration runs once; opening again changes nothing
        store = open_store(store_url)
        assert store.get_recommendation(old.recommendation_id).arm is None
        assert store._query("SELECT version FROM lingxi_schema") == [(2,)]
        store.close()
    store = open_store(store_url)
    new = make_rec(customer="B" * 32)
    new = type(new)(**{**new.__dict__, "arm": "control"})
    store.log_recommendation(new, shadow=ShadowList("challenger", "v-ch", ("SAV_TIME",)))
    assert store.get_recommendation(new.recommendation_id).arm == "control"
    assert store.shadow_for(new.recommendation_id).product_ids == ("SAV_TIME",)
    store.close()
