"""The README's commands, run as written (README sections stay true).

- the data-scientist tour block runs verbatim in a scratch directory;
- the service block: the README's `nba serve` line starts a real server on a
  free loopback port, and every curl line runs against it, in order, with the
  port substituted, ``EVENT_ID`` replaced by the event id the decision call
  returned and ``SECOND_ACTION_ID`` by the action id of its second suggestion.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from nba.paths import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
BIN = Path(sys.executable).parent


def _blocks_after(heading: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def _commands(block: str) -> list[str]:
    """Shell commands of a block, continuation lines joined, comments dropped."""
    joined = block.replace("\\\n", " ")
    return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]


def _env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["NBA_DATA_DIR"] = str(tmp / "data")
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    return env


def _bash(
    script: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 1200
) -> subprocess.CompletedProcess[str]:
    """Run README lines as one ``bash`` script that stops at the first failing command."""
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_two_commands_are_the_makefile_targets() -> None:
    block = _blocks_after("## Two commands")[0]
    assert [c.split("#")[0].strip() for c in _commands(block)] == ["make demo", "make test"]
    ci = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def _nba_in_process(
    command: str, cwd: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """A README ``nba ...`` line (no shell construct) run in this process from ``cwd``
    with ``env``: its ``click.testing.Result``."""
    from click.testing import CliRunner

    from nba_cli.main import main

    # a shell construct would need bash: this only splits words
    assert not re.search(r"[|;&<>$`*?]", command.replace('"local[2]"', "")), command
    words = shlex.split(command)
    assert words[0] == "nba", command
    monkeypatch.chdir(cwd)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    return CliRunner().invoke(main, words[1:], catch_exceptions=False)


def _run_lines(
    block: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    in_process: frozenset[str],
    timeout: float = 600,
) -> list[str]:
    """Run a README block's lines in order, each as written, from ``tmp_path`` with
    :func:`_env`; the standard output of each. An ``nba SUBCOMMAND`` line whose
    subcommand is in ``in_process`` runs in this process (the same arguments, through
    the same command-line entry point, ``nba_cli.main.main``), the others with bash.
    A line ``nba ... || ALTERNATIVE`` runs ``ALTERNATIVE`` with bash when the command
    exits non-zero, as the shell does.

    Each ``nba`` process would import the command's stack again (MLflow, pandas,
    SciPy: seconds of CPU) that the test's process has already imported. The
    subcommands run in-process here are still run as real processes elsewhere
    (``make demo``'s test; ``nba train`` and ``nba promote`` also in the MLflow-server
    deployment's)."""
    outputs: list[str] = []
    for line in _commands(block):
        command, _, alternative = line.partition(" || ")
        words = shlex.split(command)
        if words[0] != "nba" or words[1] not in in_process:
            out = _bash(line, tmp_path, _env(tmp_path), timeout=timeout)
            assert out.returncode == 0, (line, out.stdout[-3000:], out.stderr[-3000:])
            outputs.append(out.stdout)
            continue
        result = _nba_in_process(command, tmp_path, _env(tmp_path), monkeypatch)
        outputs.append(result.stdout)
        if result.exit_code != 0:
            assert alternative, (line, result.exit_code, result.output[-3000:])
            out = _bash(alternative, tmp_path, _env(tmp_path), timeout=timeout)
            assert out.returncode == 0, (line, out.stdout, out.stderr)
            outputs.append(out.stdout)
    return outputs


@pytest.mark.slow
def test_data_scientist_tour_runs_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tour's lines in order; ``nba logs export`` and ``nba logs import`` as real
    commands (no other test starts them as processes), the others in this process."""
    block = _blocks_after("## A tour for data scientists")[0]
    assert [shlex.split(line)[:2] for line in _commands(block)] == [
        ["nba", "simulate"],
        ["nba", "logs"],
        ["nba", "logs"],
        ["nba", "train"],
        ["nba", "evaluate"],
        ["nba", "promote"],
    ], "the README's tour changed: check what this test runs in-process"
    outputs = _run_lines(
        block,
        tmp_path,
        monkeypatch,
        in_process=frozenset({"simulate", "train", "evaluate", "promote"}),
        timeout=1200,
    )
    stdout = "".join(outputs)
    assert (tmp_path / "logs" / "decisions").is_dir()
    assert (tmp_path / "logs.dsjson").stat().st_size > 0
    assert (tmp_path / "imported" / "decisions").is_dir()
    assert (tmp_path / "report" / "estimates.png").is_file()
    assert "registered nba version 1 as 'challenger'" in stdout
    assert "| truth |" in stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_env(tmp_path: Path, serve_line: str) -> tuple[dict[str, str], list[str]]:
    """The environment (the test's plus the line's ``VAR=value`` prefixes) and the
    ``nba ...`` arguments of a README ``nba serve`` line."""
    env_part, _, cmd = serve_line.partition(" nba ")
    env = _env(tmp_path)
    env.update(dict(kv.split("=", 1) for kv in shlex.split(env_part)))
    return env, ["nba", *shlex.split(cmd)]


def _start_readme_server(
    tmp_path: Path, serve_line: str | None = None, *, own_store: bool = True
) -> tuple[subprocess.Popen[bytes], int]:
    """A README ``nba serve`` line (default: the one of "The decision service") on a
    free loopback port, ready. ``own_store=False`` keeps the line's own store (the
    default ``data/events.db`` under ``NBA_DATA_DIR``), which later README commands
    name; else the server gets a store of its own in ``tmp_path``."""
    if serve_line is None:
        serve_line = _commands(_blocks_after("## The decision service")[0])[0]
    port = _free_port()
    env, args = _serve_env(tmp_path, serve_line.replace("--port 8000", f"--port {port}"))
    if own_store:
        env["NBA_STORE_PATH"] = str(tmp_path / "store.db")
    else:
        env.pop("NBA_STORE_PATH", None)
    proc = subprocess.Popen(
        args,
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    # (it imports MLflow to follow models:/nba@champion, then finds no store and
    # serves the uniform baseline: it does not create one)
    deadline = time.monotonic() + 240
    # one client for the polls: httpx.get builds a client, and an SSL context, each
    # call (about 40 ms of CPU, taken from the starting server on a busy machine)
    with httpx.Client(timeout=1) as http:
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if http.get(f"{base}/readyz").status_code == 200:
                    return proc, port
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                proc.terminate()
                proc.wait(timeout=30)
                raise AssertionError("service not ready")
            time.sleep(0.2)


def _curl(line: str, port: int) -> tuple[int, Any]:
    """Run one README curl line against the test server: (status, JSON body)."""
    assert line.startswith("curl ")
    args = shlex.split(line.replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
    out = subprocess.run(
        [*args, "-w", "\n%{http_code}"], capture_output=True, text=True, check=True
    )
    body, _, code = out.stdout.rpartition("\n")
    return int(code), json.loads(body)


@pytest.mark.slow
def test_service_calls_run_against_a_real_server(tmp_path: Path) -> None:
    calls_block = _blocks_after("## The decision service")[1]
    proc, port = _start_readme_server(tmp_path)
    try:
        answers = []
        event_id = second = None
        for line in _commands(calls_block):
            if "EVENT_ID" in line:
                assert event_id, "the decision call gave no event id"
                line = line.replace("EVENT_ID", event_id)
            if "SECOND_ACTION_ID" in line:
                assert second, "the decision call gave no second suggestion"
                line = line.replace("SECOND_ACTION_ID", second)
            answers.append(_curl(line, port))
            if "/v1/decisions " in line + " " and event_id is None:
                event_id = answers[-1][1]["event_id"]
                second = answers[-1][1]["suggestions"][1]["action_id"]
        codes = [c for c, _ in answers]
        assert codes == [201] * 8, answers  # 2 HCPs, decision, batch, 2 outcomes, touch, statement
        decision = answers[2][1]
        assert 2 <= len(decision["suggestions"]) <= 3
        assert all(s["channel"] == "rep_visit" and s["reasons"] for s in decision["suggestions"])
        assert "uniform" in decision["model_version"]  # no model registered yet
        batch = answers[3][1]
        assert {d["hcp_id"] for d in batch["decisions"]} == {"hcp-000001", "hcp-000002"}
        assert answers[4][1]["stored"] is True and answers[4][1]["action_id"] is None
        assert answers[5][1]["action_id"] == second != decision["chosen_action_id"]
        assert answers[6][1]["kind"] == "detail_pull" and answers[6][1]["stored"] is True
        assert answers[7][1]["topics"] == ["dosing"] and answers[7][1]["channels"] == ["email"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_rep_morning_calls_run_against_a_real_server(tmp_path: Path) -> None:
    proc, port = _start_readme_server(tmp_path)
    try:
        answers: list[tuple[int, Any]] = []
        event_id = None
        for line in _commands(_blocks_after("## A rep's morning")[0]):
            if "EVENT_ID" in line:
                assert event_id, "the suggestions call gave no event id"
                line = line.replace("EVENT_ID", event_id)
            answers.append(_curl(line, port))
            if "/suggestions" in line and event_id is None:
                event_id = answers[-1][1]["suggestions"][0]["event_id"]
        codes = [c for c, _ in answers]
        assert codes == [201, 201, 201, 200, 200, 200, 201, 200, 200, 200], answers
        day = answers[3][1]
        assert [s["hcp_id"] for s in day["suggestions"]] == ["hcp-000101"]  # capacity 1
        assert day["over_capacity"] == ["hcp-000102"]
        assert answers[4][1] == day  # the stored list, not new decisions
        territory = answers[5][1]["hcps"]
        assert [h["hcp_id"] for h in territory] == ["hcp-000101", "hcp-000102"]
        assert territory[0]["open_suggestions"][0]["event_id"] == event_id
        assert answers[6][1]["override_kind"] == "hcp"
        report = answers[7][1]
        assert (report["suggestions"], report["overridden"], report["by_kind"]["hcp"]) == (1, 1, 1)
        timeline = answers[8][1]["items"]
        assert [(i["type"], i["event_id"]) for i in timeline] == [("decision", event_id)]
        assert answers[9][1]["rep_id"] == "rep-0042"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_marketer_changes_a_rule(tmp_path: Path) -> None:
    (block,) = _blocks_after("## A marketer changes a rule")
    serve_line = _commands(_blocks_after("## The decision service")[0])[0]
    env, _ = _serve_env(tmp_path, serve_line)
    env.pop("NBA_STORE_PATH", None)  # the default: data/events.db under NBA_DATA_DIR
    proc, port = _start_readme_server(tmp_path, own_store=False)
    try:
        base = f"http://127.0.0.1:{port}"
        answers: list[tuple[int, object]] = []
        outputs: list[str] = []
        for line in _commands(block):
            line = line.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            if line.startswith("curl "):
                out = subprocess.run(
                    [*shlex.split(line), "-w", "\n%{http_code}"],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=tmp_path,
                )
                body, _, code = out.stdout.rpartition("\n")
                answers.append((int(code), json.loads(body)))
            else:
                out = _bash(line, tmp_path, env)
                assert out.returncode == 0, (line, out.stdout, out.stderr)
                outputs.append(out.stdout)
        assert [c for c, _ in answers] == [200] * 4, answers
        rules, dry, put, back = (a for _, a in answers)
        assert isinstance(rules, dict) and rules["store_version"] == 1
        assert isinstance(dry, dict) and dry["changed"] == 0 and dry["current_version"] == 1
        assert isinstance(put, dict) and put["version"] == 2 and put["who"] == "auth-disabled"
        assert isinstance(back, dict) and back["version"] == 3 and back["action"] == "rollback"
        # show > file and printf >> file print nothing; then validate, diff, history
        assert outputs[:2] == ["", ""]
        assert "valid; version" in outputs[2] and "DE: approval" in outputs[2]
        assert "+[[markets.DE.frequency_caps]]" in outputs[3]
        assert "DE: at most one email a week" in outputs[4]
        final = httpx.get(f"{base}/v1/rules", timeout=10).json()
        assert final["store_version"] == 3 and final["markets"] == {}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_notification_calls_run_against_a_real_server(tmp_path: Path) -> None:
    proc, port = _start_readme_server(tmp_path)
    try:
        answers: list[tuple[int, Any]] = []
        nid = None
        for line in _commands(_blocks_after("## Notifications from HCP events")[0]):
            if "NOTIFICATION_ID" in line:
                assert nid, "the touch call created no notification"
                line = line.replace("NOTIFICATION_ID", str(nid))
            answers.append(_curl(line, port))
            if "/v1/touches" in line:
                nid = answers[-1][1]["notifications"][0]
        codes = [c for c, _ in answers]
        assert codes == [201, 201, 201, 200, 200, 200], answers
        assert answers[2][1]["event"] == "visit_request"
        (note,) = answers[3][1]["notifications"]
        assert (note["id"], note["hcp_id"], note["trigger"], note["action_id"]) == (
            nid,
            "hcp-000201",
            "visit-request",
            "VEL-EFF-01@rep_visit",
        )
        assert answers[4][1]["already_read"] is False
        top = answers[5][1]["suggestions"][0]
        assert (top["hcp_id"], top["trigger"], top["notification_id"]) == (
            "hcp-000201",
            "visit-request",
            nid,
        )
        assert top["reasons"][0].startswith("Triggered by visit request")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_mlflow_ui_command_serves_the_tracking_store(
    tmp_path: Path, empty_mlflow_store: Path
) -> None:
    text = README.read_text(encoding="utf-8")
    m = re.search(
        r"`(\.venv/bin/mlflow ui --workers 1 --backend-store-uri sqlite:///data/mlflow\.db)`", text
    )
    assert m, "the README's mlflow ui command moved"
    port = _free_port()
    args = shlex.split(m.group(1))
    args[0] = str(BIN / "mlflow")
    args[-1] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # the store exists, as after `make demo` (MLflow's migrations are not what is tested)
    shutil.copy(empty_mlflow_store, tmp_path / "mlflow.db")
    env = _env(tmp_path)
    # no MLflow job runner: eight more processes importing MLflow, for GenAI jobs
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    proc = subprocess.Popen(
        [*args, "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: its server child is stopped too
    )
    try:
        deadline = time.monotonic() + 180
        with httpx.Client(timeout=2) as http:  # one client (and SSL context) for the polls
            while True:
                assert proc.poll() is None, "mlflow ui exited"
                try:
                    r = http.get(f"http://127.0.0.1:{port}/health")
                    if r.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "mlflow ui not serving"
                time.sleep(0.2)
        assert r.text.strip() == "OK"
    finally:
        # the whole group: stopping only `mlflow ui` itself left the processes it
        # started running after the test
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


@pytest.mark.slow
def test_brand_manager_week_runs_against_a_real_server(tmp_path: Path) -> None:
    serve_block, week_block = _blocks_after("## A brand manager's week")[:2]
    proc, port = _start_readme_server(tmp_path, _commands(serve_block)[0], own_store=False)
    try:
        base = f"http://127.0.0.1:{port}"
        answers = []
        for line in _commands(week_block):
            line = line.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            args = shlex.split(line)
            if args[0] == "curl":
                out = subprocess.run(
                    [*args, "-w", "\n%{http_code}"], capture_output=True, text=True, check=True
                )
                body, _, code = out.stdout.rpartition("\n")
                answers.append((int(code), json.loads(body)))
            else:
                run = subprocess.run(
                    args, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True
                )
                assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert [c for c, _ in answers] == [200, 200, 200], answers
    by_channel, by_market, lift = (a for _, a in answers)
    assert by_channel["total"]["decisions"] > 0
    assert by_channel["total"]["decisions"] == by_market["total"]["decisions"]
    assert {g["key"] for g in by_channel["groups"]} <= {
        "email",
        "rep_visit",
        "remote_call",
        "webinar",
        "portal",
    }
    assert lift["holdout_policy"] == "campaign"
    assert lift["holdout"]["engagement"]["decisions_holdout"] > 0
    md = (tmp_path / "weekly" / "report.md").read_text(encoding="utf-8")
    assert "## Lift: treated vs holdout" in md and "got `campaign`" in md
    assert (tmp_path / "weekly" / "kpis.png").stat().st_size > 0
    assert "nba_engagement_rate" in metrics


@pytest.mark.slow
def test_marketer_builds_a_journey(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve_block, block = _blocks_after("## A marketer builds a journey")
    serve_line = _commands(serve_block)[0]
    env, _ = _serve_env(tmp_path, serve_line)
    env.pop("NBA_STORE_PATH", None)  # the default: data/events.db under NBA_DATA_DIR
    proc, port = _start_readme_server(tmp_path, serve_line, own_store=False)
    try:
        answers: list[tuple[int, Any]] = []
        outputs: list[tuple[str, str]] = []
        event_id = ""
        for line in _commands(block):
            line = line.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace("EVENT_ID", event_id)
            if line.startswith("curl "):
                out = subprocess.run(
                    [*shlex.split(line), "-w", "\n%{http_code}"],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=tmp_path,
                )
                body, _, code = out.stdout.rpartition("\n")
                answers.append((int(code), json.loads(body)))
                if '"channels": ["webinar"]' in line:
                    event_id = answers[-1][1]["event_id"]
            elif line.startswith("nba simulate "):
                # in this process: make demo's test runs `nba simulate` as a real command
                result = _nba_in_process(line, tmp_path, env, monkeypatch)
                assert result.exit_code == 0, (line, result.output)
                outputs.append((result.stdout, result.stderr))
            else:
                out = _bash(line, tmp_path, env)
                assert out.returncode == 0, (line, out.stdout, out.stderr)
                outputs.append((out.stdout, out.stderr))
        codes = [c for c, _ in answers]
        assert codes == [422, 200, 200, 201, 201, 201, 200, 201, 200], answers
        bad, put, in_force, _, web, _, states, follow, kpis = (a for _, a in answers)
        # the broken file: refused naming key and line, nothing stored (the good one is v1)
        assert bad["code"] == "invalid_journeys"
        assert bad["details"][0]["loc"] == "journeys.0.steps.0.after_days"
        assert bad["details"][0]["line"] == 19
        assert put["version"] == 1 and in_force["version"] == 1
        assert in_force["journeys"][0]["name"] == "webinar-followup"
        topic = web["suggestions"][0]["topic"]
        assert states["governs"] == "webinar-followup/1"
        assert states["journeys"][0]["window"] == ["2026-03-04", "2026-03-07"]
        assert follow["journey"] == "webinar-followup/1"
        assert follow["chosen_action_id"].endswith("@email")
        assert {s["topic"] for s in follow["suggestions"]} == {topic}
        groups = {g["key"]: g["decisions"] for g in kpis["groups"]}
        assert groups == {"none": 1, "webinar-followup/1": 1}
        # CLI: printf lines print nothing; validate lists the step; the broken file names
        # the line and the key; history lists the version; the simulator logs the step
        assert [o for o, _ in outputs[:4]] == [""] * 4
        assert (
            "webinar-followup/1 'follow-up email': email on same topic, 2-5 days" in (outputs[4][0])
        )
        assert outputs[6][0].strip() == "refused"
        assert "line 19: key 'journeys.0.steps.0.after_days'" in outputs[6][1]
        assert "follow up webinars by email" in outputs[7][0]
        assert "journey" in outputs[8][0] and "decisions" in outputs[8][0]
        sim = (tmp_path / "journey-sim" / "manifest.json").read_text()
        assert "journeys" in sim
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_retraining_loop_block_runs_verbatim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``nba loop`` as a real command (no other test starts it as a process), the
    simulation before it in this process."""
    block = _blocks_after("## The retraining loop")[0]
    assert [shlex.split(line)[:2] for line in _commands(block)] == [
        ["nba", "simulate"],
        ["nba", "loop"],
    ], "the README's loop block changed: check what this test runs in-process"
    outputs = _run_lines(
        block, tmp_path, monkeypatch, in_process=frozenset({"simulate"}), timeout=1200
    )
    assert "cycle 1 as of 2026-02-16" in outputs[1]
    assert "gate (snips, gaussian)" in outputs[1]  # it trained and gated
    state = json.loads((tmp_path / "loop-work" / "loop_state.json").read_text())
    assert state["cycles"][0]["decision"] in ("promoted", "kept")


@pytest.mark.slow
def test_spark_pipeline_block_runs_verbatim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spark_engine: Any
) -> None:
    """The Spark section: both engines' DSJSON files are the same bytes (its `cmp`), and
    nba train learns from the Spark join.

    The block's lines run in order, each as written: its `nba` lines in this
    process (the same arguments, through the same command-line entry point) on the
    suite's one Spark session (``local[2]``, as the lines name), the others with
    bash. As separate processes the two `--engine spark` lines started and warmed
    up a JVM each, tens of CPU seconds for what the session already does. Needs
    Java: the session fixture skips without it, and fails under CI."""
    block = _blocks_after("## Running the log pipeline on Spark")[0]
    outputs = _run_lines(
        block, tmp_path, monkeypatch, in_process=frozenset({"simulate", "logs", "train"})
    )
    assert [shlex.split(line)[0] for line in _commands(block)] == [
        "nba",
        "nba",
        "nba",
        "cmp",
        "nba",
    ], "the README's Spark block changed: check what this test runs"
    text = "".join(outputs)
    assert "join engine: spark (local[2])" in text
    assert (tmp_path / "spark.dsjson").stat().st_size > 1000
    assert "trained on" in text


def test_console_calls_run_against_a_real_server(tmp_path: Path) -> None:
    proc, port = _start_readme_server(tmp_path)
    try:
        outputs = []
        for line in _commands(_blocks_after("## The console")[0]):
            line = line.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            out = _bash(line, tmp_path, None)
            assert out.returncode == 0, (line, out.stdout, out.stderr)
            outputs.append(out.stdout)
        assert outputs == [f"307 http://127.0.0.1:{port}/console\n", "<h1>KPIs</h1>\n"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
