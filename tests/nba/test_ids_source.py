"""EventIdSource draws the random digits a block ahead: the ids must be the ones
successive new_event_id calls give from the same generator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from nba.ids import EventIdSource, event_id_time, new_event_id


@pytest.mark.parametrize("block", [1, 2, 3, 7, 256])
def test_same_ids_as_new_event_id(block: int) -> None:
    rng = np.random.default_rng(12)
    times = [
        datetime(2026, 1, 5, tzinfo=UTC) + timedelta(milliseconds=int(x))
        for x in rng.integers(0, 10**11, 700)
    ]
    times += [datetime.fromtimestamp(0, UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)]
    src = EventIdSource(np.random.default_rng(5), block=block)
    ref = np.random.default_rng(5)
    for ts in times:
        got = src.new(ts)
        assert got == new_event_id(ts, ref)
        assert abs((event_id_time(got) - ts).total_seconds()) < 0.001


def test_refuses_what_new_event_id_refuses() -> None:
    src = EventIdSource(np.random.default_rng(1))
    with pytest.raises(ValueError, match="timezone-aware"):
        src.new(datetime(2026, 1, 5))
    with pytest.raises(ValueError, match="within 0"):
        src.new(datetime(1960, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="block must be >= 1"):
        EventIdSource(np.random.default_rng(1), block=0)
