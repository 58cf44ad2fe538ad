"""The words of the API's answers, in the request's language (``serving.i18n``): product, category,
tag and exclusion names, reasons and warnings rendered from the engine's English templates.

A reason or warning is stored as its code, English text, template and params; it is rendered when
an answer is written, so a list logged in one language reads in the other too. Params are shown
by kind: ``product`` a product id (its name), ``category`` a category code, ``risk`` a risk
preference, ``card`` a card tier, ``*_cny`` an amount, ``days`` a count of days the answer's
as-of date may move (``serving.as_of``).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from flask_babel import force_locale

from ml.core.catalogue import Catalogue

from . import labels
from .i18n import is_chinese, translate


def label(table: Mapping[str, Any], code: Any) -> str:
    return labels.label(table, code)


def product_name(catalogue: Catalogue, product_id: str | None) -> str | None:
    product = catalogue.get(product_id) if product_id else None
    if product is None:
        return product_id
    return product.name_zh if is_chinese() and product.name_zh else product.name_en


def amount(value: float) -> str:
    return f"{value:,.0f} 元" if is_chinese() else f"CNY {value:,.0f}"


def _param(catalogue: Catalogue, key: str, value: Any, shift_days: int) -> Any:
    if key == "product":
        return product_name(catalogue, str(value))
    if key == "category":
        return label(labels.CATEGORIES, value)
    if key == "risk":
        return label(labels.RISK_PREFERENCES, value)
    if key == "card":
        return label(labels.CARDS, value)
    if key.endswith("_cny") and isinstance(value, (int, float)):
        return amount(float(value))
    if key == "days" and isinstance(value, int):
        return value + shift_days
    return value


def sentence(catalogue: Catalogue, item: Mapping[str, Any], shift_days: int = 0, text_key: str = "text") -> str:
    """A stored reason or warning (code, text, template, params) as a sentence in this language."""
    template = item.get("template")
    if not template:
        return str(item.get(text_key) or "")
    params = {k: _param(catalogue, k, v, shift_days) for k, v in dict(item.get("params") or {}).items()}
    return translate(template, params)


def reasons(catalogue: Catalogue, stored: Iterable[Mapping[str, Any]], shift_days: int = 0) -> list[dict[str, Any]]:
    """``[{"code", "label", "text"}]``: the reason's short name and its sentence."""
    return [{"code": r["code"], "label": label(labels.REASONS, r["code"]), "text": sentence(catalogue, r, shift_days)}
            for r in stored]


def reason_record(reason: Any) -> dict[str, Any]:
    """An engine ``Reason`` as stored with the list (JSON)."""
    out: dict[str, Any] = {"code": reason.code, "text": reason.text}
    if getattr(reason, "template", ""):
        out["template"] = reason.template
        out["params"] = dict(reason.params)
    return out


def tag_names(tags: Iterable[str]) -> list[str]:
    return [label(labels.TAGS, t) for t in tags]


def exclusion_reasons(codes: Iterable[str]) -> list[dict[str, str]]:
    return [{"code": c, "text": label(labels.EXCLUSIONS, c)} for c in codes]


@lru_cache(maxsize=1)
def _tag_codes() -> dict[str, str]:
    """Every way of writing a known tag (its code, its English and Chinese names) -> its code."""
    out = {code: code for code in labels.TAGS}
    for language in ("en", "zh_CN"):
        with force_locale(language):
            out.update({str(name).strip().lower(): code for code, name in labels.TAGS.items()})
    return out


def tag_code(text: str) -> str:
    """A tag as given (a code, an English or a Chinese name) -> the known code, or the text itself."""
    cleaned = text.strip()
    return _tag_codes().get(cleaned.lower(), cleaned)
