"""The console in a real browser: headless Chromium against gunicorn on loopback, test-scale data.

The data are the test bank's marts (20k customers, the real ``manager_books`` and recent events, from
the shared ``warehouse_data_dir``) with the fake engine of ``serving_fakes`` (the console is under
test here, not the model) and nightly lists made from it. One gunicorn and one browser per module.
The walk: log in -> Today -> a customer -> stage one -> answers -> stage two (checked through the
JSON API), segments -> live count -> CSV -> a call list, a customer outside the book (403), a form
without its CSRF token (400), the language switch, an admin's view, and axe-core on every page.
"""
from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from console_browser import (
    axe_violations,
    heading_levels,
    require_browser,
    screenshot,
    start_browser,
    stop_browser,
    unlabelled_controls,
)
from console_fakes import make_nightly_lists, publish_fake_versions
from serving_live import free_port, kill9, start, wait_ready

from serving.tokens import add_token

pytestmark = pytest.mark.slow
WAIT = 15  # seconds: generous for two shared cores


@pytest.fixture(scope="module")
def bank(warehouse_data_dir, tmp_path_factory) -> dict:
    """A private data dir over the test bank's marts: its own store, tokens, nightly lists."""
    require_browser()
    root = tmp_path_factory.mktemp("console_bank")
    (root / "marts").symlink_to(warehouse_data_dir / "marts")
    books = pd.read_parquet(root / "marts" / "manager_books.parquet", columns=["customer_id", "manager_id"])
    sizes = books["manager_id"].value_counts()
    manager, other = sizes.index[len(sizes) // 4], sizes.index[len(sizes) // 2]  # mid-sized books
    make_nightly_lists(root, customer_ids=sorted(books.loc[books["manager_id"].isin([manager, other]), "customer_id"]))
    tokens = {"manager": add_token(root / "tokens.json", "console-manager", "manager", manager),
              "admin": add_token(root / "tokens.json", "console-admin", "admin", None)}
    versions = publish_fake_versions(root)  # two published versions: the Models page rolls back to the first
    return {"dir": root, "manager": manager, "other": other, "books": books, "tokens": tokens, "versions": versions}


@pytest.fixture(scope="module")
def base(bank):
    port = free_port()
    log = bank["dir"] / "gunicorn.log"
    proc = start(bank["dir"], port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log)
        yield url
    finally:
        kill9(proc)


@pytest.fixture(scope="module")
def browser(base):
    driver = start_browser()
    yield driver
    stop_browser(driver)


# -- helpers ---------------------------------------------------------------------------------------
def wait_for(driver, css: str, text: str | None = None, seconds: float = WAIT):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, seconds)
    if text is None:
        return wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))
    return driver.find_element(By.CSS_SELECTOR, css)


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def h1(driver) -> str:
    return css(driver, "h1")[0].text


def log_in(driver, base: str, token: str, language: str = "zh_CN") -> None:
    driver.delete_all_cookies()
    driver.get(f"{base}/console/lang/{language}")
    driver.get(f"{base}/console/login")
    css(driver, "#token")[0].send_keys(token)
    css(driver, "form.card button[type=submit]")[0].click()
    wait_for(driver, "nav[aria-label] a[aria-current=page]")


def session_cookies(driver) -> dict[str, str]:
    return {c["name"]: c["value"] for c in driver.get_cookies()}


def assert_accessible(driver, page: str) -> None:
    violations = axe_violations(driver)
    assert violations == [], f"{page}: {violations}"
    levels = heading_levels(driver)
    assert levels and levels[0] == 1 and levels.count(1) == 1, f"{page}: headings {levels}"
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:])), f"{page}: a heading level skipped: {levels}"
    assert unlabelled_controls(driver) == [], f"{page}: unlabelled controls"


def api(base: str, token: str, path: str) -> dict:
    response = requests.get(f"{base}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


# -- the walk --------------------------------------------------------------------------------------
def test_login_refuses_a_wrong_token_and_asks_in_chinese(browser, base):
    browser.delete_all_cookies()
    browser.get(f"{base}/console/today")
    assert "/console/login" in browser.current_url and h1(browser) == "登录工作台"
    assert_accessible(browser, "login")
    screenshot(browser, "login")
    css(browser, "#token")[0].send_keys("lx_000000000000_not-a-real-token-at-all")
    css(browser, "form.card button[type=submit]")[0].click()
    assert "该令牌无法登录工作台" in wait_for(browser, ".flash.error").text


def test_a_managers_day_from_today_to_stage_two(browser, base, bank):
    token = bank["tokens"]["manager"]
    started = time.perf_counter()
    log_in(browser, base, token)
    assert h1(browser) == "今日待联系客户"
    rows = css(browser, "table.calls tbody tr")
    assert rows, "the call list is empty"
    book = set(bank["books"].loc[bank["books"]["manager_id"] == bank["manager"], "customer_id"])
    listed = [re.search(r"/customers/([0-9A-F]{32})", a.get_attribute("href")).group(1)
              for a in css(browser, "table.calls tbody td:nth-child(2) a")]
    assert set(listed) <= book  # only the manager's own customers
    assert_accessible(browser, "today")
    screenshot(browser, "today")

    css(browser, "table.calls tbody tr:first-child td:nth-child(2) a")[0].click()
    wait_for(browser, "#profile-heading")
    customer_id = listed[0]
    assert customer_id in h1(browser)
    assert_accessible(browser, "customer")
    screenshot(browser, "customer")

    css(browser, ".actions button.primary")[0].click()
    wait_for(browser, "#stage-one-heading")
    first_id = re.search(r"/recommendations/([0-9A-F]{32})", browser.current_url).group(1)
    cards = css(browser, "#stage-one-heading ~ form article.product")
    assert 1 <= len(cards) <= 5
    assert_accessible(browser, "recommend")
    screenshot(browser, "recommend")

    chosen = {}
    for card, response in zip(cards, ("interested", "not_interested", "already_owns")):
        radio = card.find_element("css selector", f"input[value={response}]")
        radio.find_element("xpath", "..").click()  # click the label, as a person would
        chosen[radio.get_attribute("name").removeprefix("answer-")] = response
    css(browser, "#stage-one-heading ~ form button.primary")[0].click()
    wait_for(browser, "#stage-two-heading")
    second_form = wait_for(browser, "#stage-two form.answers")
    second_id = second_form.get_attribute("id").removeprefix("list-")
    browser.execute_script("document.getElementById('stage-two').scrollIntoView()")
    assert_accessible(browser, "stage two")
    screenshot(browser, "stage-two")

    first = api(base, token, f"/recommendations/{first_id}")  # logged exactly as through the API
    assert first["customer_id"] == customer_id and first["manager_id"] == bank["manager"] and first["stage"] == 1
    assert {p["product_id"]: p["feedback"] for p in first["products"] if p["feedback"]} == chosen
    second = api(base, token, f"/recommendations/{second_id}")
    assert second["stage"] == 2 and second["parent_recommendation_id"] == first_id
    assert second["manager_id"] == bank["manager"]
    declined = {p for p, r in chosen.items() if r != "interested"}  # suppressed from now on
    assert not {p["product_id"] for p in second["products"]} & declined
    shown = [c.find_element("css selector", "h3").text for c in css(browser, "#stage-two article.product")]
    assert len(shown) == len(second["products"])

    browser.get(f"{base}/console/customers/{customer_id}")  # the history shows both lists and the answers
    history = css(browser, "article.history")
    assert len(history) == 2 and "感兴趣" in css(browser, "#history-heading ~ article.history")[1].text

    css(browser, "nav a[href$='/console/dashboard']")[0].click()  # the dashboard counts them
    wait_for(browser, "#hit-rates")
    assert re.sub(r"\s+", " ", css(browser, "#lists-shown")[0].text) == "1 / 1"
    assert css(browser, "#answers-total")[0].text == str(len(chosen))
    assert len(css(browser, "svg.chart")) == 3
    assert_accessible(browser, "dashboard")
    screenshot(browser, "dashboard")
    link = css(browser, "#range a[download]")[0].get_attribute("href")
    table = list(csv.reader(io.StringIO(requests.get(link, cookies=session_cookies(browser), timeout=30).text)))
    total = dict(zip(table[0], next(r for r in table if r[0] == "total")))
    assert int(total["stage_one_judged"]) == len(chosen)
    assert int(total["stage_one_interested"]) == sum(r == "interested" for r in chosen.values())
    assert time.perf_counter() - started < 60


def test_segments_count_live_export_csv_and_become_a_call_list(browser, base, bank):
    log_in(browser, base, bank["tokens"]["manager"])
    browser.get(f"{base}/console/segments")
    book = bank["books"].loc[bank["books"]["manager_id"] == bank["manager"], "customer_id"]
    count = wait_for(browser, "#segment-count")
    assert count.text.replace(",", "") == str(len(book))
    people = pd.read_parquet(bank["dir"] / "marts" / "customer_360.parquet", columns=["customer_id", "age"])
    expected = int(people[people["customer_id"].isin(book) & (people["age"] >= 45)].shape[0])
    css(browser, "#age_min")[0].send_keys("45")
    wait_for(browser, "#segment-count", f"{expected:,}")  # htmx swapped the count in, no page load
    assert "age_min" not in browser.current_url
    assert_accessible(browser, "segments")
    screenshot(browser, "segments")

    link = css(browser, "a[download]")[0].get_attribute("href")
    response = requests.get(link, cookies=session_cookies(browser), timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == expected and all(int(r["age"]) >= 45 for r in rows)
    assert {r["customer_id"] for r in rows} <= set(book)

    css(browser, "#results .actions a:not([download])")[0].click()
    wait_for(browser, "#calls-heading")
    assert h1(browser) == "客群联系名单"
    assert_accessible(browser, "segment call list")


def test_a_customer_outside_the_book_is_forbidden(browser, base, bank):
    log_in(browser, base, bank["tokens"]["manager"])
    stranger = bank["books"].loc[bank["books"]["manager_id"] == bank["other"], "customer_id"].iloc[0]
    browser.get(f"{base}/console/customers/{stranger}")
    assert "该客户不在您的管户名单中" in css(browser, ".error")[0].text
    assert_accessible(browser, "error page")
    status = requests.get(f"{base}/console/customers/{stranger}", cookies=session_cookies(browser),
                          allow_redirects=False, timeout=10).status_code
    assert status == 403


def test_a_form_without_its_csrf_token_is_refused(browser, base, bank):
    log_in(browser, base, bank["tokens"]["manager"])
    customer_id = bank["books"].loc[bank["books"]["manager_id"] == bank["manager"], "customer_id"].iloc[0]
    browser.get(f"{base}/console/customers/{customer_id}")
    browser.execute_script("document.querySelectorAll('.actions input[name=csrf_token]').forEach(e => e.remove())")
    css(browser, ".actions button.primary")[0].click()
    assert "安全令牌" in wait_for(browser, ".error").text
    cookies = session_cookies(browser)
    refused = requests.post(f"{base}/console/customers/{customer_id}/recommend", cookies=cookies,
                            allow_redirects=False, timeout=10)
    assert refused.status_code == 400
    page = requests.get(f"{base}/console/customers/{customer_id}", cookies=cookies, timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    accepted = requests.post(f"{base}/console/customers/{customer_id}/recommend", data={"csrf_token": token},
                             cookies=cookies, allow_redirects=False, timeout=10)
    assert accepted.status_code == 302 and "/console/recommendations/" in accepted.headers["Location"]


def test_english_on_request_and_back(browser, base, bank):
    log_in(browser, base, bank["tokens"]["manager"])
    css(browser, ".languages a")[0].click()
    wait_for(browser, "h1", "Today’s calls")
    assert browser.find_element("css selector", "html").get_attribute("lang") == "en"
    screenshot(browser, "today-en")
    css(browser, ".languages a")[0].click()
    wait_for(browser, "h1", "今日待联系客户")


def test_an_admin_picks_a_book_and_reads_without_writing(browser, base, bank):
    log_in(browser, base, bank["tokens"]["admin"])
    assert css(browser, "#manager"), "an admin chooses whose book"
    from selenium.webdriver.support.ui import Select

    Select(css(browser, "#manager")[0]).select_by_value(bank["other"])
    css(browser, "#scope-heading ~ form button")[0].click()
    wait_for(browser, "table.calls")
    assert not css(browser, "table.calls form"), "no stage one in a manager's name"
    assert_accessible(browser, "admin today")
    screenshot(browser, "admin-today")
    css(browser, "table.calls tbody tr:first-child td:last-child a")[0].click()
    wait_for(browser, "#profile-heading")
    assert not css(browser, ".actions button.primary")


def test_logout_ends_the_session(browser, base, bank):
    log_in(browser, base, bank["tokens"]["manager"])
    css(browser, ".account form button")[0].click()
    wait_for(browser, "#token")
    browser.get(f"{base}/console/today")
    assert "/console/login" in browser.current_url



def test_the_monthly_report_page(browser, base, bank):
    log_in(browser, base, bank["tokens"]["manager"])
    browser.get(f"{base}/console/reports/monthly?month=2025-03")
    wait_for(browser, "#kpi-n_recommendations")
    assert h1(browser) == "月度成效报告 2025-03"
    assert_accessible(browser, "monthly report")
    screenshot(browser, "monthly-report")


def test_an_admin_analyses_a_new_product_from_a_template(browser, base, bank):
    log_in(browser, base, bank["tokens"]["admin"])
    css(browser, "nav a[href$='/console/products/new']")[0].click()
    wait_for(browser, "#definition-heading")
    css(browser, f"a[href$='template=smart_wealth_plus']")[0].click()
    assert wait_for(browser, "#product_id").get_attribute("value") == "WLT_SMART_PLUS"
    css(browser, "#wizard button[type=submit]")[0].click()
    wait_for(browser, "#targets")
    assert css(browser, "#conflicts tbody tr"), "a wealth product overlaps the wealth class"
    targets = css(browser, "#targets tbody tr")
    assert 1 <= len(targets) <= 50
    adopters = css(browser, "#adopters strong")[0].text
    assert_accessible(browser, "new product")
    screenshot(browser, "new-product")
    link = css(browser, "#targets-heading ~ p a[download]")[0].get_attribute("href")
    rows = list(csv.reader(io.StringIO(requests.get(link, cookies=session_cookies(browser), timeout=30).text)))
    assert rows[0][:3] == ["rank", "customer_id", "match_score"] and len(rows) - 1 >= len(targets)
    field = css(browser, "#a_contact_rate")[0]
    field.clear()
    field.send_keys("0.5")
    css(browser, ".assumptions button[type=submit]")[0].click()
    wait_for(browser, "#a_contact_rate")
    assert css(browser, "#a_contact_rate")[0].get_attribute("value") == "0.5"
    assert css(browser, "#adopters strong")[0].text != adopters  # the forecast ran again with the new assumption


def test_an_admin_rolls_back_to_an_earlier_version_after_confirming(browser, base, bank):
    old, new = bank["versions"]
    served = requests.get(f"{base}/readyz", timeout=10).headers.get("X-Lingxi-Version")
    assert served == new
    log_in(browser, base, bank["tokens"]["admin"])
    css(browser, "nav a[href$='/console/models']")[0].click()
    wait_for(browser, "#versions")
    assert_accessible(browser, "models")
    screenshot(browser, "models")
    css(browser, f"a[href$='/console/models/{old}/rollback']")[0].click()
    wait_for(browser, "#confirm")
    assert_accessible(browser, "rollback confirmation")
    css(browser, "#rollback-form button[type=submit]")[0].click()  # not confirmed: nothing happens
    assert (bank["dir"] / "versions" / "CURRENT").read_text().strip() == new
    css(browser, "#confirm")[0].send_keys(old)
    css(browser, "#reason")[0].send_keys("browser test")
    css(browser, "#rollback-form button[type=submit]")[0].click()
    wait_for(browser, ".flash.info")
    assert (bank["dir"] / "versions" / "CURRENT").read_text().strip() == old
    assert "browser test" in css(browser, "#rollbacks")[0].text
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:  # the workers switch without a restart
        served = requests.get(f"{base}/readyz", timeout=10).headers.get("X-Lingxi-Version")
        if served == old:
            break
        time.sleep(0.5)
    assert served == old
