"""What the API's answers say: a short list says why in words, the order and its key are labelled,
Chinese by default and English on request, errors name the field, and one as-of date."""
from __future__ import annotations

from datetime import date

import pytest
from serving_fakes import FakeEngine

from ml.recommendation.contract import RankedProduct, Ranking
from ml.recommendation.explain import reason
from serving import create_app

V1 = "/api/v1"
EN = {"Accept-Language": "en"}
ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}


class TemplatedEngine(FakeEngine):
    """The fake engine, with a reason in the real engine's form (an English template and params)."""

    def stage_one(self, customer_id, k, *, explain_exclusions=False, suppressed=None):
        ranking = super().stage_one(customer_id, k, explain_exclusions=explain_exclusions, suppressed=suppressed)
        why = (reason("SALARY_CREDIT_RECENT", "salary credited %(days)s days ago (about %(salary_cny)s a month)",
                      {"salary_cny": "CNY 8,000"}, days=12, salary_cny=8000.0),
               reason("HOLDS_COMPLEMENT", "holds a complementary product: %(product)s",
                      {"product": "Time deposit"}, product="SAV_TIME"))
        products = tuple(RankedProduct(p.product_id, p.score, p.match_score, why, p.tags, 100.0)
                         for p in ranking.products)
        return Ranking(products, ranking.model_version, ranking.excluded)


@pytest.fixture
def templated(app_config, data_dir):
    app = create_app({**app_config, "LINGXI_ENGINE": TemplatedEngine(data_dir), "LINGXI_AS_OF": "data"})
    yield app.test_client()
    app.extensions["lingxi"].store.close()


def _short_list(client, headers, customers, k=10):
    for cid in customers:
        body = client.post(f"{V1}/recommendations", json={"customer_id": cid, "k": k}, headers=headers).json
        if len(body["products"]) < k:
            return body
    raise AssertionError("no customer with a short list")


def test_a_short_list_says_why_in_words_by_default(client, auth, books):
    body = _short_list(client, {**auth("manager"), **EN}, books["M001"])
    shortfall = body["shortfall"]
    assert body["requested"] == 10 and shortfall["message"].startswith(("Only", "No product"))
    assert shortfall["reasons"] and all(r["text"] and r["products"] >= 1 for r in shortfall["reasons"])
    left_out = {e["product_id"] for e in body["excluded"]}
    shown = {p["product_id"] for p in body["products"]}
    assert not left_out & shown and all(e["reasons"][0]["text"] != e["reasons"][0]["code"] for e in body["excluded"])
    assert sum(r["products"] for r in shortfall["reasons"]) >= len(left_out)
    zh = _short_list(client, {**auth("manager"), **ZH}, books["M001"])
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh["shortfall"]["message"])
    full = client.post(f"{V1}/recommendations", json={"customer_id": books["M001"][0], "k": 1},
                       headers=auth("manager")).json
    assert "shortfall" not in full and "excluded" not in full  # a full list stays short to read


def test_items_carry_the_ranking_key_and_its_parts(templated, auth, books):
    body = templated.post(f"{V1}/recommendations", json={"customer_id": books["M001"][0]},
                          headers={**auth("manager"), **EN}).json
    assert body["ordered_by"] == "expected_value_cny"
    for item in body["products"]:
        assert item["probability_of"] == "adoption" and item["annual_value_cny"] == 100.0
        assert item["expected_value_cny"] == pytest.approx(item["probability"] * 100.0, abs=1e-4)
        assert item["score"] == item["probability"]  # the deprecated alias


def test_reasons_tags_and_categories_in_chinese_by_default_and_english_on_request(templated, auth, books):
    cid = books["M001"][0]
    zh = templated.post(f"{V1}/recommendations", json={"customer_id": cid}, headers=auth("manager"))
    assert zh.headers["Content-Language"] == "zh-CN" and "Accept-Language" in zh.headers["Vary"]
    item = zh.json["products"][0]
    assert item["reasons"][0]["text"] == "12 天前入账工资（每月约 8,000 元）"
    assert item["reasons"][1]["text"] == "持有互补产品：定期存款"
    assert item["display_name"] == item["name_zh"] and item["category_name"] in {"储蓄类", "保障类", "信贷类", "财富类"}
    assert len(item["tag_names"]) == len(item["tags"])
    en = templated.get(f"{V1}/recommendations/{zh.json['recommendation_id']}", headers={**auth("manager"), **EN})
    assert en.headers["Content-Language"] == "en"
    assert en.json["products"][0]["reasons"][0]["text"] == "salary credited 12 days ago (about CNY 8,000 a month)"
    assert en.json["products"][0]["reasons"][1]["text"] == "holds a complementary product: Time deposit"


def test_default_language_is_configurable(app_config, auth, books):
    app = create_app({**app_config, "LINGXI_LANGUAGE": "en"})
    response = app.test_client().get(f"{V1}/customers/{'0' * 31}", headers=auth("manager"))
    assert response.headers["Content-Language"] == "en"
    assert response.json["error"]["message"] == "customer_id must be 32 hexadecimal characters (0-9, A-F)"
    with pytest.raises(ValueError):
        create_app({**app_config, "LINGXI_LANGUAGE": "fr"})


def test_customer_lookup_is_readable_and_features_only_on_request(client, auth, books):
    body = client.get(f"{V1}/customers/{books['M001'][0]}", headers={**auth("manager"), **ZH}).json
    assert "features" not in body and body["attributes"]["risk_preference_name"]
    assert all(h["name"] and not h["name"].isascii() for h in body["holdings"])
    assert all(t["name"] for t in body["trigger_windows"])
    features = client.get(f"{V1}/customers/{books['M001'][0]}?include=features", headers=auth("manager")).json
    assert features["features"]["feature_service"] == "profile_v1"
    bad = client.get(f"{V1}/customers/{books['M001'][0]}?include=everything", headers={**auth("manager"), **EN})
    assert bad.status_code == 400 and bad.json["error"]["field"] == "include" and "pointer" not in bad.json["error"]


@pytest.mark.parametrize("body, field, message", [
    ({"age": {"min": 200}}, "age/min", "age.min must be an integer between 0 and 150"),
    ({"age": {"min": 50, "max": 20}}, "age/min", "age.min must not exceed age.max"),
    ({"holds": {"products": ["SAV_TIME", "sav"]}}, "holds/products/1", "holds.products[1] must be a product id"),
    ({"risk_preferences": ["balanced", "reckless"]}, "risk_preferences/1", "risk_preferences[1] must be one of"),
    ({"trigger": {"types": ["salary_credit"]}}, "trigger/within_days", "trigger.within_days is required"),
    ({"age": {"min": 1, "mid": 2}}, "age/mid", "unknown field age.mid"),
])
def test_errors_name_the_field_with_its_pointer(client, auth, body, field, message):
    response = client.post(f"{V1}/segments/query", json=body, headers={**auth("admin"), **EN})
    error = response.json["error"]
    assert response.status_code in (400, 422)
    assert error["field"] == field and error["pointer"] == "/" + field
    assert error["message"].startswith(message), error["message"]


def test_feedback_errors_point_at_the_item(client, auth, books):
    cid = books["M001"][0]
    rec = client.post(f"{V1}/recommendations", json={"customer_id": cid}, headers=auth("manager")).json
    product = rec["products"][0]["product_id"]
    items = [{"product_id": product, "response": "interested"}, {"product_id": product, "response": "maybe"}]
    response = client.post(f"{V1}/recommendations/{rec['recommendation_id']}/feedback", json={"items": items},
                           headers={**auth("manager"), **ZH, "Idempotency-Key": "answers-1"})
    error = response.json["error"]
    assert response.status_code == 400 and error["pointer"] == "/items/1/response"
    assert error["message"].startswith("items[1].response 必须是以下之一")


def test_cold_start_accepts_chinese_tags(app_config, auth, data_dir):
    seen = {}

    class Recording(FakeEngine):
        def cold_start(self, product, n):
            seen.update(product)
            return super().cold_start(product, n)

    client = create_app({**app_config, "LINGXI_ENGINE": Recording(data_dir)}).test_client()
    product = {"product_id": "NEW_PENSION", "name": "New pension", "category": "wealth", "risk_level": "R2",
               "tags": ["养老", "Long term", "自定义"]}
    response = client.post(f"{V1}/products/cold-start", json={"product": product}, headers=auth("admin"))
    assert response.status_code == 200, response.json
    assert seen["tags"] == ["retirement", "long-term", "自定义"]


def test_one_as_of_date_for_triggers_suppressions_and_the_dashboard(app_config, auth, books, clock):
    cid = books["M001"][0]
    headers = {**auth("manager"), **EN}
    data = create_app({**app_config, "LINGXI_AS_OF": "data"}).test_client()
    at_data = data.get(f"{V1}/customers/{cid}", headers=headers).json
    assert at_data["as_of"] == {"date": "2025-07-01", "source": "data", "data_date": "2025-07-01"}
    later = create_app({**app_config, "LINGXI_AS_OF": "2025-07-11"}).test_client()
    at_later = later.get(f"{V1}/customers/{cid}", headers=headers).json
    for a, b in zip(at_data["trigger_windows"], at_later["trigger_windows"]):
        assert b["days_since"] == (a["days_since"] + 10 if a["days_since"] is not None else None)
    rec = data.post(f"{V1}/recommendations", json={"customer_id": cid}, headers=headers).json
    product = rec["products"][0]["product_id"]
    answered = data.post(f"{V1}/recommendations/{rec['recommendation_id']}/feedback",
                         json={"items": [{"product_id": product, "response": "not_interested"}]},
                         headers={**headers, "Idempotency-Key": "as-of-key-1"})
    assert answered.status_code == 201, answered.json
    suppression = data.get(f"{V1}/customers/{cid}", headers=headers).json["suppressions"][0]
    assert suppression["since"].startswith("2025-07-01") and suppression["until"].startswith("2025-09-29")
    dashboard = data.get(f"{V1}/dashboard", headers=auth("admin")).json
    assert dashboard["to"] == "2025-07-01" and dashboard["feedback"]["negative"] == 1
    assert date.fromisoformat(dashboard["from"]) == date(2025, 6, 2)
    with pytest.raises(ValueError):
        create_app({**app_config, "LINGXI_AS_OF": "yesterday"})
