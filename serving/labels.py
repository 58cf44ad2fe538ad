"""Display names of the codes the API's answers and the console's pages show (triggers, answers,
categories, tags, exclusion reasons, events, reasons, ...).

Every name goes through the translation layer (``serving.i18n``); an unknown code is shown as itself.
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

# why a product is left out of a list: the suitability rules (ml/core/suitability_rules.toml) and
# the manager's answers, as a sentence a customer-facing manager can repeat
EXCLUSIONS = {
    "RISK_ABOVE_TOLERANCE": _l("the product's risk level is above the customer's risk tolerance"),
    "AGE_LIMIT_HIGH_RISK": _l("high-risk products are not offered above the age limit"),
    "BELOW_MIN_INVESTMENT": _l("the customer's assets do not reach the product's minimum investment"),
    "OUTSIDE_TARGET_AGE": _l("the customer's age is outside the product's age limits"),
    "ALREADY_HELD": _l("the customer already holds this product"),
    "BELOW_ADULT_AGE": _l("the product is for adults only"),
    "MISSING_CUSTOMER_DATA": _l("customer data needed to check suitability is missing"),
    "SUPPRESSED_NOT_INTERESTED": _l("the customer recently said they were not interested"),
    "NOT_RANKED": _l("the model does not rank this product (not a cross-sell product)"),
}

TAGS = {
    "annual": _l("Annual"), "balanced": _l("Balanced"), "bank-managed": _l("Bank-managed"), "basic": _l("Basic"),
    "business": _l("Business"), "diversified": _l("Diversified"), "education": _l("Education"),
    "equity": _l("Equity"), "everyday": _l("Everyday"), "family": _l("Family"), "fixed-income": _l("Fixed income"),
    "fixed-term": _l("Fixed term"), "flexible": _l("Flexible"), "growth": _l("Growth"),
    "guaranteed": _l("Guaranteed"), "guaranteed-income": _l("Guaranteed income"), "health": _l("Health"),
    "high-balance": _l("High balance"), "high-volatility": _l("High volatility"), "home": _l("Home"),
    "legacy": _l("Legacy"), "liquid": _l("Liquid"), "long-term": _l("Long term"), "low-cost": _l("Low cost"),
    "low-fee": _l("Low fee"), "passive": _l("Passive"), "payments": _l("Payments"), "property": _l("Property"),
    "protection": _l("Protection"), "retirement": _l("Retirement"), "rewards": _l("Rewards"),
    "short-term": _l("Short term"), "steady": _l("Steady"), "tax-free": _l("Tax-free"), "vehicle": _l("Vehicle"),
    "working-capital": _l("Working capital"),
}

CARDS = {
    "social-security card": _l("social-security card"),
    "standard debit card": _l("standard debit card"),
    "gold debit card": _l("gold debit card"),
    "platinum debit card": _l("platinum debit card"),
}

ASSET_LEVELS = {"L1": _l("under CNY 50,000"), "L2": _l("CNY 50,000 to 200,000"), "L3": _l("CNY 200,000 to 500,000"),
                "L4": _l("CNY 500,000 to 2 million"), "L5": _l("over CNY 2 million")}

SEVERITIES = {"high": _l("High"), "medium": _l("Medium"), "low": _l("Low")}

RELATIONS = {"substitute": _l("Substitute"), "complement": _l("Complement"), "overlap": _l("Overlap")}

STAGES = {1: _l("Stage one"), 2: _l("Stage two")}

ASSUMPTIONS = {
    "horizon_months": _l("Horizon (months)"),
    "contact_rate": _l("Share of suitable customers contacted (0–1)"),
    "contact_uplift": _l("Conversion multiplier when contacted"),
    "margin": _l("Margin (0–1)"),
    "average_balance_cny": _l("Average balance (CNY)"),
    "n_similar": _l("Similar products compared"),
}

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
    "FEEDBACK_COMPLEMENT": _l("Interested in a product that goes with it"),
    "FEEDBACK_SAME_CATEGORY": _l("Interested in a product of the same class"),
    "RECENT_TRIGGER": _l("Recent trigger event"),
    "PROFILE_FITS_TAGS": _l("Profile fits the product"),
}


def label(table: dict, code) -> str:
    """The translated name of ``code`` in ``table`` (the code itself when unknown)."""
    value = table.get(code)
    return str(value) if value is not None else ("" if code is None else str(code))
