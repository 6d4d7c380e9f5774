"""The README's benchmark commands run and print their figures (tiny sizes).

Figures are not asserted (benchmarks measure, tests do not time); what is
checked is that each script runs to the end and prints the ratio it exists for.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nba.paths import PROJECT_ROOT


def _run(args: list[str], tmp_env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env=tmp_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


@pytest.fixture
def env(tmp_path):  # type: ignore[no-untyped-def]
    e = {**os.environ, "NBA_DATA_DIR": str(tmp_path / "data")}
    e["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    e["NBA_BENCH_RECORDS"] = str(tmp_path / "records.jsonl")
    return e


def _figures(text: str, records: str | Path) -> dict[str, dict[str, Any]]:
    """The run's headline figures by measure: the ``bench-record:`` line it printed,
    which must also be the last line of the record file it appended to."""
    printed = [ln[len("bench-record: ") :] for ln in text.splitlines()
               if ln.startswith("bench-record: ")]  # fmt: skip
    assert len(printed) == 1, text[-3000:]
    assert Path(records).read_text().splitlines()[-1] == printed[0]
    record = json.loads(printed[0])
    assert record["machine"]["cores"] == os.cpu_count()
    assert record["finished"] and len(record["load"]) == 2
    return {f["measure"]: f for f in record["figures"]}


@pytest.mark.slow
def test_bench_simulate(env: dict[str, str]) -> None:
    text = _run(["bench/simulate.py", "--hcps", "300", "--days", "5", "--repeat", "1"], env)
    assert "cpu_count=" in text and "decisions/s" in text and "target" in text
    assert "CPU s of it" in text
    best = re.search(r"with logs ([\d,]+) decisions/s \(([\d.]+)x target\)", text)
    assert best is not None, text
    fig = _figures(text, env["NBA_BENCH_RECORDS"])
    logs = fig["`nba simulate` with Parquet logs, 300 HCPs × 5 days, campaign (best of 1)"]
    assert f"{logs['value']:,.0f}" == best.group(1)
    assert logs["met"] is False and logs["reference"] is None  # 300 HCPs: far below the goal


@pytest.mark.slow
def test_bench_train(env: dict[str, str]) -> None:
    text = _run(["bench/train.py", "--hcps", "300", "--days", "8", "--repeat", "2"], env)
    assert "ratio (nba / VW native):" in text
    assert "identical models: True" in text
    # the two pairs alternate which side runs first, and their median is printed
    assert "pair 1 (nba train first):" in text and "pair 2 (VW native first):" in text
    assert "ratio per pair (median of 2, alternating):" in text
    med = re.search(r"ratio per pair \(median of 2, alternating\): ([\d.]+)", text)
    assert med is not None
    (fig,) = _figures(text, env["NBA_BENCH_RECORDS"]).values()
    assert fig["measure"].startswith("`nba train`, ") and fig["unit"] == "s"
    assert f"{fig['ratio']:.3f}" == med.group(1) and fig["met"] == (fig["ratio"] >= 0.8)
    assert fig["value"] > 0 and fig["reference"] > 0


def _bench_train_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_train", PROJECT_ROOT / "bench" / "train.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_train"] = module  # its dataclass looks itself up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["bench_train"]
    return module


def test_bench_train_pairs_median_and_spread() -> None:
    bt = _bench_train_module()
    pairs = [
        bt.Pair(10.0, 20.0, 6.0, 11.0),
        bt.Pair(12.0, 22.0, 9.0, 11.0),
        bt.Pair(8.0, 18.0, 6.0, 9.0),
    ]
    assert [p.ratio for p in pairs] == [0.6, 0.75, 0.75]
    assert pairs[0].cpu_ratio == 0.55
    assert bt.spread([p.ratio for p in pairs]) == (0.75, 0.6, 0.75)
    assert bt.spread([0.5, 0.75, 0.25, 1.0]) == (0.625, 0.25, 1.0)  # even count: middle two
    with pytest.raises(ValueError, match="no values"):
        bt.spread([])


@pytest.mark.parametrize(
    ("script", "arg", "message"),
    [
        ("bench/train.py", "--repeat", "--repeat must be at least 1 (pairs of runs), got 0"),
        ("bench/serve.py", "--batch-in-flight", "--batch-in-flight must be at least 1, got 0"),
    ],
)
def test_bench_refuses_a_zero_count(
    env: dict[str, str], script: str, arg: str, message: str
) -> None:
    out = subprocess.run(
        [sys.executable, script, arg, "0"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2
    assert message in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("loadgen", ["python", "wrk"])
def test_bench_serve(env: dict[str, str], loadgen: str) -> None:
    if loadgen == "wrk" and shutil.which("wrk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is not installed; `make test` installs Debian's wrk")
        pytest.skip("wrk is not installed (`make test` installs it)")
    text = _run(
        [
            "bench/serve.py",
            "--loadgen",
            loadgen,
            "--workers",
            "1",
            "--seconds",
            "1",
            "--rounds",
            "1",
            "--hcps",
            "200",
            "--batch-size",
            "100",
            "--batches",
            "2",
        ],
        env,
    )
    assert "decisions/noop requests/s ratio:" in text
    assert "decisions/bare FastAPI requests/s ratio:" in text
    bare_row = next(ln for ln in text.splitlines() if ln.startswith("bare FastAPI no-op"))
    requests, errors = (int(x) for x in bare_row.split()[3:5])
    assert requests > 0 and errors == 0  # the reference really answered
    assert float(bare_row.split()[-1]) > 0  # its server's CPU per request was measured
    assert "acknowledged but missing from the store: 0" in text
    # both servers run on the same HTTP parser and event loop
    assert "server (service and bare app alike): uvicorn http=" in text
    assert "server CPU per request, decisions/bare FastAPI:" in text
    # the batch's server CPU per decision, measured (positive) like the single route's
    batch_cpu = next(ln for ln in text.splitlines() if ln.startswith("batch server CPU:"))
    assert float(batch_cpu.split()[3]) > 0 and "decisions per CPU second" in batch_cpu
    # two batch requests in flight per worker by default, all of them answered
    assert "batch: 200 decisions (100 a request, 2 in flight)" in text
    # the event loop's CPU per request apart from the other threads' (thread pool, committer)
    split = text.split("server CPU ms per request", 1)[1].splitlines()
    loop_ms, other_ms = (
        float(x) for x in next(ln for ln in split if ln.startswith("/v1/decisions")).split()[1:3]
    )
    assert loop_ms >= 0 and other_ms > 0  # measured; a decision's work runs off the loop
    # the decisions' CPU by thread role: the decision pool's threads are named
    roles = dict(re.findall(r"^(event loop|nba-decide|nba-group-commi)\s+([\d.]+)$", text, re.M))
    assert float(roles["nba-decide"]) > 0, text
    fig = _figures(text, env["NBA_BENCH_RECORDS"])
    single = fig["`POST /v1/decisions`, 1 worker, 16 clients"]
    decide_row = next(ln for ln in text.splitlines() if ln.startswith("/v1/decisions "))
    assert f"{single['value']:.1f}" == decide_row.split()[3]
    assert f"{single['reference']:.1f}" == bare_row.split()[5]
    assert single["met"] == (single["ratio"] >= 0.5)
    batch = fig["`POST /v1/decisions:batch`, 100 HCPs a request"]
    assert batch["reference"] == single["value"] and batch["unit"] == "decisions/s"
    lost = fig["acknowledged decisions missing from the store"]
    assert lost["value"] == 0 and lost["met"] is True


@pytest.mark.slow
def test_bench_decide_threads(env: dict[str, str]) -> None:
    """Both ways of handing a decision over run and print their CPU per decision."""
    text = _run(
        ["bench/decide_threads.py", "--decisions", "60", "--rounds", "1", "--hcps", "40"], env
    )
    for way in ("blocking", "awaited"):
        row = re.search(rf"^  {way}\s+CPU ([\d.]+) ms/decision, ([\d.]+) switches", text, re.M)
        assert row is not None and float(row.group(1)) > 0, text


@pytest.mark.slow
@pytest.mark.parametrize("loadgen", ["python", "wrk"])
def test_bench_outcomes(env: dict[str, str], loadgen: str) -> None:
    if loadgen == "wrk" and shutil.which("wrk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is not installed; `make test` installs Debian's wrk")
        pytest.skip("wrk is not installed (`make test` installs it)")
    text = _run(
        [
            "bench/outcomes.py",
            "--loadgen",
            loadgen,
            "--store-outcomes",
            "200",
            "--seconds",
            "1",
            "--rounds",
            "1",
            "--workers",
            "1",
            "--decisions",
            "300",
            "--batch-size",
            "20",
            "--two-process-seconds",
            "1",
        ],
        env,
    )
    assert "group commit:" in text and "ratio:" in text
    assert "acknowledged but missing: 0" in text
    # two committing processes on one file: they stored something, and all of it
    two = re.search(
        r"two processes .* (\d+) commits/s, ([\d.]+) outcomes per commit;.*"
        r"acknowledged (\d+), missing (\d+)",
        text,
    )
    assert two is not None, text
    assert int(two.group(1)) > 0 and int(two.group(3)) > 0 and two.group(4) == "0"
    assert ("load generator wrk" in text) == (loadgen == "wrk")
    for route in ("bare FastAPI no-op", "our no-op", "/outcomes ", "/v1/outcomes:batch"):
        assert route in text
    assert "outcomes/s = " in text and "the single route" in text and "goal >= 2,000" in text
    assert text.count("acknowledged but missing from the store 0") == 2
    # both outcome routes really stored outcomes (a run that stores nothing is a failure)
    acked = [int(a) for a in re.findall(r"acknowledged (\d+) \(warm-up included\)", text)]
    assert len(acked) == 2 and min(acked) > 0, text
    fig = _figures(text, env["NBA_BENCH_RECORDS"])
    grouped = re.search(r"group commit:\s+([\d.]+) outcomes/s", text)
    assert grouped is not None
    assert f"{fig['store write path, group commit, 16 threads']['value']:.1f}" == grouped.group(1)
    single = fig["`POST /v1/events/{event_id}/outcomes`, 1 worker, 16 clients"]
    batch = fig["`POST /v1/outcomes:batch`, 20 a request, 1 worker"]
    assert batch["reference"] == single["value"] > 0
    assert fig["acknowledged outcomes missing from the store"]["met"] is True


@pytest.mark.slow
def test_bench_startup(env: dict[str, str]) -> None:
    text = _run(["bench/startup.py", "--repeat", "1"], env)
    assert "python -c pass" in text and "nba --help" in text and "goal: nba --help" in text
    top = re.search(r"^nba --help\s+([\d.]+) s", text, re.M)
    assert top is not None
    fig = _figures(text, env["NBA_BENCH_RECORDS"])["`nba --help`, median CPU of a fresh process"]
    assert f"{fig['value']:.3f}" == top.group(1) and fig["met"] == (fig["value"] <= 0.5)


@pytest.mark.slow
def test_bench_process_cpu(env: dict[str, str]) -> None:
    """One cheap case (pandas) with its reference, each with and without bytecode."""
    text = _run(["bench/process_cpu.py", "--repeat", "1", "--only", "pandas"], env)
    assert "bytecode" in text and "none" in text and "run finished" in text
    rows = {
        m.group(1): m.groups()[1:]
        for m in re.finditer(r"^(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x$", text, re.M)
    }
    assert set(rows) == {"pass", "pandas"}, text


@pytest.mark.slow
def test_bench_export(env: dict[str, str]) -> None:
    small = ["--hcps", "120", "--days", "8", "--repeat", "1"]
    text = _run(["bench/export.py", *small, "--large-hcps", "200", "--check-rows", "40"], env)
    assert (
        "one decision at a time:" in text
        and "bulk (column-wise):" in text
        and "per CPU second" in text
        and "bulk featurizer alone:" in text
        and "bulk, first export in the process (caches empty):" in text
    )
    assert "files identical: True" in text
    # the command in a fresh process, on both logs: the same bytes
    for label in ("the command end to end:", "larger log, the command end to end:"):
        line = next(ln for ln in text.splitlines() if ln.startswith(label))
        assert line.endswith("file identical: True)"), text
    line = next(ln for ln in text.splitlines() if ln.startswith("larger log: "))
    assert re.search(r"; 40 lines from row \d+ identical to one at a time: True$", line), text
    # the lines made by DuckDB's function path: the same file, with its ratio
    line = next(ln for ln in text.splitlines() if ln.startswith("lines made by duckdb"))
    assert "x the in-process bulk path with its outcomes and pulls read; " in line, text
    assert line.endswith("file identical: True)"), text
    command = re.search(r"^the command end to end:\s+(\d+) decisions/s", text, re.M)
    assert command is not None
    fig = _figures(text, env["NBA_BENCH_RECORDS"])
    (cmd,) = [f for m, f in fig.items() if m.startswith("`nba logs export --format dsjson`")]
    assert f"{cmd['value']:.0f}" == command.group(1) and cmd["goal"] == "≥ 50,000 decisions/s"


@pytest.mark.slow
def test_bench_train_memory(env: dict[str, str]) -> None:
    text = _run(["bench/train_memory.py", "--decisions", "1500"], env)
    assert "reference: importing" in text and "largest single process max RSS" in text
    assert "goal: <= 2 GiB" in text
    (fig,) = _figures(text, env["NBA_BENCH_RECORDS"]).values()
    assert fig["unit"] == "GiB" and 0 < fig["reference"] < fig["value"] and fig["met"] is True


@pytest.mark.slow
def test_bench_scale_store(env: dict[str, str]) -> None:
    import pg_server

    if pg_server.find_bin_dir() is None:
        pg_server.unavailable("PostgreSQL binaries not found (`make test` installs them)")
    # through bench/scale.py, the one command for both halves (its pipeline half is
    # test_bench_scale_pipeline's script, run there in-process on the session's Spark)
    text = _run(
        ["bench/scale.py", "--part", "store", "--seconds", "1", "--rounds", "1", "--hcps", "200"],
        env,
    )
    assert "== event store: 2 replicas on PostgreSQL vs 1 on SQLite" in text
    assert "decisions/s ratio (2 replicas on PostgreSQL / 1 on SQLite):" in text
    rows = [ln for ln in text.splitlines() if ln.startswith(("1 replica", "2 replicas"))]
    assert len(rows) == 2
    for row in rows:
        decisions, missing = int(row.split()[-6]), int(row.split()[-1])
        assert decisions > 0 and missing == 0  # both really decided and stored
    (fig,) = _figures(text, env["NBA_BENCH_RECORDS"]).values()
    assert fig["value"] > 0 and fig["reference"] > 0 and fig["met"] is None


def test_bench_scale_pipeline(
    spark_engine: object,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run in this process, so it uses the test session's Spark (``local[2]``) rather
    than starting a JVM of its own."""
    spec = importlib.util.spec_from_file_location(
        "scale_pipeline", PROJECT_ROOT / "bench" / "scale_pipeline.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    records = tmp_path / "records.jsonl"
    monkeypatch.setenv("NBA_BENCH_RECORDS", str(records))
    code = module.main(["--decisions", "3000", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "duckdb:" in text and "spark:" in text
    assert "ratio (spark / duckdb time):" in text and "results identical: True" in text
    (fig,) = _figures(text, records).values()
    assert fig["measure"].endswith(", 3,000 decisions") and fig["met"] is True


@pytest.mark.slow
def test_bench_scale_featurize(
    spark_engine: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process too (the session's Spark): the three ways of making ``nba
    train``'s examples give the same bytes, and the ratios are printed."""
    spec = importlib.util.spec_from_file_location(
        "scale_featurize", PROJECT_ROOT / "bench" / "scale_featurize.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(["--hcps", "40", "--days", "5", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "ratio spark / duckdb (engine function):" in text
    assert "identical bytes: True" in text


@pytest.mark.slow
def test_bench_join_read(env: dict[str, str]) -> None:
    text = _run(["bench/join_read.py", "--hcps", "100", "--days", "5", "--repeat", "1"], env)
    assert "engine reads the log" in text and "pyarrow reads it" in text and "ratio" in text
    assert "identical: True" in text


def test_loadgen_choice_names_a_missing_wrk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = importlib.util.spec_from_file_location("bench_wrk", PROJECT_ROOT / "bench" / "wrk.py")
    assert spec is not None and spec.loader is not None
    wrk = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_wrk", wrk)  # its dataclass looks itself up
    spec.loader.exec_module(wrk)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no wrk
    assert wrk.wants_wrk("python") is False
    assert wrk.wants_wrk("auto") is False
    with pytest.raises(SystemExit, match="--loadgen wrk: wrk is not on PATH"):
        wrk.wants_wrk("wrk")
    fake = tmp_path / "wrk"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert wrk.wants_wrk("auto") is True
    assert wrk.wants_wrk("wrk") is True
    assert wrk.wants_wrk("python") is False


@pytest.mark.slow
def test_bench_engine_cpu(env: dict[str, str], tmp_path: Path) -> None:
    """The engine in-process: two source trees (here the same one twice) alternate,
    each measured in its own process, with the in-process reference."""
    text = _run(
        [
            "bench/engine_cpu.py",
            "--decisions",
            "40",
            "--rounds",
            "1",
            "--hcps",
            "60",
            "--batch-size",
            "20",
            "--tree",
            str(PROJECT_ROOT),
            "--tree",
            ".",
        ],
        env,
    )
    rows = re.findall(
        r"^\S+\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+[\d.]+$", text, re.M
    )
    assert len(rows) == 2, text
    assert all(float(s) > 0 and float(b) > 0 and float(r) > 0 for s, b, r in rows), text
    assert "best over processes:" in text and "ms a batch decision" in text
    prof = tmp_path / "engine.prof"
    model = re.search(r"; model (\S+)$", text, re.M)
    assert model is not None, text
    _run(
        ["bench/engine_cpu.py", "--model", model.group(1), "--decisions", "20",
         "--hcps", "30", "--profile", str(prof)],
        env,
    )  # fmt: skip
    assert prof.stat().st_size > 0
    parts = _run(
        ["bench/engine_cpu.py", "--model", model.group(1), "--components", "--rounds", "1",
         "--hcps", "60"],
        env,
    )  # fmt: skip
    for name in ("HCP state rows", "event id", "decision row JSON", "VW scores"):
        row = re.search(rf"^{name}.*?\s([\d.]+)\s+([\d.]+)\s+(-?[\d.]+)$", parts, re.M)
        assert row is not None and float(row.group(1)) > 0 and float(row.group(2)) > 0, parts


def test_bench_suite_times_pytest_and_lists_the_slowest(
    env: dict[str, str], tmp_path: Path
) -> None:
    """``--tests``: pytest on a few paths here, as ``make test`` calls it (the clean
    clone's run is the suite itself, too long for a test)."""
    quick = tmp_path / "test_quick.py"
    quick.write_text(
        "import time\n\ndef test_a():\n    time.sleep(0.2)\n\ndef test_b():\n    pass\n"
    )
    text = _run(["bench/suite.py", "--tests", str(quick)], env)
    counts = re.search(r"^pytest: 2 passed in ([\d.]+) s \(([\d.]+) min\)$", text, re.M)
    assert counts is not None, text
    slow = re.search(r"^\s+([\d.]+) s  call\s+\S*test_quick.py::test_a$", text, re.M)
    assert slow is not None and float(slow.group(1)) >= 0.2, text
    fig = _figures(text, env["NBA_BENCH_RECORDS"])
    pytest_time = fig[f"pytest on {quick}, this checkout, 2 tests passed"]
    assert f"{pytest_time['value']:.2f}" == counts.group(2) and pytest_time["met"] is True


def test_bench_suite_records_nothing_for_a_failing_run(env: dict[str, str], tmp_path: Path) -> None:
    failing = tmp_path / "test_failing.py"
    failing.write_text("def test_fails():\n    assert 1 == 2\n")
    out = subprocess.run(
        [sys.executable, "bench/suite.py", "--tests", str(failing)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 1, out.stdout
    assert "1 failed" in out.stdout and "goal <= 8 min of pytest with every test run: NOT met" in (
        out.stdout
    )
    assert "bench-record: " not in out.stdout
    assert not Path(env["NBA_BENCH_RECORDS"]).exists()
