"""``NBA_GC_FREEZE``: a worker's objects, once its services are open, are left out
of garbage collections (on by default), and nothing is frozen when it is off."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serving_testkit import make_settings

from serving.main import create_app
from serving.settings import Settings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # what this test froze goes back to the collector


@pytest.mark.parametrize("freeze", [True, False])
def test_the_worker_freezes_what_it_holds(tmp_path: Path, unfrozen: None, freeze: bool) -> None:
    assert gc.get_freeze_count() == 0
    with TestClient(create_app(make_settings(tmp_path, gc_freeze=freeze))) as c:
        assert c.get("/readyz").status_code == 200
        frozen = gc.get_freeze_count()
    # the services' objects (its engine among them) are frozen, or nothing is
    assert (frozen > 10_000) is freeze and (frozen == 0) is not freeze


def test_the_setting_is_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBA_GC_FREEZE", raising=False)
    assert Settings.model_fields["gc_freeze"].default is True
    monkeypatch.setenv("NBA_GC_FREEZE", "false")
    assert Settings(store_path=Path("x.db"), auth_disabled=True).gc_freeze is False
