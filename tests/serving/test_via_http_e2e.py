"""End to end through the decision service: a real ``nba serve``
on loopback is driven by ``nba simulate --via``; the log exported from its store
passes the contract, joins its outcomes, and trains a VW model with ``nba train``,
which the same service then loads and serves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from serving_testkit import start_server, stop_server

from nba.catalog import Catalog
from nba.context import DecisionContext
from nba.domain import Action
from nba.logs import io as logio
from nba.logs.join import load_joined
from nba.logs.schema import TABLES
from nba.reward import RewardDefinition
from nba_cli.main import main as nba
from serving.settings import hash_key

DRIVER_KEY = "e2e-driver-key-0b9d"
ADMIN_KEY = "e2e-admin-key-77aa"


@pytest.mark.slow
def test_simulate_via_service_export_train_serve(tmp_path: Path) -> None:
    keys = [
        {"name": "driver", "sha256": hash_key(DRIVER_KEY), "scopes": ["decide", "report"]},
        {"name": "ops", "sha256": hash_key(ADMIN_KEY), "scopes": ["admin"]},
    ]
    proc, base = start_server(tmp_path, NBA_ALLOW_CLIENT_TIME="true", NBA_API_KEYS=json.dumps(keys))
    runner = CliRunner()
    try:
        # ---- the world drives the running service over HTTP
        res = runner.invoke(
            nba,
            [
                "simulate",
                "--via",
                base,
                "--hcps",
                "150",
                "--days",
                "10",
                "--seed",
                "3",
                "--out",
                str(tmp_path / "record"),
                "--quiet",
                "--via-concurrency",
                "4",
            ],
            env={"NBA_API_KEY": DRIVER_KEY},
        )
        assert res.exit_code == 0, res.output
        assert "decisions stored by the service" in res.output
        served = pq.read_table(tmp_path / "record" / "served.parquet").to_pylist()
        summary = json.loads((tmp_path / "record" / "via_summary.json").read_text())
        assert len(served) == summary["decisions"] > 50

        # ---- the service's store, exported as the Parquet event log
        logs = tmp_path / "logs"
        res = runner.invoke(
            nba,
            [
                "logs",
                "export",
                "--store",
                str(tmp_path / "events.db"),
                "--out",
                str(logs),
                "--quiet",
            ],
        )
        assert res.exit_code == 0, res.output
        for name in ("decisions", "outcomes", "touches"):
            files = logio.part_files(logs, name)
            assert files, name
            for f in files:
                assert pq.read_schema(f).remove_metadata().equals(TABLES[name]), (name, f)
        dec = logio.read(logs, "decisions").to_pylist()
        by_id = {d["event_id"]: d for d in dec}
        assert len(dec) == len(by_id) == len(served)  # stored == acknowledged, no more
        catalog_version = Catalog.default().version
        for s in served:
            d = by_id[s["event_id"]]
            assert d["chosen_action_id"] == s["chosen_action_id"]
            assert d["propensity"] == s["probability"]  # logged == served, exactly
            assert d["probabilities"][d["chosen_index"]] == d["propensity"]
            assert d["action_ids"][d["chosen_index"]] == d["chosen_action_id"]
            assert abs(sum(d["probabilities"]) - 1.0) < 1e-9
            assert d["ts"] == s["ts"] and d["requester"] == s["requester"]
            assert d["catalog_version"] == catalog_version
        # every posted outcome joined its decision, inside the reward window
        joined = load_joined(logs, RewardDefinition.default())
        c = joined.counts
        assert c.decisions == len(served)
        assert c.outcomes == summary["outcomes_posted"] + summary["feedback_posted"]
        assert c.unknown_event_outcomes == c.early_outcomes == c.duplicate_outcomes == 0
        assert c.outcomes_used + c.late_outcomes == c.outcomes
        table = joined.table
        rewarded = np.asarray(table.column("reward_is_default").to_pylist()) == 0
        assert rewarded.sum() > 0
        assert (np.asarray(table.column("n_outcomes").to_pylist())[rewarded] > 0).all()

        # ---- train a VW model on the exported log
        model_dir = tmp_path / "model"
        res = runner.invoke(
            nba,
            [
                "train",
                "--logs",
                str(logs),
                "--no-mlflow",
                "--model-out",
                str(model_dir),
                "--seed",
                "0",
            ],
        )
        assert res.exit_code == 0, res.output
        assert f"trained on {len(served)} decisions" in res.output
        vw_files = list(model_dir.rglob("*.vw"))
        assert vw_files and all(f.stat().st_size > 0 for f in vw_files)
        from training.registry import load_policy

        policy = load_policy(model_dir)
        for d in dec[:20]:
            ctx = DecisionContext.from_json(d["context"])
            actions = [Action.parse(a) for a in d["action_ids"]]
            p = policy.probabilities(ctx, actions)
            assert p.shape == (len(actions),)
            assert np.all(p >= 0) and abs(float(p.sum()) - 1.0) < 1e-6

        # ---- the same service loads the trained model and decides with it
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        r = httpx.post(
            f"{base}/v1/models/reload", json={"uri": str(model_dir)}, headers=admin, timeout=60
        )
        assert r.status_code == 200, r.text
        assert r.json()["swapped"] is True, r.text
        version = r.json()["model_version"]
        r = httpx.post(
            f"{base}/v1/decisions",
            json={
                "hcp_id": served[0]["hcp_id"],
                "channels": ["email", "rep_visit", "remote_call", "webinar", "portal"],
                "k": 3,
                "as_of": "2026-01-20T10:00:00Z",
            },
            headers={"Authorization": f"Bearer {DRIVER_KEY}"},
            timeout=60,
        )
        assert r.status_code in (200, 201), r.text
        assert r.json()["model_version"] in (version, "holdout:baseline:uniform")
    finally:
        stop_server(proc)
