"""The engine's knobs (value weighting, stage two, explainer), from the environment."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecommendConfig:
    """Knobs of the engine. ``from_env`` reads:

    * ``LINGXI_PRODUCT_VALUES`` — JSON object ``{product_id: annual value CNY}`` or a path to one;
      overrides the catalogue's ``annual_value_cny`` for ranking.
    * ``LINGXI_VALUE_WEIGHTING`` — ``0`` ranks by probability alone (default ``1``).
    * ``LINGXI_STAGE_TWO`` — ``learned`` (default; falls back to ``rule`` when no re-ranker is
      trained for the model), ``rule`` or ``one_step``.
    * ``LINGXI_STAGE_TWO_OBJECTIVE`` — ``interest`` (default: rank the unseen products by
      P(interested | answers), the two-step accuracy the bank measures) or ``value`` (probability
      x lift x value, like stage one).
    * ``LINGXI_EXPLAINER`` — ``path`` (default, fast) or ``treeshap`` (exact, ~2.5 ms per product).
    """

    default_k: int = 5
    max_k: int = 10
    value_weighting: bool = True
    product_values: Mapping[str, float] = field(default_factory=dict)
    max_reasons: int = 3
    explainer: str = "path"
    stage_two: str = "learned"
    stage_two_objective: str = "interest"

    def __post_init__(self) -> None:
        if self.explainer not in ("path", "treeshap"):
            raise ValueError(f"explainer must be path or treeshap, not {self.explainer!r}")
        if self.stage_two not in ("learned", "rule", "one_step"):
            raise ValueError(f"stage_two must be learned, rule or one_step, not {self.stage_two!r}")
        if self.stage_two_objective not in ("interest", "value"):
            raise ValueError(f"stage_two_objective must be interest or value, not {self.stage_two_objective!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "RecommendConfig":
        env = os.environ if env is None else env
        values: dict[str, float] = {}
        raw = env.get("LINGXI_PRODUCT_VALUES", "").strip()
        if raw:
            text = Path(raw).read_text() if not raw.startswith("{") else raw
            values = {str(k): float(v) for k, v in json.loads(text).items()}
        return cls(value_weighting=env.get("LINGXI_VALUE_WEIGHTING", "1").strip() not in ("0", "false", "no"),
                   product_values=values, explainer=env.get("LINGXI_EXPLAINER", "path"),
                   stage_two=env.get("LINGXI_STAGE_TWO", "learned"),
                   stage_two_objective=env.get("LINGXI_STAGE_TWO_OBJECTIVE", "interest"))
