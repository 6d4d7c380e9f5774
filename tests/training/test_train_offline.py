"""Offline training from Parquet logs: determinism, holdout estimates, bad inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from nba.policies.vw import VWConfig
from nba.reward import RewardDefinition
from training.synthetic import write_synthetic_logs
from training.train import TrainingError, load_train_config, train


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("logs")
    write_synthetic_logs(root, n_decisions=2500, n_hcps=250, days=12, seed=4)
    return root


def test_same_logs_and_seed_give_identical_model_bytes(logs: Path) -> None:
    rd = RewardDefinition.default()
    cfg = VWConfig(exploration="bag", bag=3, epsilon=0.05, cb_type="dr")
    a = train(logs, rd, cfg, passes=2, seed=9)
    b = train(logs, rd, cfg, passes=2, seed=9)
    assert a.policy.model_bytes() == b.policy.model_bytes()
    c = train(logs, rd, cfg, passes=2, seed=10)
    assert c.policy.model_bytes() != a.policy.model_bytes()
    assert a.n_examples == 2 * a.n_train == 2 * 2500


def test_holdout_slice_is_the_last_days_and_gets_ips_and_snips(logs: Path) -> None:
    r = train(logs, RewardDefinition.default(), holdout_days=3, seed=1)
    assert r.n_train + r.n_holdout == 2500
    assert r.holdout is not None and r.holdout.n == r.n_holdout > 0
    assert r.holdout_since is not None and r.holdout_since > r.data_since
    h = r.holdout
    assert h.ips_low <= h.ips <= h.ips_high
    assert h.snips_low <= h.snips <= h.snips_high
    assert 0 < h.ess <= h.n
    m = r.metrics
    assert {"average_loss", "holdout_ips", "holdout_snips", "seconds_stream_total"} <= set(m)
    p = r.params
    assert p["reward_definition"].startswith("engagement@1#")
    assert p["featurizer_hash"] and p["catalog_version"] and p["vw_command"].startswith("--cb_")
    assert "IPS" in r.summary() and "SNIPS" in r.summary()


def test_since_until_select_the_data_range(logs: Path) -> None:
    r = train(logs, RewardDefinition.default(), since="2026-01-07", until="2026-01-09")
    assert (r.data_since, r.data_until) == ("2026-01-07", "2026-01-09")
    assert 0 < r.n_train < 2500


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"holdout_days": 40}, r"leaves no training data"),
        ({"holdout_days": -1}, r"holdout_days must be a non-negative integer"),
        ({"passes": 0}, r"passes must be a positive integer"),
        ({"since": "2030-01-01"}, r"no activated decisions"),
        ({"since": "yesterday"}, r"since: .yesterday. is not a date"),
        ({"chunk_decisions": 0}, r"chunk_decisions must be a positive integer"),
    ],
)
def test_bad_training_arguments_are_refused(logs: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(TrainingError, match=match):
        train(logs, RewardDefinition.default(), **kwargs)


def test_not_a_log_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not a log directory"):
        train(tmp_path, RewardDefinition.default())


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("c.toml", "[vw]\nexploration = 'greedy'\n", r"'greedy' is not one of"),
        ("c.toml", "[vw]\nargs = '--passes 2'\n", r"'--passes' is not allowed"),
        ("c.toml", "[other]\n", r"field 'other': unknown section"),
        ("c.toml", "[featurizer]\ninteractions = ['pZ']\n", r"'pZ' names namespace 'Z'"),
        ("c.json", "{", r"cannot parse config"),
        ("c.ini", "", r"must be .toml, .json or .yaml"),
    ],
)
def test_bad_config_files_are_refused(tmp_path: Path, name: str, text: str, match: str) -> None:
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(TrainingError, match=match):
        load_train_config(p)


def test_config_file_sets_vw_and_featurizer(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(
        "vw:\n  args: --squarecb --gamma_scale 30\n  bits: 16\nfeaturizer:\n  interactions: [pK]\n"
    )
    vw, fz = load_train_config(p)
    assert (vw.exploration, vw.gamma_scale, vw.bits) == ("squarecb", 30.0, 16)
    assert fz.interactions == ("pK",)


def test_chunk_size_does_not_change_the_model(logs: Path, tmp_path: Path) -> None:
    from nba.policies.vw import train_from_file

    rd = RewardDefinition.default()
    small = train(logs, rd, seed=2, chunk_decisions=300, work_dir=tmp_path / "a")
    big = train(logs, rd, seed=2, chunk_decisions=10**6, work_dir=tmp_path / "b")
    assert small.policy.model_bytes() == big.policy.model_bytes()
    assert (tmp_path / "a" / "train.vw.txt").read_bytes() == (
        tmp_path / "b" / "train.vw.txt"
    ).read_bytes()
    # and equals VW's native parser on the written file
    ref = train_from_file(tmp_path / "a" / "train.vw.txt", seed=2, catalog=small.policy.catalog)
    assert ref.policy.model_bytes() == small.policy.model_bytes()
    assert ref.n_examples == small.n_examples


def test_a_failing_vw_stream_stops_training_with_its_error(
    logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # isolate the streaming loop: the child's pipe breaking mid-stream
    from nba.policies import vw as vw_module
    from nba.policies.base import PolicyError

    def broken(self: object, text: bytes) -> None:
        raise PolicyError("VW stopped reading its input: simulated")

    monkeypatch.setattr(vw_module.NativeLearner, "write", broken)
    with pytest.raises(PolicyError, match="VW stopped reading its input: simulated"):
        train(logs, RewardDefinition.default(), seed=1, chunk_decisions=50)


def test_summary_states_the_training_and_held_out_days(logs: Path) -> None:
    from datetime import date, timedelta

    r = train(logs, RewardDefinition.default(), holdout_days=3, seed=1)
    assert r.holdout_since is not None
    hold = date.fromisoformat(r.holdout_since)
    assert hold == date.fromisoformat(r.data_until) - timedelta(days=2)
    # the synthetic log has decisions every day, so training ends the day before the holdout
    assert r.train_until == (hold - timedelta(days=1)).isoformat()
    first = next(x for x in r.summary().splitlines() if x.startswith("trained on"))
    assert first.startswith(
        f"trained on {r.n_train} decisions ({r.data_since} .. {r.train_until}); "
        f"held out {r.n_holdout} decisions ({r.holdout_since} .. {r.data_until}), "
    )
    whole = train(logs, RewardDefinition.default(), seed=1)
    assert whole.train_until == whole.data_until
    line = next(x for x in whole.summary().splitlines() if x.startswith("trained on"))
    assert line.startswith(f"trained on 2500 decisions ({whole.data_since} .. {whole.data_until}),")
    assert "held out" not in line


def test_holdout_warnings_follow_the_rules_and_are_printed(logs: Path) -> None:
    from nba.ope.checks import DISAGREE_CODE, LOW_ESS_CODE

    r = train(logs, RewardDefinition.default(), holdout_days=3, seed=1)
    h = r.holdout
    assert h is not None
    codes = {w.code for w in h.warnings}
    assert (LOW_ESS_CODE in codes) == (h.ess < 0.1 * h.n)
    apart = not (h.snips_low <= h.ips <= h.snips_high and h.ips_low <= h.snips <= h.ips_high)
    assert (DISAGREE_CODE in codes) == apart
    for w in h.warnings:
        assert w.line() in r.summary()
    assert "holdout_warnings" not in r.metrics  # structured, not a metric
