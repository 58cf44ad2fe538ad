"""The console's dashboard, monthly report, new-product wizard and models pages through Flask's test
client (the browser walk in ``test_console_browser.py`` opens the same pages for real)."""
from __future__ import annotations

import csv
import io
import re

import pytest
from console_fakes import publish_fake_versions, write_breakdown

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def login(client, tokens, books):
    """``login("manager")``: sign the test client in with that role's token; returns the CSRF token."""

    def sign_in(role: str) -> str:
        client.delete_cookie("lingxi_console")
        page = client.get("/console/login").get_data(as_text=True)
        response = client.post("/console/login", data={"token": tokens[role], "csrf_token": CSRF.search(page)[1]})
        assert response.status_code == 302, response.get_data(as_text=True)
        return CSRF.search(client.get("/console/today").get_data(as_text=True))[1]

    return sign_in


def answer_and_rerank(client, auth, customer: str, role: str = "manager") -> tuple[dict, dict]:
    """Stage one, an "interested" on its first product, stage two: through the JSON API."""
    response = client.post("/api/v1/recommendations", json={"customer_id": customer}, headers=auth(role))
    assert response.status_code == 201, response.json
    first = response.json
    rid = first["recommendation_id"]
    response = client.post(f"/api/v1/recommendations/{rid}/feedback", headers={
        **auth(role), "Idempotency-Key": f"dash-{rid[:12]}"}, json={"items": [
            {"product_id": first["products"][0]["product_id"], "response": "interested"},
            {"product_id": first["products"][1]["product_id"], "response": "not_interested"}]})
    assert response.status_code == 201, response.json
    second = client.post(f"/api/v1/recommendations/{rid}/stage-two", json={}, headers=auth(role)).json
    return first, second


# -- dashboard -----------------------------------------------------------------------------------------
def test_the_dashboard_shows_the_apis_figures_for_a_managers_own_book(client, login, auth, books):
    for customer in books["M001"][:3]:
        answer_and_rerank(client, auth, customer)
    answer_and_rerank(client, auth, books["M002"][0], "manager2")
    api = client.get("/api/v1/dashboard", headers=auth("admin")).json
    login("manager")
    page = client.get("/console/dashboard")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<svg" in html and 'role="img"' in html
    own = next(m for m in api["by_manager"] if m["manager_id"] == "M001")
    assert re.search(r'id="lists-shown">\s*3 / ', html)  # three stage-one lists of M001, not M002's
    assert own["stage_one"]["lists"]["lists"] == 3
    assert ">M002<" not in html  # another manager's row is not shown to a manager
    rows = list(csv.reader(io.StringIO(client.get("/console/dashboard.csv").get_data(as_text=True))))
    total = dict(zip(rows[0], next(r for r in rows if r[0] == "total")))
    assert int(total["stage_one_judged"]) == own["stage_one"]["items"]["judged"] == 6
    assert int(total["stage_one_interested"]) == own["stage_one"]["items"]["interested"] == 3
    days = [r for r in rows if r[0] == "day"]
    assert len(days) == 30 and sum(int(r[rows[0].index("stage_one_judged")]) for r in days) == 6


def test_an_admin_sees_every_book_per_branch_and_class(client, login, auth, books):
    answer_and_rerank(client, auth, books["M001"][0])
    answer_and_rerank(client, auth, books["M002"][0], "manager2")
    api = client.get("/api/v1/dashboard", headers=auth("admin")).json
    login("admin")
    html = client.get("/console/dashboard").get_data(as_text=True)
    assert ">M001<" in html and ">M002<" in html
    rows = list(csv.reader(io.StringIO(client.get("/console/dashboard.csv").get_data(as_text=True))))
    header = rows[0]
    total = dict(zip(header, next(r for r in rows if r[0] == "total")))
    assert int(total["stage_one_shown"]) == api["stage_one"]["items"]["shown"]
    branches = [dict(zip(header, r)) for r in rows if r[0] == "branch"]
    assert sum(int(b["stage_one_shown"]) for b in branches) == api["stage_one"]["items"]["shown"]
    classes = [dict(zip(header, r)) for r in rows if r[0] == "class"]
    assert sum(int(c["stage_two_judged"]) for c in classes) == api["stage_two"]["items"]["judged"]


def test_a_bad_date_range_is_a_message(client, login):
    login("admin")
    response = client.get("/console/dashboard?from=2025-03-10&to=2025-03-01")
    assert response.status_code == 422 and 'role="alert"' in response.get_data(as_text=True)


# -- models ---------------------------------------------------------------------------------------------
def test_models_lists_versions_and_rolls_back_after_confirmation(client, login, data_dir):
    old, new = publish_fake_versions(data_dir)
    login("manager")
    assert client.get("/console/models").status_code == 403  # admin only
    token = login("admin")
    html = client.get("/console/models").get_data(as_text=True)
    assert old in html and new in html and "0.21" in html
    confirm = client.get(f"/console/models/{old}/rollback")
    assert confirm.status_code == 200 and 'name="confirm"' in confirm.get_data(as_text=True)
    unconfirmed = client.post(f"/console/models/{old}/rollback", data={"csrf_token": token, "confirm": ""})
    assert unconfirmed.status_code == 302 and (data_dir / "versions" / "CURRENT").read_text().strip() == new
    assert client.post(f"/console/models/{old}/rollback", data={"confirm": old}).status_code == 400  # no CSRF token
    done = client.post(f"/console/models/{old}/rollback", data={"csrf_token": token, "confirm": old, "reason": "bad night"})
    assert done.status_code == 302 and (data_dir / "versions" / "CURRENT").read_text().strip() == old
    audit = (data_dir / "versions" / "rollbacks.jsonl").read_text().strip().splitlines()
    assert len(audit) == 1 and '"from": "%s"' % new in audit[0] and "admin-test" in audit[0] and "bad night" in audit[0]
    assert client.get("/console/models/20990101T000000000000Z/rollback").status_code == 404


def test_the_rollback_command_shares_the_function(data_dir, monkeypatch, capsys):
    from ml.engine import rollback

    old, new = publish_fake_versions(data_dir)
    monkeypatch.setenv("LINGXI_DATA_DIR", str(data_dir))
    assert rollback.main(["to", new, "--by", "ops"]) == 2  # already current
    assert rollback.main(["to", old, "--by", "ops", "--reason", "test"]) == 0
    assert [s["version"] for s in rollback.summaries(data_dir) if s["current"]] == [old]
    assert rollback.history(data_dir)[0]["by"] == "ops"


# -- new product ----------------------------------------------------------------------------------------
def test_the_new_product_wizard_from_a_template_to_targets_and_an_edited_forecast(client, login, books):
    login("manager")
    assert client.get("/console/products/new").status_code == 403  # admin only
    login("admin")
    form = client.get("/console/products/new?template=smart_wealth_plus").get_data(as_text=True)
    assert 'value="WLT_SMART_PLUS"' in form and "智能理财Plus" in form
    query = ("product_id=WLT_SMART_PLUS&name=Smart+Wealth+Plus&name_zh=%E6%99%BA%E8%83%BD&category=wealth&risk_level=R3"
             "&min_investment_cny=10000&target_age_min=25&target_age_max=65&tags=balanced|digital&annual_value_cny=600")
    page = client.get(f"/console/products/new?{query}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="conflicts"' in html and 'id="targets"' in html
    assert re.search(r'id="adopters"><strong>10<', html)  # the fake engine: 50 x contact rate 0.2
    edited = client.get(f"/console/products/new?{query}&a_contact_rate=0.5").get_data(as_text=True)
    assert re.search(r'id="adopters"><strong>25<', edited) and 'id="a_contact_rate"' in edited
    rows = list(csv.reader(io.StringIO(client.get(f"/console/products/new/targets.csv?{query}").get_data(as_text=True))))
    assert rows[0][:3] == ["rank", "customer_id", "match_score"] and len(rows) > 1
    scores = [int(r[2]) for r in rows[1:]]
    assert scores == sorted(scores, reverse=True)
    bad = client.get("/console/products/new?product_id=SAV_DEMAND&name=x&category=savings&risk_level=R1")
    assert bad.status_code == 422 and 'role="alert"' in bad.get_data(as_text=True)  # already in the catalogue


# -- monthly report -------------------------------------------------------------------------------------
def test_the_monthly_report_page_compares_with_the_previous_month(client, login, data_dir):
    write_breakdown(data_dir / "marts")
    login("manager")
    page = client.get("/console/reports/monthly?month=2025-03")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "月度成效报告 2025-03" in html
    assert 'id="kpi-n_recommendations">160<' in html and "+60" in html  # 160 against 100 in February
    assert 'id="kpi-coverage">10.0%<' in html and "理财" in html  # WLT_WMP by its Chinese name
    latest = client.get("/console/reports/monthly").get_data(as_text=True)
    assert 'value="2025-03"' in latest  # the latest month with recommendations by default
    empty = client.get("/console/reports/monthly?month=2024-01").get_data(as_text=True)
    assert 'id="no-data"' in empty
    assert client.get("/console/reports/monthly?month=2025-13").status_code == 422
