"""Auth on every route: 401 without a key, 403 with the wrong scope; keys hashed in
settings; default secrets refused; keys and HCP ids never logged in clear."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from serving_testkit import HCP_BODY, KEYS, auth, make_settings

from serving.main import create_app
from serving.settings import Settings, hash_key

EID = "01JAUTHTEST000000000000000"

#: (method, path, json body, files, scope the route needs)
ROUTES: list[tuple[str, str, Any, Any, str]] = [
    ("post", "/v1/decisions", {"hcp_id": "H1"}, None, "decide"),
    ("post", "/v1/decisions:batch", {"hcp_ids": ["H1"]}, None, "decide"),
    ("post", f"/v1/events/{EID}/outcomes", {"type": "opened"}, None, "report"),
    ("post", f"/v1/events/{EID}/activate", None, None, "decide"),
    ("post", "/v1/touches", {"hcp_id": "H1", "channel": "email"}, None, "report"),
    ("put", "/v1/hcps/H1", HCP_BODY, None, "report"),
    ("get", "/v1/hcps/H1", None, None, "report"),
    ("post", "/v1/hcps:import", None, {"file": ("h.csv", b"hcp_id\n")}, "report"),
    ("post", "/v1/touches:import", None, {"file": ("t.csv", b"hcp_id\n")}, "report"),
    (
        "post",
        "/v1/hcps/H1/stated-preferences",
        {"recorded_by": "rep-1", "topics": ["dosing"]},
        None,
        "report",
    ),
    ("post", "/v1/models/reload", None, None, "admin"),
    (
        "post",
        "/personalizer/v1.0/rank",
        {"contextFeatures": [{"hcp_id": "H1"}], "actions": [{"id": "VEL-EFF-02@email"}]},
        None,
        "decide",
    ),
    ("post", f"/personalizer/v1.0/events/{EID}/reward", {"value": 1}, None, "report"),
    ("post", f"/personalizer/v1.0/events/{EID}/activate", None, None, "decide"),
]
READ_ROUTES = ["/v1/models/current", "/v1/rules"]


def call(client: TestClient, method: str, path: str, body: Any, files: Any, headers: Any) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    if files is not None:
        kwargs["files"] = files
    return getattr(client, method)(path, **kwargs)


@pytest.mark.parametrize(("method", "path", "body", "files", "scope"), ROUTES)
def test_every_route_needs_a_key_with_its_scope(
    client: TestClient, method: str, path: str, body: Any, files: Any, scope: str
) -> None:
    r = call(client, method, path, body, files, {})
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
    assert r.headers.get("www-authenticate") == "ApiKey"
    r = call(client, method, path, body, files, {"Authorization": "Bearer not-a-key"})
    assert r.status_code == 401 and r.json()["message"] == "unknown API key"
    for other in KEYS:
        if other not in (scope, "admin"):
            r = call(client, method, path, body, files, auth(other))
            assert r.status_code == 403, (other, r.text)
            assert r.json()["code"] == "forbidden" and scope in r.json()["message"]
    for ok in (scope, "admin"):
        r = call(client, method, path, body, files, auth(ok))
        assert r.status_code not in (401, 403), (ok, r.text)


@pytest.mark.parametrize("path", READ_ROUTES)
def test_read_routes_need_any_valid_key(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    for scope in KEYS:
        assert client.get(path, headers=auth(scope)).status_code == 200


def test_key_headers(client: TestClient) -> None:
    for headers in (
        {"X-API-Key": KEYS["decide"]},
        {"Ocp-Apim-Subscription-Key": KEYS["decide"]},
        {"Authorization": f"Bearer {KEYS['decide']}"},
    ):
        assert client.get("/v1/models/current", headers=headers).status_code == 200
    r = client.get("/v1/models/current", headers={"Authorization": f"Basic {KEYS['decide']}"})
    assert r.status_code == 401


def test_health_and_metrics_are_open(client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200


def test_auth_can_be_switched_off_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = make_settings(tmp_path, api_keys=[], auth_disabled=True)
    with caplog.at_level(logging.WARNING, logger="nba.serving"):
        with TestClient(create_app(s)) as c:
            assert c.get("/v1/models/current").status_code == 200
            r = c.put("/v1/hcps/H1", json=HCP_BODY)
            assert r.status_code == 201
    assert "AUTH IS DISABLED" in caplog.text


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"api_keys": []}, "no API keys configured"),
        (
            {"api_keys": [{"name": "a", "sha256": hash_key("changethis"), "scopes": ["admin"]}]},
            "well-known default secret",
        ),
        ({"api_keys": [{"name": "a", "sha256": "abc", "scopes": ["admin"]}]}, "sha256"),
        (
            {"api_keys": [{"name": "a", "sha256": hash_key("k1-long"), "scopes": ["root"]}]},
            "scopes",
        ),
        ({"api_keys": [{"name": "a", "sha256": hash_key("k1-long"), "scopes": []}]}, "scopes"),
        (
            {
                "api_keys": [
                    {"name": "a", "sha256": hash_key("k1-long"), "scopes": ["admin"]},
                    {"name": "a", "sha256": hash_key("k2-long"), "scopes": ["admin"]},
                ]
            },
            "share a name",
        ),
        ({"max_batch": 0}, "max_batch"),
        ({"model_poll_seconds": -1}, "model_poll_seconds"),
    ],
)
def test_settings_refuse_bad_values(tmp_path: Path, overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        make_settings(tmp_path, **overrides)


def test_settings_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setenv(
        "NBA_API_KEYS",
        json.dumps([{"name": "env", "sha256": hash_key("env-key-1"), "scopes": ["decide"]}]),
    )
    monkeypatch.setenv("NBA_STORE_PATH", str(tmp_path / "x.db"))
    monkeypatch.setenv("NBA_MAX_BATCH", "77")
    s = Settings()
    assert s.max_batch == 77 and s.store_path == tmp_path / "x.db"
    assert s.api_keys[0].name == "env" and not s.auth_disabled


def test_keys_and_hcp_ids_are_not_logged(
    client: TestClient, put_hcp: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    secret_hcp = "HCP-SECRET-4242"
    with caplog.at_level(logging.DEBUG):
        put_hcp(secret_hcp)
        client.post("/v1/decisions", json={"hcp_id": secret_hcp}, headers=auth("decide"))
        client.get(f"/v1/hcps/{secret_hcp}", headers=auth("report"))
        client.get("/v1/models/current", headers={"Authorization": "Bearer wrong-key-xyz"})
    # the server's own records (the test client's httpx logger is not the server)
    server = [r for r in caplog.records if r.name.startswith(("nba", "uvicorn", "fastapi"))]
    assert server, "the access log should have recorded the requests"
    text = "\n".join(r.getMessage() for r in server)
    assert secret_hcp not in text
    for key in (*KEYS.values(), "wrong-key-xyz"):
        assert key not in text
    assert "/v1/hcps/{hcp_id}" in text
