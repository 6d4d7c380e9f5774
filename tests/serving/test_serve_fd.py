"""``nba serve --fd``: the service on a socket its caller bound and owns, so that no
other process can take the port between its choice and the server's start (the
tests' ``start_server`` relies on it: with a port chosen free and released, another
test suite's server on the same machine once answered a test's requests)."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from serving_testkit import HCP_BODY, auth, listening_socket, start_server, stop_server

from nba_cli.main import main
from serving.store import EventStore

ENV = {"NBA_AUTH_DISABLED": "true"}


def _run_serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]) -> Any:
    """``nba serve ARGS`` with uvicorn recorded instead of run: each call's keyword
    arguments (``uvicorn.run``'s, or the socket and options handed to the service's
    own run on an inherited socket)."""
    import uvicorn

    from serving import cli

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    monkeypatch.setattr(
        cli, "_serve_on", lambda sock, options: calls.append({"sock": sock, **options})
    )
    env = {**ENV, "NBA_STORE_PATH": str(tmp_path / "e.db")}
    result = CliRunner().invoke(main, ["serve", *args], env=env)
    return result, calls


def test_serve_hands_uvicorn_the_inherited_socket(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with listening_socket() as sock:
        port = sock.getsockname()[1]
        result, calls = _run_serve(monkeypatch, tmp_path, ["--fd", str(sock.fileno())])
        assert result.exit_code == 0, result.output
        served = calls[0]["sock"]
        # the inherited socket itself, known as the TCP socket it is (uvicorn's own
        # fd= option would take it for a Unix one)
        assert served.fileno() == sock.fileno()
        assert served.family == socket.AF_INET and served.type == socket.SOCK_STREAM
        # it owns the descriptor as the server would: let go of it here, or its
        # collection would close whatever later reuses the number
        served.detach()
        assert "fd" not in calls[0] and calls[0]["workers"] == 1
        assert f"nba serve: http://127.0.0.1:{port}  workers=1" in result.output
        # the socket is left open and listening for uvicorn
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)


def _nodelay_of_an_accepted_connection(listener: socket.socket) -> int:
    """TCP_NODELAY of a connection an asyncio server accepted on ``listener``."""
    import asyncio

    async def run() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                raw = transport.get_extra_info("socket")
                accepted.set_result(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        try:
            with socket.create_connection(listener.getsockname()[:2]):
                return await asyncio.wait_for(accepted, 10)
        finally:
            server.close()

    return asyncio.run(run())


def test_connections_on_the_inherited_socket_are_not_delayed_by_nagle() -> None:
    """The event loop sets TCP_NODELAY on the connections it accepts only on a socket
    it knows as TCP: on the socket ``inherited_socket`` makes it does; on the Unix-typed
    socket uvicorn's ``fd=`` made (every keep-alive answer then waited for the
    client's delayed acknowledgement) it does not."""
    from serving.cli import inherited_socket

    with listening_socket() as sock:
        assert _nodelay_of_an_accepted_connection(inherited_socket(os.dup(sock.fileno()))) == 1
    with listening_socket() as sock:
        as_unix = socket.fromfd(sock.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
        assert _nodelay_of_an_accepted_connection(as_unix) == 0


def test_serve_without_fd_binds_host_and_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result, calls = _run_serve(monkeypatch, tmp_path, ["--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "sock" not in calls[0] and calls[0]["port"] == 8123
    assert "nba serve: http://127.0.0.1:8123" in result.output


def _closed_fd() -> int:
    read, write = os.pipe()
    os.close(write)
    os.close(read)
    return read


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: None, "is not an open file descriptor"),
        (lambda: "pipe", "is not a socket"),
        (lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM), "is not a stream"),
        (lambda: socket.socket(), "is not listening"),
    ],
    ids=["closed", "pipe", "udp", "not-listening"],
)
def test_serve_refuses_an_fd_that_is_not_a_listening_stream_socket(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make: Any, match: str
) -> None:
    opened = make()
    pipe: tuple[int, int] | None = None
    if opened is None:
        fd = _closed_fd()
    elif opened == "pipe":
        pipe = os.pipe()
        fd = pipe[0]
    else:
        opened.bind(("127.0.0.1", 0))
        fd = opened.fileno()
    try:
        result, calls = _run_serve(monkeypatch, tmp_path, ["--fd", str(fd)])
    finally:
        if pipe is not None:
            os.close(pipe[0])
            os.close(pipe[1])
        elif opened is not None:
            opened.close()
    assert result.exit_code == 2 and not calls
    assert "'--fd'" in result.output and match in result.output, result.output


@pytest.mark.parametrize("extra", [["--port", "8000"], ["--host", "0.0.0.0"]])
def test_serve_refuses_fd_with_host_or_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, extra: list[str]
) -> None:
    with listening_socket() as sock:
        result, calls = _run_serve(monkeypatch, tmp_path, ["--fd", str(sock.fileno()), *extra])
    assert result.exit_code == 2 and not calls
    assert f"drop {extra[0]}" in result.output, result.output


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_start_server_owns_its_port_from_start_to_stop(tmp_path: Path, workers: int) -> None:
    """The server answers on the socket the test kit bound (its store is this test's),
    nothing else can bind the port while it runs, and once it is stopped the port
    refuses connections: the test process kept no copy of the socket that would
    queue them unanswered."""
    proc, base = start_server(tmp_path, workers=workers)
    port = int(base.rsplit(":", 1)[1])
    try:
        rival = socket.socket()
        with rival, pytest.raises(OSError) as refused:
            rival.bind(("127.0.0.1", port))
        assert refused.value.errno == errno.EADDRINUSE
        with httpx.Client(base_url=base, timeout=30) as http:
            put = http.put(f"/v1/hcps/FD{workers}", json=HCP_BODY, headers=auth("report"))
            assert put.status_code == 201, put.text
        # this test's server answered, not another's: the HCP is in this test's store
        store = EventStore(tmp_path / "events.db")
        try:
            hcp = store.get_hcp(f"FD{workers}")
        finally:
            store.close()
        assert hcp is not None and hcp.specialty == HCP_BODY["specialty"]
    finally:
        stop_server(proc)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/readyz", timeout=5)


@pytest.mark.slow
def test_start_server_port_is_taken_before_the_server_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """At the moment the server's process is started (before it has imported or bound
    anything) its port is already taken: another process trying to bind it then
    fails. With a port chosen free and released, that bind succeeded, and the other
    process's server could answer the test's requests."""
    import subprocess

    real_popen = subprocess.Popen
    rival_binds: list[int] = []

    def popen(args: list[str], **kwargs: Any) -> Any:
        if "--fd" in args:
            fd = int(args[args.index("--fd") + 1])
            with socket.socket(fileno=os.dup(fd)) as inherited:
                port = inherited.getsockname()[1]
        else:
            port = int(args[args.index("--port") + 1])
        with socket.socket() as rival:
            try:
                rival.bind(("127.0.0.1", port))
            except OSError as exc:
                rival_binds.append(exc.errno)
            else:
                rival_binds.append(0)
        return real_popen(args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen)
    proc, base = start_server(tmp_path)
    try:
        assert httpx.get(f"{base}/readyz", timeout=30).status_code == 200
    finally:
        stop_server(proc)
    assert rival_binds == [errno.EADDRINUSE]
