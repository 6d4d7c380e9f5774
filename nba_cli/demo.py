"""``make demo``: the main job on embedded defaults, step by step.

1. simulate a population under the push campaign (with exploration) and write
   the event log;
2. train a VW policy on the first three quarters of that log and register it
   in the MLflow store as ``models:/nba@challenger``;
3. evaluate it off-policy against the baselines on the last quarter, which
   it never saw (with the simulator's ground truth beside every estimate);
4. run the promotion gate (``champion`` moves only if the challenger's lower
   bound beats the champion);
5. start the decision service on loopback, import the HCPs, ask for a rep-app
   decision with reasons and an email batch, report an outcome, stop it, and
   print the command that starts it for good.

Every step is the same ``nba`` command a user would type, run as a
subprocess, so the demo shows exactly what they would see. Sizes come from
``NBA_DEMO_HCPS`` / ``NBA_DEMO_DAYS`` (defaults 2000 x 30); everything is
written under the data directory (``NBA_DATA_DIR``, default ``./data``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from nba.paths import data_dir, default_tracking_uri

#: exploration the demo's VW policy is trained with
DEMO_VW_ARGS = "--squarecb --gamma_scale 100"
#: what the demo's service loads: always the champion, as production would
SERVED_MODEL = "models:/nba@champion"
#: the service settings the demo sets, printed with the serve command
SERVE_ENV = ("NBA_STORE_PATH", "NBA_AUTH_DISABLED", "NBA_MODEL_URI", "NBA_TRACKING_URI")
STEPS = 5


def _banner(step: int, text: str) -> None:
    print(f"\n=== [{step}/{STEPS}] {text}", flush=True)


def nba_program() -> str:
    """How a user types ``nba`` here: the venv's entry point, relative to the
    current directory when it lies below it (``.venv/bin/nba``), else ``nba``."""
    exe = Path(sys.executable).parent / "nba"
    if not exe.exists():
        return "nba"
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def shell_command(args: Sequence[str], env: dict[str, str] | None = None) -> str:
    """``nba ARGS`` quoted for a POSIX shell, so a printed command runs when pasted.

    >>> shell_command(["train", "--vw-args", "--squarecb --gamma_scale 100"]).split(" ", 1)[1]
    "train --vw-args '--squarecb --gamma_scale 100'"
    """
    prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in (env or {}).items())
    return prefix + shlex.join([nba_program(), *args])


def _nba(args: Sequence[str], env: dict[str, str], check: bool = True) -> int:
    cmd = [sys.executable, "-m", "nba_cli.main", *args]
    printed = shell_command(args)
    print("$ " + printed, flush=True)
    rc = subprocess.run(cmd, env=env, check=False).returncode
    if check and rc != 0:
        raise SystemExit(f"demo: `{printed}` failed with exit code {rc}")
    return rc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: the service exited early with code {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"demo: the service at {url} was not ready within {timeout:.0f} s")


def _show(title: str, payload: Any) -> None:
    print(f"--- {title}")
    print(json.dumps(payload, indent=2))


def _serve_and_call(env: dict[str, str], logs: Path, store: Path, model_uri: str) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    senv = {
        **env,
        "NBA_STORE_PATH": str(store),
        "NBA_AUTH_DISABLED": "true",
        "NBA_MODEL_URI": model_uri,
        "NBA_TRACKING_URI": env["MLFLOW_TRACKING_URI"],
    }
    cmd = [sys.executable, "-m", "nba_cli.main", "serve", "--host", "127.0.0.1"]
    served_env = {k: senv[k] for k in SERVE_ENV}
    print(
        "$ "
        + shell_command(["serve", "--host", "127.0.0.1", "--port", str(port)], served_env)
        + "   (auth disabled for the demo)"
    )
    proc = subprocess.Popen([*cmd, "--port", str(port)], env=senv)
    try:
        _wait_ready(url, proc)
        with httpx.Client(base_url=url, timeout=30.0) as client:
            pop = (logs / "population.parquet").read_bytes()
            r = client.post(
                "/v1/hcps:import",
                files={"file": ("population.parquet", pop, "application/octet-stream")},
            )
            r.raise_for_status()
            _show("POST /v1/hcps:import", r.json())
            _show("GET /v1/models/current", client.get("/v1/models/current").json())
            hcp_ids = _hcps_with_consent(client, logs)
            rep = None
            for hcp_id in hcp_ids["rep_visit"]:
                r = client.post(
                    "/v1/decisions",
                    json={
                        "hcp_id": hcp_id,
                        "channels": ["rep_visit"],
                        "k": 3,
                        "context": {"requester": "rep_app"},
                        "explain": True,
                    },
                )
                r.raise_for_status()
                if r.json().get("suggestions"):
                    rep = r.json()
                    break
            if rep is None:
                raise SystemExit("demo: no HCP in the sample could be offered a rep visit")
            _show("POST /v1/decisions (rep app, 3 visit topics with reasons)", rep)
            r = client.post(
                "/v1/decisions:batch",
                json={
                    "hcp_ids": hcp_ids["email"][:5],
                    "channels": ["email"],
                    "context": {"requester": "email_platform"},
                },
            )
            r.raise_for_status()
            batch = r.json()
            _show(
                "POST /v1/decisions:batch (email platform)",
                {
                    "model_version": batch["model_version"],
                    "decisions": [
                        {k: d[k] for k in ("hcp_id", "event_id", "chosen_action_id")}
                        for d in batch["decisions"]
                    ],
                },
            )
            r = client.post(
                f"/v1/events/{rep['event_id']}/outcomes",
                json={"type": "accepted", "source_id": "demo-rep-app-1"},
            )
            r.raise_for_status()
            _show(f"POST /v1/events/{rep['event_id']}/outcomes", r.json())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(
        "\nThe service stopped with the demo. Start it for good with:\n  "
        + shell_command(["serve", "--host", "127.0.0.1", "--port", "8000"], served_env)
        + "\n(without NBA_AUTH_DISABLED it needs NBA_API_KEYS; see serving/README.md)"
    )


def _hcps_with_consent(client: httpx.Client, logs: Path) -> dict[str, list[str]]:
    import pyarrow.parquet as pq

    pop = pq.read_table(logs / "population.parquet").to_pylist()
    out: dict[str, list[str]] = {"rep_visit": [], "email": []}
    for row in pop:
        consents = set(row["consents"])
        if "rep_visit" in consents and not row["no_see"] and len(out["rep_visit"]) < 20:
            out["rep_visit"].append(row["hcp_id"])
        if "email" in consents and len(out["email"]) < 20:
            out["email"].append(row["hcp_id"])
    return out


def main() -> None:
    hcps = int(os.environ.get("NBA_DEMO_HCPS", "2000"))
    days = int(os.environ.get("NBA_DEMO_DAYS", "30"))
    seed = int(os.environ.get("NBA_DEMO_SEED", "7"))
    root = data_dir() / "demo"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    logs, store = root / "logs", root / "store.db"
    tracking = default_tracking_uri()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking}
    print(f"nba demo: {hcps} HCPs x {days} days, seed {seed}; data in {root}")
    mlflow_exe = str(Path(nba_program()).with_name("mlflow"))
    browse = shlex.join([mlflow_exe, "ui", "--backend-store-uri", tracking])
    print(f"MLflow tracking store: {tracking}  (browse with: {browse})")

    _banner(1, "simulate the push campaign (10 % exploration) and write the event log")
    _nba(
        [
            "simulate",
            "--hcps",
            str(hcps),
            "--days",
            str(days),
            "--policy",
            "campaign",
            "--seed",
            str(seed),
            "--out",
            str(logs),
            "--quiet",
        ],
        env,
    )

    # train on the first days; evaluate and gate on the later days the model never saw
    start = date(2026, 1, 5)  # the simulator's default first day
    eval_days = max(2, days // 4)
    train_until = start + timedelta(days=days - eval_days - 1)
    eval_since = (train_until + timedelta(days=1)).isoformat()

    _banner(
        2,
        f"train a VW contextual bandit on {start} .. {train_until}; register "
        "models:/nba@challenger",
    )
    holdout = str(max(1, (days - eval_days) // 6))
    _nba(
        [
            "train",
            "--logs",
            str(logs),
            "--until",
            train_until.isoformat(),
            "--vw-args",
            DEMO_VW_ARGS,
            "--holdout-days",
            holdout,
            "--seed",
            str(seed),
        ],
        env,
    )

    _banner(
        3,
        f"evaluate it off-policy on the unseen days from {eval_since}, against the "
        "baselines (truth known)",
    )
    _nba(
        [
            "evaluate",
            "--logs",
            str(logs),
            "--since",
            eval_since,
            "--policy",
            "models:/nba@challenger",
            "--policy",
            "segment",
            "--policy",
            "uniform",
            "--estimator",
            "snips",
            "--estimator",
            "dr",
            "--interval",
            "bootstrap",
            "--out",
            str(root / "evaluation"),
            "--seed",
            str(seed),
        ],
        env,
    )

    _banner(4, "promotion gate: move champion only if the challenger's lower bound wins")
    rc = _nba(
        ["promote", "--logs", str(logs), "--since", eval_since, "--estimator", "snips"],
        env,
        check=False,
    )
    # Serve what production would: the champion. A refused challenger is never
    # served; with no champion at all the service falls back to the uniform
    # baseline and says so in /v1/models/current and every model_version.
    model_uri = SERVED_MODEL
    if rc == 0:
        print(f"the gate promoted the challenger: the service runs {model_uri}")
    else:
        print(
            f"the gate refused the challenger (reason above): the service runs {model_uri}, "
            "the model that was champion before, or the uniform baseline if there is none"
        )

    _banner(5, "serve decisions over HTTP on loopback")
    _serve_and_call(env, logs, store, model_uri)
    print("\nnba demo finished.")


if __name__ == "__main__":
    main()
