"""Entities: the bank's retail customer."""
from feast import Entity, ValueType

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A retail customer, keyed by the bank's 32-char uppercase hex MD5 customer id.",
    owner="analytics-engineering@lingxi",
    tags={"pii": "none (digest only)"},
)
