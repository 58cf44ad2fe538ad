"""Fixtures: an app from the factory over a temporary data directory at test scale.

``tests/serving`` is deliberately not a package (a ``tests/serving/__init__.py`` would make pytest
import these modules as ``serving.*`` and shadow the real package); helper modules therefore have
unique names (``serving_fakes``) and test files are ``test_serving_*.py``.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from serving_fakes import FakeEngine, make_customer_360, read_books

from serving import create_app
from serving.tokens import add_token

ROLES = {
    "crm": ("crm-test", "crm", None),
    "manager": ("manager-m001", "manager", "M001"),
    "manager2": ("manager-m002", "manager", "M002"),
    "admin": ("admin-test", "admin", None),
}


class Clock:
    """A settable clock for suppression expiry and dashboard date ranges."""

    def __init__(self) -> None:
        self.now: datetime | None = None

    def __call__(self) -> datetime:
        return self.now or datetime.now(timezone.utc)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    make_customer_360(tmp_path / "marts", n=400)
    return tmp_path


@pytest.fixture
def tokens(data_dir: Path) -> dict[str, str]:
    path = data_dir / "tokens.json"
    return {role: add_token(path, name, r, manager_id) for role, (name, r, manager_id) in ROLES.items()}


@pytest.fixture
def engine(data_dir: Path) -> FakeEngine:
    return FakeEngine(data_dir)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app_config(data_dir: Path, tokens: dict[str, str], engine: FakeEngine, clock: Clock) -> dict:
    return {
        "LINGXI_DATA_DIR": data_dir,
        "LINGXI_TOKENS_FILE": data_dir / "tokens.json",
        "LINGXI_ENGINE": engine,
        "LINGXI_SNAPSHOT_BACKGROUND_RELOAD": False,
        "LINGXI_SNAPSHOT_CHECK_SECONDS": 0,
        "LINGXI_CLOCK": clock,
        "LINGXI_LOG_LEVEL": "WARNING",
        "LINGXI_PUSH_INTERVAL_SECONDS": 0,  # push inside the request: tests see it at once
        "LINGXI_RATE_LIMITS": "off",        # rate limits have their own tests
    }


@pytest.fixture
def app(app_config: dict):
    app = create_app(app_config)
    yield app
    app.extensions["lingxi"].store.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth(tokens: dict[str, str]):
    """``auth("manager")`` -> headers with that role's bearer token."""
    return lambda role: {"Authorization": f"Bearer {tokens[role]}"}


@pytest.fixture
def books(data_dir: Path) -> dict[str, list[str]]:
    """manager id -> the sorted customer ids of that manager's book (M001..M004)."""
    return read_books(data_dir / "marts")


@pytest.fixture
def manager_of(books: dict[str, list[str]]) -> dict[str, str]:
    return {cid: manager for manager, ids in books.items() for cid in ids}


@pytest.fixture
def customer_ids(data_dir: Path) -> list[str]:
    import pandas as pd

    return sorted(pd.read_parquet(data_dir / "marts" / "customer_360.parquet", columns=["customer_id"])["customer_id"])


# -- PostgreSQL: a throw-away cluster on 127.0.0.1 (or LINGXI_TEST_POSTGRES_URL) ------------------
@pytest.fixture(scope="session")
def postgres_server():
    """URL of a PostgreSQL server for the tests (``real_services``: a failure under CI when none can
    be had, a skip with the reason elsewhere)."""
    import os

    from real_services import postgres_cluster

    url = os.environ.get("LINGXI_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    with postgres_cluster() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the test server."""
    import uuid

    import psycopg

    name = f"lingxi_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path: Path) -> str:
    """The feedback store URL for each backend (PostgreSQL: see ``postgres_server``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    return request.getfixturevalue("postgres_url")
