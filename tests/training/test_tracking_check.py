"""The tracking-server check the commands make before importing MLflow
(training/tracking.py), against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pg_server import free_port

from training.tracking import TrackingUnavailable, check_server


class _Fake:
    """An HTTP server on 127.0.0.1 that answers every GET with ``status`` and
    ``body``, and keeps the paths and Authorization headers it was sent."""

    def __init__(self, status: int, body: str, content_type: str = "application/json") -> None:
        self.requests: list[tuple[str, str | None]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.requests.append((self.path, self.headers.get("Authorization")))
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., _Fake]]:
    """Start fakes (``serve(status, body, content_type)``); all stopped after the test."""
    started: list[_Fake] = []

    def start(status: int, body: str, content_type: str = "application/json") -> _Fake:
        started.append(_Fake(status, body, content_type))
        return started[-1]

    yield start
    for fake in started:
        fake.close()


def test_a_store_that_is_not_a_server_is_returned_without_a_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert check_server(uri) == uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert check_server() == uri
    assert not (tmp_path / "mlflow.db").exists()


def test_an_answering_mlflow_server_passes_and_gets_the_token(
    serve: Callable[..., _Fake], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = serve(200, json.dumps({"experiments": []}))
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-1")
    assert check_server(fake.uri) == fake.uri
    [(path, auth)] = fake.requests
    assert path.startswith("/api/2.0/mlflow/experiments/search?")
    assert auth == "Bearer tok-1"


def test_basic_credentials_are_sent_when_there_is_no_token(
    serve: Callable[..., _Fake], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = serve(200, "{}")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fake.uri)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ann")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    assert check_server() == fake.uri  # the URI from the environment
    assert fake.requests[0][1] == "Basic YW5uOnB3"  # base64 of "ann:pw"


def test_an_unreachable_server_is_named_with_what_to_do() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TrackingUnavailable, match="cannot be reached") as info:
        check_server(dead, connect_timeout=5)
    assert f"MLflow tracking server {dead}" in str(info.value)
    assert "MLFLOW_TRACKING_URI" in str(info.value)


@pytest.mark.parametrize(
    ("status", "body", "content_type", "match"),
    [
        (401, "{}", "application/json", r"refused the credentials \(HTTP 401\)"),
        (403, "no", "text/plain", r"refused the credentials \(HTTP 403\)"),
        (404, "<html>not here</html>", "text/html", r"does not answer as an MLflow.*HTTP 404"),
        (200, "<html>a web page</html>", "text/html", r"does not answer as an MLflow.*HTTP 200"),
        (200, "[1, 2]", "application/json", r"does not answer as an MLflow.*HTTP 200"),
        (500, '{"error": "x"}', "application/json", r"does not answer as an MLflow.*HTTP 500"),
    ],
)
def test_a_server_that_is_not_a_usable_mlflow_server_is_refused(
    serve: Callable[..., _Fake], status: int, body: str, content_type: str, match: str
) -> None:
    fake = serve(status, body, content_type)
    with pytest.raises(TrackingUnavailable, match=match) as info:
        check_server(fake.uri)
    assert fake.uri in str(info.value)


_RUN = """
import sys
from nba_cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = [m for m in ("mlflow", "pandas", "scipy", "training.train", "training.evaluate",
                     "training.promote") if m in sys.modules]
print("IMPORTED:" + ",".join(heavy))
sys.exit(code)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["train"],
        ["promote"],
        ["evaluate", "--policy", "models:/nba@champion"],
    ],
    ids=["train", "promote", "evaluate"],
)
def test_commands_refuse_a_dead_server_before_importing_the_work(
    args: list[str], tmp_path: Path
) -> None:
    """The refusal comes before MLflow, pandas, scipy and the training code are
    imported: no work is started, and it costs a fraction of the CPU."""
    dead = f"http://127.0.0.1:{free_port()}"
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {**os.environ, "MLFLOW_TRACKING_URI": dead, "NBA_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run(
        [sys.executable, "-c", _RUN, args[0], "--logs", str(logs), *args[1:]],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"MLflow tracking server {dead} cannot be reached" in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout.strip().splitlines()[-1] == "IMPORTED:", out.stdout
