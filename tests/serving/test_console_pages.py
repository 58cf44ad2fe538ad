"""The console's pages through Flask's test client (fast; the browser tests walk the same pages for real).

Sessions and CSRF, the books, the call list's rules, the segment form, translations and the API's
independence from the console's cookies and CSRF.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from console_fakes import make_nightly_lists

from serving import call_list
from serving.store.audit import iter_reads
from serving.console.i18n import SOURCE
from serving.tokens import revoke_token

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def nightly(data_dir: Path) -> pd.DataFrame:
    return make_nightly_lists(data_dir)


@pytest.fixture
def login(client, tokens, books):
    """``login("manager")``: sign the test client in with that role's token; returns the CSRF token."""

    def sign_in(role: str) -> str:
        page = client.get("/console/login").get_data(as_text=True)
        response = client.post("/console/login", data={"token": tokens[role], "csrf_token": CSRF.search(page)[1]})
        assert response.status_code == 302, response.get_data(as_text=True)
        return CSRF.search(client.get("/console/today").get_data(as_text=True))[1]

    return sign_in


def book_of(books: dict[str, list[str]], manager_id: str) -> list[str]:
    return books[manager_id]  # the conftest's books: manager id -> sorted customer ids


# -- sessions and CSRF -------------------------------------------------------------------------------
def test_pages_need_a_session_and_say_where_to_log_in(client, books):
    response = client.get("/console/today")
    assert response.status_code == 302 and response.headers["Location"].startswith("/console/login?next=/console/today")
    assert client.get("/console/segments/results", headers={"HX-Request": "true"}).headers["HX-Redirect"]


def test_the_session_cookie_is_httponly_strict_and_expiring(client, tokens, books):
    page = client.get("/console/login").get_data(as_text=True)
    response = client.post("/console/login", data={"token": tokens["manager"], "csrf_token": CSRF.search(page)[1]})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Expires=" in cookie
    assert tokens["manager"] not in cookie  # the cookie names the token, never holds it


@pytest.mark.parametrize("role", ["crm"])
def test_the_crm_integration_has_no_console(client, tokens, books, role):
    page = client.get("/console/login").get_data(as_text=True)
    response = client.post("/console/login", data={"token": tokens[role], "csrf_token": CSRF.search(page)[1]})
    assert response.status_code == 401


def test_login_without_its_csrf_token_is_refused(client, tokens, books):
    response = client.post("/console/login", data={"token": tokens["manager"]})
    assert response.status_code == 400 and "text/html" in response.content_type


def test_revoking_the_token_ends_the_session(client, login, data_dir):
    login("manager")
    assert client.get("/console/today").status_code == 200
    revoke_token(data_dir / "tokens.json", "manager-m001")
    registry = client.application.extensions["lingxi_tokens"]
    registry.check_seconds = 0  # the registry re-reads the file at once
    assert client.get("/console/today").status_code == 302


def test_next_never_leaves_the_console(client, tokens, books):
    for target in ("https://evil.example/", "//evil.example/x", "/api/v1/products"):
        page = client.get("/console/login").get_data(as_text=True)  # a login starts a new session: a new token
        response = client.post("/console/login", data={"token": tokens["manager"], "next": target,
                                                      "csrf_token": CSRF.search(page)[1]})
        assert response.headers["Location"] == "/console/today"


def test_the_json_api_keeps_bearer_tokens_and_needs_no_csrf(client, auth, login, books):
    login("manager")  # a console session in the same client changes nothing for the API
    customer = book_of(books, "M001")[0]
    response = client.post("/api/v1/recommendations", json={"customer_id": customer})
    assert response.status_code == 401
    response = client.post("/api/v1/recommendations", json={"customer_id": customer}, headers=auth("manager"))
    assert response.status_code == 201


# -- books -----------------------------------------------------------------------------------------
def test_a_manager_sees_only_their_book_and_learns_nothing_about_others(client, login, books):
    login("manager")
    own, other = book_of(books, "M001")[0], book_of(books, "M002")[0]
    assert client.get(f"/console/customers/{own}").status_code == 200
    response = client.get(f"/console/customers/{other}")
    assert response.status_code == 403 and "text/html" in response.content_type
    absent = client.get(f"/console/customers/{'0' * 32}")  # the same answer as for a customer of another book
    main = re.compile(r"<main.*</main>", re.S)
    assert absent.status_code == 403 and main.search(absent.get_data(as_text=True))[0] == main.search(
        response.get_data(as_text=True))[0]
    token = CSRF.search(client.get(f"/console/customers/{own}").get_data(as_text=True))[1]
    assert client.post(f"/console/customers/{other}/recommend", data={"csrf_token": token}).status_code == 403


def test_an_admin_reads_every_book_and_writes_for_no_one(client, login, books):
    manager_token = login("manager")
    own = book_of(books, "M001")[0]
    rid = client.post(f"/console/customers/{own}/recommend", data={"csrf_token": manager_token}
                      ).headers["Location"].rsplit("/", 1)[1]
    token = login("admin")
    page = client.get(f"/console/customers/{own}").get_data(as_text=True)
    assert f"/console/customers/{own}/recommend" not in page  # no stage one in a manager's name
    assert client.post(f"/console/customers/{own}/recommend", data={"csrf_token": token}).status_code == 403
    page = client.get(f"/console/recommendations/{rid}").get_data(as_text=True)
    assert "disabled" in page
    product = re.search(r'name="answer-([A-Z_]+)"', page)[1]
    answer = client.post(f"/console/recommendations/{rid}/answers",
                         data={"csrf_token": token, "idempotency_key": "k" * 16, f"answer-{product}": "interested"})
    assert answer.status_code == 403
    assert client.get(f"/console/customers/{'0' * 32}").status_code == 404


def test_every_customer_page_read_is_in_the_audit_log(app, client, login, books):
    login("manager")
    own, other = book_of(books, "M001")[0], book_of(books, "M002")[0]
    client.get(f"/console/customers/{own}")
    client.get(f"/console/customers/{other}")
    reads = [r for batch in iter_reads(app.extensions["lingxi"].store, datetime(2000, 1, 1, tzinfo=timezone.utc))
             for r in batch if r.endpoint.startswith("/console/")]
    assert {(r.customer_id, r.status, r.acting_manager_id) for r in reads} >= {(own, 200, "M001"), (other, 403, "M001")}


def test_today_shows_only_the_managers_book(client, login, books, nightly):
    login("manager")
    page = client.get("/console/today").get_data(as_text=True)
    listed = set(re.findall(r"/console/customers/([0-9A-F]{32})", page))
    assert listed and listed <= set(book_of(books, "M001"))


# -- the call list ---------------------------------------------------------------------------------
def test_today_lists_open_windows_and_high_scores_ranked_by_expected_value(app, books, nightly):
    svc = app.extensions["lingxi"]
    with app.app_context():
        nightly_lists = app.extensions["lingxi_nightly_lists"]
        result = call_list.build(svc, nightly_lists, book_of(books, "M001"), call_list.ContactPolicy())
    assert result.entries
    values = [e.expected_value for e in result.entries]
    assert values == sorted(values, reverse=True)
    snapshot = svc.snapshot()
    for entry in result.entries:
        reasons = {w["reason"] for w in entry.why_now}
        assert reasons
        triggers = snapshot.triggers(snapshot.index_of(entry.customer_id))
        for trigger in reasons - {call_list.HIGH_SCORE}:
            assert triggers[trigger] is not None and triggers[trigger] <= svc.trigger_window_days
        if call_list.HIGH_SCORE in reasons:
            assert entry.proposal.match_score >= call_list.ContactPolicy().min_match


def test_today_leaves_out_the_recently_contacted_and_declined_products(app, client, auth, books, nightly, clock):
    svc = app.extensions["lingxi"]
    policy = call_list.ContactPolicy(cooldown_days=14)
    book = book_of(books, "M001")
    first = call_list.build(svc, app.extensions["lingxi_nightly_lists"], book, policy)
    top = first.entries[0]
    shown = client.post("/api/v1/recommendations", json={"customer_id": top.customer_id}, headers=auth("manager")).json
    again = call_list.build(svc, app.extensions["lingxi_nightly_lists"], book, policy)
    assert top.customer_id not in {e.customer_id for e in again.entries} and again.left_out_contacted == 1
    client.post(f"/api/v1/recommendations/{shown['recommendation_id']}/feedback", headers={
        **auth("manager"), "Idempotency-Key": "decline-0001"}, json={"items": [
            {"product_id": p["product_id"], "response": "not_interested"} for p in shown["products"]]})
    clock.now = datetime.now(timezone.utc) + timedelta(days=15)  # past the cool-down, within the suppression
    later = call_list.build(svc, app.extensions["lingxi_nightly_lists"], book, policy)
    entry = next((e for e in later.entries if e.customer_id == top.customer_id), None)
    declined = {p["product_id"] for p in shown["products"]}
    assert entry is None or entry.proposal is None or entry.proposal.product_id not in declined


def test_a_segment_becomes_a_call_list_within_the_book(client, login, books, nightly):
    login("manager")
    page = client.get("/console/today?source=segment&age_min=60").get_data(as_text=True)
    listed = set(re.findall(r"/console/customers/([0-9A-F]{32})", page))
    assert listed and listed <= set(book_of(books, "M001"))


def test_the_nightly_index_answers_as_the_file_and_follows_a_new_one(data_dir, nightly, customer_ids):
    from serving.nightly_lists import NightlyLists

    lists = NightlyLists(data_dir, background=False, check_seconds=0)
    wanted = customer_ids[::7] + ["F" * 32]
    indexed = lists.lists(wanted)
    assert lists._index is not None and indexed == lists._scan(lists.path, wanted) and "F" * 32 not in indexed
    first = nightly.sort_values(["customer_id", "rank"]).groupby("customer_id").head(1).set_index("customer_id")
    for cid in wanted[:-1]:
        assert indexed[cid][0].product_id == first.at[cid, "product_id"]
        assert indexed[cid][0].expected_value == pytest.approx(first.at[cid, "score"], rel=1e-6)
    make_nightly_lists(data_dir, k=2)  # republished: the next request sees the new lists
    assert max(len(v) for v in lists.lists(wanted).values()) == 2


def test_the_nightly_lists_follow_the_version_served(data_dir, tmp_path, nightly, customer_ids):
    from serving.nightly_lists import FILE, NightlyLists

    other = tmp_path / "version"
    (other / FILE).parent.mkdir(parents=True)
    nightly[nightly["rank"] == 1].to_parquet(other / FILE, index=False)  # another night: one product each
    served = [data_dir]
    lists = NightlyLists(lambda: served[0], background=False, check_seconds=0)
    assert max(len(v) for v in lists.lists(customer_ids[:20]).values()) > 1
    served[0] = other
    assert max(len(v) for v in lists.lists(customer_ids[:20]).values()) == 1


# -- segments ----------------------------------------------------------------------------------------
def test_the_segment_count_and_csv_agree_and_stay_in_the_book(client, login, books, data_dir):
    login("manager")
    people = pd.read_parquet(data_dir / "marts" / "customer_360.parquet")
    own = people[people["customer_id"].isin(book_of(books, "M001"))]
    expected = own[(own["age"] >= 30) & (own["risk_preference"] == "balanced")]
    query = "age_min=30&risk=balanced"
    html = client.get(f"/console/segments/results?{query}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert re.search(r'id="segment-count">([\d,]+)<', html)[1].replace(",", "") == str(len(expected))
    lines = client.get(f"/console/segments.csv?{query}").get_data(as_text=True).splitlines()
    assert lines[0].startswith("customer_id,")
    assert sorted(line.split(",")[0] for line in lines[1:]) == sorted(expected["customer_id"])


@pytest.mark.parametrize("query", ["age_min=abc", "age_min=50&age_max=20", "holds_product=NOPE_X", "region=12"])
def test_a_bad_filter_shows_the_reason_not_an_error_page(client, login, query):
    login("manager")
    response = client.get(f"/console/segments?{query}")
    assert response.status_code == 200 and 'class="error"' in response.get_data(as_text=True)


# -- recommend ---------------------------------------------------------------------------------------
def test_answers_then_stage_two_are_logged_as_through_the_api(client, login, auth, books):
    token = login("manager")
    customer = book_of(books, "M001")[3]
    location = client.post(f"/console/customers/{customer}/recommend", data={"csrf_token": token}).headers["Location"]
    rid = location.rsplit("/", 1)[1]
    page = client.get(location).get_data(as_text=True)
    products = re.findall(r'name="answer-([A-Z_]+)" value="interested"', page)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)[1]
    form = {"csrf_token": token, "idempotency_key": key, f"answer-{products[0]}": "interested"}
    partial = client.post(f"/console/recommendations/{rid}/answers", data=form, headers={"HX-Request": "true"})
    assert partial.status_code == 200 and 'id="stage-two-heading"' in partial.get_data(as_text=True)
    logged = client.get(f"/api/v1/recommendations/{rid}", headers=auth("manager")).json
    answers = {p["product_id"]: p["feedback"] for p in logged["products"]}
    assert logged["manager_id"] == "M001" and answers[products[0]] == "interested"
    second = re.search(r'id="list-([0-9A-F]{32})"', partial.get_data(as_text=True))[1]
    body = client.get(f"/api/v1/recommendations/{second}", headers=auth("manager")).json
    assert body["stage"] == 2 and body["parent_recommendation_id"] == rid
    plain = client.post(f"/console/recommendations/{rid}/answers", data=form)  # a replay, without htmx
    assert plain.status_code == 302 and f"/console/recommendations/{rid}?then=" in plain.headers["Location"]


def test_no_answer_chosen_is_a_message_not_a_crash(client, login, books):
    token = login("manager")
    customer = book_of(books, "M001")[4]
    location = client.post(f"/console/customers/{customer}/recommend", data={"csrf_token": token}).headers["Location"]
    rid = location.rsplit("/", 1)[1]
    response = client.post(f"/console/recommendations/{rid}/answers",
                           data={"csrf_token": token, "idempotency_key": "x" * 12})
    assert response.status_code == 422 and "请至少为一个产品选择反馈" in response.get_data(as_text=True)


# -- translations ----------------------------------------------------------------------------------
def test_every_string_of_the_console_has_a_chinese_translation():
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    from babel.messages.frontend import parse_mapping_cfg

    root = SOURCE.parents[1]  # the API's and the console's strings share one catalogue (serving/babel.cfg)
    with (SOURCE.parent / "babel.cfg").open(encoding="utf-8") as handle:
        method_map, _options = parse_mapping_cfg(handle)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "translate": None, "ApiError": (3,),
                "invalid": (3,), "_unavailable": (2,), "reason": (2,), "explain_reason": (2,), "_warning": (3,)}
    found = {message for _f, _l, message, _c, _x in extract_from_dir(str(root), method_map=method_map,
                                                                       keywords=keywords)}
    found = {m if isinstance(m, str) else m[0] for m in found}
    with (SOURCE / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalogue = read_po(handle)
    translated = {(m.id if isinstance(m.id, str) else m.id[0]) for m in catalogue
                  if m.id and not m.fuzzy and all(m.string if isinstance(m.string, tuple) else [m.string])}
    assert found - translated == set(), "run `make messages` and translate the new strings"
    assert translated - found == set(), "the catalogue holds strings no page uses any more"


def test_chinese_by_default_english_on_request(client, login):
    login("manager")
    assert "今日待联系客户" in client.get("/console/today").get_data(as_text=True)
    client.get("/console/lang/en")
    page = client.get("/console/today").get_data(as_text=True)
    assert "Today’s calls" in page and '<html lang="en">' in page
    client.get("/console/lang/xx")  # an unknown language changes nothing
    assert "Today’s calls" in client.get("/console/today").get_data(as_text=True)


def test_htmx_is_served_from_the_app_not_a_cdn(client, login):
    login("manager")
    page = client.get("/console/today").get_data(as_text=True)
    assert not re.search(r"""(src|href)=["']https?://""", page)
    script = client.get("/console/static/htmx.min.js")
    assert script.status_code == 200 and b"htmx" in script.data


# -- make demo -----------------------------------------------------------------------------------------
def test_demo_prints_the_console_and_a_manager_and_admin_token(tmp_path, monkeypatch, capsys):
    from serving_fakes import make_customer_360

    from benchmarks.examples import example_customer, main
    from serving.auth import TokenRegistry

    make_customer_360(tmp_path / "marts", n=60)
    books = pd.read_parquet(tmp_path / "marts" / "manager_books.parquet")
    monkeypatch.setenv("LINGXI_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LINGXI_TOKENS_FILE", raising=False)
    assert main(["--host", "127.0.0.1", "--port", "8123"]) == 0
    out = capsys.readouterr().out
    assert "# Console (browser): http://127.0.0.1:8123/console/" in out
    manager_id = books.set_index("customer_id").at[example_customer(tmp_path)[0], "manager_id"]
    manager = re.search(rf"#   manager {manager_id}: (lx_\S+)", out)[1]
    admin = re.search(r"#   admin: (lx_\S+)", out)[1]
    registry = TokenRegistry(tmp_path / "tokens.json")
    assert registry.authenticate(manager).manager_id == manager_id
    assert registry.authenticate(admin).role == "admin"
