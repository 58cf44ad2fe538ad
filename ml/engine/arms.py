"""Which arm serves a customer: champion, challenger or control, stable by customer id.

A customer's arm comes from a hash of the customer id (and a salt that names the experiment), not
from a random draw per request: the same customer meets the same arm on every request, from every
worker, so the arms compare customers, not requests. The hash's uniform value u in [0, 1) puts
u < control_share in ``control``, the next challenger_share in ``challenger`` (when a challenger is
loaded; otherwise those customers stay with the champion) and the rest in ``champion``. Changing
the salt reshuffles everyone (a new experiment).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

CHAMPION, CHALLENGER, CONTROL = "champion", "challenger", "control"
ARMS = (CHAMPION, CHALLENGER, CONTROL)


@dataclass(frozen=True)
class ArmShares:
    challenger: float = 0.10  # only while a challenger is registered and published
    control: float = 0.05     # the always-on control group (LINGXI_CONTROL_SHARE; 0 turns it off)
    salt: str = "lingxi-arms-v1"

    def __post_init__(self) -> None:
        if not (0 <= self.challenger <= 1 and 0 <= self.control <= 1 and self.challenger + self.control <= 1):
            raise ValueError(f"arm shares must be in [0, 1] and sum to at most 1: {self}")

    @classmethod
    def from_env(cls) -> "ArmShares":
        return cls(challenger=float(os.environ.get("LINGXI_CHALLENGER_SHARE", cls.challenger)),
                   control=float(os.environ.get("LINGXI_CONTROL_SHARE", cls.control)),
                   salt=os.environ.get("LINGXI_ARM_SALT", cls.salt))


def uniform(customer_id: str, salt: str) -> float:
    digest = hashlib.blake2b(f"{salt}:{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def assign(customer_id: str, shares: ArmShares, has_challenger: bool = True) -> str:
    u = uniform(customer_id, shares.salt)
    if u < shares.control:
        return CONTROL
    if u < shares.control + shares.challenger:
        return CHALLENGER if has_challenger else CHAMPION
    return CHAMPION
