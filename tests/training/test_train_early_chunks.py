"""``nba train`` featurizes its first chunks while the join runs, from a guess of
which decisions the join will give first: the guess is used only when it is
right, so the example stream and the model are those of featurizing after the
join, whether the guess is right, wrong or fails; and the chunk schedule
(small first chunk, shrinking last ones) covers every decision once."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import training.train as tt
from nba.logs.io import LogError
from nba.reward import RewardDefinition
from simulators.hcp.world import simulate
from training.train import TrainingError, chunk_bounds, train

RD = RewardDefinition.default()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("early") / "logs"
    simulate(hcps=400, days=10, policy="campaign", seed=11, out=root)
    return root


def _run(logs: Path, out: Path, **kw: Any) -> tuple[bytes, bytes, dict[str, float]]:
    r = train(logs, RD, seed=3, chunk_decisions=300, work_dir=out, **kw)
    return (out / "train.vw.txt").read_bytes(), r.policy.model_bytes(), r.timings


@pytest.fixture(scope="module")
def reference(logs: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """Examples and model with no guess at all (everything featurized after the join)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tt, "_early_chunks", lambda *a, **k: None)
        text, model, timings = _run(logs, tmp_path_factory.mktemp("ref"))
    assert "early_featurize" not in timings
    return text, model


def test_guessed_chunks_are_used_and_change_nothing(
    logs: Path, tmp_path: Path, reference: tuple[bytes, bytes]
) -> None:
    text, model, timings = _run(logs, tmp_path)
    assert "early_featurize" in timings  # the guess was right, and used
    assert (text, model) == reference


def test_a_wrong_guess_is_not_used(
    logs: Path, tmp_path: Path, reference: tuple[bytes, bytes]
) -> None:
    real = tt._early_chunks

    def shifted(days: Any, since: Any, until: Any, bounds: list[int], *rest: Any) -> Any:
        # chunks of the right sizes, one row later than the join's: in each place,
        # the right number of decisions but not the join's
        got = real(days, since, until, [b + 1 for b in bounds], *rest)
        got.chunks = {(a - 1, b - 1): chunk for (a, b), chunk in got.chunks.items()}
        assert set(got.chunks) == set(itertools.pairwise(bounds))
        return got

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tt, "_early_chunks", shifted)
        text, model, timings = _run(logs, tmp_path)
    assert "early_featurize" not in timings
    assert (text, model) == reference


def test_a_guess_that_fails_is_dropped(
    logs: Path, tmp_path: Path, reference: tuple[bytes, bytes]
) -> None:
    def broken(*a: Any, **k: Any) -> Any:
        raise ValueError("cannot guess")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tt, "_early_chunks", broken)
        text, model, _ = _run(logs, tmp_path)
    assert (text, model) == reference


def test_the_joins_error_is_raised(logs: Path, tmp_path: Path) -> None:
    # a log with the same decision twice: the join (on its thread) refuses it
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
