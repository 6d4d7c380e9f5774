"""The simulator's vectorized paths against the plain loops they replaced: the
``interest`` sums, the interest map's cells, count maps' cells (wide and small),
and the log writer thread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from render_reference import ReferenceMap, interest_json, joined_cells

from nba.context import INTEREST_WEIGHTS
from nba.logs import io as logio
from simulators.hcp import world as world_module
from simulators.hcp.history import (
    LONGEST,
    ContextBuilder,
    HistoryTracker,
    MapRenderer,
    _recent_days,
)
from simulators.hcp.world import World


def _interest_by_loop(tr: HistoryTracker, hcp: np.ndarray) -> np.ndarray:
    """The per-age loop ``interest`` was: ages ascending, every cell summed in order."""
    out = np.zeros((hcp.shape[0], tr.pull_day.shape[2]))
    for age in range(1, min(LONGEST, tr.day) + 1):
        slot = (tr.day - age) % tr.ring
        counts = tr.pull_day[slot, hcp].astype(np.float64) + tr.topic_day[slot, hcp]
        out += counts * INTEREST_WEIGHTS[age]
    return out


def _interest_json_by_loop(cb: ContextBuilder, values: np.ndarray) -> list[str]:
    out = []
    for row in values.tolist():
        parts = []
        for i in sorted(range(len(cb.topics)), key=lambda i: cb.topics[i]):
            v = round(row[i], 3)
            if v:
                parts.append(f'"{cb.topics[i]}":{v!r}')
        out.append("{" + ",".join(parts) + "}")
    return out


def test_interest_is_bit_identical_to_the_loop_over_ages() -> None:
    rng = np.random.default_rng(1)
    n, n_topics, n_channels = 200, 6, 3
    tr = HistoryTracker(n, n_channels, n_topics, horizon_days=30)
    nonzero = 0
    for d in range(130):  # past the 90-day window, so days leave it
        if d:
            tr.advance(d)
        k = int(rng.integers(0, 150))
        tr.record_pulls(
            d + rng.integers(0, 5, k), rng.integers(0, n, k), rng.integers(0, n_topics, k)
        )
        k = int(rng.integers(0, 150))
        tr.record_engagements(
            d + rng.integers(0, 20, k),
            rng.integers(0, n, k),
            rng.integers(0, n_channels, k),
            rng.integers(0, n_topics, k),
        )
        hcp = np.sort(rng.choice(n, size=int(rng.integers(1, n)), replace=False))
        want = _interest_by_loop(tr, hcp)
        got = tr.interest(hcp)
        assert got.shape == want.shape
        assert np.array_equal(got, want), f"day {d}"  # exact, not approximate
        nonzero += int(np.count_nonzero(want))
    assert nonzero > 10_000  # the comparison covered real sums


def test_interest_json_matches_rounding_each_value() -> None:
    rng = np.random.default_rng(2)
    cb = ContextBuilder(["email"], ["safety", "dosing", "access", "efficacy"], ["A"])
    values = rng.random((300, 4)) * rng.integers(0, 3, (300, 4))
    values[rng.random(values.shape) < 0.1] = 0.0004  # rounds to 0: left out
    values[rng.random(values.shape) < 0.1] = 2.0  # written "2.0"
    values[5] = 0.0
    want = _interest_json_by_loop(cb, values)
    assert joined_cells(300, *cb._interest_cells(values)) == want
    # again, now from the texts kept by the first call
    assert cb._interest_text
    assert joined_cells(300, *cb._interest_cells(values)) == want
    assert joined_cells(2, *cb._interest_cells(np.zeros((2, 4)))) == ["{}", "{}"]
    assert joined_cells(0, *cb._interest_cells(np.zeros((0, 4)))) == []
    # and the tests' reference (the interest JSON as the render wrote it before)
    assert interest_json(cb.topics, values) == want


def test_wide_count_maps_render_each_row_as_before() -> None:
    rng = np.random.default_rng(3)
    names = [f"k{i:02d}" for i in range(50)][::-1]  # written in sorted key order
    ref = ReferenceMap(names)
    assert ref.bits < 4  # too wide to pack: the reference's sparse path
    rows = (rng.random((400, 50)) < 0.05) * rng.integers(1, 300, (400, 50))
    rows[0] = 0
    want = [ref.render_row(r) for r in rows.tolist()]
    got = joined_cells(400, *MapRenderer(names).cells(rows))
    assert got == want
    assert got[0] == "{}"
    assert ref.render(rows) == want


def test_a_failing_log_write_stops_the_run_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = logio.append

    def failing(root: Path, name: str, table: object, **kw: object) -> object:
        if name == "outcomes":
            raise OSError(28, "No space left on device")
        return original(root, name, table, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(logio, "append", failing)
    world = World(300, seed=1)
    with pytest.raises(OSError, match="No space left on device"):
        world.run(10, out=tmp_path / "logs", flush_days=2)
    assert not (tmp_path / "logs" / "manifest.json").exists()  # nothing claims the logs whole
    assert not logio.part_files(tmp_path / "logs", "outcomes")


class _Inline:
    """Stands in for the writer thread: writes each part at once, in the caller."""

    def append(self, out: Path, name: str, table: object) -> None:
        logio.append(out, name, table, fsync=False)  # type: ignore[arg-type]

    def close(self, raise_error: bool = True) -> None:
        pass


def test_logs_written_on_the_writer_thread_equal_those_written_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as for a policy that reads contexts: every table on the writer thread, none
    # in the writer processes
    monkeypatch.setattr(World, "_contexts_unread", lambda self, pol: False)
    used: list[object] = []
    real = world_module._PartWriter

    def spy() -> object:
        used.append(1)
        return real()

    monkeypatch.setattr(world_module, "_PartWriter", spy)
    threaded = World(400, seed=5).run(14, out=tmp_path / "a", flush_days=3)
    assert used == [1]
    monkeypatch.setattr(world_module, "_PartWriter", _Inline)
    inline = World(400, seed=5).run(14, out=tmp_path / "b", flush_days=3)
    assert threaded.decisions == inline.decisions > 0
    for table in ("decisions", "outcomes", "touches", "ground_truth"):
        a = [p.relative_to(tmp_path / "a") for p in logio.part_files(tmp_path / "a", table)]
        b = [p.relative_to(tmp_path / "b") for p in logio.part_files(tmp_path / "b", table)]
        assert a == b and a
        assert logio.read(tmp_path / "a", table).equals(logio.read(tmp_path / "b", table))


@pytest.mark.parametrize("density", [0.02, 0.3, 0.9])
def test_small_count_maps_render_as_row_by_row(density: float) -> None:
    rng = np.random.default_rng(4)
    names = [f"item{i}" for i in range(40)][::-1]
    ref = ReferenceMap(names)
    rows = (rng.random((300, 40)) < density) * rng.integers(1, LONGEST + 1, (300, 40))
    rows[7] = 0
    want = [ref.render_row(r) for r in rows.tolist()]
    got = joined_cells(300, *MapRenderer(names).cells(rows))
    assert got == want
    assert got[7] == "{}"
    assert ref.render_small(rows, LONGEST + 1) == want


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float64, bool])
@pytest.mark.parametrize("shape", [(0, 4), (5, 0), (7, 1), (1, 9), (40, 13)])
def test_nonzero_2d_gives_what_np_nonzero_gives(dtype: type, shape: tuple[int, int]) -> None:
    from simulators.hcp.history import nonzero_2d

    rng = np.random.default_rng(sum(shape))
    a = (rng.random(shape) < 0.3) * rng.integers(-3, 4, shape)
    a = a.astype(dtype)
    if dtype is np.float64 and a.size:
        a.flat[0], a.flat[-1] = np.nan, -0.0  # NaN counts as non-zero, -0.0 does not
    for x in (a, a[:, ::-1], a[::2]):  # views that are not C-contiguous
        want = np.nonzero(x)
        got = nonzero_2d(x)
        assert all(g.dtype == np.int64 for g in got)
        assert [g.tolist() for g in got] == [w.tolist() for w in want]


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
@pytest.mark.parametrize("step", [1, -1])
def test_add_counts_adds_what_np_add_at_adds(dtype: type, step: int) -> None:
    from simulators.hcp.history import add_counts

    rng = np.random.default_rng(3)
    shape = (4, 30, 6)
    start = rng.integers(-5, 6, shape).astype(dtype)
    # cells repeated many times in one call, and a sub-array view of a larger one
    index = tuple(rng.integers(0, n, 500) for n in shape)
    want = start.copy()
    np.add.at(want, index, step)
    got = start.copy()
    add_counts(got, index, step=step)
    assert got.dtype == dtype
    assert np.array_equal(got, want)
    ring = np.stack([start, start])
    add_counts(ring[1], index, step=step)  # the caller's view is what changes
    assert np.array_equal(ring[1], want) and np.array_equal(ring[0], start)
    distinct = np.unique(np.ravel_multi_index(index, shape))
    got = start.copy()
    add_counts(got, np.unravel_index(distinct, shape), distinct=True, step=step)
    want = start.copy()
    np.add.at(want, np.unravel_index(distinct, shape), step)
    assert np.array_equal(got, want)


def test_expected_reward_of_value_events_is_bit_identical_to_each_rows_product(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nba.reward import RewardDefinition

    # the business-value definition weighs sample requests and Rx signals
    world = World(200, reward_definition=RewardDefinition.business_value(), seed=4)
    resp = world.response
    assert resp.value_types and resp.value_weight.any()
    rng = np.random.default_rng(5)
    hcp = rng.integers(0, 200, 3000)
    action = rng.integers(0, len(world.catalog.actions), 3000)
    probs = resp.probabilities(world.population, hcp, action)
    c = probs.channel
    # without costs, the value term is the last addition
    monkeypatch.setattr(resp, "channel_cost", np.zeros_like(resp.channel_cost))
    monkeypatch.setattr(resp, "value_types", ())
    without = resp.expected_reward(probs)
    monkeypatch.undo()
    monkeypatch.setattr(resp, "channel_cost", np.zeros_like(resp.channel_cost))
    # as before: each entry's row of rates times chances, times the weights
    per = (resp.value_rate[c] * resp.q_value[c]) @ resp.value_weight
    want = without + probs.gate * probs.primary * per
    got = resp.expected_reward(probs)
    assert np.array_equal(got.view(np.int64), want.view(np.int64))
    assert np.ptp(per) > 0  # the value term differs between channels


def test_recent_days_equal_the_where_they_replace() -> None:
    """``_recent_days`` (a 0/1 mask times the int8 days) gives what
    ``np.where(ds <= LONGEST, ds, 0).astype(np.int8)`` gave, for every day count
    a run can hold and the tracker's never-seen sentinel, in any shape."""
    ds = np.r_[np.arange(-300, 400), [LONGEST, LONGEST + 1, 10**6, 10**6 + 89, -(10**6)]].astype(
        np.int32
    )
    for arr in (ds, ds.reshape(-1, 5), ds.reshape(5, -1)[:, ::2], ds[:0]):
        got = _recent_days(arr)
        want = np.where(arr <= LONGEST, arr, 0).astype(np.int8)
        assert got.dtype == np.int8 and got.shape == arr.shape
        assert np.array_equal(got, want)
