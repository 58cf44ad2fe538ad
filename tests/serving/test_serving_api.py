"""Every endpoint through the app factory: the manager workflow, auth, bad inputs, idempotency."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from serving_fakes import FakeEngine

from serving import create_app

V1 = "/api/v1"


def stage_one(client, headers, customer_id, **extra):
    response = client.post(f"{V1}/recommendations", json={"customer_id": customer_id, **extra}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def feedback(client, headers, rec_id, items, key, **extra):
    return client.post(f"{V1}/recommendations/{rec_id}/feedback", json={"items": items, **extra},
                       headers={**headers, "Idempotency-Key": key})


def customer_with_products(client, headers, customer_ids, minimum=3, **extra):
    """The first of ``customer_ids`` whose stage one shows at least ``minimum`` products (as ``headers``)."""
    for cid in customer_ids:
        rec = stage_one(client, headers, cid, **extra)
        if len(rec["products"]) >= minimum:
            return cid, rec
    raise AssertionError("no customer with enough suitable products")


# -- the whole workflow ------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_manager_workflow(backend, request, app_config, auth, books, engine, clock):
    """lookup -> stage one -> feedback -> stage two -> dashboard shows it (on both store backends)."""
    if backend == "postgresql":
        app_config = {**app_config, "LINGXI_FEEDBACK_DB_URL": request.getfixturevalue("postgres_url")}
    app = create_app(app_config)
    client = app.test_client()
    manager = auth("manager")
    cid = books["M001"][7]

    looked_up = client.get(f"{V1}/customers/{cid.lower()}", headers=manager)
    assert looked_up.status_code == 200
    body = looked_up.json
    assert body["customer_id"] == cid and "features" not in body  # the model's inputs only on request
    assert all(h["name"] and h["category_name"] for h in body["holdings"])
    with_features = client.get(f"{V1}/customers/{cid}?include=features", headers=manager).json
    assert with_features["features"]["feature_service"] == "profile_v1"
    assert body["book"]["manager_id"] == "M001" and body["book"]["branch_id"] == "320211-00"
    assert {t["trigger"] for t in body["trigger_windows"]} == {"salary_credit", "deposit_maturity", "card_replacement"}
    assert body["suppressions"] == []

    cid, rec = customer_with_products(client, manager, books["M001"][7:])
    rec = stage_one(client, manager, cid, k=5)
    assert rec["stage"] == 1 and rec["manager_id"] == "M001" and 1 <= len(rec["products"]) <= 5
    assert [p["rank"] for p in rec["products"]] == list(range(1, len(rec["products"]) + 1))
    for p in rec["products"]:
        assert 0 <= p["match_score"] <= 100 and p["reasons"] and p["tags"] and p["name"]
    shown = [p["product_id"] for p in rec["products"]]

    items = [{"product_id": shown[0], "response": "interested"},
             {"product_id": shown[1], "response": "not_interested"},
             {"product_id": shown[2], "response": "already_owns"}]
    stored = feedback(client, manager, rec["recommendation_id"], items, "wf-key-0001")
    assert stored.status_code == 201
    assert [i["product_id"] for i in stored.json["items"]] == shown[:3]
    assert [r["product_id"] for r in engine.pushed] == shown[:3]  # pushed to the online store

    fetched = client.get(f"{V1}/recommendations/{rec['recommendation_id']}", headers=manager).json
    assert [p["feedback"] for p in fetched["products"][:3]] == ["interested", "not_interested", "already_owns"]

    two = client.post(f"{V1}/recommendations/{rec['recommendation_id']}/stage-two", json={"k": 5}, headers=manager)
    assert two.status_code == 201
    two = two.json
    assert two["stage"] == 2 and two["parent_recommendation_id"] == rec["recommendation_id"]
    assert shown[1] not in [p["product_id"] for p in two["products"]]  # not interested: suppressed
    assert shown[2] not in [p["product_id"] for p in two["products"]]  # already owns
    assert {f["product_id"] for f in two["stage_one_feedback"]} == set(shown[:3])

    looked_up = client.get(f"{V1}/customers/{cid}", headers=manager).json
    assert {(s["product_id"], s["reason"]) for s in looked_up["suppressions"]} == {
        (shown[1], "SUPPRESSED_NOT_INTERESTED"), (shown[2], "ALREADY_HELD")}
    assert {(h["product_id"], h["source"]) for h in looked_up["holdings"]} >= {(shown[2], "reported")}

    if two["products"]:
        first = two["products"][0]["product_id"]
        assert feedback(client, manager, two["recommendation_id"], [{"product_id": first, "response": "interested"}],
                        "wf-key-0002").status_code == 201

    dash = client.get(f"{V1}/dashboard", headers=auth("admin"))
    assert dash.status_code == 200
    d = dash.json
    assert d["feedback"]["positive"] == 1 + bool(two["products"]) and d["feedback"]["negative"] == 1
    assert d["feedback"]["already_owns"] == 1
    s1 = d["stage_one"]["items"]
    assert s1["judged"] == 3 and s1["interested"] == 1 and s1["hit_rate"] == pytest.approx(1 / 3)
    assert d["stage_two"]["items"]["hit_rate"] == (1.0 if two["products"] else None)
    by_manager = {m["manager_id"]: m for m in d["by_manager"]}
    assert by_manager["M001"]["feedback"]["total"] == 3 + bool(two["products"])
    by_product = {p["product_id"]: p for p in d["by_product"]}
    assert by_product[shown[0]]["feedback"]["positive"] >= 1
    # an empty date range in the past shows nothing (figures come from the log, not invented)
    past = client.get(f"{V1}/dashboard?from=2020-01-01&to=2020-01-31", headers=auth("admin")).json
    assert past["feedback"]["total"] == 0 and past["stage_one"]["items"]["hit_rate"] is None
    app.extensions["lingxi"].store.close()


def test_suppression_expires(client, auth, books, clock):
    cid, rec = customer_with_products(client, auth("crm"), books["M003"], manager_id="M003")
    product = rec["products"][0]["product_id"]
    feedback(client, auth("crm"), rec["recommendation_id"], [{"product_id": product, "response": "not_interested"}],
             "exp-key-001", manager_id="M003")
    again = stage_one(client, auth("crm"), cid, k=10, explain_exclusions=True, manager_id="M003")
    assert product not in [p["product_id"] for p in again["products"]]
    excluded = {e["product_id"]: e for e in again["excluded"]}
    assert excluded[product]["reason_codes"] == ["SUPPRESSED_NOT_INTERESTED"]
    assert excluded[product]["reasons"][0]["text"]  # in words too
    clock.now = datetime.now(timezone.utc) + timedelta(days=91)
    later = stage_one(client, auth("crm"), cid, k=10, manager_id="M003")
    assert product in [p["product_id"] for p in later["products"]]


def test_stage_two_rules(client, auth, books):
    cid, rec = customer_with_products(client, auth("crm"), books["M001"], manager_id="M001")
    rid, as_m001 = rec["recommendation_id"], {"manager_id": "M001"}
    no_feedback = client.post(f"{V1}/recommendations/{rid}/stage-two", json=as_m001, headers=auth("crm"))
    assert no_feedback.status_code == 422 and no_feedback.json["error"]["code"] == "no_feedback"
    feedback(client, auth("crm"), rid, [{"product_id": rec["products"][0]["product_id"], "response": "interested"}],
             "st2-key-001", manager_id="M001")
    two = client.post(f"{V1}/recommendations/{rid}/stage-two", json=as_m001, headers=auth("crm")).json
    nested = client.post(f"{V1}/recommendations/{two['recommendation_id']}/stage-two", json=as_m001,
                         headers=auth("crm"))
    assert nested.status_code == 422 and nested.json["error"]["code"] == "not_stage_one"


def test_cold_start_and_products(client, auth):
    products = client.get(f"{V1}/products", headers=auth("manager")).json["products"]
    assert len(products) == 19
    body = {"product": {"product_id": "WLT_GREEN_FUND", "name": "Green fund", "category": "wealth", "risk_level": "R3",
                        "min_investment_cny": 1000, "target_age_min": 25, "target_age_max": 60, "tags": ["esg"]},
            "n_targets": 5}
    out = client.post(f"{V1}/products/cold-start", json=body, headers=auth("admin"))
    assert out.status_code == 200
    assert len(out.json["targets"]) == 5 and out.json["conflicts"] and out.json["forecast"]["assumptions"]
    assert {c["risk"] for c in out.json["conflicts"]} <= {"high", "medium", "low"} and out.json["warnings"] == []
    risky = {**body, "product": {**body["product"], "product_id": "WLT_TECH", "risk_level": "R5", "target_age_max": 80}}
    warned = client.post(f"{V1}/products/cold-start", json=risky, headers=auth("admin")).json["warnings"]
    assert [w["code"] for w in warned] == ["AGE_LIMIT_HIGH_RISK"] and warned[0]["severity"] == "high"
    existing = {**body, "product": {**body["product"], "product_id": "WLT_WMP"}}
    assert client.post(f"{V1}/products/cold-start", json=existing, headers=auth("admin")).status_code == 422
    ages = {**body, "product": {**body["product"], "target_age_min": 60, "target_age_max": 30}}
    assert client.post(f"{V1}/products/cold-start", json=ages, headers=auth("admin")).status_code == 422
    float_n = {**body, "n_targets": 3.0}
    assert len(client.post(f"{V1}/products/cold-start", json=float_n, headers=auth("admin")).json["targets"]) == 3


# -- health ------------------------------------------------------------------------------------
def test_engine_without_cold_start_is_501(app_config, auth, data_dir):
    class NoColdStart(FakeEngine):
        def cold_start(self, product, n):
            raise NotImplementedError

    client = create_app({**app_config, "LINGXI_ENGINE": NoColdStart(data_dir)}).test_client()
    body = {"product": {"product_id": "NEW_THING", "name": "n", "category": "savings", "risk_level": "R1"}}
    response = client.post(f"{V1}/products/cold-start", json=body, headers=auth("admin"))
    assert response.status_code == 501 and response.json["error"]["code"] == "not_implemented"


def test_health_and_readiness(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json["checks"]
    assert checks["engine"]["versions"] == {"model": "fake-1", "features": "fake_features_v1"}
    assert checks["snapshot"]["rows"] == 400 and checks["store"]["backend"] == "sqlite"
    assert checks["snapshot"]["as_of"] == "2025-07-01T00:00:00"


def test_not_ready_without_engine_or_snapshot(app_config, auth, tmp_path, books):
    app = create_app({**app_config, "LINGXI_ENGINE": "no_such_module:load_engine"})
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "no_such_module" in ready.json["checks"]["engine"]["error"]
    cid = books["M001"][0]
    response = client.post(f"{V1}/recommendations", json={"customer_id": cid}, headers=auth("manager"))
    assert response.status_code == 503 and response.json["error"]["code"] == "engine_unavailable"
    lookup = client.get(f"{V1}/customers/{cid}?manager_id=M001&include=features", headers=auth("crm"))
    assert lookup.status_code == 200 and lookup.json["features"] is None  # the snapshot still answers
    empty = create_app({**app_config, "LINGXI_DATA_DIR": tmp_path / "empty"}).test_client()
    assert empty.get("/readyz").status_code == 503
    assert empty.get(f"{V1}/customers/{cid}?manager_id=M001", headers=auth("crm")).status_code == 503


def test_engine_spec_loading(app_config, monkeypatch):
    import sys
    import types

    module = types.ModuleType("lingxi_test_engine_module")
    module.make = lambda data_dir: FakeEngine(data_dir)
    module.bad = lambda data_dir: object()
    monkeypatch.setitem(sys.modules, "lingxi_test_engine_module", module)
    good = create_app({**app_config, "LINGXI_ENGINE": "lingxi_test_engine_module:make"})
    assert isinstance(good.extensions["lingxi"].engine_slot.engine, FakeEngine)
    bad = create_app({**app_config, "LINGXI_ENGINE": "lingxi_test_engine_module:bad"})
    assert bad.extensions["lingxi"].engine_slot.engine is None
    assert "does not implement" in bad.extensions["lingxi"].engine_slot.error


# -- auth --------------------------------------------------------------------------------------
def _endpoints(cid, rid):
    """Every endpoint, acting for manager M001 (whose book holds ``cid``), and the roles allowed."""
    fb = {"items": [{"product_id": "SAV_TIME", "response": "interested"}], "manager_id": "M001"}
    cold = {"product": {"product_id": "NEW_PRODUCT", "name": "n", "category": "savings", "risk_level": "R1"}}
    return [
        ("GET", f"{V1}/customers/{cid}?manager_id=M001", None, {"crm", "manager", "admin"}),
        ("POST", f"{V1}/segments/query", {"limit": 1, "manager_id": "M001"}, {"crm", "manager", "admin"}),
        ("GET", f"{V1}/products", None, {"crm", "manager", "admin"}),
        ("POST", f"{V1}/recommendations", {"customer_id": cid, "manager_id": "M001"}, {"crm", "manager"}),
        ("GET", f"{V1}/recommendations/{rid}?manager_id=M001", None, {"crm", "manager", "admin"}),
        ("POST", f"{V1}/recommendations/{rid}/stage-two", {"manager_id": "M001"}, {"crm", "manager"}),
        ("POST", f"{V1}/recommendations/{rid}/feedback", fb, {"crm", "manager"}),
        ("POST", f"{V1}/products/cold-start", cold, {"admin"}),
        ("GET", f"{V1}/dashboard", None, {"admin"}),
    ]


def test_role_matrix(client, auth, books):
    rec = stage_one(client, auth("manager"), books["M001"][0])
    for method, path, body, allowed in _endpoints(books["M001"][0], rec["recommendation_id"]):
        for role in ("crm", "manager", "admin"):
            headers = {**auth(role), "Idempotency-Key": f"matrix-{role}-{method}-{len(path)}"}
            response = client.open(path, method=method, json=body, headers=headers)
            if role in allowed:
                assert response.status_code not in (400, 401, 403, 404), (method, path, role, response.json)
            else:
                assert response.status_code == 403, (method, path, role)
                admin_write = role == "admin" and method == "POST"  # nothing in a manager's name
                assert response.json["error"]["code"] == ("admin_read_only" if admin_write else "forbidden")


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ", "Basic abc", "Bearer nope",
                                    "Bearer lx_000000000000_" + "a" * 43, "bearer lx_zz"])
def test_unauthenticated(client, customer_ids, header):
    headers = {"Authorization": header} if header is not None else {}
    for method, path, body, _ in _endpoints(customer_ids[0], "A" * 32):
        response = client.open(path, method=method, json=body, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.json["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_tampered_token_rejected(client, tokens, customer_ids):
    token = tokens["admin"]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert client.get(f"{V1}/products", headers={"Authorization": f"Bearer {tampered}"}).status_code == 401


def test_manager_writes_only_under_own_id(client, auth, books):
    cid, rec = customer_with_products(client, auth("manager"), books["M001"])
    rid, product = rec["recommendation_id"], rec["products"][0]["product_id"]
    item = [{"product_id": product, "response": "interested"}]
    assert feedback(client, auth("manager"), rid, item, "own-key-001", manager_id="M002").status_code == 403
    other = feedback(client, auth("manager2"), rid, item, "own-key-002")  # another book's list
    assert other.status_code == 404 and other.json["error"]["code"] == "unknown_recommendation"
    assert feedback(client, auth("manager"), rid, item, "own-key-003", manager_id="M001").status_code == 201
    crm_without = feedback(client, auth("crm"), rid, item, "own-key-004")
    assert crm_without.status_code == 400 and crm_without.json["error"]["code"] == "missing_field"
    assert client.post(f"{V1}/recommendations", json={"customer_id": cid, "manager_id": "M002"},
                       headers=auth("manager")).status_code == 403


def test_tokens_from_environment_and_toml(app_config, tmp_path):
    from serving.auth import make_entry, new_token
    from serving.tokens import add_token

    token_id, token = new_token()
    env = json.dumps({"tokens": [make_entry("env-crm", "crm", None, token_id, token)]})
    toml_path = tmp_path / "tokens.toml"
    toml_token = add_token(toml_path, "toml-admin", "admin")
    assert "hash" in toml_path.read_text() and toml_token not in toml_path.read_text()
    app = create_app({**app_config, "LINGXI_TOKENS": env, "LINGXI_TOKENS_FILE": toml_path})
    client = app.test_client()
    assert client.get(f"{V1}/products", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get(f"{V1}/dashboard", headers={"Authorization": f"Bearer {toml_token}"}).status_code == 200


def test_token_cli_add_list_revoke(tmp_path, capsys, app_config):
    from serving.tokens import main

    path = tmp_path / "t.json"
    assert main(["--file", str(path), "add", "--name", "m7", "--role", "manager", "--manager-id", "M007"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("lx_") and token not in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert main(["--file", str(path), "add", "--name", "m7", "--role", "crm"]) == 2  # duplicate name
    assert main(["--file", str(path), "add", "--name", "mx", "--role", "manager"]) == 2  # no manager id
    capsys.readouterr()
    assert main(["--file", str(path), "list"]) == 0
    assert "m7\tmanager\tM007" in capsys.readouterr().out
    app = create_app({**app_config, "LINGXI_TOKENS_FILE": path})
    client = app.test_client()
    assert client.get(f"{V1}/products", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert main(["--file", str(path), "revoke", "--name", "m7"]) == 0
    app.extensions["lingxi_tokens"].check_seconds = 0  # pick the change up now
    assert client.get(f"{V1}/products", headers={"Authorization": f"Bearer {token}"}).status_code == 401


# -- bad inputs --------------------------------------------------------------------------------
BAD_IDS = ["123", "G" * 32, "A" * 31, "A" * 33, "A" * 32 + "%0A", "%20" + "A" * 31, "null", "..%2F..%2Fetc"]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("method, template", [
    ("GET", V1 + "/customers/{}"),
    ("GET", V1 + "/recommendations/{}"),
    ("POST", V1 + "/recommendations/{}/stage-two"),
    ("POST", V1 + "/recommendations/{}/feedback"),
])
def test_malformed_ids_are_400(client, auth, bad, method, template):
    body = {"items": [{"product_id": "SAV_TIME", "response": "interested"}]} if "feedback" in template else None
    response = client.open(template.format(bad), method=method, json=body,
                           headers={**auth("manager"), "Idempotency-Key": "malformed-1"})
    assert response.status_code in (400, 404), response.status_code  # 404: the route itself does not match
    assert response.is_json and "error" in response.json


@pytest.mark.parametrize("method, template", [
    ("GET", V1 + "/customers/{}"),
    ("GET", V1 + "/recommendations/{}"),
    ("POST", V1 + "/recommendations/{}/stage-two"),
])
def test_unknown_ids_are_404(client, auth, method, template):
    response = client.open(template.format("ab" * 16), method=method, headers=auth("manager"))
    assert response.status_code == 404 and response.json["error"]["code"].startswith("unknown_")
    unknown = client.post(f"{V1}/recommendations", json={"customer_id": "CD" * 16}, headers=auth("manager"))
    assert unknown.status_code == 404


@pytest.mark.parametrize("path", [f"{V1}/segments/query", f"{V1}/recommendations", f"{V1}/products/cold-start"])
@pytest.mark.parametrize("data, content_type, status", [
    ("{not json", "application/json", 400),
    ("[1, 2]", "application/json", 400),
    ('"text"', "application/json", 400),
    ('{"limit": NaN}', "application/json", 400),
    ("[" * 5000 + "]" * 5000, "application/json", 400),
    (b"\xff\xfe\x00", "application/json", 400),
    ("limit=1", "application/x-www-form-urlencoded", 415),
    ('{"limit": 1}', "text/plain", 415),
    ("", "application/json", 400),
    ('{"x": "' + "a" * 70_000 + '"}', "application/json", 413),
])
def test_bad_bodies(client, auth, path, data, content_type, status):
    role = "manager" if path.endswith("/recommendations") else "admin"  # admin writes no recommendation
    response = client.post(path, data=data, content_type=content_type, headers=auth(role))
    assert response.status_code == status, response.json
    assert response.is_json and response.json["error"]["code"]


@pytest.mark.parametrize("body, status, code", [
    ({"items": []}, 400, "invalid_value"),
    ({"items": "SAV_TIME"}, 400, "invalid_value"),
    ({"items": [{"product_id": "SAV_TIME", "response": "maybe"}]}, 400, "invalid_value"),
    ({"items": [{"product_id": "SAV_TIME"}]}, 400, "missing_field"),
    ({"items": [{"product_id": "SAV_TIME", "response": "interested", "extra": 1}]}, 400, "unknown_field"),
    ({"items": [{"product_id": "SAV_TIME", "response": "interested"}] * 2}, 400, "invalid_value"),
    ({"items": [{"product_id": "SAV_TIME", "response": "interested"},
                {"product_id": "SAV_TIME", "response": "not_interested"}]}, 422, "duplicate_product"),
    ({"items": [{"product_id": "sav_time", "response": "interested"}]}, 400, "invalid_value"),
    ({"items": [{"product_id": "NOT_A_PRODUCT", "response": "interested"}]}, 422, "unknown_product"),
    ({"items": [{"product_id": "SHOWN_NOT", "response": "interested"}]}, 422, "product_not_shown"),
    ({"items": [{"product_id": "SAV_TIME", "response": "interested"}], "manager_id": None}, 400, "invalid_value"),
    ({"items": [{"product_id": "SAV_TIME", "response": "interested"}], "manager_id": "bad id!"}, 400, "invalid_value"),
    ({"items": [{"product_id": "SAV_TIME", "response": "interested"}], "idempotency_key": "k" * 10}, 400, "unknown_field"),
])
def test_invalid_feedback(client, auth, books, body, status, code):
    cid, rec = customer_with_products(client, auth("manager"), books["M001"])
    shown = {p["product_id"] for p in rec["products"]}
    not_shown = next(p for p in ("SAV_DEMAND", "SAV_TIME", "PRO_ACCIDENT", "CRD_CARD", "WLT_WMP") if p not in shown)
    text = json.dumps(body).replace("SHOWN_NOT", not_shown)
    if "SAV_TIME" in text and code not in ("product_not_shown", "unknown_product"):
        text = text.replace("SAV_TIME", rec["products"][0]["product_id"]).replace("sav_time", "sav_x")
    response = client.post(f"{V1}/recommendations/{rec['recommendation_id']}/feedback", data=text,
                           content_type="application/json", headers={**auth("manager"), "Idempotency-Key": "bad-fb-01"})
    assert (response.status_code, response.json["error"]["code"]) == (status, code)


@pytest.mark.parametrize("key", [None, "short", "has space in it", "x" * 129, "ключ-ключ-ключ"])
def test_bad_idempotency_keys(client, auth, books, key):
    cid, rec = customer_with_products(client, auth("manager"), books["M001"])
    headers = {**auth("manager")}
    if key is not None:
        headers["Idempotency-Key"] = key
    response = client.post(f"{V1}/recommendations/{rec['recommendation_id']}/feedback", headers=headers,
                           json={"items": [{"product_id": rec["products"][0]["product_id"], "response": "interested"}]})
    assert response.status_code == 400


def test_idempotent_retry_and_conflict(client, auth, books, app):
    cid, rec = customer_with_products(client, auth("manager"), books["M001"])
    rid = rec["recommendation_id"]
    items = [{"product_id": rec["products"][0]["product_id"], "response": "interested"},
             {"product_id": rec["products"][1]["product_id"], "response": "not_interested"}]
    first = feedback(client, auth("manager"), rid, items, "retry-key-01")
    retry = feedback(client, auth("manager"), rid, list(reversed(items)), "retry-key-01")
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json == first.json and retry.headers["Idempotent-Replayed"] == "true"
    changed = [{**items[0], "response": "already_owns"}]
    conflict = feedback(client, auth("manager"), rid, changed, "retry-key-01")
    assert conflict.status_code == 409 and conflict.json["error"]["code"] == "idempotency_conflict"
    assert len(app.extensions["lingxi"].store.feedback_for(rid)) == 2


def test_idempotency_keys_are_scoped_to_the_caller(client, auth, books, app):
    """One manager's key never blocks another's request (it was a 409), nor replays the other's answer."""
    _, mine = customer_with_products(client, auth("manager"), books["M001"])
    _, theirs = customer_with_products(client, auth("manager2"), books["M002"])
    mine_items = [{"product_id": mine["products"][0]["product_id"], "response": "interested"}]
    their_items = [{"product_id": theirs["products"][0]["product_id"], "response": "not_interested"}]
    first = feedback(client, auth("manager"), mine["recommendation_id"], mine_items, "shared-key-01")
    second = feedback(client, auth("manager2"), theirs["recommendation_id"], their_items, "shared-key-01")
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json["manager_id"] == "M002" and second.json["items"][0]["response"] == "not_interested"
    # the CRM token is a caller of its own, even acting for M001 on M001's list
    crm = feedback(client, auth("crm"), mine["recommendation_id"], mine_items, "shared-key-01", manager_id="M001")
    assert crm.status_code == 201 and crm.json["items"][0]["feedback_id"] != first.json["items"][0]["feedback_id"]
    # each caller's retry still replays its own answer
    again = feedback(client, auth("manager2"), theirs["recommendation_id"], their_items, "shared-key-01")
    assert again.status_code == 200 and again.json == second.json
    store = app.extensions["lingxi"].store
    assert len(store.feedback_for(mine["recommendation_id"])) == 2
    assert len(store.feedback_for(theirs["recommendation_id"])) == 1


def test_push_failure_does_not_fail_a_committed_write(app_config, auth, books, data_dir):
    failing = FakeEngine(data_dir, fail_push=True)
    app = create_app({**app_config, "LINGXI_ENGINE": failing})
    client = app.test_client()
    cid, rec = customer_with_products(client, auth("manager"), books["M001"])
    item = [{"product_id": rec["products"][0]["product_id"], "response": "interested"}]
    assert feedback(client, auth("manager"), rec["recommendation_id"], item, "push-fail-1").status_code == 201
    assert len(app.extensions["lingxi"].store.feedback_for(rec["recommendation_id"])) == 1


def test_feedback_is_pushed_off_the_request_path_and_before_stage_two(app_config, auth, books, data_dir):
    engine = FakeEngine(data_dir)
    app = create_app({**app_config, "LINGXI_ENGINE": engine, "LINGXI_PUSH_INTERVAL_SECONDS": 3600})
    client, manager = app.test_client(), auth("manager")
    pusher = app.extensions["lingxi"].pusher
    cid, rec = customer_with_products(client, manager, books["M001"])
    shown = [p["product_id"] for p in rec["products"]]
    first = [{"product_id": shown[0], "response": "not_interested"}]
    assert feedback(client, manager, rec["recommendation_id"], first, "push-async-1").status_code == 201
    assert engine.pushed == []                             # committed, answered, pushed later
    assert pusher.flush()
    assert [(r["product_id"], r["response"]) for r in engine.pushed] == [(shown[0], "not_interested")]
    engine.pushed.clear()
    second = [{"product_id": shown[1], "response": "interested"}]
    assert feedback(client, manager, rec["recommendation_id"], second, "push-async-2").status_code == 201
    assert client.post(f"{V1}/recommendations/{rec['recommendation_id']}/stage-two", json={},
                       headers=manager).status_code == 201
    # stage two pushed the customer first, with all of its answers (absolute counts)
    assert {(r["product_id"], r["response"]) for r in engine.pushed} == {(shown[0], "not_interested"),
                                                                         (shown[1], "interested")}
    assert {r["customer_id"] for r in engine.pushed} == {cid}
    assert pusher.flush() and len(engine.pushed) == 2      # nothing left pending


@pytest.mark.parametrize("query, status", [
    ("from=2025-13-01", 400), ("from=2025-02-30", 400), ("from=2025-01-01&to=2024-01-01", 422),
    ("to=tomorrow", 400), ("from=1999-12-31", 400), ("to=3000-01-01", 400), ("from=20250101", 400),
    ("from=2000-01-01&to=2020-01-01", 422), ("form=2025-01-01", 400), ("from=2025-01-01&to=2025-01-01", 200),
])
def test_dashboard_dates(client, auth, query, status):
    assert client.get(f"{V1}/dashboard?{query}", headers=auth("admin")).status_code == status


@pytest.mark.parametrize("body", [
    {"customer_id": "AB" * 16, "k": 0}, {"customer_id": "AB" * 16, "k": 11}, {"customer_id": "AB" * 16, "k": "5"},
    {"customer_id": "AB" * 16, "k": 2.5},
    {"customer_id": 12}, {}, {"customer_id": "AB" * 16, "explain_exclusions": "yes"}, {"customer_id": "AB" * 16, "x": 1},
])
def test_stage_one_bad_bodies(client, auth, body):
    assert client.post(f"{V1}/recommendations", json=body, headers=auth("crm")).status_code == 400


def test_json_errors_for_routing(client, auth):
    missing = client.get(f"{V1}/nope", headers=auth("crm"))
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    wrong = client.delete(f"{V1}/products", headers=auth("crm"))
    assert wrong.status_code == 405 and wrong.json["error"]["code"] == "method_not_allowed"


def test_segment_endpoint_paging(client, auth):
    first = client.post(f"{V1}/segments/query", json={"age": {"min": 30, "max": 50}, "limit": 10}, headers=auth("admin")).json
    second = client.post(f"{V1}/segments/query", json={"age": {"min": 30, "max": 50}, "limit": 10,
                                                        "cursor": first["next_cursor"]}, headers=auth("admin")).json
    ids = [c["customer_id"] for c in first["customers"] + second["customers"]]
    assert ids == sorted(ids) and len(set(ids)) == 20 and first["count"] == second["count"] > 20
    assert client.post(f"{V1}/segments/query", json={"limit": 5000}, headers=auth("admin")).status_code == 400


# -- logs --------------------------------------------------------------------------------------
def test_request_logs_are_structured_and_hold_no_customer_data(client, auth, books, app):
    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record):
            records.append(record)

    from serving.logs import JsonFormatter

    logger = logging.getLogger("lingxi.serving")
    handler = Capture()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        cid, rec = customer_with_products(client, auth("manager"), books["M001"])
        client.get(f"{V1}/customers/{cid}", headers={**auth("manager"), "X-Request-Id": "req-123"})
        client.post(f"{V1}/segments/query", json={"regions": ["320200"], "age": {"min": 41, "max": 41}}, headers=auth("admin"))
        feedback(client, auth("manager"), rec["recommendation_id"],
                 [{"product_id": rec["products"][0]["product_id"], "response": "not_interested"}], "log-key-001")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [json.loads(JsonFormatter().format(r)) for r in records if getattr(r, "event", None) == "request"]
    assert len(lines) >= 4
    lookup = next(line for line in lines if line["route"] == "/api/v1/customers/<customer_id>")
    assert lookup["request_id"] == "req-123" and lookup["customer_id"] == cid and lookup["status"] == 200
    assert lookup["latency_ms"] >= 0 and lookup["role"] == "manager" and lookup["method"] == "GET"
    attributes = client.get(f"{V1}/customers/{cid}", headers=auth("admin")).json["attributes"]
    text = "\n".join(JsonFormatter().format(r) for r in records)
    for secret in (attributes["region_code"], str(attributes["assets_cny"]), attributes["risk_preference"],
                   "320200", "not_interested", "Bearer", "lx_"):
        assert secret not in text


# -- robustness ----------------------------------------------------------------------------------
def test_lookup_survives_a_vanished_events_file(client, auth, customer_ids, data_dir):
    assert client.get(f"{V1}/customers/{customer_ids[0]}", headers=auth("admin")).json["recent_events"] is not None
    (data_dir / "marts" / "customer_recent_events.parquet").unlink()  # e.g. the pipeline cleaned up
    response = client.get(f"{V1}/customers/{customer_ids[0]}", headers=auth("admin"))
    assert response.status_code == 200 and response.json["recent_events"] == []


def test_engine_values_are_made_json_safe(app_config, auth, customer_ids, data_dir):
    import numpy as np

    class NumpyEngine(FakeEngine):
        def customer_profile(self, customer_id):
            return {"age": np.int64(40), "score": np.float32(0.5), "missing": float("nan"),
                    "vector": np.array([1.0, np.inf]), "nested": {"when": datetime(2025, 7, 1)}}

    client = create_app({**app_config, "LINGXI_ENGINE": NumpyEngine(data_dir)}).test_client()
    profile = client.get(f"{V1}/customers/{customer_ids[0]}?include=features", headers=auth("admin")).json["features"]
    assert profile == {"age": 40, "score": 0.5, "missing": None, "vector": [1.0, None],
                       "nested": {"when": "2025-07-01T00:00:00"}}


def test_unexpected_errors_are_json_500_without_customer_data_in_logs(app_config, auth, books, data_dir):
    class BrokenEngine(FakeEngine):
        def stage_one(self, customer_id, k, **kwargs):
            row = self.customers[customer_id]
            raise ValueError(repr((row["assets_cny"], row["region_code"])))  # customer data in the message

    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record):
            records.append(record)

    from serving.logs import JsonFormatter

    client = create_app({**app_config, "LINGXI_ENGINE": BrokenEngine(data_dir)}).test_client()
    logger = logging.getLogger("lingxi.serving")
    handler = Capture()
    logger.addHandler(handler)
    try:
        response = client.post(f"{V1}/recommendations", json={"customer_id": books["M001"][0]},
                               headers={**auth("manager"), "Accept-Language": "en"})
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 500 and response.json == {"error": {"code": "internal_error",
                                                                       "message": "internal error"}}
    text = "\n".join(JsonFormatter().format(r) for r in records)
    assets = FakeEngine(data_dir).customers[books["M001"][0]]["assets_cny"]
    assert "unhandled ValueError" in text and repr(assets) not in text and str(assets)[:8] not in text
