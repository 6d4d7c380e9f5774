"""The simulator draws its specialties from the service's HCP vocabulary
(``nba/data/hcp_features.toml``): one list, the same draws as when the simulator
kept its own, and calibration tables naming anything else are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nba.catalog import Catalog
from nba.hcp_features import HCPFeatures
from nba_cli.main import main
from simulators.hcp.config import (
    DEFAULT_SPECIALTY_OPEN_RATE,
    DEFAULT_SPECIALTY_SHARES,
    SimulatorConfigError,
    WorldConfig,
)
from simulators.hcp.population import Population

VOCAB = HCPFeatures.default()


def test_population_names_are_the_vocabulary_and_every_profile_passes_it() -> None:
    cat = Catalog.default()
    pop = Population.generate(4000, cat, seed=3)
    assert pop.specialties == VOCAB.specialties
    drawn = {pop.specialties[int(s)] for s in np.unique(pop.specialty)}
    assert drawn == {s for s, share in DEFAULT_SPECIALTY_SHARES.items() if share > 0}
    for i in range(0, pop.n, 97):
        VOCAB.check_profile(pop.profile(i), cat)  # raises on a name outside it


@pytest.mark.parametrize("seed", [0, 5, 123])
def test_same_specialties_as_the_simulators_own_list_drew(seed: int) -> None:
    """The population's first draw, redone the way the simulator drew before it read the
    vocabulary (its own eight names, in its own order): the same names, HCP by HCP."""
    n = 5000
    own = tuple(DEFAULT_SPECIALTY_SHARES)
    shares = np.array([DEFAULT_SPECIALTY_SHARES[s] for s in own])
    before = np.random.default_rng(seed).choice(len(own), size=n, p=shares / shares.sum())
    pop = Population.generate(n, Catalog.default(), seed=seed)
    assert [pop.specialties[int(s)] for s in pop.specialty] == [own[int(s)] for s in before]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"specialty_shares": {"astrology": 1.0}},
         r"field 'specialty_shares\.astrology': not a specialty of the HCP vocabulary "
         r"\(nba/data/hcp_features\.toml\): general_practice, internal_medicine"),
        ({"specialty_open_rate": {**DEFAULT_SPECIALTY_OPEN_RATE, "Cardiology": 0.1}},
         r"field 'specialty_open_rate\.Cardiology': not a specialty of the HCP vocabulary"),
        ({"specialty_topic_bias": {"dentistry": {"dosing": 0.2}}},
         r"field 'specialty_topic_bias\.dentistry': not a specialty of the HCP vocabulary"),
        ({"specialty_shares": {"oncology": 1.0}}, r"no open rate for specialty 'oncology'"),
    ],
)  # fmt: skip
def test_calibration_naming_a_specialty_outside_the_vocabulary_is_refused(
    kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(SimulatorConfigError, match=match):
        WorldConfig(**kwargs)  # type: ignore[arg-type]


def test_a_vocabulary_specialty_without_calibration_can_be_given_a_share() -> None:
    cfg = WorldConfig(
        specialty_shares={"oncology": 1.0},
        specialty_open_rate={**DEFAULT_SPECIALTY_OPEN_RATE, "oncology": 0.15},
    )
    pop = Population.generate(50, Catalog.default(), seed=1, config=cfg)
    assert {pop.profile(i).specialty for i in range(pop.n)} == {"oncology"}


def test_cli_config_file_with_an_unknown_specialty_names_file_and_field(tmp_path: Path) -> None:
    world = tmp_path / "world.toml"
    world.write_text("[specialty_shares]\ncardiology = 0.5\nveterinary = 0.5\n", encoding="utf-8")
    res = CliRunner().invoke(
        main,
        ["simulate", "--hcps", "10", "--days", "1", "--config", str(world),
         "--out", str(tmp_path / "o"), "--quiet"],
    )  # fmt: skip
    assert res.exit_code != 0
    assert "world.toml" in res.output
    assert (
        "field 'specialty_shares.veterinary': not a specialty of the HCP vocabulary" in res.output
    )
    assert not (tmp_path / "o").exists()
