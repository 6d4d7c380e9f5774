"""Fixtures for the decision-service tests: an app on a real SQLite store in a tmp
dir, with one API key per scope, and a helper to seed HCPs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from serving_testkit import HCP_BODY, auth, make_settings

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
