"""``GET /v1/kpis/lift`` against a real ``nba serve``: the holdout gets the
configured policy (campaign, or no contact), and the lift is the treated minus
holdout mean of what was reported over HTTP, next to the off-policy estimate."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from serving_testkit import HCP_BODY, auth, start_server, stop_server

from nba.contact import ContactPolicy
from nba_cli.main import main


def _rules(tmp: Path, share: float) -> Path:
    text = (Path(ContactPolicy.default().source)).read_text(encoding="utf-8")
    p = tmp / "rules.toml"
    p.write_text(text.replace("share = 0.05", f"share = {share}"), encoding="utf-8")
    return p


def _period() -> dict[str, str]:
    today = datetime.now(UTC).date()
    return {
        "since": (today - timedelta(days=1)).isoformat(),
        "until": (today + timedelta(days=1)).isoformat(),
    }


def _cli_period() -> list[str]:
    p = _period()
    return ["--since", p["since"], "--until", p["until"]]


def _engages(hcp: str) -> bool:
    """Which HCPs open their email: a fixed pseudo-random half."""
    return hashlib.sha256(hcp.encode()).digest()[0] % 2 == 0


def test_campaign_holdout_and_its_lift(tmp_path: Path) -> None:
    rules = _rules(tmp_path, 0.5)
    proc, base = start_server(tmp_path, NBA_RULES_PATH=str(rules), NBA_HOLDOUT_POLICY="campaign")
    arms: dict[bool, list[float]] = {True: [], False: []}
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            for i in range(40):
                hcp = f"L{i}"
                body = {**HCP_BODY, "consents": ["email"]}
                assert (
                    c.put(f"/v1/hcps/{hcp}", json=body, headers=auth("report")).status_code == 201
                )
                r = c.post(
                    "/v1/decisions",
                    json={"hcp_id": hcp, "channels": ["email"]},
                    headers=auth("decide"),
                )
                assert r.status_code == 201, r.text
                ev = r.json()
                held = ev["model_version"].startswith("holdout:")
                if held:
                    assert ev["model_version"] == "holdout:baseline:campaign"
                # treated HCPs open when _engages says so; holdout ones a quarter as often
                opens = _engages(hcp) and (not held or i % 4 == 0)
                if opens:
                    r = c.post(
                        f"/v1/events/{ev['event_id']}/outcomes",
                        json={"type": "opened"},
                        headers=auth("report"),
                    )
                    assert r.status_code == 201, r.text
                arms[held].append(1.0 if opens else 0.0)
            r = c.get("/v1/kpis/lift", params=_period(), headers=auth("decide"))
            assert r.status_code == 200, r.text
            body = r.json()
            bad = c.get("/v1/kpis/lift", params={**_period(), "alpha": "2"}, headers=auth("decide"))
            unknown = c.get(
                "/v1/kpis/lift", params={**_period(), "by": "channel"}, headers=auth("decide")
            )
    finally:
        stop_server(proc)
    assert arms[True] and arms[False], "both arms need decisions (holdout share 0.5)"
    eng = body["holdout"]["engagement"]
    t_mean = sum(arms[False]) / len(arms[False])
    h_mean = sum(arms[True]) / len(arms[True])
    assert eng["decisions_treated"] == len(arms[False])
    assert eng["decisions_holdout"] == len(arms[True])
    assert eng["treated_mean"] == pytest.approx(t_mean)
    assert eng["holdout_mean"] == pytest.approx(h_mean)
    assert eng["difference"] == pytest.approx(t_mean - h_mean)
    assert eng["low"] < eng["difference"] < eng["high"]
    assert body["holdout_policy"] == "campaign"
    ope = body["off_policy"]["engagement"]
    assert ope is not None and ope["low"] <= ope["estimate"] <= ope["high"]
    assert "SNIPS" in body["off_policy_note"]
    # value and net value: opens are worth the definition's weight, each email costs
    assert body["holdout"]["net_value"]["treated_mean"] < body["holdout"]["value"]["treated_mean"]
    assert bad.status_code == 422 and "alpha" in bad.json()["message"]
    assert unknown.status_code == 422 and unknown.json()["message"].startswith("by: unknown")

    # the weekly report reads the same store and says the same
    out = tmp_path / "weekly"
    res = CliRunner().invoke(
        main,
        ["report", *_cli_period(), "--out", str(out), "--store", str(tmp_path / "events.db")],
        env={"NBA_HOLDOUT_POLICY": "campaign"},
    )
    assert res.exit_code == 0, res.output
    assert (out / "kpis.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "kpis.json").read_text())
    assert data["lift"]["holdout"] == body["holdout"]
    assert data["lift"]["off_policy"] == body["off_policy"]
    md = (out / "report.md").read_text()
    assert f"| email | {len(arms[False]) + len(arms[True])} |" in md
    assert "got `campaign`" in md
    row = next(line for line in md.splitlines() if line.startswith("| engagement rate |"))
    assert f"{100 * t_mean:.1f} % ({len(arms[False])} decisions" in row
    assert f"{100 * (t_mean - h_mean):+.2f} pts" in row


def test_no_contact_holdout_gets_nothing_and_counts_as_zero(tmp_path: Path) -> None:
    rules = _rules(tmp_path, 0.5)
    proc, base = start_server(tmp_path, NBA_RULES_PATH=str(rules), NBA_HOLDOUT_POLICY="no_contact")
    held = treated = 0
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            for i in range(30):
                hcp = f"N{i}"
                body = {**HCP_BODY, "consents": ["email"]}
                assert (
                    c.put(f"/v1/hcps/{hcp}", json=body, headers=auth("report")).status_code == 201
                )
                r = c.post(
                    "/v1/decisions",
                    json={"hcp_id": hcp, "channels": ["email"]},
                    headers=auth("decide"),
                )
                ev = r.json()
                if ev["model_version"] == "holdout:no_contact":
                    assert r.status_code == 200 and ev["suggestions"] == [] and not ev["event_id"]
                    held += 1
                else:
                    assert r.status_code == 201, r.text
                    c.post(
                        f"/v1/events/{ev['event_id']}/outcomes",
                        json={"type": "opened"},
                        headers=auth("report"),
                    )
                    treated += 1
            r = c.post(
                "/v1/decisions:batch",
                json={"hcp_ids": [f"N{i}" for i in range(30)], "channels": ["email"]},
                headers=auth("decide"),
            )
            assert r.status_code == 201, r.text
            blocked = [d for d in r.json()["decisions"] if d["blocked_by"] == ["holdout"]]
            assert len(blocked) == held
            treated_batch = r.json()["n_decisions"]  # the contact rules may block some
            body = c.get("/v1/kpis/lift", params=_period(), headers=auth("decide")).json()
    finally:
        stop_server(proc)
    assert held and treated
    eng = body["holdout"]["engagement"]
    # the batch added one request per holdout HCP; only the first treated decisions got opens
    assert eng["decisions_holdout"] == 2 * held and eng["holdout_mean"] == 0.0
    assert eng["decisions_treated"] == treated + treated_batch
    assert eng["treated_mean"] == pytest.approx(treated / (treated + treated_batch))
    assert body["holdout"]["net_value"]["holdout_mean"] == 0.0
    assert body["off_policy"]["engagement"] is None and "no_contact" in body["off_policy_note"]
