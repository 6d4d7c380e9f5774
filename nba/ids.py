"""Time-sortable event identifiers (ULID layout, Crockford base32).

An id is 26 characters: 10 for the millisecond timestamp, 16 for 80 random
bits. Ids sort lexicographically in time order, and the random part comes from
the caller's own generator, so a seeded run produces the same ids.

>>> import numpy as np
>>> from datetime import datetime, UTC
>>> ts = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
>>> a = new_event_id(ts, np.random.default_rng(1))
>>> len(a), a == new_event_id(ts, np.random.default_rng(1))
(26, True)
>>> event_id_time(a) == ts
True
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ALPHABET_BYTES = np.frombuffer(ALPHABET.encode("ascii"), dtype=np.uint8)
_DECODE = {c: i for i, c in enumerate(ALPHABET)}
#: two base32 digits of every 10-bit value, and each digit's character as a byte
#: table for ``bytes.translate`` (:func:`new_event_id`)
_PAIRS = tuple(ALPHABET[v >> 5] + ALPHABET[v & 31] for v in range(1024))
_DIGIT_BYTES = bytes(ord(ALPHABET[v & 31]) for v in range(256))


def _ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError("event id timestamp must be timezone-aware")
    return int(ts.timestamp() * 1000)


def new_event_id(ts: datetime, rng: np.random.Generator) -> str:
    """One id for ``ts`` with 80 random bits drawn from ``rng``.

    The same id as :func:`event_ids` gives for one timestamp from the same
    generator state (the same draws), built without the vectorized arrays, which
    cost several times more for a single id (one per decision request).

    >>> ts = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    >>> ms = np.array([_ms(ts)], dtype=np.int64)
    >>> new_event_id(ts, np.random.default_rng(3)) == event_ids(ms, np.random.default_rng(3))[0]
    True
    """
    ms = _ms(ts)
    if not 0 <= ms < 1 << 48:
        raise ValueError("event id timestamps must be within 0 .. 2**48 ms")
    head = (
        _PAIRS[(ms >> 40) & 1023]
        + _PAIRS[(ms >> 30) & 1023]
        + _PAIRS[(ms >> 20) & 1023]
        + _PAIRS[(ms >> 10) & 1023]
        + _PAIRS[ms & 1023]
    )
    digits = rng.integers(0, 32, size=16, dtype=np.uint8).tobytes()
    return head + digits.translate(_DIGIT_BYTES).decode("ascii")


class EventIdSource:
    """Ids for one timestamp at a time, the random digits drawn ``block`` ids ahead.

    Gives the same ids as successive :func:`new_event_id` calls on the same
    generator (one draw of ``16 * block`` base32 digits is the same sequence as
    ``block`` draws of 16: numpy fills each with whole 32-bit words, four digits
    a word), for a fraction of their cost: a decision request needs one id, and
    numpy's call overhead was most of :func:`new_event_id`'s time. Not thread-safe:
    the caller holds its own lock, as it does around the generator.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the random parts; it is drawn ahead, so the generator's state
        runs up to ``block`` ids ahead of the ids handed out.
    block : int, default 256
        Ids whose random digits are drawn at once.

    >>> ts = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    >>> src = EventIdSource(np.random.default_rng(4), block=2)
    >>> got = [src.new(ts) for _ in range(3)]
    >>> rng = np.random.default_rng(4)
    >>> got == [new_event_id(ts, rng) for _ in range(3)]
    True
    """

    def __init__(self, rng: np.random.Generator, block: int = 256) -> None:
        if block < 1:
            raise ValueError(f"EventIdSource: block must be >= 1, not {block}")
        self.rng = rng
        self.block = block
        self._digits = ""
        self._at = 0

    def new(self, ts: datetime) -> str:
        """The next id for ``ts`` (what :func:`new_event_id` would give)."""
        ms = _ms(ts)
        if not 0 <= ms < 1 << 48:
            raise ValueError("event id timestamps must be within 0 .. 2**48 ms")
        at = self._at
        if at >= len(self._digits):
            raw = self.rng.integers(0, 32, size=16 * self.block, dtype=np.uint8).tobytes()
            self._digits = raw.translate(_DIGIT_BYTES).decode("ascii")
            at = 0
        self._at = at + 16
        return (
            _PAIRS[(ms >> 40) & 1023]
            + _PAIRS[(ms >> 30) & 1023]
            + _PAIRS[(ms >> 20) & 1023]
            + _PAIRS[(ms >> 10) & 1023]
            + _PAIRS[ms & 1023]
            + self._digits[at : at + 16]
        )


def event_ids(ts_ms: npt.NDArray[np.int64], rng: np.random.Generator) -> npt.NDArray[np.str_]:
    """Vectorized ids.

    Parameters
    ----------
    ts_ms : ndarray of int64, shape (n,)
        Milliseconds since the Unix epoch, one per id.
    rng : numpy.random.Generator
        Source of the random part (16 base32 digits per id).

    Returns
    -------
    ndarray of str, shape (n,)
    """
    return event_id_bytes(ts_ms, rng).astype("U26")


def event_id_bytes(
    ts_ms: npt.NDArray[np.int64], rng: np.random.Generator
) -> npt.NDArray[np.bytes_]:
    """:func:`event_ids` as ASCII bytes (dtype ``S26``, shape (n,)): the same ids
    from the same draws, for callers that write them to Arrow without a Python
    string each.

    >>> rng = np.random.default_rng(5)
    >>> event_id_bytes(np.array([0, 1]), rng).astype("U26").tolist() == event_ids(
    ...     np.array([0, 1]), np.random.default_rng(5)).tolist()
    True
    """
    ts_ms = np.asarray(ts_ms, dtype=np.int64)
    n = ts_ms.shape[0]
    if n and (ts_ms.min() < 0 or ts_ms.max() >= 1 << 48):
        raise ValueError("event id timestamps must be within 0 .. 2**48 ms")
    digits = np.empty((n, 26), dtype=np.uint8)
    t = ts_ms.astype(np.uint64)
    for i in range(9, -1, -1):
        digits[:, i] = (t & np.uint64(31)).astype(np.uint8)
        t = t >> np.uint64(5)
    digits[:, 10:] = rng.integers(0, 32, size=(n, 16), dtype=np.uint8)
    chars = _ALPHABET_BYTES[digits]
    return np.frombuffer(chars.tobytes(), dtype="S26")


def event_id_time(event_id: str) -> datetime:
    """The timestamp encoded in an id, to the millisecond."""
    if len(event_id) != 26:
        raise ValueError(f"event id {event_id!r} is not 26 characters")
    ms = 0
    for c in event_id[:10].upper():
        if c not in _DECODE:
            raise ValueError(f"event id {event_id!r} has a character outside base32: {c!r}")
        ms = ms * 32 + _DECODE[c]
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
