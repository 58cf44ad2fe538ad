"""The engine slot: load the engine named by ``LINGXI_ENGINE`` once per worker and keep it."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml.recommendation.contract import RecommendationEngine


@dataclass
class EngineSlot:
    """The engine (or why it could not be loaded), kept in ``app.extensions``."""

    engine: RecommendationEngine | None
    error: str | None = None
    spec: str = ""
    loaded: dict[str, Any] = field(default_factory=dict)


def load_engine(spec: str | object, data_dir: Path) -> EngineSlot:
    """Resolve ``module:callable`` (called with ``data_dir=``) or accept an engine object."""
    if not isinstance(spec, str):
        engine = spec
        label = type(spec).__name__
    else:
        label = spec
        module_name, _, attr = spec.partition(":")
        if not module_name or not attr:
            return EngineSlot(None, f"LINGXI_ENGINE {spec!r} is not 'module:callable'", spec)
        try:
            factory = getattr(importlib.import_module(module_name), attr)
            engine = factory(data_dir=data_dir)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the app up but not ready
            return EngineSlot(None, f"{type(exc).__name__}: {exc}", spec)
    if not isinstance(engine, RecommendationEngine):
        return EngineSlot(None, f"{label} does not implement RecommendationEngine", label)
    return EngineSlot(engine, None, label)
