"""Chinese first, English on request: Flask-Babel over the catalogues in ``translations/``.

The ``.po`` catalogues are the source (kept in the repository); the app compiles each one into the
data directory at start when its ``.mo`` is missing or older, so no binary is committed and a fresh
clone serves translated pages. The language is a cookie set by a link (``/console/lang/en``).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, request
from flask_babel import Babel, get_locale

SOURCE = Path(__file__).with_name("translations")
LANGUAGES = ("zh_CN", "en")
DEFAULT = "zh_CN"
COOKIE = "lingxi_lang"


def select_locale() -> str:
    chosen = request.cookies.get(COOKIE)
    return chosen if chosen in LANGUAGES else DEFAULT


def compile_catalogues(source: Path, target: Path) -> list[Path]:
    """Compile every ``<lang>/LC_MESSAGES/*.po`` under ``source`` into ``target`` when stale."""
    written = []
    for po in sorted(source.glob("*/LC_MESSAGES/*.po")):
        # Babel looks a catalogue up by the locale's full name (zh_CN parses as zh_Hans_CN)
        mo = target / str(Locale.parse(po.parts[-3])) / "LC_MESSAGES" / po.with_suffix(".mo").name
        if mo.exists() and mo.stat().st_mtime_ns >= po.stat().st_mtime_ns:
            continue
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=po.parts[-3])
        fd, tmp = tempfile.mkstemp(prefix=".messages-", dir=mo.parent)
        with os.fdopen(fd, "wb") as handle:
            write_mo(handle, catalog)
        os.replace(tmp, mo)  # atomic: several workers may compile at once
        written.append(mo)
    return written


def is_chinese() -> bool:
    locale = get_locale()
    return locale is not None and locale.language == "zh"


def init_app(app: Flask) -> None:
    target = Path(app.config["LINGXI_DATA_DIR"]) / "console" / "translations"
    try:
        compile_catalogues(SOURCE, target)
    except OSError:  # a read-only data dir: compile into a private temporary folder instead
        target = Path(tempfile.mkdtemp(prefix="lingxi-translations-"))
        compile_catalogues(SOURCE, target)
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", app.config["LINGXI_TIMEZONE"])
    Babel(app, locale_selector=select_locale, default_translation_directories=str(target),
          default_locale=DEFAULT, default_timezone=app.config["LINGXI_TIMEZONE"])
    app.jinja_env.globals.update(languages=LANGUAGES, is_chinese=is_chinese)
