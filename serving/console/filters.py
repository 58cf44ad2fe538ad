"""Template helpers: product and code names in the current language, amounts, dates."""
from __future__ import annotations

from datetime import datetime

from flask import Flask
from flask_babel import format_currency, format_datetime, format_decimal

from .. import labels
from .context import services
from .i18n import is_chinese


def product_name(product_id: str | None) -> str:
    product = services().catalogue.get(product_id) if product_id else None
    if product is None:
        return product_id or ""
    return product.name_zh if is_chinese() else product.name_en


def product_category(product_id: str | None) -> str:
    product = services().catalogue.get(product_id) if product_id else None
    return labels.label(labels.CATEGORIES, product.category) if product is not None else ""


def product_risk(product_id: str | None) -> str:
    product = services().catalogue.get(product_id) if product_id else None
    return product.risk_label if product is not None else ""


def reason_label(code: str) -> str:
    return labels.label(labels.REASONS, code)


def money(value: float | None) -> str:
    return "" if value is None else format_currency(value, "CNY")


def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return ""
    return format_decimal(value, format="#,##0" + ("." + "0" * digits if digits else ""))


def when(value: datetime | str | None, style: str = "short") -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return format_datetime(value, style)


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(product_name=product_name, product_category=product_category,
                                 product_risk=product_risk, reason_label=reason_label, money=money, number=number, when=when)
    app.jinja_env.globals.update(labels=labels, label=labels.label)
