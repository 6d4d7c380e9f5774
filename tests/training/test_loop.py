"""``nba loop`` on real components: a real SQLite event store, a simulated
Parquet log, real VW, a real (SQLite) MLflow store; crafted bad logs for each
refusal; two processes for the lock."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from nba.catalog import Catalog
from nba.context import DecisionContext
from nba.domain import Action, Decision, Outcome
from nba.logs import io as logio
from nba_cli.main import main as nba
from serving.store import EventStore
from simulators.hcp.world import DEFAULT_START, simulate
from training.loop import (
    LoopBusy,
    LoopConfig,
    LoopError,
    TrainMode,
    cycle_lock,
    export_new_events,
    feature_drift,
    plan_days,
    run_cycle,
)

START = datetime.combine(DEFAULT_START, datetime.min.time(), UTC)
AS_OF = START + timedelta(days=35)  # closed days: the first 20


@pytest.fixture(scope="module")
def sim_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "logs"
    simulate(hcps=400, days=22, policy="uniform", seed=5, out=out)
    return out


@pytest.fixture
def mlflow_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_mlflow_store: Path
) -> Iterator[str]:
    monkeypatch.setenv("NBA_DATA_DIR", str(tmp_path / "data"))
    shutil.copy(empty_mlflow_store, tmp_path / "mlflow.db")  # not MLflow's migrations again
    yield f"sqlite:///{tmp_path / 'mlflow.db'}"


def _copy(logs: Path, tmp: Path) -> Path:
    dst = tmp / "logs"
    shutil.copytree(logs, dst)
    return dst


def _rewrite(logs: Path, name: str, day: str, fn: object) -> None:
    """Rewrite every part of table ``name`` on ``day`` with ``fn(table)``."""
    for f in sorted((logs / name / f"date={day}").glob("part-*.parquet")):
        t = pq.read_table(f)
        pq.write_table(fn(t), f)  # type: ignore[operator]


def _cfg(tmp: Path, logs: Path, uri: str, **kw: object) -> LoopConfig:
    return LoopConfig(work_dir=tmp / "work", logs=logs, tracking_uri=uri, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ units
def test_plan_uses_closed_days_only() -> None:
    plan = plan_days(AS_OF, 14, 7, 14, DEFAULT_START)
    assert not isinstance(plan, str)
    # windows of 14 days: decisions of day D are final once D + 1 + 14 days <= as_of
    assert plan.eval_until == (AS_OF - timedelta(days=15)).date()
    assert plan.eval_since == plan.eval_until - timedelta(days=6)
    assert plan.train_until == plan.eval_since - timedelta(days=1)
    assert plan.train_since == DEFAULT_START
    early = plan_days(START + timedelta(days=20), 14, 7, 14, DEFAULT_START)
    assert isinstance(early, str) and "not enough closed days" in early


def test_bad_config_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(LoopError, match="--store DB or --logs DIR"):
        LoopConfig(work_dir=tmp_path)
    with pytest.raises(LoopError, match="--store: no event store"):
        LoopConfig(work_dir=tmp_path, store=tmp_path / "missing.db")
    with pytest.raises(LoopError, match="window:DAYS"):
        TrainMode.parse("sliding")
    with pytest.raises(LoopError, match="not a log directory"):
        LoopConfig(work_dir=tmp_path, logs=tmp_path)
    (tmp_path / "decisions").mkdir()
    with pytest.raises(LoopError, match="--eval-days"):
        LoopConfig(work_dir=tmp_path, logs=tmp_path, eval_days=0)
    with pytest.raises(LoopError, match="--min-lift: must be a finite number >= 0"):
        LoopConfig(work_dir=tmp_path, logs=tmp_path, min_lift=-0.1)
    with pytest.raises(LoopError, match="--psi-threshold"):
        LoopConfig(work_dir=tmp_path, logs=tmp_path, psi_threshold=0)


def test_drift_ignores_history_and_ids_but_sees_the_profile() -> None:
    ref = [
        json.dumps({"hcp": {"decile": i % 10, "hcp_id": f"a{i}"}, "day": "x"}) for i in range(500)
    ]
    same = [
        json.dumps({"hcp": {"decile": i % 10, "hcp_id": f"b{i}"}, "day": "y"}) for i in range(500)
    ]
    assert feature_drift(ref, same)[0][1] < 0.01  # new ids, new day: no drift
    moved = [json.dumps({"hcp": {"decile": 9, "hcp_id": f"b{i}"}}) for i in range(500)]
    name, value = feature_drift(ref, moved)[0]
    assert name == "hcp.decile" and value > 1.0


# ------------------------------------------------------------ export
def _dec(i: int, ts: datetime, version: str) -> Decision:
    actions = ("VEL-EFF-02@email", "VEL-EFF-04@email")
    return Decision(
        event_id=f"E{i:04d}",
        ts=ts,
        hcp_id=f"h{i % 3}",
        requester="email_platform",
        channels_requested=("email",),
        context=json.dumps({"v": 1, "i": i}),
        catalog_version=version,
        action_ids=actions,
        probabilities=(0.5, 0.5),
        chosen_index=i % 2,
        chosen_action_id=actions[i % 2],
        propensity=0.5,
        policy="uniform",
        model_version="baseline",
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_export_is_incremental_and_idempotent(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    location: Path | str = tmp_path / "events.db"
    if backend == "postgres":  # `nba loop --store postgresql://...`
        location = request.getfixturevalue("postgres").create_database("loop_export")
        assert LoopConfig(work_dir=tmp_path, store=location).params["source"] == (
            f"store:{location}"
        )
    store = EventStore(location)
    cat = Catalog.default()
    store.add_catalog(cat)
    t0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    store.add_decisions([_dec(i, t0 + timedelta(hours=i), cat.version) for i in range(6)])
    store.add_outcome(Outcome("E0000", t0 + timedelta(hours=2), "opened", source_id="m"))
    logs, work = tmp_path / "logs", tmp_path / "work"
    work.mkdir()
    first = export_new_events(location, logs, work)
    assert first["decisions"] == 6 and first["outcomes"] == 1
    again = export_new_events(location, logs, work)
    assert again["decisions"] == again["outcomes"] == 0  # rerun: nothing twice
    # new rows, including a late outcome of an already exported decision
    store.add_decisions([_dec(i, t0 + timedelta(days=1, hours=i), cat.version) for i in (6, 7)])
    store.add_outcome(Outcome("E0001", t0 + timedelta(days=3), "clicked", source_id="m"))
    more = export_new_events(location, logs, work)
    assert more["decisions"] == 2 and more["outcomes"] == 1
    ids = logio.read(logs, "decisions").column("event_id").to_pylist()
    assert sorted(ids) == [f"E{i:04d}" for i in range(8)]
    outs = logio.read(logs, "outcomes").column("event_id").to_pylist()
    assert sorted(outs) == ["E0000", "E0001"]
    assert (logs / "catalog" / f"{cat.version}.json").is_file()


def test_an_export_interrupted_after_staging_is_completed_not_repeated(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.db")
    cat = Catalog.default()
    store.add_catalog(cat)
    t0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    store.add_decisions([_dec(i, t0 + timedelta(days=i), cat.version) for i in range(4)])
    logs, work = tmp_path / "logs", tmp_path / "work"
    work.mkdir()
    import training.loop as loop_mod

    real = loop_mod._finish_pending
    calls = {"n": 0}

    def crash_midway(state: loop_mod.LoopState, path: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 2 and state.pending:  # the move after staging: do half, then die
            src, dst = next(m for m in state.pending["moves"] if "/decisions/" in m[1])
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            Path(src).replace(dst)
            raise KeyboardInterrupt
        real(state, path)

    loop_mod._finish_pending = crash_midway  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            export_new_events(tmp_path / "events.db", logs, work)
    finally:
        loop_mod._finish_pending = real
    assert len(logio.read(logs, "decisions")) == 1  # one part landed before the crash
    export_new_events(tmp_path / "events.db", logs, work)  # the rerun completes it
    ids = logio.read(logs, "decisions").column("event_id").to_pylist()
    assert sorted(ids) == [f"E{i:04d}" for i in range(4)]


# ------------------------------------------------------------------ lock
def test_a_second_loop_process_refuses_while_one_holds_the_lock(
    tmp_path: Path, sim_logs: Path, mlflow_store: str
) -> None:
    work = tmp_path / "work"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from training.loop import cycle_lock\n"
            "with cycle_lock(Path(sys.argv[1])):\n"
            "    print('held', flush=True); time.sleep(60)\n",
            str(work),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        res = CliRunner().invoke(
            nba,
            [
                "loop",
                "--logs",
                str(sim_logs),
                "--work",
                str(work),
                "--once",
                "--tracking-uri",
                mlflow_store,
            ],
        )
        assert res.exit_code == 3, res.output
        assert "another nba loop is running a cycle" in res.output
        assert f"pid {holder.pid}" in res.output
        assert not (work / "loop_state.json").exists()  # the refused cycle did nothing
        with pytest.raises(LoopBusy):
            with cycle_lock(work):
                pass
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the lock is free once the holder is gone
        try:
            with cycle_lock(work):
                break
        except LoopBusy:
            assert time.monotonic() < deadline
            time.sleep(0.1)


# ------------------------------------------------------------- cycles
def test_a_cycle_trains_gates_and_records_its_decision(
    tmp_path: Path, sim_logs: Path, mlflow_store: str
) -> None:
    res = CliRunner().invoke(
        nba,
        [
            "loop",
            "--logs",
            str(sim_logs),
            "--work",
            str(tmp_path / "work"),
            "--once",
            "--as-of",
            AS_OF.isoformat(),
            "--tracking-uri",
            mlflow_store,
            "--interval",
            "gaussian",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "cycle 1 as of" in res.output and "gate (snips, gaussian)" in res.output
    state = json.loads((tmp_path / "work" / "loop_state.json").read_text())
    (cyc,) = state["cycles"]
    assert cyc["decision"] in ("promoted", "kept")
    assert (
        cyc["plan"]["train_until"] < cyc["plan"]["eval_since"]
    )  # never evaluated on its training days
    assert cyc["n_train"] > 0 and cyc["n_eval"] > 0 and cyc["challenger_version"] == "1"
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_store)
    run = client.get_run(cyc["run_id"])
    assert run.data.tags["decision"] == cyc["decision"]
    assert "lower bound" in run.data.tags["reasons"]
    assert run.data.params["plan_eval_since"] == cyc["plan"]["eval_since"]
    assert "difference_low" in run.data.metrics
    champion = client.get_registered_model("nba").aliases.get("champion")
    assert (str(champion) == "1") == (cyc["decision"] == "promoted")


def test_warm_start_continues_the_champion_on_the_days_after_its_training(
    tmp_path: Path, sim_logs: Path, mlflow_store: str
) -> None:
    from mlflow import MlflowClient

    from training.registry import load_policy

    first = run_cycle(
        _cfg(tmp_path, sim_logs, mlflow_store, interval="gaussian"), as_of=AS_OF - timedelta(days=7)
    )
    MlflowClient(mlflow_store).set_registered_model_alias(
        "nba", "champion", str(first.challenger_version)
    )
    warm = run_cycle(
        _cfg(tmp_path, sim_logs, mlflow_store, interval="gaussian", train=TrainMode.parse("warm")),
        as_of=AS_OF,
    )
    assert (
        warm.plan["train_since"]
        == (datetime.fromisoformat(first.plan["train_until"]) + timedelta(days=1))
        .date()
        .isoformat()
    )
    run = MlflowClient(mlflow_store).get_model_version("nba", str(warm.challenger_version)).run_id
    assert (
        MlflowClient(mlflow_store).get_run(str(run)).data.params["warm_start_from"]
        == first.challenger_version
    )
    # VW continued its saved state: the same as learning all those days in one go
    full = run_cycle(_cfg(tmp_path, sim_logs, mlflow_store, interval="gaussian"), as_of=AS_OF)
    assert full.plan["train_since"] == first.plan["train_since"]
    a = load_policy(f"models:/nba/{warm.challenger_version}", mlflow_store)
    b = load_policy(f"models:/nba/{full.challenger_version}", mlflow_store)
    dec = logio.read(sim_logs, "decisions").slice(0, 30).to_pylist()
    for d in dec:
        ctx = DecisionContext.from_json(d["context"])
        actions = [Action.parse(x) for x in d["action_ids"]]
        assert a.probabilities(ctx, actions) == pytest.approx(b.probabilities(ctx, actions))
    assert warm.metrics["challenger_estimate"] == pytest.approx(
        full.metrics["challenger_estimate"], abs=1e-9
    )


def test_cli_with_a_store_exports_then_says_why_it_cannot_train_yet(
    tmp_path: Path, mlflow_store: str
) -> None:
    store = EventStore(tmp_path / "events.db")
    cat = Catalog.default()
    store.add_catalog(cat)
    t0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    store.add_decisions([_dec(i, t0 + timedelta(hours=i), cat.version) for i in range(5)])
    args = [
        "loop",
        "--store",
        str(tmp_path / "events.db"),
        "--work",
        str(tmp_path / "w"),
        "--once",
        "--as-of",
        "2026-03-10",
        "--tracking-uri",
        mlflow_store,
    ]
    res = CliRunner().invoke(nba, args)
    assert res.exit_code == 0, res.output
    assert "cycle 1 as of 2026-03-10" in res.output and ": skipped" in res.output
    assert "exported decisions 5" in res.output
    assert "not enough closed days" in res.output
    res = CliRunner().invoke(nba, args)
    assert "cycle 2" in res.output and "exported decisions 0" in res.output
    bad = CliRunner().invoke(
        nba, ["loop", "--store", str(tmp_path / "nope.db"), "--work", str(tmp_path / "w"), "--once"]
    )
    assert bad.exit_code == 1 and "--store: no event store database at" in bad.output
    every = CliRunner().invoke(
        nba, [*args[:5], "--every", "0.0001", "--max-cycles", "2", "--tracking-uri", mlflow_store]
    )
    assert every.exit_code == 0, every.output
    assert "cycle 3 as of" in every.output and "cycle 4 as of" in every.output
    both = CliRunner().invoke(nba, ["loop", "--logs", str(tmp_path), "--work", str(tmp_path)])
    assert both.exit_code == 2 and "give either --once or --every HOURS" in both.output


def test_every_runs_cycles_on_a_clock(tmp_path: Path, sim_logs: Path, mlflow_store: str) -> None:
    from training.loop import run_every

    slept: list[float] = []
    done = run_every(
        _cfg(tmp_path, sim_logs, mlflow_store, interval="gaussian"),
        hours=2.0,
        max_cycles=2,
        echo=lambda s: None,
        sleep=slept.append,
    )
    assert [r.cycle for r in done] == [1, 2]
    assert len(slept) == 1 and 0 < slept[0] <= 7200


# ------------------------------------------------------------ refusals
def _refused(tmp_path: Path, logs: Path, uri: str, **kw: object) -> list[str]:
    res = run_cycle(_cfg(tmp_path, logs, uri, **kw), as_of=AS_OF)
    assert res.decision == "refused", res.format()
    assert res.challenger_version is None  # nothing was trained or registered
    from mlflow import MlflowClient

    assert MlflowClient(uri).get_run(str(res.run_id)).data.tags["decision"] == "refused"
    return res.reasons


def test_refuses_propensities_outside_zero_one(
    tmp_path: Path, sim_logs: Path, mlflow_store: str
) -> None:
    logs = _copy(sim_logs, tmp_path)
    day = (DEFAULT_START + timedelta(days=3)).isoformat()

    def zero_first(t: pa.Table) -> pa.Table:
        p = t.column("propensity").to_pylist()
        p[0] = 0.0
        return t.set_column(t.schema.get_field_index("propensity"), "propensity", pa.array(p))

    _rewrite(logs, "decisions", day, zero_first)
    (reason,) = _refused(tmp_path, logs, mlflow_store)
    assert "propensity outside (0, 1]" in reason and "0.0" in reason


def test_refuses_an_empty_day(tmp_path: Path, sim_logs: Path, mlflow_store: str) -> None:
    logs = _copy(sim_logs, tmp_path)
    day = (DEFAULT_START + timedelta(days=9)).isoformat()
    shutil.rmtree(logs / "decisions" / f"date={day}")
    reasons = _refused(tmp_path, logs, mlflow_store)
    assert any(f"no decision at all on 1 day(s) of the cycle ({day})" in r for r in reasons)


def test_refuses_feature_drift(tmp_path: Path, sim_logs: Path, mlflow_store: str) -> None:
    logs = _copy(sim_logs, tmp_path)
    plan = plan_days(AS_OF, 14, 7, 14, DEFAULT_START)
    assert not isinstance(plan, str)

    def all_decile_ten(t: pa.Table) -> pa.Table:
        ctx = [json.loads(c) for c in t.column("context").to_pylist()]
        for c in ctx:
            c["hcp"]["decile"] = 10
        col = pa.array([json.dumps(c) for c in ctx])
        return t.set_column(t.schema.get_field_index("context"), "context", col)

    d = plan.eval_since
    while d <= plan.eval_until:
        _rewrite(logs, "decisions", d.isoformat(), all_decile_ten)
        d += timedelta(days=1)
    (reason,) = _refused(tmp_path, logs, mlflow_store)
    assert reason.startswith("feature drift") and "hcp.decile" in reason
    # a threshold above the drift lets the same log through the check
    res = run_cycle(
        _cfg(tmp_path / "b", logs, mlflow_store, psi_threshold=1e6, interval="gaussian"),
        as_of=AS_OF,
    )
    assert res.decision != "refused", res.format()


def test_refuses_when_the_reward_model_fails(
    tmp_path: Path, sim_logs: Path, mlflow_store: str
) -> None:
    logs = _copy(sim_logs, tmp_path)
    plan = plan_days(AS_OF, 14, 7, 14, DEFAULT_START)
    assert not isinstance(plan, str)
    # a reporting system sent a non-finite numeric reward for one evaluation-day decision
    dec = logio.read(logs, "decisions", since=plan.eval_since, until=plan.eval_since)
    first = dec.slice(0, 1)
    outcomes = pa.table(
        {
            "event_id": first.column("event_id"),
            "ts": pc.add(first.column("ts"), pa.scalar(timedelta(hours=1))),
            "type": pa.array(["reward"]),
            "value": pa.array([float("nan")]),
            "source": pa.array(["crm"]),
            "source_id": pa.array(["x1"]),
        }
    )
    logio.append(logs, "outcomes", outcomes)
    reasons = _refused(tmp_path, logs, mlflow_store)
    assert any(r.startswith("reward-model failure") for r in reasons), reasons


def test_history_plot_needs_a_truth(tmp_path: Path) -> None:
    from training.loop import plot_history

    plan = {"eval_until": "2026-02-01"}
    no_truth = [{"cycle": 1, "decision": "kept", "plan": plan, "metrics": {"logged_value": 0.1}}]
    assert plot_history(no_truth, tmp_path / "a.png") is None
    cycles = [
        {
            "cycle": 1,
            "decision": "promoted",
            "plan": plan,
            "metrics": {
                "truth_served_eval_days": 0.1,
                "logged_value": 0.1,
                "challenger_estimate": 0.15,
                "challenger_low": 0.12,
                "challenger_high": 0.18,
            },
        },
        {
            "cycle": 2,
            "decision": "skipped",
            "plan": {},
            "metrics": {"truth_served_since_last_cycle": 0.14},
        },
    ]
    png = plot_history(cycles, tmp_path / "b.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
