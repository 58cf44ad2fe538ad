"""Chinese first, English too: one translation layer for the JSON API and the console.

Both speak through Flask-Babel over the catalogues in ``translations/`` (``.po`` files kept in the
repository, compiled into the data directory at start when a ``.mo`` is missing or older, so no
binary is committed). The API chooses the language from the ``Accept-Language`` header; the
console from its cookie (``/console/lang/en``); either falls back to ``LINGXI_LANGUAGE`` (zh-CN
unless configured). Every API response says which language it speaks (``Content-Language``).

Sentences with values (a reason, a warning, an error) are English templates with ``%(name)s``
placeholders: the template is the catalogue's msgid and the values are filled in after translation,
so one template serves both languages.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, Response, current_app, has_request_context, request
from flask_babel import Babel, get_locale, get_translations

SOURCE = Path(__file__).with_name("translations")
LANGUAGES = ("zh_CN", "en")
DEFAULT = "zh_CN"
COOKIE = "lingxi_lang"
CONSOLE_PREFIX = "/console"
_TAGS = {"zh_CN": "zh-CN", "en": "en"}


def normalise(value: str | None) -> str | None:
    """``zh``, ``zh-CN``, ``zh_Hans_CN``... -> ``zh_CN``; ``en``, ``en-GB``... -> ``en``; else None."""
    if not value:
        return None
    lowered = value.strip().lower().replace("_", "-")
    if lowered == "zh" or lowered.startswith("zh-"):
        return "zh_CN"
    if lowered == "en" or lowered.startswith("en-"):
        return "en"
    return None


def default_language() -> str:
    return normalise(str(current_app.config.get("LINGXI_LANGUAGE") or DEFAULT)) or DEFAULT


def from_accept_language(header: str | None, default: str) -> str:
    """The best of our languages for an ``Accept-Language`` value (by quality, then order); ``*`` or
    nothing we speak: ``default``."""
    if not header:
        return default
    choices = []
    for position, part in enumerate(header.split(",")):
        name, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            choices.append((-quality, position, name.strip()))
    for _, _, name in sorted(choices):
        if name == "*":
            return default
        language = normalise(name)
        if language is not None:
            return language
    return default


def select_locale() -> str:
    if request.path.startswith(CONSOLE_PREFIX):
        chosen = request.cookies.get(COOKIE)
        return chosen if chosen in LANGUAGES else default_language()
    return from_accept_language(request.headers.get("Accept-Language"), default_language())


def language() -> str:
    """The language of this request (``zh_CN`` or ``en``); the default outside a request."""
    if not has_request_context():
        return DEFAULT
    locale = get_locale()
    return "zh_CN" if locale is not None and locale.language == "zh" else "en"


def is_chinese() -> bool:
    return language() == "zh_CN"


def translate(template: str, params: Mapping[str, Any] | None = None) -> str:
    """``template`` in this request's language, with ``params`` filled in (a template without a
    translation reads in English; missing params leave the template as it is)."""
    text = get_translations().ugettext(template) if has_request_context() else template
    if not params:
        return text
    try:
        return text % dict(params)
    except (KeyError, ValueError, TypeError):
        return template % dict(params) if _fits(template, params) else template


def _fits(template: str, params: Mapping[str, Any]) -> bool:
    try:
        template % dict(params)
    except (KeyError, ValueError, TypeError):
        return False
    return True


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


def _content_language(response: Response) -> Response:
    if not request.path.startswith(CONSOLE_PREFIX):
        response.headers["Content-Language"] = _TAGS[language()]
        response.vary.add("Accept-Language")
    return response


def init_app(app: Flask) -> None:
    """Compile the catalogues and attach Flask-Babel (API and console alike)."""
    if normalise(str(app.config.get("LINGXI_LANGUAGE") or DEFAULT)) is None:
        raise ValueError(f"LINGXI_LANGUAGE must be one of zh-CN, en (got {app.config.get('LINGXI_LANGUAGE')!r})")
    target = Path(app.config["LINGXI_DATA_DIR"]) / "translations"
    try:
        compile_catalogues(SOURCE, target)
    except OSError:  # a read-only data dir: compile into a private temporary folder instead
        target = Path(tempfile.mkdtemp(prefix="lingxi-translations-"))
        compile_catalogues(SOURCE, target)
    default = normalise(str(app.config.get("LINGXI_LANGUAGE") or DEFAULT)) or DEFAULT
    app.config.setdefault("BABEL_DEFAULT_LOCALE", default)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", app.config["LINGXI_TIMEZONE"])
    Babel(app, locale_selector=select_locale, default_translation_directories=str(target),
          default_locale=default, default_timezone=app.config["LINGXI_TIMEZONE"])
    app.after_request(_content_language)
    app.jinja_env.globals.update(languages=LANGUAGES, is_chinese=is_chinese)
