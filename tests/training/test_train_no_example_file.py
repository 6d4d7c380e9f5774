"""``nba train`` without a work directory (how the command runs) writes no
example file, and learns the same model as with one (where the file is kept)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nba.reward import RewardDefinition
from simulators.hcp.world import simulate
from training.train import train

RD = RewardDefinition.default()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nofile") / "logs"
    simulate(hcps=200, days=8, policy="campaign", seed=7, out=root)
    return root


def test_without_work_dir_no_example_file_and_the_same_model(
    logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = train(logs, RD, seed=5, chunk_decisions=400, work_dir=tmp_path / "kept")
    assert (tmp_path / "kept" / "train.vw.txt").stat().st_size > 0

    # the run's temporary directory, kept for a look after the run
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    @contextmanager
    def fixed_dir() -> Iterator[str]:
        yield str(scratch)

    monkeypatch.setattr(tempfile, "TemporaryDirectory", fixed_dir)
    plain = train(logs, RD, seed=5, chunk_decisions=400)
    monkeypatch.undo()

    assert (scratch / "native-model.vw").is_file()  # VW's files went there
    assert not (scratch / "train.vw.txt").exists()
    assert plain.n_train == kept.n_train
    assert plain.policy.model_bytes() == kept.policy.model_bytes()
    assert plain.average_loss == kept.average_loss
