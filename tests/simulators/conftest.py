"""Seeded simulator runs shared by the simulator tests (each written once per session)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from nba.logs import io as logio
from simulators.hcp.world import Summary, simulate

# the tests' own helper modules (render_reference) import by name
sys.path.insert(0, str(Path(__file__).parent))


@dataclass
class Run:
    out: Path
    summary: Summary

    def table(self, name: str) -> pd.DataFrame:
        return logio.read(self.out, name).to_pandas()


def _run(
    tmp_path_factory: pytest.TempPathFactory, policy: str, hcps: int, days: int, seed: int
) -> Run:
    out = tmp_path_factory.mktemp(f"sim-{policy}") / "logs"
    summary = simulate(hcps=hcps, days=days, policy=policy, seed=seed, out=out)
    return Run(out, summary)


@pytest.fixture(scope="session")
def campaign_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(tmp_path_factory, "campaign", 300, 20, 11)


@pytest.fixture(scope="session")
def segment_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(tmp_path_factory, "segment", 150, 10, 5)


@pytest.fixture(scope="session")
def oracle_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(tmp_path_factory, "oracle", 150, 10, 5)
