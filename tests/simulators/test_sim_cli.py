"""``nba simulate`` end to end at a small size, and bad inputs with clear errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nba.catalog import Catalog
from nba.logs import io as logio
from nba_cli.main import main
from simulators.hcp.config import SimulatorConfigError, WorldConfig
from simulators.hcp.world import SimulationError, World, simulate


def test_cli_writes_every_artifact_and_prints_the_summary(tmp_path):
    out = tmp_path / "logs"
    res = CliRunner().invoke(
        main,
        [
            "simulate",
            "--hcps",
            "60",
            "--days",
            "8",
            "--policy",
            "segment",
            "--seed",
            "4",
            "--out",
            str(out),
            "--quiet",
            "--epsilon",
            "0.2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "decisions" in res.output and "open_rate" in res.output
    for table in ("decisions", "outcomes", "touches", "ground_truth"):
        assert logio.read(out, table).num_rows > 0
    assert (out / "catalog" / f"{Catalog.default().version}.json").exists()
    assert (out / "population.parquet").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 4 and manifest["policy"] == "segment"
    assert manifest["policy_params"]["epsilon"] == 0.2
    assert manifest["catalog_version"] == Catalog.default().version
    dec = logio.read(out, "decisions").to_pandas()
    assert (dec.policy == "segment").all()


def test_cli_help_lists_the_options():
    res = CliRunner().invoke(main, ["simulate", "--help"])
    assert res.exit_code == 0
    for opt in (
        "--hcps",
        "--days",
        "--policy",
        "--seed",
        "--out",
        "--start",
        "--epsilon",
        "--catalog",
        "--reward-def",
        "--quiet",
    ):
        assert opt in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hcps", "-5"], "Invalid value for '--hcps'"),
        (["--days", "0"], "Invalid value for '--days'"),
        (["--policy", "greedy"], "Invalid value for '--policy'"),
        (["--epsilon", "1.5"], "Invalid value for '--epsilon'"),
        (["--start", "2026-13-01"], "is not a date"),
        (["--catalog", "/no/such/catalog.toml"], "cannot read catalog"),
        (["--reward-def", "/no/such/reward.toml"], "cannot read"),
    ],
)
def test_cli_bad_inputs_fail_with_a_clear_message(tmp_path, args, message):
    res = CliRunner().invoke(
        main,
        ["simulate", "--hcps", "20", "--days", "2", "--out", str(tmp_path / "o"), "--quiet", *args],
    )
    assert res.exit_code != 0
    assert message in res.output


def test_cli_refuses_an_out_dir_that_already_holds_logs(tmp_path):
    out = tmp_path / "o"
    args = ["simulate", "--hcps", "20", "--days", "2", "--out", str(out), "--quiet"]
    assert CliRunner().invoke(main, args).exit_code == 0
    res = CliRunner().invoke(main, args)
    assert res.exit_code != 0 and "already holds" in res.output


def test_catalog_with_a_channel_the_simulator_cannot_model_is_refused(tmp_path):
    text = Catalog.default().source
    raw = (
        open(text, encoding="utf-8")
        .read()
        .replace(
            'channels = ["rep_visit", "remote_call", "email", "webinar", "portal"]',
            'channels = ["rep_visit", "remote_call", "email", "webinar", "portal", "sms"]',
            1,
        )
    )
    path = tmp_path / "cat.toml"
    path.write_text(raw, encoding="utf-8")
    with pytest.raises(SimulatorConfigError, match="channel 'sms' has no response model"):
        simulate(hcps=10, days=1, catalog=path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hcps": 0}, "hcps must be a positive integer"),
        ({"hcps": -3}, "hcps must be a positive integer"),
        ({"days": 0}, "days must be a positive integer"),
        ({"policy": "bandit"}, "unknown policy 'bandit'"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"epsilon": -0.1}, "epsilon must be in"),
    ],
)
def test_api_bad_inputs(kwargs, message):
    args = {"hcps": 10, "days": 2, **kwargs}
    with pytest.raises(SimulationError, match=message):
        simulate(**args)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"no_see_rate": 1.2}, "field 'no_see_rate'"),
        ({"consent_rates": {"email": -0.1}}, "field 'consent_rates.email'"),
        ({"stage_shares": (1.0, 1.0)}, "field 'stage_shares'"),
        ({"email_min_gap_days": 0}, "field 'email_min_gap_days'"),
        ({"fatigue_halflife": {"email": 0.0}}, "field 'fatigue_halflife.email'"),
        ({"specialty_shares": {"oncology": 1.0}}, "no open rate for specialty 'oncology'"),
        ({"topic_interest_sd": float("nan")}, "field 'topic_interest_sd'"),
    ],
)
def test_world_config_bad_values(kwargs, message):
    with pytest.raises(SimulatorConfigError, match=message):
        WorldConfig(**kwargs)


def test_unknown_config_field_and_too_short_delay_cap():
    with pytest.raises(SimulatorConfigError, match="unknown field 'fatigue'"):
        WorldConfig.from_params({"fatigue": 1})
    with pytest.raises(SimulatorConfigError, match="max_delay_days"):
        World(10, config=WorldConfig(max_delay_days=10))


def test_cli_config_file_overrides_world_parameters(tmp_path):
    cfg = tmp_path / "world.toml"
    cfg.write_text("no_see_rate = 0.0\nstage_shares = [1, 0, 0, 0, 0, 0]\n", encoding="utf-8")
    out = tmp_path / "o"
    res = CliRunner().invoke(
        main,
        [
            "simulate",
            "--hcps",
            "80",
            "--days",
            "3",
            "--out",
            str(out),
            "--quiet",
            "--config",
            str(cfg),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "no-see HCPs 0%" in res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_params"]["no_see_rate"] == 0.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no_see_rate = 2.0\n", "world.toml: WorldConfig: field 'no_see_rate'"),
        ("fatigue = 1\n", "world.toml: WorldConfig: unknown field 'fatigue'"),
        ("no_see_rate = \n", "world.toml: not valid TOML"),
    ],
)
def test_cli_bad_config_file(tmp_path, text, message):
    cfg = tmp_path / "world.toml"
    cfg.write_text(text, encoding="utf-8")
    res = CliRunner().invoke(
        main,
        [
            "simulate",
            "--hcps",
            "10",
            "--days",
            "1",
            "--out",
            str(tmp_path / "o"),
            "--quiet",
            "--config",
            str(cfg),
        ],
    )
    assert res.exit_code != 0
    assert message in res.output


def test_cli_runs_an_early_release_learner_and_refuses_a_bad_release(tmp_path):
    out = tmp_path / "logs"
    args = ["simulate", "--hcps", "40", "--days", "4", "--seed", "1", "--quiet"]
    res = CliRunner().invoke(main, [*args, "--policy", "vw:epsilon@1d", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert set(logio.read(out, "decisions").column("policy").to_pylist()) == {"vw:epsilon@1d"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert "release_after_days" in json.dumps(manifest)
    bad = CliRunner().invoke(
        main, [*args, "--policy", "vw:epsilon@0d", "--out", str(tmp_path / "b")]
    )
    assert bad.exit_code != 0
    assert "early release must be written @Nd with N >= 1" in bad.output
    assert not (tmp_path / "b" / "decisions").exists()  # nothing half-written
