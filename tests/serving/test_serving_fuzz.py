"""No input may produce a 500: malformed and random bodies on every route."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_testkit import auth

EID = "01JFUZZ0000000000000000000"
TARGETS: list[tuple[str, str, str]] = [
    ("post", "/v1/decisions", "decide"),
    ("post", "/v1/decisions:batch", "decide"),
    ("post", f"/v1/events/{EID}/outcomes", "report"),
    ("post", f"/v1/events/{EID}/activate", "decide"),
    ("post", "/v1/touches", "report"),
    ("put", "/v1/hcps/F1", "report"),
    ("post", "/v1/hcps/F1/stated-preferences", "report"),
    ("post", "/v1/models/reload", "admin"),
    ("post", "/personalizer/v1.0/rank", "decide"),
    ("post", f"/personalizer/v1.0/events/{EID}/reward", "report"),
]

MALFORMED: list[bytes] = [
    b"",
    b"{",
    b"null",
    b"[]",
    b"[1, 2, 3]",
    b'"just a string"',
    b"123",
    b"\xff\xfe\x00garbage",
    b'{"hcp_id": "F1", "k": 1e309}',
    b'{"hcp_id": "F1", "k": NaN}',
    b'{"hcp_id": "F1", "context": {"x": Infinity}}',
    b'{"hcp_id": "F1", "k": 99999999999999999999999999999}',
    b'{"hcp_id": "F1", "channels": "email"}',
    b'{"hcp_id": "F1", "channels": [null]}',
    b'{"hcp_id": ["F1"]}',
    b'{"hcp_id": "F1\\u0000"}',
    b'{"hcp_id": "../../etc/passwd"}',
    b'{"hcp_ids": "F1"}',
    b'{"hcp_ids": [{"a": 1}]}',
    b'{"type": "opened", "value": Infinity}',
    b'{"type": "snoozed", "until": "not-a-date"}',
    b'{"type": "opened", "ts": "2026-13-45T99:99:99Z"}',
    b'{"hcp_id": "F1", "channel": "email", "ts": 17}',
    b'{"specialty": 5, "decile": "ten", "market": null, "adoption_stage": []}',
    b'{"uri": ""}',
    b'{"uri": "models:/nope@missing"}',
    b'{"contextFeatures": "x", "actions": "y"}',
    b'{"contextFeatures": [[1]], "actions": [{"id": 5}]}',
    b'{"contextFeatures": [{"hcp_id": {"nested": true}}], "actions": [{"id": "a@b"}]}',
    b'{"value": "1"}',
    b'{"value": null}',
    b'{"a": ' + b"[" * 300 + b"1" + b"]" * 300 + b"}",
]


def _random_json(rng: np.random.Generator, depth: int = 0) -> Any:
    kind = int(rng.integers(0, 7 if depth < 3 else 4))
    if kind == 0:
        return None
    if kind == 1:
        return bool(rng.integers(0, 2))
    if kind == 2:
        return float(rng.normal() * 10 ** int(rng.integers(0, 12)))
    if kind == 3:
        alphabet = list("abcHCP-_@/ é\u0000\u202e0123456789")
        return "".join(rng.choice(alphabet, size=int(rng.integers(0, 12))))
    if kind == 4:
        return [_random_json(rng, depth + 1) for _ in range(int(rng.integers(0, 4)))]
    keys = [
        "hcp_id",
        "k",
        "channels",
        "context",
        "type",
        "value",
        "ts",
        "hcp_ids",
        "actions",
        "contextFeatures",
        "excludedActions",
        "until",
        "reason_code",
        "channel",
        "decile",
        "kind",
        "topics",
        "content_ids",
        "dwell_s",
        "attributes",
        "recorded_by",
    ]
    return {
        str(rng.choice(keys)): _random_json(rng, depth + 1) for _ in range(int(rng.integers(0, 6)))
    }


@pytest.mark.parametrize(("method", "path", "scope"), TARGETS)
def test_malformed_bodies_never_500(
    client: TestClient, put_hcp: Callable[..., str], method: str, path: str, scope: str
) -> None:
    put_hcp("F1")
    rng = np.random.default_rng(20260105)
    bodies = [*MALFORMED, *(json.dumps(_random_json(rng)).encode() for _ in range(40))]
    headers = {**auth(scope), "content-type": "application/json"}
    for body in bodies:
        r = getattr(client, method)(path, content=body, headers=headers)
        assert r.status_code < 500, (path, body[:80], r.status_code, r.text)
        if r.status_code >= 400:
            err = r.json()
            assert set(err) >= {"code", "message"}, err


def test_malformed_uploads_never_500(client: TestClient) -> None:
    rng = np.random.default_rng(7)
    for i in range(20):
        blob = rng.integers(0, 256, size=int(rng.integers(0, 400)), dtype=np.uint8).tobytes()
        name = ["x.csv", "x.parquet", "x", "x.bin"][i % 4]
        if i % 4 == 1:
            blob = b"PAR1" + blob
        for route in ("/v1/hcps:import", "/v1/touches:import"):
            r = client.post(route, files={"file": (name, blob)}, headers=auth("report"))
            assert r.status_code < 500, (route, name, r.text)
    for route in ("/v1/hcps:import", "/v1/touches:import"):
        r = client.post(route, content=b"no multipart", headers=auth("report"))
        assert r.status_code == 422
