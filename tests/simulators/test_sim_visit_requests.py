"""Visit requests in the simulated world and reps who act on them (docs/simulator.md,
"Visit requests"): off by default and then the world is unchanged; on, requests come
from the hidden state, raise the HCP's response to rep contact while they wait, and
reps with triggers answer them first within capacity; the push-vs-pull experiment's
``+triggers`` arms."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from experiments.push_vs_pull.experiment import ExperimentConfig
from experiments.push_vs_pull.measure import ExperimentError, check_policy_spec, run_policy
from simulators.hcp.config import SimulatorConfigError, WorldConfig
from simulators.hcp.world import World

RATE = 0.01


def _log_digest(out: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(out.rglob("*.parquet")):
        h.update(p.read_bytes())
    return h.hexdigest()


def test_off_by_default_and_triggers_alone_change_nothing(tmp_path: Path) -> None:
    plain = World(200, seed=4)
    assert plain.rng_events is None and plain.population.channel_boost is None
    assert not any(k.startswith("visit_request") for k in plain.config.params)
    s1 = plain.run(14, policy="campaign", out=tmp_path / "a")
    # reps who would act on notifications, but no requests: the same world
    s2 = World(200, seed=4, triggers=True).run(14, policy="campaign", out=tmp_path / "b")
    assert _log_digest(tmp_path / "a") == _log_digest(tmp_path / "b")
    assert s1.to_dict() | {"out": None} == s2.to_dict() | {"out": None}
    assert "visit_requests" not in s1.to_dict()


def test_requests_are_seeded_and_answered_first_with_triggers() -> None:
    cfg = WorldConfig(visit_request_rate=RATE)
    runs = {}
    for trig in (False, True):
        a = World(600, seed=9, config=cfg, triggers=trig).run(28, policy="campaign")
        b = World(600, seed=9, config=cfg, triggers=trig).run(28, policy="campaign")
        assert a.to_dict() == b.to_dict()  # same seed, same output
        assert a.visit_requests is not None and a.visit_requests["requests"] > 50
        runs[trig] = a.visit_requests
    served = {t: v["served"] / v["requests"] for t, v in runs.items()}
    # without triggers a request is answered only when the rep happens to come by
    assert served[True] > 0.5 > 0.2 > served[False]
    assert "visit requests" in World(50, seed=1, config=cfg).run(3).format()


def test_rep_app_puts_waiting_requests_first_within_capacity() -> None:
    cfg = WorldConfig(visit_request_rate=0.2, rep_capacity_share=0.02)
    w = World(500, seed=3, config=cfg, triggers=True)
    asked = w.visit_request_events(0)
    assert asked.size > w.rep_capacity  # more requests than the reps can see
    rep_app = next(r for r, _ in w._requesters if r.name == "rep_app")
    due = w.due(rep_app, 0, 0)
    assert due.size == w.rep_capacity
    # every HCP on today's list asked for a visit (the oldest requests, all of day 0)
    assert np.isin(due, asked).all()
    # while waiting, the HCP's response logit to rep visits and calls is raised
    boost = w.population.channel_boost
    assert boost is not None
    rv, rc = w.chan_pos["rep_visit"], w.chan_pos["remote_call"]
    assert (boost[asked][:, [rv, rc]] == cfg.visit_request_logit).all()
    assert (np.delete(boost, asked, axis=0) == 0).all()
    # requests give up after visit_request_days
    for d in range(1, cfg.visit_request_days + 1):
        w.visit_request_events(d)
    assert not np.isin(asked, np.flatnonzero(w._request_day == 0)).any()


def test_the_request_raises_the_true_response_to_rep_contact() -> None:
    cfg = WorldConfig(visit_request_rate=0.5)
    w = World(300, seed=2, config=cfg)
    pop = w.population
    rv_actions = np.flatnonzero(w._is_rep_visit)[:1]
    h = np.arange(pop.n, dtype=np.int64)
    before = w.response.probabilities(pop, h, np.repeat(rv_actions, pop.n)).primary
    asked = w.visit_request_events(0)
    after = w.response.probabilities(pop, h, np.repeat(rv_actions, pop.n)).primary
    assert (after[asked] > before[asked]).all()
    others = np.setdiff1d(h, asked)
    assert np.array_equal(after[others], before[others])


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("visit_request_rate", 1.5, "visit_request_rate': must be in \\[0, 1\\]"),
        ("visit_request_logit", -1.0, "visit_request_logit': must be a number >= 0"),
        ("visit_request_days", 0, "visit_request_days': must be an integer >= 1"),
    ],
)
def test_bad_visit_request_config(field: str, value: object, match: str) -> None:
    with pytest.raises(SimulatorConfigError, match=match):
        WorldConfig(**{field: value})


def test_experiment_triggers_arms() -> None:
    assert check_policy_spec("vw:squarecb+triggers") == "vw:squarecb+triggers"
    with pytest.raises(ExperimentError, match="unknown policy 'nope\\+triggers'"):
        check_policy_spec("nope+triggers")
    pols = ("uniform", "campaign", "campaign+triggers", "oracle")
    with pytest.raises(ExperimentError, match="'campaign\\+triggers' needs visit requests"):
        ExperimentConfig(hcps=50, days=14, seeds=(1,), last_weeks=1, policies=pols)
    with pytest.raises(ExperimentError, match="visit_request_rate: must be in"):
        ExperimentConfig(
            hcps=50, days=14, seeds=(1,), last_weeks=1, policies=pols, visit_request_rate=2.0
        )
    cfg = ExperimentConfig(
        hcps=50, days=14, seeds=(1,), last_weeks=1, policies=pols, visit_request_rate=0.01
    )
    assert cfg.params["visit_request_rate"] == 0.01
    assert (
        "visit_request_rate"
        not in ExperimentConfig(
            hcps=50, days=14, seeds=(1,), last_weeks=1, policies=pols[:2] + pols[3:]
        ).params
    )
    with pytest.raises(ExperimentError, match="need visit requests"):
        run_policy("campaign+triggers", hcps=40, days=7, seed=1)
    r = run_policy("campaign+triggers", hcps=80, days=7, seed=1, visit_request_rate=0.05)
    assert r.policy == "campaign+triggers" and r.summary["visit_requests"]["triggers"] is True
