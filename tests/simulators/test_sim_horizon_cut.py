"""``nba simulate --horizon-cut``: the log a store export on the last simulated
day would hold, and what leaving open reward windows out does to an estimate."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from nba.logs import io as logio
from nba.logs.join import load_joined, manifest_as_of
from nba.reward import RewardDefinition
from nba_cli.main import main
from simulators.hcp.world import DEFAULT_START, simulate
from training.evaluate import evaluate

RD = RewardDefinition.default()
DAYS = 20


def _run(out: Path, *extra: str) -> str:
    args = ["simulate", "--hcps", "200", "--days", str(DAYS), "--policy", "uniform"]
    res = CliRunner().invoke(main, [*args, "--seed", "5", "--out", str(out), "--quiet", *extra])
    assert res.exit_code == 0, res.output
    return res.output


def _sorted(table):  # type: ignore[no-untyped-def]
    return table.sort_by([("event_id", "ascending"), ("type", "ascending"), ("ts", "ascending")])


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, str]:
    root = tmp_path_factory.mktemp("cut")
    full, cut = root / "full", root / "cut"
    return full, cut, _run(full), _run(cut, "--horizon-cut")


def test_cut_withholds_exactly_the_outcomes_after_the_last_day(pair) -> None:
    full, cut, _, printed = pair
    as_of = manifest_as_of(cut)
    end = DEFAULT_START + timedelta(days=DAYS)
    assert as_of == datetime.combine(end, time(0), UTC) - timedelta(microseconds=1)
    manifest = json.loads((cut / "manifest.json").read_text())
    assert manifest["horizon_cut"] is True
    assert manifest["as_of_basis"].startswith("simulator --horizon-cut")
    # same world, same decisions and truth; outcomes are the full run's up to as_of
    for table in ("decisions", "ground_truth"):
        assert logio.read(cut, table).equals(logio.read(full, table))
    o_full, o_cut = logio.read(full, "outcomes"), logio.read(cut, "outcomes")
    kept = o_full.filter(pc.less_equal(o_full.column("ts"), as_of))
    assert 0 < kept.num_rows < o_full.num_rows
    assert _sorted(o_cut).equals(_sorted(kept))
    withheld = o_full.num_rows - kept.num_rows
    assert manifest["outcomes_withheld"] == withheld
    assert f"horizon cut: {withheld} outcomes after {end - timedelta(days=1)}T23:59:59Z" in printed


def test_ordinary_run_is_complete_and_leaves_nothing_out(pair) -> None:
    full, _, printed, _ = pair
    as_of = manifest_as_of(full)
    manifest = json.loads((full / "manifest.json").read_text())
    assert manifest["horizon_cut"] is False and manifest["outcomes_withheld"] == 0
    dec = logio.read(full, "decisions")
    last_window_end = pc.max(dec.column("ts")).as_py() + timedelta(days=RD.window_days)
    last_outcome = pc.max(logio.read(full, "outcomes").column("ts")).as_py()
    assert as_of is not None and as_of >= last_window_end and as_of >= last_outcome
    res = load_joined(full, RD)
    assert res.counts.open_window_decisions == 0 and res.counts.outcomes_after_as_of == 0
    assert res.table.num_rows == pc.sum(dec.column("activated")).as_py()
    assert "outcomes complete: manifest as_of" in printed


def test_cut_log_leaves_the_open_windows_out(pair) -> None:
    _, cut, _, _ = pair
    as_of = manifest_as_of(cut)
    assert as_of is not None
    dec = logio.read(cut, "decisions")
    open_ = pc.greater(dec.column("ts"), as_of - timedelta(days=RD.window_days))
    res = load_joined(cut, RD)
    assert res.counts.open_window_decisions == pc.sum(open_).as_py() > 0
    assert res.table.num_rows == dec.num_rows - res.counts.open_window_decisions


def test_horizon_cut_does_not_apply_with_via(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main, ["simulate", "--via", "http://127.0.0.1:9", "--horizon-cut", "--days", "1"]
    )
    assert res.exit_code == 2
    assert "--horizon-cut does not apply with --via" in res.output


def test_open_windows_bias_the_estimate_low_and_the_rule_removes_it(tmp_path: Path) -> None:
    """SNIPS of ``uniform`` (the logging policy) against the simulator's truth.

    Without the rule (a horizon far in the future: partial rewards taken as
    final, as before) the truth lies above the whole interval, both on the
    whole log and on its last 14 days (what a gate judges); with the rule the
    truth of the decisions kept lies inside the interval.
    """
    days = 28
    out = tmp_path / "cut"
    simulate(hcps=3000, days=days, policy="uniform", seed=1, out=out, horizon_cut=True)
    kw = {"estimators": ["snips"], "intervals": ["gaussian"], "seed": 0}
    recent = (DEFAULT_START + timedelta(days=days - 14)).isoformat()
    rule = evaluate(out, RD, ["uniform"], **kw).rows[0]
    naive = evaluate(out, RD, ["uniform"], as_of="2100-01-01", **kw).rows[0]
    naive_recent = evaluate(out, RD, ["uniform"], as_of="2100-01-01", since=recent, **kw).rows[0]
    for row in (naive, naive_recent):
        assert row["high"] < row["truth"], row  # biased low, truth outside the interval
    assert rule["low"] <= rule["truth"] <= rule["high"], rule
    # the bias is largest on the most recent days
    assert naive_recent["truth"] - naive_recent["estimate"] > naive["truth"] - naive["estimate"]
    assert abs(rule["estimate"] - rule["truth"]) < naive["truth"] - naive["estimate"]


def test_train_evaluate_promote_print_the_horizon(
    pair, tmp_path, monkeypatch, empty_mlflow_store
) -> None:
    _, cut, _, _ = pair
    shutil.copy(empty_mlflow_store, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("NBA_DATA_DIR", str(tmp_path / "data"))
    n_open = load_joined(cut, RD).counts.open_window_decisions
    last = DEFAULT_START + timedelta(days=DAYS - 1)
    line = f"{n_open} decisions with open reward windows left out (as of {last}T23:59:59Z)"
    basis = f"reward windows as of {last}T23:59:59Z (simulator --horizon-cut"
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--logs", str(cut), "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert basis in res.output and line in res.output
    assert "registered nba version 1 as 'challenger'" in res.output
    args = ["--logs", str(cut), "--estimator", "snips", "--interval", "gaussian"]
    res = runner.invoke(main, ["evaluate", *args, "--policy", "uniform", "--no-mlflow"])
    assert res.exit_code == 0, res.output
    assert f"note: {line}" in res.output
    res = runner.invoke(main, ["evaluate", *args, "--policy", "uniform", "--no-mlflow", "--json"])
    assert res.exit_code == 0, res.output
    assert f"note: {line}" in res.stderr and line in json.loads(res.stdout)["notes"]
    # promote's evaluation has the same horizon (it then refuses: the logs overlap training)
    res = runner.invoke(main, ["promote", *args, "--dry-run"])
    assert f"note: {line}" in res.stdout, res.output
    early = f"{DEFAULT_START + timedelta(days=3)}"
    # with a horizon before any window closed, nothing is left to judge: a clear refusal
    res = runner.invoke(main, ["promote", *args, "--dry-run", "--as-of", early])
    assert res.exit_code == 1
    assert (
        "no activated decisions in the selected range whose reward window has closed: "
        f"{load_joined(cut, RD, as_of=early).counts.open_window_decisions} decisions with open "
        f"reward windows left out (as of {early}T23:59:59Z); select earlier days or give a "
        "later --as-of"
    ) in res.stderr


def test_delay_corrected_rewards_of_open_windows_are_closer_to_the_final_ones(pair) -> None:
    from nba.logs.join import OpenWindows

    full, cut, _, _ = pair
    final = load_joined(full, RD)  # the same decisions once every window has closed
    partial = load_joined(cut, RD, open_windows=OpenWindows.PARTIAL)
    corrected = load_joined(cut, RD, open_windows=OpenWindows.DELAY_CORRECTED)
    n_open = corrected.counts.open_window_decisions
    assert n_open > 0 and corrected.counts.delay_closed_decisions > 0
    assert corrected.table.num_rows == partial.table.num_rows == final.table.num_rows
    ids = final.table.column("event_id")
    assert corrected.table.column("event_id").equals(ids)
    # the rows whose window is open at the cut's horizon
    as_of = manifest_as_of(cut)
    assert as_of is not None
    is_open = pc.greater(
        pc.add(corrected.table.column("ts"), pa_duration(RD.window_days)), pa_scalar(as_of)
    )
    n = pc.sum(is_open.cast("int64")).as_py()
    assert n == n_open

    def mean_open(res) -> float:  # type: ignore[no-untyped-def]
        return pc.mean(res.table.column("reward").filter(is_open)).as_py()

    truth, got_partial, got_corrected = mean_open(final), mean_open(partial), mean_open(corrected)
    assert got_partial < truth  # the partial rewards miss the later outcomes
    assert abs(got_corrected - truth) < 0.5 * abs(got_partial - truth)
    # closed decisions keep their exact reward
    closed = pc.invert(is_open)
    assert (
        corrected.table.column("reward")
        .filter(closed)
        .equals(final.table.column("reward").filter(closed))
    )
    line = corrected.horizon_lines()[1]
    assert line.startswith(f"{n_open} decisions with open reward windows kept with delay-corrected")


def test_train_takes_delay_corrected_open_windows_and_refuses_other_modes(pair, tmp_path) -> None:
    _, cut, _, _ = pair
    base = ["train", "--logs", str(cut), "--no-mlflow", "--seed", "1"]
    res = CliRunner().invoke(main, [*base, "--open-windows", "delay-corrected"])
    assert res.exit_code == 0, res.output
    assert "decisions with open reward windows kept with delay-corrected rewards" in res.output
    excl = CliRunner().invoke(main, base)
    assert excl.exit_code == 0, excl.output
    assert "decisions with open reward windows left out" in excl.output
    bad = CliRunner().invoke(main, [*base, "--open-windows", "partial"])
    assert bad.exit_code == 2 and "Invalid value for '--open-windows'" in bad.output
    from training.train import TrainingError, train

    with pytest.raises(
        TrainingError, match=r"open_windows must be one of exclude, delay-corrected"
    ):
        train(cut, RD, open_windows="partial")


def pa_duration(days: float):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.scalar(timedelta(days=days), pa.duration("us"))


def pa_scalar(ts: datetime):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.scalar(ts, pa.timestamp("us", tz="UTC"))
