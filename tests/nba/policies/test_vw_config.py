"""VW configuration: typed settings, the allow-listed --vw-args parser, the label."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nba.policies.base import PolicyError
from nba.policies.vw import (
    VWConfig,
    VWConfigError,
    VWPolicy,
    cb_label,
    cb_label_prefixes,
)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("--foo 1", r"option '--foo' is not allowed"),
        ("-d data.txt", r"option '-d' is not allowed"),
        ("--passes 2", r"option '--passes' is not allowed"),
        ("-f model.vw", r"option '-f' is not allowed"),
        ("--epsilon", r"option '--epsilon' needs a value"),
        ("--epsilon abc", r"'--epsilon' needs a number, got 'abc'"),
        ("--epsilon 1.5", r"field 'epsilon': must be in \[0, 1\]"),
        ("--epsilon -0.1", r"field 'epsilon': must be in \[0, 1\]"),
        ("--bag 0", r"field 'bag': must be an integer in 1..1000"),
        ("--bag 2.5", r"'--bag' needs an integer"),
        ("--squarecb --bag 3", r"conflicting exploration options --squarecb and --bag"),
        ("--cover 3 --softmax", r"conflicting exploration options --cover and --softmax"),
        ("--epsilon 0.1 --squarecb", r"conflicting exploration options --epsilon and --squarecb"),
        ("--squarecb --cb_type ips", r"squarecb needs cb_type 'mtr'"),
        ("--cb_type dm", r"'dm' is not one of ips, dr, mtr"),
        ("--gamma_scale 3", r"'--gamma_scale' belongs to --squarecb"),
        ("--lambda 3 --epsilon 0.1", r"'--lambda' belongs to --softmax"),
        ("--epsilon 0.1 --epsilon 0.2", r"option '--epsilon' given twice"),
        ("-l 0.1 --learning_rate 0.2", r"both '-l' and '--learning_rate'"),
        ("-b 40", r"field 'bits': must be an integer in 1..30"),
        ("-q pTK", r"'pTK' is not a pair"),
        ("--squarecb=1", r"'--squarecb' takes no value"),
        ("--epsilon '0.1", r"cannot split"),
    ],
)
def test_bad_vw_args_are_refused_before_vw_sees_them(text: str, match: str) -> None:
    with pytest.raises(VWConfigError, match=match):
        VWConfig.from_vw_args(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("--epsilon 0.2", {"exploration": "epsilon", "epsilon": 0.2}),
        ("--squarecb --gamma_scale 50", {"exploration": "squarecb", "gamma_scale": 50.0}),
        ("--bag 4 --epsilon 0.01 --cb_type dr", {"exploration": "bag", "bag": 4, "cb_type": "dr"}),
        ("--cover 2 --psi 0.5", {"exploration": "cover", "cover": 2, "psi": 0.5}),
        ("--softmax --lambda 3", {"exploration": "softmax", "lambda_": 3.0}),
        ("-q pT -q hK --l2=1e-6 -b 20", {"interactions": ("pT", "hK"), "l2": 1e-6, "bits": 20}),
        ("--cb_explore_adf -l 0.1 --power_t 0", {"learning_rate": 0.1, "power_t": 0.0}),
    ],
)
def test_good_vw_args_parse_into_typed_fields(text: str, expected: dict[str, Any]) -> None:
    cfg = VWConfig.from_vw_args(text)
    for k, v in expected.items():
        assert getattr(cfg, k) == v, k


@pytest.mark.parametrize("exploration", ["epsilon", "squarecb", "bag", "cover", "softmax"])
@pytest.mark.parametrize("cb_type", ["ips", "dr", "mtr"])
def test_every_valid_combination_builds_a_vw_workspace(exploration: str, cb_type: str) -> None:
    if exploration == "squarecb" and cb_type != "mtr":
        with pytest.raises(VWConfigError, match="squarecb needs cb_type 'mtr'"):
            VWConfig(exploration=exploration, cb_type=cb_type)
        return
    cfg = VWConfig(exploration=exploration, cb_type=cb_type, bits=12)
    pol = VWPolicy(cfg, seed=1)
    assert f"--{exploration}" in pol.vw_args() or exploration == "epsilon"
    assert pol.params["vw.exploration"] == exploration


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"exploration": "greedy"}, r"'greedy' is not one of"),
        ({"epsilon": float("nan")}, r"'epsilon': must be a finite number"),
        ({"learning_rate": 0.0}, r"'learning_rate': must be positive"),
        ({"power_t": -1.0}, r"'power_t': must not be negative"),
        ({"bits": True}, r"'bits': must be an integer"),
        ({"interactions": ("p",)}, r"'p' is not a pair"),
    ],
)
def test_bad_typed_configs_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(VWConfigError, match=match):
        VWConfig(**kwargs)


def test_config_round_trips_through_dict_and_base_is_kept() -> None:
    cfg = VWConfig(exploration="bag", bag=3, interactions=("pT",))
    assert VWConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(VWConfigError, match="field 'colour': unknown VW setting"):
        VWConfig.from_dict({"colour": "red"})
    changed = VWConfig.from_vw_args("--l2 0.001", base=cfg)
    assert (changed.exploration, changed.bag, changed.l2) == ("bag", 3, 0.001)


def test_label_flips_the_sign_and_sets_index_bases() -> None:
    lab = cb_label(2, 0.8, 0.25, 4)
    assert (lab.line, lab.action, lab.cost, lab.probability) == (2, 3, -0.8, 0.25)
    for args, match in [
        ((4, 1.0, 0.5, 4), "chosen index 4 outside 0..3"),
        ((0, 1.0, 0.0, 4), r"probability 0.0 is outside \(0, 1\]"),
        ((0, float("inf"), 0.5, 4), "reward inf is not finite"),
    ]:
        with pytest.raises(PolicyError, match=match):
            cb_label(*args)


def test_label_prefixes_mark_only_the_chosen_lines() -> None:
    offsets = np.array([0, 3, 5])
    out = cb_label_prefixes(offsets, np.array([1, 0]), np.array([1.0, -0.5]), np.array([0.5, 1.0]))
    assert out.to_pylist() == [None, "0:-1:0.5 ", None, "0:0.5:1 ", None]
    with pytest.raises(PolicyError, match=r"event 'b'.*propensity 0.0"):
        cb_label_prefixes(offsets, np.array([1, 0]), np.zeros(2), np.array([0.5, 0.0]), ["a", "b"])
    with pytest.raises(PolicyError, match=r"row 1.*chosen_index 2"):
        cb_label_prefixes(offsets, np.array([1, 2]), np.zeros(2), np.ones(2))
