"""The fast layer of the two hot routes (serving/api/fast.py) answers exactly as
FastAPI's routes do.

Two real ``nba serve`` processes on 127.0.0.1, one with ``NBA_FAST_ROUTES=true``
(the default) and one with ``false`` (every request through FastAPI), each on its
own store holding the same HCPs, get the same requests, good and bad; status,
headers (but the date) and body bytes must be equal. In-process tests check that
the fast layer really answers the good requests (and leaves the others to
FastAPI), and that the body it accepts is the body FastAPI accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError
from serving_testkit import HCP_BODY, KEYS, auth, make_settings, start_server, stop_server

import serving.api.fast as fast
from serving import schemas
from serving.main import create_app

JSON = {"content-type": "application/json"}
Case = tuple[str, str, dict[str, str], bytes, int]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Base URLs of a server with the fast routes and one without, same HCPs."""
    procs: list[Any] = []
    bases: dict[str, str] = {}
    try:
        for name, on in (("fast", "true"), ("fastapi", "false")):
            tmp = tmp_path_factory.mktemp(name)
            proc, base = start_server(tmp, NBA_FAST_ROUTES=on)
            procs.append(proc)
            bases[name] = base
            with httpx.Client(base_url=base, timeout=60) as c:
                for h in ("H1", "H2"):
                    r = c.put(f"/v1/hcps/{h}", json=HCP_BODY, headers=auth("report"))
                    assert r.status_code == 201, r.text
        yield bases
    finally:
        for p in procs:
            stop_server(p)


def _send(base: str, case: Case) -> httpx.Response:
    method, path, headers, body, _ = case
    with httpx.Client(base_url=base, timeout=60) as c:
        return c.request(method, path, headers=headers, content=body)


def _seen(r: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k, v) for k, v in r.headers.items() if k not in ("date",))
    return r.status_code, headers, r.content


def _cases() -> list[Case]:
    dk = {**auth("decide"), **JSON}
    rk = {**auth("report"), **JSON}
    good = {"hcp_id": "H1", "channels": ["email"], "k": 3, "event_id": "FR-E1"}
    out = "/v1/events/FR-E1/outcomes"
    d = "/v1/decisions"

    def js(x: Any) -> bytes:
        return json.dumps(x).encode()

    return [
        # decisions: good, then every kind of bad
        ("POST", d, dk, js(good), 201),
        (
            "POST",
            d,
            {**dk, "content-type": "application/json; charset=utf-8"},
            js({**good, "event_id": "FR-E2", "hcp_id": "H2"}),
            201,
        ),
        ("POST", d, dk, js(good), 409),  # the event id is used
        ("POST", d, dk, js({"hcp_id": "NOPE"}), 404),
        ("POST", d, dk, b'{"hcp_id": "H1",', 422),  # malformed JSON
        ("POST", d, dk, b"", 422),  # no body
        ("POST", d, dk, b"[1, 2]", 422),
        ("POST", d, dk, js({"channels": ["email"]}), 422),  # hcp_id missing
        ("POST", d, dk, js({"hcp_id": "H1", "k": "three"}), 422),
        ("POST", d, dk, js({"hcp_id": "H1", "k": 11, "channels": 5}), 422),
        ("POST", d, dk, js({"hcp_id": "H1", "colour": "red"}), 422),
        ("POST", d, dk, js({"hcp_id": "H1", "as_of": "2026-01-05T09:00:00Z"}), 422),
        ("POST", d, dk, b'{"hcp_id": "H1", "context": {"x": NaN}}', 422),
        ("POST", d, {**auth("decide"), "content-type": "text/plain"}, js(good), 422),
        ("POST", d, auth("decide"), js(good), 422),  # no content type
        ("POST", d, JSON, js({"hcp_id": "H1"}), 401),
        ("POST", d, {**JSON, "Authorization": "Bearer wrong-key"}, js({"hcp_id": "H1"}), 401),
        ("POST", d, rk, js({"hcp_id": "H1"}), 403),  # a report key may not decide
        ("POST", d, JSON, b'{"hcp_id": ', 422),  # malformed JSON is refused before the key
        ("POST", d, {"X-API-Key": KEYS["decide"], **JSON}, js({"hcp_id": "NOPE"}), 404),
        ("GET", d, dk, b"", 405),
        # outcomes on the decision above
        ("POST", out, rk, js({"type": "opened", "source_id": "m1"}), 201),
        ("POST", out, rk, js({"type": "opened", "source_id": "m1"}), 200),  # a repeat
        ("POST", out, rk, js({"type": "dismissed"}), 422),  # no reason code
        ("POST", out, rk, js({"type": "teleported"}), 422),
        ("POST", out, rk, js({"type": "opened", "value": "lots"}), 422),
        ("POST", out, rk, js({"type": "opened", "ts": "2026-01-01T00:00:00"}), 422),  # naive
        ("POST", out, rk, b"{oops", 422),
        ("POST", out, rk, js({"type": "clicked", "action_id": "NOT-AN@email"}), 422),
        ("POST", "/v1/events/NOPE/outcomes", rk, js({"type": "opened"}), 404),
        ("POST", "/v1/events/" + "e" * 129 + "/outcomes", rk, js({"type": "opened"}), 422),
        ("POST", out, dk, js({"type": "opened"}), 403),  # a decide key may not report
        ("POST", out, JSON, js({"type": "opened"}), 401),
    ]


def test_fast_routes_answer_as_fastapi_does(servers: dict[str, str]) -> None:
    """Every case gets the same status, headers and body from both servers, and
    the status the API promises."""
    differ: list[str] = []
    for case in _cases():
        fast_r, slow_r = _send(servers["fast"], case), _send(servers["fastapi"], case)
        seen = _seen(fast_r)
        if seen != _seen(slow_r):
            differ.append(f"{case[0]} {case[1][:40]} {case[3][:40]!r}: {seen} != {_seen(slow_r)}")
        assert fast_r.status_code == case[4], (case, fast_r.text)
    assert differ == []


def test_fast_routes_count_the_same_metrics(servers: dict[str, str]) -> None:
    """The latency histogram counts the same requests under the same route
    templates and statuses (after the same requests to both servers)."""
    dk = {**auth("decide"), **JSON}
    body = json.dumps({"hcp_id": "H2", "channels": ["webinar"]}).encode()
    counts: dict[str, list[str]] = {}
    for name, base in servers.items():
        for _ in range(3):
            _send(base, ("POST", "/v1/decisions", dk, body, 0))
            _send(base, ("POST", "/v1/decisions", dk, b"{", 0))
        text = httpx.get(f"{base}/metrics", headers=auth("admin"), timeout=60).text
        counts[name] = sorted(
            line
            for line in text.splitlines()
            if line.startswith("nba_request_seconds_count")
            and re.search(r'route="/v1/(decisions|events/\{event_id\}/outcomes)"', line)
        )
    assert counts["fast"] == counts["fastapi"]
    assert any('status="422"' in line for line in counts["fast"])


# ------------------------------------------------------------------- in process
@pytest.fixture
def spied(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the fast layer's route functions called (``decide``, ``outcome``)."""
    calls: list[str] = []
    for name, called in (("_decide", "decide"), ("_start_outcome", "outcome")):
        real = getattr(fast, name)

        def spy(*args: Any, _real: Any = real, _name: str = called) -> Any:
            calls.append(_name)
            return _real(*args)

        monkeypatch.setattr(fast, name, spy)
    return calls


def _hcp(c: TestClient) -> None:
    r = c.put("/v1/hcps/H1", json=HCP_BODY, headers=auth("report"))
    assert r.status_code == 201


def test_the_fast_layer_answers_good_requests_and_leaves_the_rest(
    tmp_path: Path, spied: list[str]
) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as c:
        _hcp(c)
        r = c.post(
            "/v1/decisions", json={"hcp_id": "H1", "channels": ["email"]}, headers=auth("decide")
        )
        assert r.status_code == 201 and spied == ["decide"]
        eid = r.json()["event_id"]
        r = c.post(f"/v1/events/{eid}/outcomes", json={"type": "opened"}, headers=auth("report"))
        assert r.status_code == 201 and spied == ["decide", "outcome"]
        # refused before the work: FastAPI answers, the fast layer's work never runs
        assert (
            c.post("/v1/decisions", content=b"{", headers={**auth("decide"), **JSON}).status_code
            == 422
        )
        assert (
            c.post("/v1/decisions", json={"hcp_id": "H1"}, headers=auth("report")).status_code
            == 403
        )
        assert (
            c.post(
                f"/v1/events/{eid}/outcomes", json={"type": "x"}, headers=auth("report")
            ).status_code
            == 422
        )
        assert spied == ["decide", "outcome"]
        # an unknown HCP is the work's own error, answered by the app's handler
        r = c.post("/v1/decisions", json={"hcp_id": "NOPE"}, headers=auth("decide"))
        assert r.status_code == 404 and r.json()["code"] == "unknown_hcp"
        assert spied[-1] == "decide"


def test_switched_off_or_overridden_the_requests_go_to_fastapi(
    tmp_path: Path, spied: list[str]
) -> None:
    from serving.api.deps import require_decide
    from serving.auth import Principal

    with TestClient(create_app(make_settings(tmp_path, fast_routes=False))) as c:
        _hcp(c)
        r = c.post("/v1/decisions", json={"hcp_id": "H1"}, headers=auth("decide"))
        assert r.status_code == 201 and spied == []
    with TestClient(create_app(make_settings(tmp_path / "b"))) as c:
        _hcp(c)
        app: Any = c.app
        app.dependency_overrides[require_decide] = lambda: Principal("x", frozenset({"decide"}))
        r = c.post("/v1/decisions", json={"hcp_id": "H1"})  # no key: overridden
        assert r.status_code == 201 and spied == []


@pytest.mark.parametrize("fast_routes", [True, False])
def test_an_unexpected_error_is_a_logged_500_either_way(
    tmp_path: Path, fast_routes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.engine import DecisionEngine

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    # the FastAPI route's decide and the fast layer both start here
    monkeypatch.setattr(DecisionEngine, "start_decision", broken)
    app = create_app(make_settings(tmp_path, fast_routes=fast_routes))
    with TestClient(app, raise_server_exceptions=False) as c:
        _hcp(c)
        r = c.post("/v1/decisions", json={"hcp_id": "H1"}, headers=auth("decide"))
        assert r.status_code == 500
        assert r.json() == {"code": "internal", "message": "internal error; it has been logged"}
        text = c.get("/metrics", headers=auth("admin")).text
        assert 'route="/v1/decisions",status="500"' in text


BODIES = [
    b'{"hcp_id":"a","hcp_id":"b"}',
    b'{"hcp_id":"\\ud800x"}',
    b'{"hcp_id":"a","context":{"x":Infinity,"y":1e400,"z":123456789012345678901234567890}}',
    b'{"hcp_id":"a","context":{"x":NaN}}',
    b'{"hcp_id":" a ","k":3.0,"explain":"true","defer_activation":1}',
    b'{"hcp_id":"a","k":true,"as_of":1700000000}',
    b'\xef\xbb\xbf{"hcp_id":"a"}',
    '{"hcp_id":"a"}'.encode("utf-16"),
    b'{"hcp_id":"a\xff"}',
    b'{"hcp_id":"a","context":{"x":1.0000000000000002,"y":-0.0,"z":"\\u0000"}}',
]


@pytest.mark.parametrize("body", BODIES)
def test_a_body_the_fast_layer_accepts_is_the_body_fastapi_accepts(body: bytes) -> None:
    """``model_validate_json`` (the fast layer) against ``json.loads`` then
    validation (FastAPI): whatever the first accepts, the second accepts as the
    same request; what it refuses goes to FastAPI, so either answer is FastAPI's."""
    try:
        ours = schemas.DecisionRequest.model_validate_json(body)
    except ValidationError:
        return  # FastAPI answers
    theirs = TypeAdapter(schemas.DecisionRequest).validate_python(json.loads(body))
    assert ours == theirs


def test_only_plain_json_media_and_well_formed_event_paths_are_taken() -> None:
    assert fast.is_json_media(b"application/json")
    assert fast.is_json_media(b"APPLICATION/JSON;charset=utf-8")
    for other in (b"", b"text/json", b"application/json-seq", b"application/merge+json"):
        assert not fast.is_json_media(other)
    assert fast.outcome_event_id("/v1/events/E-1/outcomes") == "E-1"
    assert fast.outcome_event_id("/v1/events/" + "e" * 128 + "/outcomes") == "e" * 128
    for path in (
        "/v1/events/" + "e" * 129 + "/outcomes",
        "/v1/events//outcomes",
        "/v1/events/outcomes",
        "/v1/events/a/b/outcomes",
        "/v1/events/E1/outcomes/",
        "/v1/outcomes:batch",
    ):
        assert fast.outcome_event_id(path) is None, path
