"""The worker's garbage collector is settled once the service has started
(serving/heap.py): a real ``nba serve`` worker reports, in its metrics, the
objects it froze and its young generation's threshold as read back from the
``gc`` module; the settings turn either off; bad values are refused by name; the
app's shutdown gives the frozen objects back."""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from serving_testkit import HCP_BODY, auth, make_settings, start_server, stop_server

from serving import heap
from serving.main import create_app
from serving.settings import Settings


def _gauges(text: str, name: str) -> list[float]:
    """Every sample of gauge ``name`` (one per live worker in multiprocess mode)."""
    return [float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)]


@pytest.fixture(autouse=True)
def _collector_restored() -> object:
    """Leave this process's collector as the test found it."""
    threshold = gc.get_threshold()
    yield None
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_freezes_what_is_alive_and_release_gives_it_back() -> None:
    before = gc.get_threshold()
    kept = [[i] for i in range(1_000)]  # tracked containers alive at the freeze
    s = heap.settle(freeze=True, young_threshold=12_345)
    assert s.froze and s.previous == before
    # (a frozen object freed by its reference count leaves the permanent generation)
    assert s.frozen >= len(kept) and gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold() == (12_345, before[1], before[2]) == s.threshold
    # a frozen object is in no generation a collection walks
    assert not any(o is kept for o in gc.get_objects(generation=2))
    heap.release(s)
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before
    assert any(o is kept for o in gc.get_objects())


def test_settle_off_changes_nothing_and_a_negative_threshold_is_refused() -> None:
    before = gc.get_threshold()
    s = heap.settle(freeze=False, young_threshold=0)
    assert (s.frozen, s.threshold, s.froze) == (0, before, False)
    assert gc.get_freeze_count() == 0
    heap.release(s)
    assert gc.get_threshold() == before
    with pytest.raises(ValueError, match="young_threshold must be 0"):
        heap.settle(freeze=True, young_threshold=-1)
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before


def test_a_negative_threshold_setting_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBA_GC_YOUNG_THRESHOLD", "-5")
    with pytest.raises(ValidationError, match="gc_young_threshold"):
        Settings()
    monkeypatch.setenv("NBA_GC_YOUNG_THRESHOLD", "lots")
    with pytest.raises(ValidationError, match="gc_young_threshold"):
        Settings()


def test_the_app_settles_on_start_and_releases_on_shutdown(tmp_path: Path) -> None:
    before = gc.get_threshold()
    settings = make_settings(tmp_path, gc_freeze=True, gc_young_threshold=9_000)
    with TestClient(create_app(settings)) as c:
        assert gc.get_threshold()[0] == 9_000 and gc.get_freeze_count() > 0
        assert c.put("/v1/hcps/H1", json=HCP_BODY, headers=auth("report")).status_code == 201
        r = c.post("/v1/decisions", json={"hcp_id": "H1"}, headers=auth("decide"))
        assert r.status_code == 201
        text = c.get("/metrics").text
        assert _gauges(text, "nba_gc_young_threshold") == [9_000.0]
        assert _gauges(text, "nba_gc_frozen_objects")[0] > 0
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before


def test_an_app_told_to_keep_pythons_collector_leaves_it_alone(tmp_path: Path) -> None:
    before = gc.get_threshold()
    settings = make_settings(tmp_path, gc_freeze=False, gc_young_threshold=0)
    with TestClient(create_app(settings)) as c:
        assert gc.get_freeze_count() == 0 and gc.get_threshold() == before
        text = c.get("/metrics").text
        assert _gauges(text, "nba_gc_frozen_objects") == [0.0]
        assert _gauges(text, "nba_gc_young_threshold") == [float(before[0])]
    assert gc.get_threshold() == before


def test_a_real_worker_runs_with_its_start_up_frozen(tmp_path: Path) -> None:
    proc, base = start_server(tmp_path, workers=1)
    try:
        text = httpx.get(f"{base}/metrics", timeout=30).text
    finally:
        stop_server(proc)
    (frozen,) = _gauges(text, "nba_gc_frozen_objects")
    (young,) = _gauges(text, "nba_gc_young_threshold")
    # FastAPI, pydantic, VW's and MLflow's modules: far more than a few thousand
    assert frozen > 50_000
    assert young == Settings.model_fields["gc_young_threshold"].default == 20_000


def test_a_real_worker_keeps_pythons_collector_when_told(tmp_path: Path) -> None:
    proc, base = start_server(
        tmp_path, workers=1, NBA_GC_FREEZE="false", NBA_GC_YOUNG_THRESHOLD="0"
    )
    try:
        text = httpx.get(f"{base}/metrics", timeout=30).text
    finally:
        stop_server(proc)
    assert _gauges(text, "nba_gc_frozen_objects") == [0.0]
    assert _gauges(text, "nba_gc_young_threshold") == [float(gc.get_threshold()[0])]


def test_a_pause_switches_the_collector_off_until_the_last_overlapping_one_ends() -> None:
    assert gc.isenabled()
    first, second = heap.paused(), heap.paused()
    first.__enter__()
    assert not gc.isenabled()
    second.__enter__()
    first.__exit__(None, None, None)  # another pause is still open: still off
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_pause_ends_on_an_exception_and_leaves_a_disabled_collector_disabled() -> None:
    with pytest.raises(RuntimeError, match="boom"), heap.paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with heap.paused():
            pass
        assert not gc.isenabled()  # it was off before: not switched on
    finally:
        gc.enable()


def test_a_pause_that_ends_while_another_is_open_runs_the_young_collection_due() -> None:
    collections: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    threshold = gc.get_threshold()
    gc.set_threshold(100, threshold[1], threshold[2])
    gc.callbacks.append(seen)
    try:
        with heap.paused():
            collections.clear()  # (any collection before the pause began)
            with heap.paused():
                kept = [[i] for i in range(1_000)]  # young containers, past the threshold
                assert gc.get_count()[0] >= 100 and collections == []  # none started
            assert collections == [0]  # the inner pause ended: the young collection due ran
            assert not gc.isenabled()
        assert gc.isenabled() and len(kept) == 1_000
    finally:
        gc.callbacks.remove(seen)
        gc.set_threshold(*threshold)


def test_a_batch_decision_runs_with_the_collector_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving import schemas
    from serving.main import open_services

    svc = open_services(make_settings(tmp_path, group_commit=False))
    try:
        seen: list[bool] = []
        work = svc.engine._decide_batch_json

        def spy(*args: Any) -> bytes:
            seen.append(gc.isenabled())
            return work(*args)

        monkeypatch.setattr(svc.engine, "_decide_batch_json", spy)
        req = schemas.BatchDecisionRequest(hcp_ids=["NOBODY"], channels=["email"])
        svc.engine.decide_batch_json(req, "decide-client", max_batch=10)
        assert seen == [False] and gc.isenabled()
    finally:
        svc.store.close()
