"""The MLflow-server deployment (docs/deploy.md), end to end on real processes.

A real PostgreSQL server (fixture ``postgres``) is the backend store of a real
``mlflow server`` process (fixture ``mlflow_server``) with a local artifact
root. Against it, over HTTP only:

- ``nba train`` registers the challenger and ``nba promote`` moves the
  ``champion`` alias; the runs, versions and aliases are rows of the PostgreSQL
  database, the model files and the promote run's PNG plot are files under the
  artifact root, and nothing is written to a local SQLite store or ``mlruns``;
- two ``nba serve`` processes (replicas, one configured with
  ``MLFLOW_TRACKING_URI``, the other with ``NBA_TRACKING_URI``) load
  ``models:/nba@champion`` from the server and both follow the alias when it
  moves to a new version and back;
- bad addresses fail clearly: ``nba train`` / ``nba promote`` stop before any
  work, naming the URI; a replica whose tracking server is down starts on the
  baseline within seconds and says why.

The gate's promotion is deterministic: the synthetic log's reward is learnable
(training.synthetic) and every seed is fixed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow_server import MlflowServer
from pg_server import PostgresServer, free_port

from training.synthetic import SyntheticLogs, write_synthetic_logs

pytestmark = pytest.mark.slow

NBA = [sys.executable, "-m", "nba_cli.main"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _env(server_url: str | None, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBA_", "MLFLOW_"))}
    env["NBA_DATA_DIR"] = str(data_dir)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if server_url is not None:
        env["MLFLOW_TRACKING_URI"] = server_url
    env.update(extra)
    return env


def _nba(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NBA, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=900, check=False
    )


@dataclass(frozen=True)
class Trained:
    logs: SyntheticLogs
    workdir: Path
    data_dir: Path
    train: subprocess.CompletedProcess[str]
    promote: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def trained(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """``nba train`` on the first six days, ``nba promote`` on the last four, both
    against the tracking server, run as a user runs them (subprocesses)."""
    root = tmp_path_factory.mktemp("deploy")
    logs = write_synthetic_logs(root / "logs", n_decisions=12000, n_hcps=600, days=10, seed=5)
    until = logs.start + timedelta(days=5)
    env = _env(mlflow_server.url, root / "data")
    train = _nba(
        [
            "train",
            "--logs",
            str(logs.path),
            "--until",
            str(until),
            "--seed",
            "1",
            "--vw-args",
            "--epsilon 0.3",
        ],
        env,
        root,
    )
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    promote = _nba(
        [
            "promote",
            "--logs",
            str(logs.path),
            "--since",
            str(until + timedelta(days=1)),
            "--estimator",
            "dr",
            "--interval",
            "gaussian",
            "--folds",
            "3",
        ],
        env,
        root,
    )
    return Trained(logs, root, root / "data", train, promote)


def _client(server: MlflowServer) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


def test_train_registers_and_promote_moves_the_champion_on_the_server(
    trained: Trained, mlflow_server: MlflowServer, postgres: PostgresServer
) -> None:
    import psycopg

    assert "registered nba version 1 as 'challenger'" in trained.train.stdout
    assert trained.promote.returncode == 0, trained.promote.stdout + trained.promote.stderr
    assert "promoted: champion -> version 1" in trained.promote.stdout

    client = _client(mlflow_server)
    assert str(client.get_model_version_by_alias("nba", "challenger").version) == "1"
    assert str(client.get_model_version_by_alias("nba", "champion").version) == "1"
    train_exp = client.get_experiment_by_name("train")
    promote_exp = client.get_experiment_by_name("promote")
    assert train_exp is not None and promote_exp is not None
    # artifacts go through the server (proxied), never to a path the client chose
    assert train_exp.artifact_location.startswith("mlflow-artifacts:")
    (train_run,) = client.search_runs([train_exp.experiment_id])
    assert train_run.data.params["seed"] == "1"
    (promote_run,) = client.search_runs([promote_exp.experiment_id])
    assert promote_run.data.tags["decision"] == "promoted"

    # the backend store is the PostgreSQL database behind the server
    dbname = mlflow_server.backend_store_uri.rsplit("/", 1)[1]
    with psycopg.connect(postgres.dsn(dbname)) as conn:
        aliases = conn.execute(
            "SELECT alias, version FROM registered_model_aliases WHERE name = 'nba' ORDER BY alias"
        ).fetchall()
        runs = conn.execute("SELECT run_uuid FROM runs").fetchall()
    assert aliases == [("challenger", 1), ("champion", 1)]
    assert {r[0] for r in runs} == {train_run.info.run_id, promote_run.info.run_id}

    # the files are under the server's artifact root
    art = mlflow_server.artifact_root
    vw_models = list(art.rglob("model.vw"))
    assert len(vw_models) == 1 and vw_models[0].stat().st_size > 0
    assert (vw_models[0].parent / "policy.json").is_file()
    assert len(list(art.rglob("MLmodel"))) == 1
    run_dir = art / promote_exp.experiment_id / promote_run.info.run_id / "artifacts"
    png = run_dir / "evaluation" / "estimates.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    decision = json.loads((run_dir / "decision.json").read_text())
    assert decision["promoted"] is True and decision["challenger_version"] == "1"
    summary = art / train_exp.experiment_id / train_run.info.run_id / "artifacts" / "summary.txt"
    assert "trained on" in summary.read_text()

    # nothing went to a local store
    assert not (trained.data_dir / "mlflow.db").exists()
    assert not list(trained.workdir.rglob("mlflow.db"))
    assert not (trained.workdir / "mlruns").exists()
    assert not (trained.workdir / "mlartifacts").exists()


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path
    # one client for its calls: httpx.get builds a client, and an SSL context, each
    # call (about 40 ms of CPU, at every poll)
    http: httpx.Client

    def get(self, path: str) -> Any:
        r = self.http.get(f"{self.base}{path}")
        assert r.status_code == 200, r.text
        return r.json()

    def decide(self, hcp_id: str) -> dict[str, Any]:
        r = self.http.post(
            f"{self.base}/v1/decisions",
            json={"hcp_id": hcp_id, "channels": ["email"], "context": {"requester": "test"}},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body


def _start_replica(env: dict[str, str], cwd: Path, timeout: float = 240) -> Replica:
    """``nba serve`` on a loopback socket bound here and handed over (``--fd``): no
    other process can take its port before the replica serves on it."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as listener:  # closed here once handed over
        port = listener.getsockname()[1]
        log = cwd / f"replica-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*NBA, "serve", "--fd", str(listener.fileno()), "--log-level", "info"],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(listener.fileno(),),
            )
    replica = Replica(proc, f"http://127.0.0.1:{port}", log, httpx.Client(timeout=30))
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if replica.http.get(f"{replica.base}/readyz", timeout=2).status_code == 200:
                return replica
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            _stop(replica)
            raise AssertionError(f"replica not ready in {timeout:.0f} s:\n{log.read_text()}")
        time.sleep(0.3)


def _stop(replica: Replica) -> None:
    import signal

    replica.http.close()
    if replica.proc.poll() is None:
        os.killpg(replica.proc.pid, signal.SIGTERM)
        try:
            replica.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(replica.proc.pid, signal.SIGKILL)
            replica.proc.wait(timeout=30)


@pytest.fixture
def replicas(
    trained: Trained, mlflow_server: MlflowServer, tmp_path: Path
) -> Iterator[tuple[Replica, Replica]]:
    """Two service processes on one event store, following ``models:/nba@champion``
    on the tracking server; one told by MLFLOW_TRACKING_URI, one by NBA_TRACKING_URI."""
    assert trained.promote.returncode == 0, trained.promote.stdout + trained.promote.stderr
    common = {
        "NBA_AUTH_DISABLED": "true",
        "NBA_STORE_PATH": str(tmp_path / "events.db"),
        "NBA_MODEL_POLL_SECONDS": "1",
    }
    env_a = _env(mlflow_server.url, tmp_path / "data-a", **common)
    env_b = _env(None, tmp_path / "data-b", NBA_TRACKING_URI=mlflow_server.url, **common)
    started: list[Replica] = []
    try:
        started.append(_start_replica(env_a, tmp_path))
        started.append(_start_replica(env_b, tmp_path))
        yield started[0], started[1]
    finally:
        for r in started:
            _stop(r)


def _wait_for_version(replicas: tuple[Replica, ...], version: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        seen = [r.get("/v1/models/current")["model_version"] for r in replicas]
        if all(v == version for v in seen):
            return
        time.sleep(0.5)
    raise AssertionError(f"replicas serve {seen}, not {version}, {timeout:.0f} s after the move")


def test_two_replicas_load_the_champion_and_follow_the_alias(
    trained: Trained, mlflow_server: MlflowServer, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    for replica in (a, b):
        cur = replica.get("/v1/models/current")
        assert cur["is_baseline"] is False, cur
        assert cur["model_version"] == "nba/1"
        assert cur["following"] == "models:/nba@champion"
    hcp = {
        "specialty": "cardiology",
        "decile": 8,
        "market": "US",
        "adoption_stage": "aware",
        "consents": ["email", "rep_visit"],
    }
    r = httpx.put(f"{a.base}/v1/hcps/hcp-000001", json=hcp, timeout=30)
    assert r.status_code in (200, 201), r.text
    assert a.decide("hcp-000001")["model_version"] == "nba/1"
    assert b.decide("hcp-000001")["model_version"] == "nba/1"  # the shared event store

    # a second model is registered as challenger: the replicas keep the champion
    env = _env(mlflow_server.url, trained.data_dir)
    until = trained.logs.start + timedelta(days=5)
    second = _nba(
        ["train", "--logs", str(trained.logs.path), "--until", str(until), "--seed", "2"],
        env,
        trained.workdir,
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "registered nba version 2 as 'challenger'" in second.stdout
    time.sleep(3)  # three alias checks
    assert [x.get("/v1/models/current")["model_version"] for x in (a, b)] == ["nba/1"] * 2

    # the champion alias moves (as an operator's rollout or rollback does): both follow
    client = _client(mlflow_server)
    client.set_registered_model_alias("nba", "champion", "2")
    _wait_for_version((a, b), "nba/2")
    assert a.decide("hcp-000001")["model_version"] == "nba/2"
    assert b.decide("hcp-000001")["model_version"] == "nba/2"
    client.set_registered_model_alias("nba", "champion", "1")
    _wait_for_version((a, b), "nba/1")
    assert b.decide("hcp-000001")["model_version"] == "nba/1"
    for x in (a, b):
        metrics = httpx.get(f"{x.base}/metrics", timeout=30).text
        assert 'nba_model_swaps_total{result="swapped"} 3.0' in metrics, x.log.read_text()[-4000:]


def test_commands_stop_before_any_work_when_the_server_is_unreachable(
    trained: Trained, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    env = _env(dead, tmp_path / "data")
    for args in (
        ["train", "--logs", str(trained.logs.path)],
        ["promote", "--logs", str(trained.logs.path)],
        ["evaluate", "--logs", str(trained.logs.path), "--policy", "models:/nba@champion"],
    ):
        out = _nba(args, env, tmp_path)
        assert out.returncode == 1, out.stdout + out.stderr
        assert f"MLflow tracking server {dead} cannot be reached" in out.stderr
        assert "Traceback" not in out.stderr
        assert "trained on" not in out.stdout  # no work was done first
    assert not (tmp_path / "data" / "mlflow.db").exists()


def test_a_replica_whose_tracking_server_is_down_serves_the_baseline_and_says_why(
    tmp_path: Path,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    env = _env(
        dead,
        tmp_path / "data",
        NBA_AUTH_DISABLED="true",
        NBA_STORE_PATH=str(tmp_path / "events.db"),
        NBA_MODEL_POLL_SECONDS="0",
    )
    # with MLflow's own retries (about four minutes per call, two calls) it would not be
    # ready in time; the service bounds them against a tracking server
    replica = _start_replica(env, tmp_path, timeout=150)
    try:
        cur = replica.get("/v1/models/current")
        assert cur["is_baseline"] is True
        assert "models:/nba@champion" in cur["note"]
        assert "registry did not answer" in cur["note"] or dead in cur["note"], cur["note"]
    finally:
        _stop(replica)
    assert not (tmp_path / "data" / "mlflow.db").exists()
