"""Chromium for the monthly report's PDF: a failure under CI (CI=true) when missing, a skip elsewhere."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


def require_chromium() -> None:
    if Path("/usr/bin/chromium").exists():
        return
    reason = "missing /usr/bin/chromium: run `bash scripts/services.sh report` (as root)"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(reason)
    pytest.skip(reason)
