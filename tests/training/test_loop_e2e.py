"""The loop end to end: a real ``nba serve`` on loopback that follows
``models:/nba@champion`` is driven by the simulated world over HTTP for 63
simulated days; every 7 simulated days, at the day boundary, a loop cycle runs
with the simulated clock as its horizon (export from the service's store,
train, gate, move the alias). The served policy's true value (the world knows
it) is compared with the uniform start, and the loop's estimates with the truth.

Worlds (``$NBA_LOOP_E2E_WORLD``):

- ``stage`` (the default, the one the suite runs): HCP channel affinities and
  topic interests spread about three times wider than calibrated (sd 1.0
  instead of 0.3 / 0.35) and a strong stage match (logit 3.0 instead of 0.4):
  how well a topic suits an HCP's adoption stage, which the service sees,
  drives the response. The loop evaluates on 14 days (the gate's 95 % interval
  has a half-width of about 0.04 on some 3,700 decisions) and a challenger learned from the
  service's uniform log is better than uniform by more than that, so the loop
  promotes; the test asserts the promotion, that the service follows the
  alias, that the served policy's true value then rises above the uniform
  start by more than three standard errors, that the service serves exactly
  the probabilities the loop's offline scoring gives (no train/serve skew), and
  that the loop's estimates track the truth;
- ``learnable`` (stage match 1.0) and ``calibrated`` (the simulator's own
  world): the lift a challenger truly has in the service's traffic there
  (about 0.01 to 0.03 per decision) is below what the gate can prove; runs
  with one week of evaluation days kept uniform throughout (docs/loop.md,
  "Why the in-process lift was absent"). With them the test asserts what
  the loop must do whatever it decides.

The figures of a run are written to ``$NBA_LOOP_FIGURES`` (a directory) when set:
``figures.json`` and the loop's ``estimates_vs_truth.png`` (docs/loop.md).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "serving"))

from serving_testkit import start_server, stop_server

from serving.settings import hash_key
from simulators.hcp.config import WorldConfig
from simulators.hcp.world import World
from simulators.via_http import HttpDriver, ServiceClient
from training.loop import LoopConfig, run_cycle

DRIVER_KEY = "loop-e2e-driver-4c1d"
ADMIN_KEY = "loop-e2e-admin-9e0a"
HCPS = int(os.environ.get("NBA_LOOP_E2E_HCPS", "3000"))
WORLD = os.environ.get("NBA_LOOP_E2E_WORLD", "stage")
WORLDS: dict[str, WorldConfig | None] = {
    "stage": WorldConfig(channel_affinity_sd=1.0, topic_interest_sd=1.0, stage_match_bonus=3.0),
    "learnable": WorldConfig(channel_affinity_sd=1.0, topic_interest_sd=1.0, stage_match_bonus=1.0),
    "calibrated": None,
}
DAYS = 63
EVERY = 7
EVAL_DAYS = 14
#: cycles before the first that can train: 14-day reward windows, then
#: EVAL_DAYS evaluation days and at least one training day (docs/loop.md)
SKIPPED = (14 + 1 + EVAL_DAYS + 1 + EVERY - 1) // EVERY - 1


@pytest.mark.slow
# 960 s were measured on a shared 2-core machine under a load average of 12 to
# 18, beyond the suite's 900 s default
@pytest.mark.timeout(1800)
def test_loop_every_seven_simulated_days_against_a_real_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_mlflow_store: Path
) -> None:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("NBA_DATA_DIR", str(tmp_path / "data"))
    keys = [
        {"name": "driver", "sha256": hash_key(DRIVER_KEY), "scopes": ["decide", "report"]},
        {"name": "ops", "sha256": hash_key(ADMIN_KEY), "scopes": ["admin"]},
    ]
    # the MLflow store exists before the service polls it: two processes creating
    # the same fresh SQLite store at once race on its tables (a copy of an empty
    # store: MLflow's migrations are not what is tested)
    shutil.copy(empty_mlflow_store, tmp_path / "mlflow.db")
    from training import mlflow_utils

    mlflow_utils.experiment_id("loop", tracking)
    proc, base = start_server(
        tmp_path,
        NBA_ALLOW_CLIENT_TIME="true",
        NBA_API_KEYS=json.dumps(keys),
        NBA_MODEL_URI="models:/nba@champion",
        NBA_MODEL_POLL_SECONDS="0.5",
    )
    cfg = LoopConfig(
        work_dir=tmp_path / "loop",
        store=tmp_path / "events.db",
        tracking_uri=tracking,
        seed=0,
        # two weeks of evaluation decisions: a gate interval about 1/sqrt(2) as
        # wide as one week's (docs/loop.md, "What it showed")
        eval_days=EVAL_DAYS,
    )
    cycles = []
    served_by_day: dict[int, str] = {}
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    def current_version() -> str:
        r = httpx.get(f"{base}/v1/models/current", headers=admin, timeout=30)
        assert r.status_code == 200, r.text
        return str(r.json()["model_version"])

    def truth(lo: datetime, hi: datetime) -> float | None:
        # a suggestion the rep dismissed was not carried out: its reward is the
        # default 0, and so is its true value
        vals = [driver.truth.get(s.event_id, 0.0) for s in driver.served if lo <= s.ts < hi]
        return float(np.mean(vals)) if vals else None

    def on_day_end(d: int, boundary: datetime) -> None:
        served_by_day[d] = current_version()
        if (d + 1) % EVERY:
            return
        res = run_cycle(cfg, as_of=boundary, truth=truth)
        cycles.append(res)
        if res.decision == "promoted":
            # replicas follow the alias: wait for the service's own poll to load it
            want = f"nba/{res.champion_after}"
            deadline = time.monotonic() + 60
            while current_version() != want:
                assert time.monotonic() < deadline, f"service did not load {want}"
                time.sleep(0.2)

    client = ServiceClient(base, api_key=DRIVER_KEY)
    try:
        assert WORLD in WORLDS, f"NBA_LOOP_E2E_WORLD={WORLD!r}: one of {', '.join(WORLDS)}"
        world = World(HCPS, seed=11, config=WORLDS[WORLD])
        # the email platform and the rep app report in POST /v1/outcomes:batch calls:
        # the same outcomes stored the same way, in far fewer requests
        # (tests/serving/test_via_http_driver.py checks both ways)
        driver = HttpDriver(
            world, client, seed=11, concurrency=4, on_day_end=on_day_end, outcomes_batch=1000
        )
        summary = driver.run(DAYS)
    finally:
        client.close()
        stop_server(proc)

    # ---- the loop ran every 7 simulated days, each cycle recorded with reasons
    assert len(cycles) == DAYS // EVERY
    state = json.loads((cfg.work_dir / "loop_state.json").read_text())
    assert [c["cycle"] for c in state["cycles"]] == list(range(1, len(cycles) + 1))
    for c in cycles:
        assert c.reasons, c
        assert c.run_id
    from mlflow import MlflowClient

    mc = MlflowClient(tracking)
    exp = mc.get_experiment_by_name("loop")
    runs = mc.search_runs([exp.experiment_id])
    assert len(runs) == len(cycles)
    assert {r.data.tags["decision"] for r in runs} == {c.decision for c in cycles}
    assert all(r.data.tags["reasons"] for r in runs)
    # every decision the service stored was exported exactly once
    exported = sum(c.exported.get("decisions", 0) for c in cycles)
    assert exported <= summary.decisions
    from nba.logs import io as logio

    ids = logio.read(cfg.logs_dir, "decisions", columns=["event_id"]).column("event_id")
    assert len(ids) == len(set(ids.to_pylist())) == exported

    # ---- truth: the uniform start against the served policy at the end
    start_version = served_by_day[0]
    by_model: dict[str, list[float]] = {}
    for s in driver.served:
        by_model.setdefault(s.model_version, []).append(driver.truth.get(s.event_id, 0.0))
    figures = {
        "world": WORLD,
        "hcps": HCPS,
        "days": DAYS,
        "decisions": summary.decisions,
        "cycles": [c.to_dict() for c in cycles],
        "served_versions_by_day": served_by_day,
        "truth_by_model_version": {
            k: [float(np.mean(v)), len(v), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0]
            for k, v in by_model.items()
        },
    }
    out = os.environ.get("NBA_LOOP_FIGURES")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "figures.json").write_text(json.dumps(figures, indent=1, default=str))
        png = cfg.work_dir / "estimates_vs_truth.png"
        if png.exists():
            shutil.copy(png, Path(out) / "estimates_vs_truth.png")
    # the first cycles cannot train: not enough days with closed reward windows
    assert [c.decision for c in cycles[:SKIPPED]] == ["skipped"] * SKIPPED
    assert all("not enough closed days" in c.reasons[0] for c in cycles[:SKIPPED])
    gated = cycles[SKIPPED:]
    assert gated
    assert all(any(r.startswith("gate (snips") for r in c.reasons) for c in gated)
    assert start_version == "baseline:uniform"
    # the loop's estimate of the policy that served the evaluation days tracks
    # its true value there: the logged (on-policy) value against the truth
    # (about 3,700 decisions in 14 days: a standard error below 0.01)
    for c in gated:
        m = c.metrics
        assert abs(m["logged_value"] - m["truth_served_eval_days"]) < 0.03, c.to_dict()
    for c in gated:  # the decision agrees with the recorded interval
        assert c.decision in ("kept", "promoted")
        assert (
            c.metrics["difference_low"] <= c.metrics["difference"] <= c.metrics["difference_high"]
        )
        if c.decision == "kept":
            assert c.metrics["difference_low"] <= 0.0
    promoted = [c for c in cycles if c.decision == "promoted"]
    if WORLD != "stage" and not promoted:
        assert set(served_by_day.values()) == {start_version}
        return
    assert promoted, f"no cycle promoted in the {WORLD} world: {figures['cycles']}"
    first = promoted[0]
    assert first.metrics["difference_low"] > 0.0
    # replicas follow: from the day after the cycle, the service serves the new champion
    day = cycles.index(first) * EVERY + EVERY  # index of the first day after the cycle
    assert day in served_by_day, "the first promotion came with the last cycle: nothing served it"
    assert served_by_day[day] == f"nba/{first.champion_after}"
    assert all(v.startswith("nba/") for d, v in served_by_day.items() if d >= day)
    # the served policy's true value rises above the uniform start: the mean true
    # value of the decisions served by learned champions against that of the
    # decisions served by the uniform start (holdout arm left out of both), by
    # more than three standard errors of the difference of the two means
    uniform = np.array(by_model[start_version])
    learned = np.array([v for k, vals in by_model.items() if k.startswith("nba/") for v in vals])
    lift = float(learned.mean() - uniform.mean())
    se = float(np.sqrt(uniform.var(ddof=1) / uniform.size + learned.var(ddof=1) / learned.size))
    assert lift > 3 * se, (lift, se, figures["truth_by_model_version"])
    # no train/serve skew: the probabilities the service served with the champion
    # are the ones the loop's offline scoring gives the same model on the logged
    # context (what the gate estimates is what the service does)
    from nba.reward import RewardDefinition
    from training.evaluate import load_log
    from training.targets import resolve_target

    since = (datetime.fromisoformat(first.as_of) + timedelta(days=1)).date()
    # (a horizon past every reward window: only the probabilities matter here)
    far = datetime(2100, 1, 1, tzinfo=UTC)
    log, _ = load_log(cfg.logs_dir, RewardDefinition.default(), since=since, as_of=far)
    target = resolve_target(f"models:/nba/{first.champion_after}", log, tracking_uri=tracking)
    versions = np.repeat(
        np.array(log.table.column("model_version").to_pylist()), np.diff(log.offsets)
    )
    mine = versions == f"nba/{first.champion_after}"
    assert mine.sum() > 0
    served_p = np.asarray(log.pscore_all, dtype=float).ravel()[mine]
    np.testing.assert_allclose(np.asarray(target.action_dist)[mine], served_p, atol=1e-9)
