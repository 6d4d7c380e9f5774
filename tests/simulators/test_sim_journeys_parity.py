"""The simulator and the service apply journeys identically: a simulated log is
loaded into a real event store, and for every logged decision the service's
history reader (:func:`serving.journeys.journey_events`) and the shared
functions give back the journey step the simulator logged, and keep exactly the
actions the simulator offered."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from nba.catalog import Catalog
from nba.contact import ContactPolicy
from nba.domain import Decision, HCPProfile, Outcome, SlateSlot, Suppression
from nba.journeys import JourneySet
from nba.logs import io as logio
from serving.journeys import journey_events
from serving.store import EventStore
from simulators.hcp.world import World

JOURNEYS = """\
[[journeys]]
name = "reg-followup"
priority = 10
[journeys.entry]
event = "registered"
channels = ["webinar"]
[journeys.exit]
max_days = 20
[[journeys.steps]]
channels = ["email"]
after_days = [2, 5]
hold = true

[[journeys]]
name = "open-nurture"
priority = 5
[journeys.entry]
event = "opened"
[journeys.exit]
max_days = 30
[[journeys.steps]]
channels = ["email", "portal"]
after_days = [1, 6]
until_engaged = true
max_attempts = 2
"""


def test_the_service_reads_the_simulated_history_to_the_same_steps(tmp_path: Path) -> None:
    js = JourneySet.loads(JOURNEYS)
    out = tmp_path / "logs"
    summary = World(600, seed=11, rules=ContactPolicy.default(), journeys=js).run(
        28, policy="uniform", out=out
    )
    assert summary.journeys is not None
    dec = logio.read(out, "decisions").to_pylist()
    outc = logio.read(out, "outcomes").to_pylist()
    steps = {d["journey"] for d in dec if d["journey"]}
    assert {s.split("/")[0] for s in steps} == {"reg-followup", "open-nurture"}
    cat = Catalog.default()
    topic_of = {it.id: it.topic for it in cat.items}
    with EventStore(tmp_path / "e.db") as store:
        store.add_decisions(
            [
                Decision(
                    d["event_id"],
                    d["ts"],
                    d["hcp_id"],
                    d["requester"],
                    tuple(d["channels_requested"]),
                    d["context"],
                    d["catalog_version"],
                    tuple(d["action_ids"]),
                    tuple(d["probabilities"]),
                    d["chosen_index"],
                    d["chosen_action_id"],
                    d["propensity"],
                    d["policy"],
                    d["model_version"],
                    tuple(Suppression(s["action_id"], s["rule"]) for s in d["suppressed"]),
                    True,
                    tuple(SlateSlot(s["action_id"], s["probability"]) for s in d["slate"] or ()),
                    d["rules_version"],
                    d["rules_market"],
                    d["journey"],
                )
                for d in dec
            ]
        )
        for o in outc:
            store.add_outcome(
                Outcome(o["event_id"], o["ts"], o["type"], o["value"], o["source"], o["source_id"])
            )
        checked = governed = 0
        for d in dec:
            hcp = json.loads(d["context"])["hcp"]
            profile = HCPProfile.from_dict(hcp)
            since = d["ts"] - timedelta(days=js.lookback_days + 1)
            # the decision itself is not history yet: read up to just before it
            events = [
                e
                for e in journey_events(store, d["hcp_id"], since, d["ts"], topic_of)
                if not (e.ts == d["ts"] and e.kind == "decision")
            ]
            states = js.states(profile, events, d["ts"])
            removed = [s["action_id"] for s in d["suppressed"] if s["rule"].startswith("journey")]
            cands = list(d["action_ids"]) + removed
            parsed = [(a.split("@")[1], topic_of[a.split("@")[0]]) for a in cands]
            gate = js.gate(states, parsed)
            assert gate.label == d["journey"], d["event_id"]
            kept = {a for a, k in zip(cands, gate.keep, strict=True) if k}
            assert kept == set(d["action_ids"]), d["event_id"]
            checked += 1
            governed += gate.label is not None
    assert checked == len(dec) and governed == sum(1 for d in dec if d["journey"]) >= 10
