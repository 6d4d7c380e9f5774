"""Model lifecycle: serve a saved VW model, swap in a new one through the admin
route and through the alias check, refuse models that fail to load or to score
while the old one keeps serving, and record the model version in every decision."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_testkit import HCP_BODY, auth, make_settings

from nba.catalog import Catalog
from nba.context import DecisionContext
from nba.domain import Action, HCPProfile
from nba.policies.base import Policy, Probabilities
from nba.policies.vw import VWConfig, VWPolicy
from serving.lifecycle import ModelManager
from serving.main import create_app


def _train(version: str, favourite: int, seed: int) -> VWPolicy:
    pol = VWPolicy(VWConfig(epsilon=0.2), seed=seed, model_version=version)
    day = date(2026, 1, 5)
    ctx = DecisionContext(
        HCPProfile("h", "cardiology", 5, "US", "aware", frozenset({"email"})), day
    )
    acts = pol.catalog.eligible_actions("US", day, ["email"])[:5]
    for i in range(30):
        chosen = i % len(acts)
        pol.learn(ctx, acts, chosen, 1.0 if chosen == favourite else 0.0, 0.2)
    return pol


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    paths = {"a": root / "a", "b": root / "b", "broken": root / "broken"}
    _train("model-a", 0, 1).save(paths["a"])
    _train("model-b", 3, 2).save(paths["b"])
    shutil.copytree(paths["a"], paths["broken"])
    (paths["broken"] / "model.vw").write_bytes(b"not a vw model" * 4)
    return paths


class NaNPolicy(Policy):
    """A model that loads but cannot score: its probabilities are NaN."""

    name = "nan"

    def probabilities(self, context: DecisionContext, actions: Sequence[Action]) -> Probabilities:
        return np.full(len(actions), np.nan)


def _decide(c: TestClient) -> dict[str, object]:
    r = c.post("/v1/decisions", json={"hcp_id": "H1", "k": 2}, headers=auth("decide"))
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_serves_a_saved_model_and_hot_swaps_refusing_broken_ones(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    s = make_settings(tmp_path, model_uri=str(models["a"]))
    with TestClient(create_app(s)) as c:
        c.put("/v1/hcps/H1", json=HCP_BODY, headers=auth("report"))
        cur = c.get("/v1/models/current", headers=auth("decide")).json()
        assert cur["model_version"] == "model-a" and cur["is_baseline"] is False
        assert cur["policy"] == "vw"
        ev = _decide(c)
        assert ev["model_version"] == "model-a"
        store = c.app.state.services.store  # type: ignore[attr-defined]
        assert store.get_decision(ev["event_id"]).model_version == "model-a"

        # a model that fails to load is refused; the old one keeps serving
        r = c.post("/v1/models/reload", json={"uri": str(models["broken"])}, headers=auth("admin"))
        assert r.status_code == 409 and r.json()["code"] == "model_refused"
        assert "failed to load" in r.json()["message"]
        assert _decide(c)["model_version"] == "model-a"

        # a good one is swapped in; later decisions record it
        r = c.post("/v1/models/reload", json={"uri": str(models["b"])}, headers=auth("admin"))
        assert r.status_code == 200 and r.json()["model_version"] == "model-b"
        ev = _decide(c)
        assert ev["model_version"] == "model-b"
        assert store.get_decision(ev["event_id"]).model_version == "model-b"
        cur = c.get("/v1/models/current", headers=auth("decide")).json()
        assert cur["following"] == str(models["b"])

        text = c.get("/metrics").text
        assert 'nba_model_info{version="model-b"} 1.0' in text
        assert 'nba_model_info{version="model-a"} 0.0' in text
        assert 'nba_model_swaps_total{result="refused"} 1.0' in text


def test_model_that_cannot_score_is_refused(tmp_path: Path, models: dict[str, Path]) -> None:
    def loader(uri: str) -> Policy:
        return NaNPolicy() if uri == "nan" else VWPolicy.load(uri, predict_only=True)

    s = make_settings(tmp_path, model_uri=str(models["a"]))
    with TestClient(create_app(s, loader=loader)) as c:
        r = c.post("/v1/models/reload", json={"uri": "nan"}, headers=auth("admin"))
        assert r.status_code == 409
        assert "canary request 0 failed" in r.json()["message"]
        cur = c.get("/v1/models/current", headers=auth("decide")).json()
        assert cur["model_version"] == "model-a"


def test_no_model_at_start_serves_the_baseline_then_follows_the_path(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    target = tmp_path / "champion"
    mm = ModelManager(str(target), Catalog.default(), seed=0, canary_requests=4)
    first = mm.start()
    assert not first.swapped and mm.current.is_baseline
    assert mm.current.version == "baseline:uniform" and "no trained model" in mm.current.note
    assert mm.poll() is None  # still nothing there
    shutil.copytree(models["a"], target)
    res = mm.poll()
    assert res is not None and res.swapped and mm.current.version == "model-a"
    assert mm.poll() is None  # unchanged: no reload
    # a broken model appears at the followed path: refused, once
    shutil.rmtree(target)
    shutil.copytree(models["broken"], target)
    res = mm.poll()
    assert res is not None and not res.swapped and mm.current.version == "model-a"
    assert mm.poll() is None


def test_reload_needs_admin(client: TestClient) -> None:
    assert client.post("/v1/models/reload", headers=auth("decide")).status_code == 403
    r = client.post("/v1/models/reload", headers=auth("admin"))
    # the configured path holds no model: refused, the baseline keeps serving
    assert r.status_code == 409 and r.json()["code"] == "model_refused"
    cur = client.get("/v1/models/current", headers=auth("admin")).json()
    assert cur["is_baseline"] is True


@pytest.mark.slow
def test_follows_the_mlflow_champion_alias(tmp_path: Path, empty_mlflow_store: Path) -> None:
    import mlflow

    from training import mlflow_utils

    shutil.copy(empty_mlflow_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def register(policy: VWPolicy) -> str:
        exp = mlflow_utils.experiment_id("serving-test", uri)
        with mlflow.start_run(experiment_id=exp):
            logged = mlflow_utils.log_policy_model(policy, alias="champion")
        assert logged.version is not None
        return logged.version

    mm = ModelManager("models:/nba@champion", Catalog.default(), tracking_uri=uri)
    assert not mm.start().swapped and mm.current.is_baseline  # nothing registered yet
    v1 = register(_train("ignored", 0, 1))
    res = mm.poll()
    assert res is not None and res.swapped and mm.current.version == f"nba/{v1}"
    assert mm.poll() is None
    v2 = register(_train("ignored", 2, 3))
    res = mm.poll()
    assert res is not None and res.swapped and mm.current.version == f"nba/{v2}"


class FlakyPolicy(Policy):
    """Scores the canaries, then fails on HCPs whose id starts with 'BOOM'."""

    name = "flaky"

    def probabilities(self, context: DecisionContext, actions: Sequence[Action]) -> Probabilities:
        if context.hcp.hcp_id.startswith("BOOM"):
            raise RuntimeError("model crashed")
        return np.full(len(actions), 1.0 / len(actions))


def test_a_model_failing_on_one_request_falls_back_to_the_baseline(tmp_path: Path) -> None:
    s = make_settings(tmp_path, model_uri="flaky")
    with TestClient(create_app(s, loader=lambda uri: FlakyPolicy())) as c:
        for h in ("BOOM1", "OK1"):
            c.put(f"/v1/hcps/{h}", json=HCP_BODY, headers=auth("report"))
        bad = c.post("/v1/decisions", json={"hcp_id": "BOOM1"}, headers=auth("decide"))
        good = c.post("/v1/decisions", json={"hcp_id": "OK1"}, headers=auth("decide"))
        assert bad.status_code == 201 and good.status_code == 201
        assert bad.json()["model_version"] == "fallback:baseline:uniform"
        assert bad.json()["policy"] == "uniform"
        assert good.json()["model_version"] == "flaky"
