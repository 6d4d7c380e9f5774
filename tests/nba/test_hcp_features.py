"""The HCP features config: vocabularies of the profile's fields and declared attributes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nba.catalog import Catalog
from nba.domain import HCPProfile
from nba.hcp_features import HCPFeatures, HCPFeaturesError

CAT = Catalog.default()
CFG = HCPFeatures.default()


def profile(**over: Any) -> HCPProfile:
    base: dict[str, Any] = {
        "hcp_id": "h1",
        "specialty": "cardiology",
        "decile": 7,
        "market": "US",
        "adoption_stage": "aware",
        "consents": frozenset({"email"}),
    }
    return HCPProfile(**{**base, **over})


def test_default_config_declares_the_examples() -> None:
    names = set(CFG.by_name)
    assert {
        "rx_volume_decile",
        "affiliations",
        "payer_mix_commercial",
        "sub_specialty",
        "stated_channel_preference",
        "stated_topic_interest",
    } <= names
    # the simulator's specialties are this vocabulary; every catalog market is known
    from simulators.hcp.config import DEFAULT_SPECIALTY_SHARES, WorldConfig

    assert WorldConfig().specialties == CFG.specialties
    assert set(DEFAULT_SPECIALTY_SHARES) <= set(CFG.specialties)
    assert set(CAT.markets) <= set(CFG.markets)
    assert CFG.by_name["stated_channel_preference"].allowed(CAT) == CAT.channels


def test_good_attributes_normalised() -> None:
    got = CFG.check_attributes(
        {
            "rx_volume_decile": 9.0,
            "affiliations": ["idn", "aco"],
            "payer_mix_commercial": 0.55,
            "sub_specialty": "heart_failure",
            "key_opinion_leader": False,
            "stated_channel_preference": ["email", "webinar"],
            "stated_topic_interest": ("dosing",),
            "payer_mix_medicare": None,
        },
        CAT,
    )
    assert got == {
        "rx_volume_decile": 9,
        "affiliations": ["idn", "aco"],
        "payer_mix_commercial": 0.55,
        "sub_specialty": "heart_failure",
        "key_opinion_leader": False,
        "stated_channel_preference": ["email", "webinar"],
        "stated_topic_interest": ["dosing"],
    }
    assert isinstance(got["rx_volume_decile"], int)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"rx_decile": 3}, r"'rx_decile' is not a declared attribute; declared: rx_volume_decile"),
        ({"rx_volume_decile": 11}, r"'rx_volume_decile': 11 is not allowed; expected a whole"),
        ({"rx_volume_decile": 2.5}, r"'rx_volume_decile': 2.5 is not allowed; expected a whole"),
        ({"rx_volume_decile": True}, r"'rx_volume_decile': True is not allowed"),
        ({"rx_volume_decile": "9"}, r"'rx_volume_decile': '9' is not allowed"),
        ({"payer_mix_commercial": float("nan")}, r"'payer_mix_commercial': nan is not allowed"),
        ({"payer_mix_commercial": 1.2}, r"expected a number in \[0, 1\]"),
        ({"sub_specialty": "cardio"}, r"'sub_specialty': 'cardio' is not allowed; expected one of"),
        ({"key_opinion_leader": "yes"}, r"'key_opinion_leader': 'yes' .* expected true or false"),
        ({"affiliations": "idn"}, r"'affiliations': 'idn' is not allowed; expected a list of"),
        ({"affiliations": ["idn", "idn"]}, r"'affiliations': lists 'idn' twice"),
        (
            {"stated_channel_preference": ["fax"]},
            r"'stated_channel_preference': 'fax' is not one of rep_visit, remote_call, email",
        ),
        ({"stated_topic_interest": ["dosng"]}, r"'dosng' is not one of efficacy, safety"),
    ],
)
def test_bad_attribute_values(values: dict[str, Any], match: str) -> None:
    with pytest.raises(HCPFeaturesError, match=match):
        CFG.check_attributes(values, CAT)


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"specialty": "cardiolgy"}, r"specialty: 'cardiolgy' is not one of general_practice"),
        ({"market": "XX"}, r"market: 'XX' is not one of US, DE"),
        ({"consents": frozenset({"email", "fax"})}, r"consents: 'fax' is not one of the catalog"),
    ],
)
def test_profile_vocabularies(over: dict[str, Any], match: str) -> None:
    CFG.check_profile(profile(), CAT)
    with pytest.raises(HCPFeaturesError, match=match):
        CFG.check_profile(profile(**over), CAT)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("rx_volume_decile=7", 7.0),
        ("rx_volume_decile=", None),
        ("key_opinion_leader=Yes", True),
        ("key_opinion_leader=0", False),
        ("affiliations=idn; aco|", ["idn", "aco"]),
        ("sub_specialty= heart_failure ", "heart_failure"),
    ],
)
def test_parse_csv_cells(text: str, parsed: Any) -> None:
    name, cell = text.split("=", 1)
    assert CFG.by_name[name].parse_text(cell) == parsed


@pytest.mark.parametrize(
    ("text", "match"),
    [("rx_volume_decile=high", "is not a number"), ("key_opinion_leader=maybe", "true or false")],
)
def test_bad_csv_cells(text: str, match: str) -> None:
    name, cell = text.split("=", 1)
    with pytest.raises(HCPFeaturesError, match=match):
        CFG.by_name[name].parse_text(cell)


BASE = 'specialties = ["cardiology"]\nmarkets = ["US"]\n'


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        ('markets = ["US"]\n', r"specialties: must be a non-empty list"),
        (BASE + "colour = 1\n", r"colour: unknown key"),
        ('specialties = ["a", "a"]\nmarkets = ["US"]\n', r"specialties: lists 'a' twice"),
        (
            BASE + '[[attributes]]\nname = "Rx"\ntype = "bool"\nfeaturize = "category"\n',
            "lower-case",
        ),
        (BASE + '[[attributes]]\nname = "decile"\ntype = "bool"\nfeaturize = "none"\n', "field of"),
        (BASE + '[[attributes]]\nname = "a"\ntype = "text"\nfeaturize = "none"\n', "type 'text'"),
        (
            BASE + '[[attributes]]\nname = "a"\ntype = "bool"\nfeaturize = "numeric"\n',
            r"featurize 'numeric' does not fit type 'bool'",
        ),
        (
            BASE + '[[attributes]]\nname = "a"\ntype = "categorical"\nfeaturize = "category"\n',
            "exactly one of 'values' and 'values_from'",
        ),
        (
            BASE + '[[attributes]]\nname = "a"\ntype = "list"\nvalues_from = "formats"\n'
            'featurize = "category"\n',
            r"values_from 'formats' is not one of channels, topics",
        ),
        (
            BASE + '[[attributes]]\nname = "a"\ntype = "numeric"\nrange = [5, 1]\n'
            'featurize = "numeric"\n',
            "range must be",
        ),
        (
            BASE + '[[attributes]]\nname = "a"\ntype = "numeric"\nrange = [0, 10]\n'
            'featurize = "bucket"\nbuckets = [5, 3]\n',
            r"buckets must be ascending edges inside \(0, 10\]",
        ),
        (
            BASE + '[[attributes]]\nname = "a"\ntype = "bool"\nfeaturize = "none"\nfavourite = 1\n',
            "unknown key 'favourite'",
        ),
        (
            BASE + '[[attributes]]\nname = "a"\ntype = "bool"\nfeaturize = "none"\n'
            '[[attributes]]\nname = "a"\ntype = "bool"\nfeaturize = "none"\n',
            "declared twice",
        ),
        ("specialties = [", "not valid TOML"),
    ],
)
def test_bad_configs(tmp_path: Path, toml: str, match: str) -> None:
    p = tmp_path / "features.toml"
    p.write_text(toml)
    with pytest.raises(HCPFeaturesError, match=match) as info:
        HCPFeatures.load(p)
    assert str(p) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(HCPFeaturesError, match="cannot read features config"):
        HCPFeatures.load(tmp_path / "nope.toml")
