"""Event ids sort by time, come from the caller's seeded generator, and decode back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from nba.ids import ALPHABET, event_id_time, event_ids, new_event_id

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def test_lexicographic_order_is_time_order() -> None:
    rng = np.random.default_rng(0)
    offsets = rng.integers(0, 10**11, size=2000)  # about three years of milliseconds
    ids = event_ids(_ms(T0) + offsets, rng)
    order_by_id = np.argsort(ids, kind="stable")
    assert np.all(np.diff(offsets[order_by_id]) >= 0)


def test_one_millisecond_apart_still_sorts() -> None:
    rng = np.random.default_rng(1)
    a = new_event_id(T0, rng)
    b = new_event_id(T0 + timedelta(milliseconds=1), rng)
    assert a < b


def test_seeded_and_distinct() -> None:
    ts = np.full(5000, _ms(T0), dtype=np.int64)
    a = event_ids(ts, np.random.default_rng(42))
    b = event_ids(ts, np.random.default_rng(42))
    c = event_ids(ts, np.random.default_rng(43))
    assert (a == b).all()
    assert (a != c).any()
    assert len(set(a.tolist())) == len(a)  # 80 random bits: no collisions at this size
    assert all(len(x) == 26 and set(x) <= set(ALPHABET) for x in a[:50])


def test_scalar_and_vector_paths_agree() -> None:
    one = new_event_id(T0, np.random.default_rng(7))
    many = event_ids(np.array([_ms(T0)]), np.random.default_rng(7))
    assert one == many[0]


def test_time_round_trip_to_the_millisecond() -> None:
    ts = datetime(2026, 3, 1, 23, 59, 59, 987654, tzinfo=UTC)
    got = event_id_time(new_event_id(ts, np.random.default_rng(0)))
    assert got == ts.replace(microsecond=987000)
    assert event_id_time(new_event_id(ts, np.random.default_rng(0)).lower()) == got


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: new_event_id(datetime(2026, 1, 5), np.random.default_rng(0)), "timezone-aware"),
        (lambda: event_ids(np.array([-1]), np.random.default_rng(0)), r"within 0 \.\. 2\*\*48"),
        (lambda: event_ids(np.array([1 << 48]), np.random.default_rng(0)), "within 0"),
        (lambda: event_id_time("short"), "'short' is not 26 characters"),
        (lambda: event_id_time("U" * 26), "character outside base32: 'U'"),
    ],
    ids=["naive", "negative", "too late", "length", "alphabet"],
)
def test_bad_inputs(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


def test_empty_batch() -> None:
    assert event_ids(np.array([], dtype=np.int64), np.random.default_rng(0)).shape == (0,)


def test_one_id_equals_the_vectorized_id_across_timestamps() -> None:
    """The scalar path (digit-pair table, byte translation) writes what the vectorized
    path writes, from the same generator state, from 0 ms to the last millisecond a
    datetime holds (year 9999)."""
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    last = _ms(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC))
    picks = np.random.default_rng(9).integers(0, last, size=1500).tolist()
    seen = set()
    for ms in [0, 1, 1023, 1024, 1 << 40, last, *picks]:
        ts = datetime.fromtimestamp(ms / 1000, UTC)
        one = new_event_id(ts, rng_a)
        ref = str(event_ids(np.array([_ms(ts)], dtype=np.int64), rng_b)[0])
        assert one == ref
        seen.add(one[10:])
    assert len(seen) > 1500  # the random parts differ: the comparison is not of constants
