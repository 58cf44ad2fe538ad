"""A real browser for the console's tests: Debian's headless Chromium driven by Selenium.

``make services`` (``scripts/services.sh``, run by ``make test``) installs ``chromium`` and
``chromium-driver`` when missing. Without them the browser tests fail under CI (``CI=true``) and
skip elsewhere, with the reason. Screenshots (1366x768) go to ``$LINGXI_REPORTS_DIR/console/``; ``axe_violations`` runs
the vendored axe-core in the page.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
WIDTH, HEIGHT = 1366, 768
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--window-size={WIDTH},{HEIGHT}", "--lang=zh-CN")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_browser() -> None:
    """Fail under CI, skip elsewhere, when the browser or its driver is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        reason = f"missing {', '.join(missing)}: run `make services` (as root)"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)


def start_browser():
    """A fresh headless Chromium with its own profile folder; ``stop_browser`` removes both."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="lingxi-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS + (f"--user-data-dir={profile}",):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    # the viewport itself at 1366x768 (the window size would include the browser's own bars)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
    driver.lingxi_profile = profile  # type: ignore[attr-defined]
    return driver


def stop_browser(driver) -> None:
    try:
        driver.quit()
    finally:
        shutil.rmtree(driver.lingxi_profile, ignore_errors=True)


def screenshot_dir() -> Path:
    from ml.core.config import Paths

    folder = Paths.from_env().reports / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(driver, name: str) -> Path:
    """The visible page at 1366x768 as ``<reports>/console/<name>.png``."""
    from PIL import Image

    path = screenshot_dir() / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot for {name}"
    with Image.open(path) as image:
        assert image.size == (WIDTH, HEIGHT), f"{name}: {image.size}"
    return path


def axe_violations(driver) -> list[dict]:
    """axe-core's violations on the current page (WCAG 2 A/AA rules and best practices)."""
    if not driver.execute_script("return typeof window.axe !== 'undefined'"):
        driver.execute_script(AXE.read_text(encoding="utf-8"))
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations),"
        " e => done([{id: 'axe-error', help: String(e), nodes: []}]));")
    return [{"id": v["id"], "impact": v.get("impact"), "help": v["help"],
             "nodes": [n.get("target") for n in v.get("nodes", [])][:5]} for v in result]


def heading_levels(driver) -> list[int]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('h1,h2,h3,h4,h5,h6')).map(h => Number(h.tagName[1]));")


def unlabelled_controls(driver) -> list[str]:
    """Form controls a screen reader cannot name (no label, aria-label or aria-labelledby)."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea, meter'))
          .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                        && !el.getAttribute('aria-labelledby'))
          .map(el => el.outerHTML.slice(0, 120));""")
