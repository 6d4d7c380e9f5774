"""Against a real ``nba serve`` on 127.0.0.1: a rep's feedback about suggestion #2 is
stored with its action id, never credited to the sampled suggestion #1, exported to
Parquet and DSJSON; outcomes about an action the decision did not offer, or of a type
that cannot happen on the action's channel, are refused naming what was wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from click.testing import CliRunner
from serving_testkit import HCP_BODY, auth, start_server, stop_server

from nba.catalog import Catalog
from nba.logs import io as logio
from nba.logs.join import load_joined
from nba.reward import RewardDefinition
from nba_cli.main import main
from serving.store import EventStore

#: a reward definition that weighs rep feedback (the default one does not)
ACCEPTING = """\
name = "feedback"
version = "1"
window_days = 14
[weights]
accepted = 1.0
meeting_held = 1.0
"""


def test_feedback_on_suggestion_two_over_http(tmp_path: Path) -> None:
    proc, base = start_server(tmp_path)
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.put("/v1/hcps/R1", json=HCP_BODY, headers=auth("report")).status_code == 201
            r = c.post(
                "/v1/decisions",
                json={"hcp_id": "R1", "channels": ["rep_visit"], "k": 3},
                headers=auth("decide"),
            )
            assert r.status_code == 201, r.text
            ev = r.json()
            eid = ev["event_id"]
            first, second, third = (sg["action_id"] for sg in ev["suggestions"])
            assert [sg["slot"] for sg in ev["suggestions"]] == [1, 2, 3]
            assert ev["suggestions"][0]["slot_probability"] == ev["suggestions"][0]["probability"]
            assert first == ev["chosen_action_id"] != second

            def report(body: dict[str, object]) -> httpx.Response:
                return c.post(f"/v1/events/{eid}/outcomes", json=body, headers=auth("report"))

            r = report({"type": "accepted", "source_id": "rep-1", "action_id": second})
            assert r.status_code == 201, r.text
            assert r.json()["action_id"] == second and r.json()["kind"] == "rep_feedback"
            # the same report again is the same outcome
            again = report({"type": "accepted", "source_id": "rep-1", "action_id": second})
            assert again.status_code == 200 and again.json()["stored"] is False
            removed = {x["action_id"] for x in ev["suppressed"]}
            unshown = next(
                a.action_id
                for a in Catalog.default().actions
                if a.channel == "rep_visit"
                and a.action_id not in removed
                and a.action_id not in (first, second, third)
            )
            bad = [
                (
                    {"type": "accepted", "action_id": unshown},
                    f"event '{eid}': action_id '{unshown}' was not shown in this decision's "
                    f"list (its 3 slots: {first}, {second}, {third})",
                ),
                (
                    {"type": "accepted", "action_id": "VEL-NOPE@rep_visit"},
                    f"event '{eid}': action_id 'VEL-NOPE@rep_visit' was not offered",
                ),
                (
                    {"type": "opened"},
                    f"action '{first}': outcome type 'opened' cannot happen on channel "
                    "'rep_visit' (only on: email)",
                ),
                (
                    {"type": "clicked", "action_id": second},
                    f"action '{second}': outcome type 'clicked' cannot happen on channel "
                    "'rep_visit'",
                ),
            ]
            for body, message in bad:
                r = report(body)
                assert r.status_code == 422, (body, r.text)
                assert r.json()["code"] == "invalid_input"
                assert message in r.json()["message"], r.json()["message"]
    finally:
        stop_server(proc)

    db = tmp_path / "events.db"
    store = EventStore(db)
    (kept,) = store.outcomes_of(eid)
    assert (kept.outcome.type, kept.outcome.action_id) == ("accepted", second)
    # a refused outcome left nothing behind
    assert store.counts()["outcomes"] == 1 and store.counts()["feedback"] == 1
    store.close()

    rd = tmp_path / "feedback.toml"
    rd.write_text(ACCEPTING)
    log = tmp_path / "log"
    res = CliRunner().invoke(main, ["logs", "export", "--store", str(db), "--out", str(log)])
    assert res.exit_code == 0, res.output
    (row,) = logio.read(log, "outcomes").to_pylist()
    assert (row["type"], row["action_id"]) == ("accepted", second)

    out = tmp_path / "x.dsjson"
    # the decision is seconds old, its window open at the export time: name a horizon
    # past its window so the join credits it (a test of credit, not of censoring)
    later = (datetime.now(UTC) + timedelta(days=15)).isoformat()
    args = ["logs", "export", "--store", str(db), "--format", "dsjson", "--reward-def", str(rd)]
    args += ["--as-of", later]
    res = CliRunner().invoke(main, [*args, "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    # suggestion 2 is slot 2 of the logged list: the rep's "accepted" is credited to it
    assert "slot_outcomes: 1" in res.output and "other_action_outcomes: 0" in res.output
    assert "default_decisions: 1" in res.output
    (line,) = out.read_text().splitlines()
    obj = json.loads(line)
    # the sampled suggestion #1 got the default reward, not the rep's "accepted"
    assert obj["EventId"] == eid and obj["_label_cost"] == 0.0
    assert obj["nba"]["reward_is_default"] is True
    assert [s["action_id"] for s in obj["nba"]["slate"]] == [first, second, third]
    joined = load_joined(log, RewardDefinition.load(rd), as_of=later).table
    (slot_rewards,) = joined.column("slot_rewards").to_pylist()
    assert slot_rewards == [0.0, 1.0, 0.0]
    (other,) = obj["nba"]["other_action_outcomes"]
    assert (other["type"], other["action_id"], other["value"]) == ("accepted", second, 1.0)
