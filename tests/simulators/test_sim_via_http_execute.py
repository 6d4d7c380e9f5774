"""``World.execute`` and ``World.next_day``: the public steps that ``nba simulate
--via`` drives the world with (the day loop uses the same ``execute``)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from simulators.hcp.world import SimulationError, World


def _at(world: World, hour: int) -> int:
    s = world.start
    return int(datetime(s.year, s.month, s.day, hour, tzinfo=UTC).timestamp()) * 1_000_000


def test_execute_updates_the_state_and_returns_the_events() -> None:
    w = World(50, seed=2)
    cat = w.catalog
    email = cat.channels.index("email")
    action = next(j for j, a in enumerate(cat.actions) if a.channel == "email")
    item = int(cat.action_item_index[action])
    hcp = np.arange(10, dtype=np.int64)
    ts = np.full(10, _at(w, 6), dtype=np.int64)
    fatigue = w.population.fatigue[hcp, email].copy()
    ex = w.execute(hcp, np.full(10, action, dtype=np.int64), ts, 0)
    assert np.allclose(w.population.fatigue[hcp, email], fatigue + 1.0)
    assert (w.population.seen[hcp, item] == 1).all()
    assert (w.last_sent[hcp, email] == 0).all()
    assert (w.population.seen[10:, item] == 0).all()  # nobody else touched
    k = ex.sampled.entry.shape[0]
    assert ex.ts_us.shape == ex.day.shape == (k,)
    assert (ex.ts_us >= ts[ex.sampled.entry]).all()
    types = [w.response.outcome_types[c] for c in ex.sampled.type_code]
    assert types.count("delivered") >= 5  # delivery rate is high
    assert ex.channel.tolist() == [email] * 10 and ex.item.tolist() == [item] * 10
    # the history sees the touches once the day is over
    w.next_day(1)
    assert (w.history.touch_win[7][hcp, email] == 1).all()


def test_execute_is_seeded() -> None:
    runs = []
    for _ in range(2):
        w = World(30, seed=9)
        hcp = np.arange(30, dtype=np.int64)
        ex = w.execute(hcp, np.zeros(30, dtype=np.int64), np.full(30, _at(w, 9)), 0)
        runs.append((ex.sampled.type_code.tolist(), ex.ts_us.tolist()))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("day", [0, 2, -1, 1.0, True])
def test_next_day_moves_one_day_at_a_time(day: object) -> None:
    w = World(5, seed=1)
    with pytest.raises(SimulationError, match=r"next_day: the world is on day 0"):
        w.next_day(day)  # type: ignore[arg-type]
