"""Fixtures for the decision-service tests: an app on a real SQLite store in a tmp
dir, with one API key per scope, and a helper to seed HCPs."""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from serving_testkit import HCP_BODY, auth, make_settings, store_settings

from serving.main import create_app
from serving.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def put_hcp(client: TestClient) -> Callable[..., str]:
    def put(hcp_id: str, **overrides: Any) -> str:
        body = {**HCP_BODY, **overrides}
        r = client.put(f"/v1/hcps/{hcp_id}", json=body, headers=auth("report"))
        assert r.status_code in (200, 201), r.text
        return hcp_id

    return put


@pytest.fixture(scope="module")
def pg_module_dsn(request: pytest.FixtureRequest, postgres: Any) -> str:
    """A fresh PostgreSQL database for the requesting test module."""
    name = "m_" + re.sub(r"[^a-z0-9_]", "_", request.module.__name__.lower())[-40:]
    return str(postgres.create_database(f"{name}_{uuid.uuid4().hex[:8]}"))


def pg_schema_url(dsn: str) -> str:
    """A fresh, empty schema of database ``dsn``, as a store URL that works in it."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    return f"{dsn}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_at(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., str | Path]:
    """Where an empty event store is, on each backend: ``store_at(name)`` is a file
    under ``tmp_path`` (SQLite) or a fresh schema of the module's PostgreSQL
    database; the same ``name`` gives the same store within a test."""
    if request.param == "sqlite":
        return lambda name="events.db": tmp_path / name
    dsn = request.getfixturevalue("pg_module_dsn")
    made: dict[str, str] = {}

    def make(name: str = "events.db") -> str:
        if name not in made:
            made[name] = pg_schema_url(dsn)
        return made[name]

    return make


@pytest.fixture
def settings_on_both(tmp_path: Path, store_at: Callable[..., str | Path]) -> Settings:
    """:func:`settings` on each store backend (SQLite file, PostgreSQL schema); a
    module runs its route tests on both with ``settings = settings_on_both``."""
    return make_settings(tmp_path, **store_settings(store_at()))
