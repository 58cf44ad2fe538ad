"""The suitability rules as data: reason codes, the versioned rules file, and its parser."""
from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

RULES_PATH = Path(__file__).with_name("suitability_rules.toml")


# Reason codes (the strings logs and dashboards carry; bits are defined in the rule file).
RISK_ABOVE_TOLERANCE = "RISK_ABOVE_TOLERANCE"

AGE_LIMIT_HIGH_RISK = "AGE_LIMIT_HIGH_RISK"

BELOW_MIN_INVESTMENT = "BELOW_MIN_INVESTMENT"

OUTSIDE_TARGET_AGE = "OUTSIDE_TARGET_AGE"

ALREADY_HELD = "ALREADY_HELD"

BELOW_ADULT_AGE = "BELOW_ADULT_AGE"

MISSING_CUSTOMER_DATA = "MISSING_CUSTOMER_DATA"

UNKNOWN_PRODUCT = "UNKNOWN_PRODUCT"  # audit only: a ranking named a product not in the catalogue

_RULE_CODES = {
    "risk_tolerance": RISK_ABOVE_TOLERANCE,
    "high_risk_age": AGE_LIMIT_HIGH_RISK,
    "min_investment": BELOW_MIN_INVESTMENT,
    "target_age": OUTSIDE_TARGET_AGE,
    "already_held": ALREADY_HELD,
    "adult_only": BELOW_ADULT_AGE,
    "missing_data": MISSING_CUSTOMER_DATA,
}


# ------------------------------------------------------------------------------------------------
# The rule file
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    rule_id: str
    bit: int
    reason_code: str
    description: str

    @property
    def mask(self) -> int:
        return 1 << self.bit


@dataclass(frozen=True)
class SuitabilityRules:
    """The parsed rule file. ``version`` is what logs carry; ``digest`` pins the exact file."""

    version: str
    digest: str
    rules: tuple[Rule, ...]
    risk_levels_by_name: Mapping[str, int]  # lower-cased name or alias -> tolerance 1..5
    high_risk_min_level: int
    high_risk_max_age: float
    target_age_categories: frozenset[str]
    adult_min_age: float
    adult_categories: frozenset[str]
    valid_age: tuple[float, float]
    asset_level_floor: Mapping[str, float]

    @classmethod
    def from_toml(cls, path: str | Path) -> "SuitabilityRules":
        raw_bytes = Path(path).read_bytes()
        raw = tomllib.loads(raw_bytes.decode("utf-8"))
        table = raw["rules"]
        if set(table) != set(_RULE_CODES):
            raise ValueError(f"rule file must define exactly {sorted(_RULE_CODES)}, got {sorted(table)}")
        rules = tuple(
            Rule(rule_id, int(spec["bit"]), spec["reason_code"], spec["description"])
            for rule_id, spec in table.items()
        )
        for rule in rules:
            if rule.reason_code != _RULE_CODES[rule.rule_id]:
                raise ValueError(f"rule {rule.rule_id}: reason code {rule.reason_code!r} changed")
        if len({r.bit for r in rules}) != len(rules) or not all(0 <= r.bit < 16 for r in rules):
            raise ValueError("rule bits must be distinct and in 0..15")
        prefs = dict(raw["risk_preference"])
        aliases = prefs.pop("aliases", {})
        names = {str(k).strip().lower(): int(v) for k, v in {**prefs, **aliases}.items()}
        if not all(1 <= v <= 5 for v in names.values()):
            raise ValueError("risk preference levels must be 1..5")
        return cls(
            version=str(raw["version"]),
            digest=hashlib.sha256(raw_bytes).hexdigest()[:12],
            rules=rules,
            risk_levels_by_name=names,
            high_risk_min_level=int(table["high_risk_age"]["min_risk_level"]),
            high_risk_max_age=float(table["high_risk_age"]["max_age"]),
            target_age_categories=frozenset(table["target_age"]["categories"]),
            adult_min_age=float(table["adult_only"]["min_age"]),
            adult_categories=frozenset(table["adult_only"]["categories"]),
            valid_age=(float(table["missing_data"]["valid_age_min"]),
                       float(table["missing_data"]["valid_age_max"])),
            asset_level_floor={str(k): float(v) for k, v in raw.get("asset_level", {}).items()},
        )

    def mask(self, rule_id: str) -> int:
        return next(r.mask for r in self.rules if r.rule_id == rule_id)

    @cached_property
    def _codes_by_bit(self) -> tuple[tuple[int, str], ...]:
        return tuple(sorted((r.mask, r.reason_code) for r in self.rules))

    def decode(self, mask: int) -> list[str]:
        """Reason codes of one bitmask, in bit order (``[]`` for 0)."""
        return [code for bit, code in self._codes_by_bit if int(mask) & bit]


def load_rules(path: str | Path | None = None) -> SuitabilityRules:
    return SuitabilityRules.from_toml(RULES_PATH if path is None else path)

RULES = load_rules()

RULES_VERSION = RULES.version
