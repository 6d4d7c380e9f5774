"""``nba train``'s chunks: the join's errors and an empty range are refused before
any chunk, and the chunk schedule (small first chunk, shrinking last ones)
covers every decision once."""

from __future__ import annotations

import itertools
from pathlib import Path

import pyarrow as pa
import pytest

from nba.logs.io import LogError
from nba.reward import RewardDefinition
from simulators.hcp.world import simulate
from training.train import TrainingError, chunk_bounds, train

RD = RewardDefinition.default()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chunks") / "logs"
    simulate(hcps=400, days=10, policy="campaign", seed=11, out=root)
    return root


def test_the_joins_error_is_raised(logs: Path, tmp_path: Path) -> None:
    # a log with the same decision twice: the join refuses it
    import shutil

    import pyarrow.parquet as pq

    bad = tmp_path / "bad"
    shutil.copytree(logs, bad)
    day = sorted((bad / "decisions").iterdir())[0]
    part = sorted(day.glob("part-*.parquet"))[0]
    t = pq.read_table(part)
    pq.write_table(pa.concat_tables([t, t.slice(0, 1)]), part)
    with pytest.raises(LogError, match="appears more than once"):
        train(bad, RD, seed=3, chunk_decisions=300)


def test_a_range_without_decisions_is_refused_as_before(logs: Path) -> None:
    with pytest.raises(TrainingError, match="no activated decisions"):
        train(logs, RD, since="2031-01-01", until="2031-01-02")


@pytest.mark.parametrize("n", [0, 1, 5, 299, 300, 2_300, 2_301, 10_007, 195_553])
@pytest.mark.parametrize("chunk", [1, 7, 300, 25_000])
def test_chunk_bounds_cover_every_decision_once(n: int, chunk: int) -> None:
    b = chunk_bounds(n, chunk)
    assert b[0] == 0 and b[-1] == n
    sizes = [y - x for x, y in itertools.pairwise(b)]
    assert all(0 < s <= chunk for s in sizes)
    if n > 2 * chunk + 2000:
        # small first chunk, steady ones, and a last one no larger than the first
        assert sizes[0] == min(chunk, 2000) and max(sizes) == chunk
        assert sizes[-1] <= min(chunk, 2000)
