"""The VW batch policy in the simulated world: configs and presets, bad specs
refused with what was wrong, served probabilities logged exactly, learning only
from closed reward windows, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nba.catalog import Catalog
from nba.logs import io as logio
from nba.policies.base import PolicyError
from simulators.hcp.learning import (
    PRESETS,
    LearningConfigError,
    VWBatchPolicy,
    config_from_mapping,
    load_vw_spec,
)
from simulators.hcp.world import World


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_resolves_and_builds(name):
    label, cfg = load_vw_spec(f"vw:{name}")
    assert label == f"vw:{name}" and cfg.exploration == name
    pol = VWBatchPolicy(cfg, seed=1, name=label)
    assert pol.params["policy"] == label and pol.params["learning"] == "online"
    assert pol.model_version == f"{label}+0"
    pol.close()


def test_bare_vw_is_the_epsilon_preset():
    assert load_vw_spec("vw") == ("vw:epsilon", PRESETS["epsilon"])


def test_toml_and_json_config_files(tmp_path):
    toml = tmp_path / "mine.toml"
    toml.write_text('preset = "bag"\nbag = 7\ninteractions = ["pT", "rK"]\n')
    name, cfg = load_vw_spec(f"vw:{toml}")
    assert name == "vw:mine" and (cfg.exploration, cfg.bag) == ("bag", 7)
    assert cfg.interactions == ("pT", "rK")
    assert cfg.learning_rate == PRESETS["bag"].learning_rate  # the rest from the preset
    js = tmp_path / "sq.json"
    js.write_text(json.dumps({"vw_args": "--squarecb --gamma_scale 50", "l2": 1e-6}))
    name, cfg = load_vw_spec(f"vw:{js}")
    assert name == "vw:sq" and cfg.exploration == "squarecb" and cfg.gamma_scale == 50.0
    assert cfg.l2 == 1e-6


BAD_FILES = [
    ("bad.toml", "epsilon = [", r"bad\.toml: not valid TOML"),
    ("bad.json", "[1, 2]", r"bad\.json: expected a table of VW settings"),
    ("bad.toml", 'preset = "greedy"', r"bad\.toml: key 'preset': 'greedy' is not one of"),
    ("bad.toml", "epsilon = 2.0", r"bad\.toml.*field 'epsilon': must be in \[0, 1\]"),
    ("bad.toml", "passes = 3", r"bad\.toml: field 'passes': unknown VW setting"),
    ("bad.toml", 'vw_args = "--passes 3"', r"bad\.toml.*option '--passes' is not allowed"),
    ("bad.toml", "vw_args = 3", r"bad\.toml: key 'vw_args' must be a string"),
    ("bad.toml", 'exploration = "thompson"', r"bad\.toml.*'thompson' is not one of"),
    ("bad.json", '{"interactions": ["pTT"]}', r"bad\.json.*'pTT' is not a pair"),
]


@pytest.mark.parametrize(("fname", "text", "match"), BAD_FILES)
def test_bad_config_files_are_refused_naming_file_and_key(tmp_path, fname, text, match):
    path = tmp_path / fname
    path.write_text(text)
    with pytest.raises(LearningConfigError, match=match):
        load_vw_spec(f"vw:{path}")


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("random", r"policy spec 'random' is not 'vw' or 'vw:CONFIG'"),
        ("vw:greedy", r"'greedy' is neither a preset \(epsilon, squarecb"),
        ("vw:/no/such/cfg.toml", r"config file /no/such/cfg\.toml does not exist"),
        ("vw:cfg.yaml", r"neither a preset .* nor a \.toml/\.json config file"),
    ],
)
def test_bad_specs_are_refused(spec, match):
    with pytest.raises(LearningConfigError, match=match):
        load_vw_spec(spec)


def test_mapping_errors_name_the_source():
    with pytest.raises(
        LearningConfigError,
        match=r"^cli: VWConfig: field 'bits': must be an integer in 1..30, got 99",
    ):
        config_from_mapping({"bits": 99}, source="cli")


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_bad_seed_is_refused(seed):
    with pytest.raises(PolicyError, match="seed must be a non-negative integer"):
        VWBatchPolicy(seed=seed)


def test_another_catalog_is_refused():
    cat = Catalog.default()
    data = json.loads(cat.snapshot_json())
    data["version"] = "other"
    other = Catalog.from_dict(data, source="test")
    world = World(30, catalog=other, seed=1)
    pol = VWBatchPolicy(seed=1)  # built for the shipped catalog
    with pytest.raises(PolicyError, match=r"vw: the world uses catalog '\w+', the policy '\w+'"):
        world.run(3, policy=pol)


@pytest.fixture(scope="module")
def vw_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vw-loop") / "logs"
    world = World(150, seed=4)
    pol = VWBatchPolicy.from_spec("vw:bag", catalog=world.catalog, seed=4)
    summary = world.run(24, policy=pol, out=out)
    return out, pol, summary


def test_logged_probabilities_sum_to_one_and_propensity_is_the_served_entry(vw_run):
    out, pol, summary = vw_run
    dec = logio.read(out, "decisions").to_pandas()
    assert len(dec) == summary.decisions == pol.decided_ > 0
    for row in dec.itertuples():
        p = np.asarray(row.probabilities)
        assert len(p) == len(row.action_ids)
        assert abs(p.sum() - 1.0) < 1e-9 and (p >= 0).all()
        assert row.propensity == p[row.chosen_index] > 0
        assert row.chosen_action_id == row.action_ids[row.chosen_index]
    assert set(dec.policy) == {"vw:bag"}


def test_the_model_learns_only_from_closed_windows_and_versions_say_how_much(vw_run):
    out, pol, _ = vw_run
    dec = logio.read(out, "decisions").to_pandas()
    day = (dec.ts - dec.ts.min().normalize()).dt.days
    learned = dec.model_version.str.split("+").str[1].astype(int)
    # nothing is learned before the first window (14 days) closes: release lag 15
    assert (learned[day < 15] == 0).all()
    assert learned[day >= 16].min() > 0
    # the count only grows with time
    order = np.argsort(dec.ts.to_numpy(), kind="stable")
    assert (np.diff(learned.to_numpy()[order]) >= 0).all()
    # decisions of days 0..8 were released by day 23 (d + 15 <= 23)
    assert pol.learned_ == int((day <= 8).sum())


def test_same_seed_same_decisions(tmp_path):
    def logs(seed: int):
        out = tmp_path / f"run-{seed}-{len(list(tmp_path.iterdir()))}"
        world = World(80, seed=seed)
        pol = VWBatchPolicy.from_spec("vw:squarecb", catalog=world.catalog, seed=seed)
        world.run(20, policy=pol, out=out)
        return logio.read(out, "decisions").to_pandas()

    a, b = logs(2), logs(2)
    assert list(a.event_id) == list(b.event_id)
    assert list(a.chosen_index) == list(b.chosen_index)
    assert all(np.array_equal(x, y) for x, y in zip(a.probabilities, b.probabilities, strict=True))
    c = logs(3)
    assert list(c.event_id) != list(a.event_id)


# ---------------------------------------------------------------- early release
@pytest.fixture(scope="module")
def early_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vw-early") / "logs"
    world = World(150, seed=4)
    _, cfg = load_vw_spec("vw:epsilon")
    pol = VWBatchPolicy(
        cfg,
        catalog=world.catalog,
        seed=4,
        name="vw:epsilon@2d",
        release_after_days=2,
        delay_warmup=60,
    )
    summary = world.run(30, policy=pol, out=out)
    return out, pol, summary


def test_early_release_learns_each_decision_once_after_a_warm_up(early_run):
    out, pol, _ = early_run
    assert pol.release_after_days == 2
    assert pol.params["learning"] == "online-early" and pol.params["release_after_days"] == 2
    dec = logio.read(out, "decisions").to_pandas()
    day = (dec.ts - dec.ts.min().normalize()).dt.days
    learned = dec.model_version.str.split("+").str[1].astype(int)
    # the warm-up: nothing is learned before the first windows close (day 15)...
    assert (learned[day < 15] == 0).all()
    # ... then decisions two days old are learned at once, not 15 days later
    closed_by_day_16 = int((day <= 1).sum())
    assert learned[day >= 17].min() > closed_by_day_16
    # decisions of days 0..27 were released by day 29 (d + 2 <= 29), each learned
    # once: early with a corrected label, or at close if released in the warm-up
    assert pol.learned_ + pol.deferred_ == int((day <= 27).sum())
    assert pol.delay_ is not None and pol.delay_.n_observed_ == int((day <= 14).sum())
    assert pol.delay_.n_observed_ >= pol.delay_warmup


def test_early_labels_are_less_biased_than_partial_rewards(early_run):
    _, pol, _ = early_run
    err = pol.label_error_
    assert err["n_cold"] > 0  # labelled before any window closed: nothing to correct with
    n = err["n"]
    assert n > 0
    label_bias = err["label_minus_final"] / n
    partial_bias = err["partial_minus_final"] / n
    assert partial_bias < 0  # outcomes after day 2 are missing from partial rewards
    assert abs(label_bias) < abs(partial_bias)
    text = pol.describe()
    assert "label bias over" in text and "delay-corrected label" in text


def test_early_release_is_deterministic_for_a_seed():
    def run() -> tuple[float, int]:
        world = World(60, seed=9)
        pol = VWBatchPolicy.from_spec("vw:epsilon@1d", catalog=world.catalog, seed=9)
        s = world.run(20, policy=pol)
        return s.expected_reward_mean, pol.learned_

    assert run() == run()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("vw:epsilon@0d", r"'vw:epsilon@0d': early release must be written @Nd with N >= 1"),
        ("vw@2", r"'vw@2': early release must be written @Nd"),
        ("vw@xd", r"'vw@xd': early release"),
        ("vw:nope@1d", r"--policy vw:nope: 'nope' is neither a preset"),
    ],
)
def test_bad_early_release_specs_are_refused(spec, match):
    with pytest.raises(LearningConfigError, match=match):
        VWBatchPolicy.from_spec(spec)


def test_release_at_or_after_the_window_close_is_refused():
    from simulators.hcp.world import SimulationError

    world = World(20, seed=1)
    pol = VWBatchPolicy(seed=1, release_after_days=15)  # window 14 days: closes at lag 15
    with pytest.raises(SimulationError, match=r"release_after_days 15 is not before the window"):
        world.run(2, policy=pol)
    with pytest.raises(PolicyError, match=r"release_after_days must be an integer >= 1"):
        VWBatchPolicy(seed=1, release_after_days=0)
