"""End to end: a rules change reaches every worker of a real 2-worker ``nba serve``
without a restart, whether it comes over HTTP or from ``nba rules`` on the store;
a bad edit over HTTP is refused with its key and line and changes nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_testkit import HCP_BODY, auth, server_env, start_server, stop_server

DEFAULT_TEXT = (Path(__file__).parents[2] / "nba" / "data" / "rules.toml").read_text()
DE_EMAIL_CAP = '\n[[markets.DE.frequency_caps]]\nchannel = "email"\nmax = 1\ndays = 7\n'


def _rules_seen(base: str, n: int = 16) -> list[dict[str, Any]]:
    """``GET /v1/rules`` from ``n`` concurrent fresh connections (so both workers answer)."""

    def one(_: int) -> dict[str, Any]:
        with httpx.Client(base_url=base, timeout=30) as c:
            return dict(c.get("/v1/rules", headers=auth("decide")).json())

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def wait_for_every_worker(base: str, version: int, timeout: float = 30.0) -> set[int]:
    """Poll until two distinct workers both answer with store version ``version``."""
    deadline = time.monotonic() + timeout
    on_version: set[int] = set()
    while time.monotonic() < deadline:
        for body in _rules_seen(base):
            if body["store_version"] == version:
                on_version.add(body["worker"])
        if len(on_version) >= 2:
            return on_version
        time.sleep(0.1)
    raise AssertionError(f"workers on version {version}: {on_version}; expected 2")


@pytest.mark.slow
def test_a_rules_change_reaches_both_workers(tmp_path: Path) -> None:
    proc, base = start_server(tmp_path, workers=2, NBA_ALLOW_CLIENT_TIME="true")
    try:
        workers = wait_for_every_worker(base, 1)
        with httpx.Client(base_url=base, timeout=30) as c:
            for hid, market in (("D1", "DE"), ("U1", "US")):
                body = {**HCP_BODY, "market": market, "consents": ["email"]}
                assert (
                    c.put(f"/v1/hcps/{hid}", json=body, headers=auth("report")).status_code == 201
                )
                touch = {
                    "hcp_id": hid,
                    "ts": "2026-06-07T09:00:00Z",
                    "channel": "email",
                    "content_id": "VEL-RWE-02",
                }
                assert c.post("/v1/touches", json=touch, headers=auth("report")).status_code == 201
            # a bad edit: refused with key and line, version 1 stays everywhere
            r = c.put(
                "/v1/rules",
                content=DEFAULT_TEXT + "\n[markets.DE]\nallowed_channels = ['fax']\n",
                params={"comment": "typo"},
                headers={**auth("admin"), "Content-Type": "application/toml"},
            )
            assert r.status_code == 422 and r.json()["details"][0]["line"] == 70
            # the DE cap over HTTP
            r = c.put(
                "/v1/rules",
                content=DEFAULT_TEXT + DE_EMAIL_CAP,
                params={"comment": "DE: one email a week"},
                headers={**auth("admin"), "Content-Type": "application/toml"},
            )
            assert r.status_code == 200, r.text
            new_hash = r.json()["rules_hash"]
        assert all(b["store_version"] in (1, 2) for b in _rules_seen(base))
        assert wait_for_every_worker(base, 2) == workers

        # every worker now decides under version 2: DE gets the 1/7d email cap
        def decide(hid: str) -> dict[str, Any]:
            with httpx.Client(base_url=base, timeout=30) as c:
                body = {"hcp_id": hid, "channels": ["email"], "as_of": "2026-06-10T10:00:00Z"}
                return dict(c.post("/v1/decisions", json=body, headers=auth("decide")).json())

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(decide, ["D1", "U1"] * 8))
        assert {a["rules_version"] for a in answers} == {new_hash}
        for a in answers[0::2]:
            assert a["rules_market"] == "DE" and a["event_id"] is None
            assert "frequency_cap:email:1/7d" in {s["rule"] for s in a["suppressed"]}
        for a in answers[1::2]:
            assert a["rules_market"] == "global" and a["event_id"] is not None
        # a rollback from the CLI, on the store file the service uses
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "nba_cli.main",
                "rules",
                "rollback",
                "1",
                "--comment",
                "back to the global cap",
                "--who",
                "ops",
            ],
            env=server_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        assert wait_for_every_worker(base, 3) == workers
        hist = httpx.get(f"{base}/v1/rules/history", headers=auth("decide"), timeout=30).json()
        assert [(v["version"], v["action"], v["who"]) for v in hist["versions"]] == [
            (3, "rollback", "ops"),
            (2, "apply", "admin-client"),
            (1, "seed", "service start"),
        ]
    finally:
        stop_server(proc)
