"""Display names of the codes the pages show (triggers, answers, classes, events, reasons, ...).

Every name goes through the translation layer; an unknown code is shown as itself.
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

TRIGGERS = {
    "salary_credit": _l("Salary credit"),
    "deposit_maturity": _l("Deposit maturity"),
    "card_replacement": _l("Card replacement"),
    "high_score": _l("High match score"),
}

RESPONSES = {
    "interested": _l("Interested"),
    "not_interested": _l("Not interested"),
    "already_owns": _l("Already owns"),
}

CATEGORIES = {
    "savings": _l("Savings"),
    "protection": _l("Protection"),
    "credit": _l("Credit"),
    "wealth": _l("Wealth"),
}

RISK_PREFERENCES = {
    "conservative": _l("Conservative"),
    "cautious": _l("Cautious"),
    "balanced": _l("Balanced"),
    "growth": _l("Growth"),
    "aggressive": _l("Aggressive"),
}

ROLES = {"manager": _l("Account manager"), "admin": _l("Administrator"), "crm": _l("CRM integration")}

EVENT_TYPES = {
    "salary_credit": _l("Salary credit"),
    "deposit_maturity": _l("Deposit maturity"),
    "card_replacement": _l("Card replacement"),
    "product_trade": _l("Product trade"),
    "product_open": _l("Product opened"),
    "product_close": _l("Product closed"),
    "product_redeem": _l("Product redeemed"),
    "channel_bind": _l("Channel linked"),
}

CHANNELS = {
    "mobile_banking": _l("Mobile banking"),
    "online_banking": _l("Online banking"),
    "branch": _l("Branch"),
    "atm": _l("ATM"),
    "system": _l("System"),
    "phone": _l("Phone"),
    "wechat": _l("WeChat"),
}

HOLDING_SOURCES = {"bank": _l("Bank records"), "reported": _l("Reported by the manager")}

SUPPRESSION_REASONS = {
    "SUPPRESSED_NOT_INTERESTED": _l("Declined recently"),
    "ALREADY_HELD": _l("Already owns"),
}

STAGES = {1: _l("Stage one"), 2: _l("Stage two")}

REASONS = {
    "ACTIVE_ACCOUNT": _l("Active account"),
    "ACTIVE_MOBILE_USER": _l("Active mobile banking user"),
    "AGE_FITS_PRODUCT": _l("Age fits the product"),
    "ASSETS_COVER_MINIMUM": _l("Assets cover the minimum"),
    "ASSET_LEVEL": _l("Asset level"),
    "BEST_SUITABLE_MATCH": _l("Among the best suitable matches"),
    "CARD_REPLACED": _l("Card recently replaced"),
    "DEPOSIT_MATURED": _l("Deposit recently matured"),
    "DIGITAL_CHANNEL": _l("Uses digital channels"),
    "EDUCATION_PROFILE": _l("Education profile"),
    "FAMILY_STAGE": _l("Family stage"),
    "HOLDS_COMPLEMENT": _l("Holds a complementary product"),
    "HOLDS_RELATED_PRODUCT": _l("Holds a related product"),
    "LOCAL_CUSTOMER": _l("Local customer"),
    "LONG_RELATIONSHIP": _l("Long relationship with the bank"),
    "PREMIUM_CARD": _l("Premium card holder"),
    "PRODUCT_BREADTH": _l("Holds many products"),
    "RECENT_ACTIVITY": _l("Recent activity in this class"),
    "RISK_APPETITE_FITS": _l("Risk appetite fits"),
    "SALARY_CREDIT_NEW": _l("Salary newly paid here"),
    "SALARY_CREDIT_RECENT": _l("Salary recently credited"),
    "URBAN_CUSTOMER": _l("Urban customer"),
    "USES_CATEGORY": _l("Already uses this class"),
}


def label(table: dict, code) -> str:
    """The translated name of ``code`` in ``table`` (the code itself when unknown)."""
    value = table.get(code)
    return str(value) if value is not None else ("" if code is None else str(code))
