"""Shared fixtures: one test-scale synthetic bank per session, in a temporary folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ml.datagen import generate

TEST_CUSTOMERS = 20_000
TEST_SEED = 42


@pytest.fixture(scope="session")
def raw_data_dir(tmp_path_factory) -> Path:
    """A data dir holding ``raw/`` and ``oracle/`` for 20k customers (seed 42).

    Set LINGXI_TEST_DATA_DIR to reuse one between local runs (it is generated there if empty).
    """
    reuse = os.environ.get("LINGXI_TEST_DATA_DIR")
    data_dir = Path(reuse) if reuse else tmp_path_factory.mktemp("lingxi_data")
    from ml.datagen.generate import manifest_matches

    if not manifest_matches(data_dir / "raw", TEST_CUSTOMERS, TEST_SEED):
        generate(TEST_CUSTOMERS, TEST_SEED, data_dir / "raw", data_dir / "oracle", progress=False)
    return data_dir
