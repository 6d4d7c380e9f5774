"""Read the history count maps of logged contexts without Arrow's JSON reader.

Arrow's JSON reader builds a JSON object as a struct with one child per key met
in the batch, each filled for every row: for the history maps (content ids,
channels, topics, topic x channel pairs as keys, small whole counts as values)
that is most of the cost of parsing a batch of contexts. :func:`split_count_maps`
finds those maps in the raw JSON text with NumPy, reads their keys and counts
into dense matrices, and empties them in a copy of the text (``{}``), which
Arrow then parses cheaply for everything else. :func:`maps_check_out` checks,
on what Arrow parsed, that every emptied map was the member of the top-level
``history`` object of its row.

The fast reading covers the form :meth:`nba.context.DecisionContext.to_json`
writes (compact, no escapes, whole counts); anything else (a backslash anywhere
in the batch, a map written with spaces, a key named twice, a count that is not
a plain whole number, a map name appearing twice in one row, ...) makes it give
up, and the caller parses the batch the general way, which decides what such
input means (or which error it gets). So the result is the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

#: most digits of a count read here (any such count fits an int64)
_MAX_DIGITS = 18

_QUOTE, _COLON, _COMMA, _OPEN, _CLOSE, _BACKSLASH, _ZERO = (ord(c) for c in '":,{}\\0')


@dataclass
class CountMap:
    """One history map of a batch as a dense matrix.

    Attributes
    ----------
    keys : list of str
        The keys met in the batch, sorted.
    values : numpy.ndarray of int64, shape (n, len(keys))
        The count of each key per row (0 where absent).
    present : numpy.ndarray of bool, shape (n, len(keys))
        Whether the row's map has the key.
    rows : numpy.ndarray of int64, shape (m,)
        The rows whose map was read here (emptied in the text).
    """

    keys: list[str]
    values: npt.NDArray[np.int64]
    present: npt.NDArray[np.bool_]
    rows: npt.NDArray[np.int64]


class _GiveUp(Exception):
    """Input outside the form read here."""


def split_count_maps(
    blob: pa.Buffer, starts: npt.NDArray[np.int64], names: tuple[str, ...]
) -> tuple[pa.Buffer, dict[str, CountMap]] | None:
    """The count maps ``names`` of every row, and the text with them emptied.

    Parameters
    ----------
    blob : pyarrow.Buffer
        The contexts' JSON, one row after another (any separators between rows).
    starts : numpy.ndarray of int64, shape (n + 1,)
        Where each row starts in ``blob``, then the end of the last row.
    names : tuple of str
        The map names (keys of ``history``) to read; plain ASCII names.

    Returns
    -------
    (pyarrow.Buffer, dict) or None
        The text with each map read here written ``{}``, and the maps by name;
        None when the batch is not of the form read here (parse it whole then).
        Each returned map must still be confirmed by :func:`maps_check_out`.
    """
    try:
        return _split(blob, np.asarray(starts, dtype=np.int64), names)
    except _GiveUp:
        return None


def maps_check_out(parsed: pa.Table, maps: dict[str, CountMap]) -> bool:
    """Whether Arrow's parse of the emptied text agrees that each map read was the
    row's ``history`` member: ``history.<name>`` is an object without keys (or
    null) in every row, and an object in every row whose map was read.

    Parameters
    ----------
    parsed : pyarrow.Table
        Arrow's parse of the text :func:`split_count_maps` returned, shape (n rows).
    maps : dict
        The maps it returned.
    """
    if "history" not in parsed.column_names:
        return not any(len(m.rows) for m in maps.values())
    hist = parsed.column("history").combine_chunks()
    if not pa.types.is_struct(hist.type):
        return not any(len(m.rows) for m in maps.values()) and pa.types.is_null(hist.type)
    for name, m in maps.items():
        i = hist.type.get_field_index(name)
        if i < 0:
            if len(m.rows):
                return False
            continue
        child = pc.struct_field(hist, [i])
        t = child.type
        if pa.types.is_null(t):
            if len(m.rows):
                return False
            continue
        if not pa.types.is_struct(t) or t.num_fields:
            return False
        if len(m.rows):
            ok = pc.and_(child.is_valid(), hist.is_valid()).to_numpy(zero_copy_only=False)
            if not ok[m.rows].all():
                return False
    return True


def _split(
    blob: pa.Buffer, starts: npt.NDArray[np.int64], names: tuple[str, ...]
) -> tuple[pa.Buffer, dict[str, CountMap]]:
    b = np.frombuffer(blob, dtype=np.uint8)
    n = len(starts) - 1
    if n < 1 or b.size == 0 or starts[-1] > b.size:
        raise _GiveUp("empty")
    if np.any(b == _BACKSLASH):
        # an escape could spell a key differently or hide a quote: the general way
        raise _GiveUp("escapes")
    quotes = np.flatnonzero(b == _QUOTE)
    per_row = np.diff(np.searchsorted(quotes, starts))
    if np.any(per_row & 1) or int(per_row.sum()) != len(quotes):
        raise _GiveUp("unpaired quotes")
    # without escapes every quote delimits a string: token i spans s[i]..e[i]
    s, e = quotes[0::2].copy(), quotes[1::2].copy()
    name_of = _name_tokens(b, s, e, names)
    closes = np.flatnonzero(b == _CLOSE)
    maps: dict[str, CountMap] = {}
    cut_lo: list[npt.NDArray[np.int64]] = []
    cut_hi: list[npt.NDArray[np.int64]] = []
    for i, name in enumerate(names):
        tok = name_of[i]
        row_of_tok = np.searchsorted(starts, s[tok], side="right") - 1
        if len(row_of_tok) > 1 and np.any(np.diff(row_of_tok) == 0):
            raise _GiveUp("a map name twice in a row")  # tokens are in row order
        # a key with its object right after it ("name":{), compact
        after = np.minimum(e[tok] + 2, b.size - 1)
        is_map = (b[np.minimum(e[tok] + 1, b.size - 1)] == _COLON) & (b[after] == _OPEN)
        is_map &= e[tok] + 2 < b.size
        tok, rows = tok[is_map], row_of_tok[is_map]
        opens = e[tok] + 2
        k = np.searchsorted(closes, opens)
        if np.any(k >= len(closes)):
            raise _GiveUp("unclosed map")
        ends = closes[k]
        if np.any(ends >= starts[rows + 1]):
            raise _GiveUp("map runs past its row")
        maps[name] = _read_map(b, blob, s, e, tok, opens, ends, rows, n)
        cut_lo.append(opens + 1)
        cut_hi.append(ends)
    return _emptied(blob, np.concatenate(cut_lo), np.concatenate(cut_hi)), maps


def _name_tokens(
    b: npt.NDArray[np.uint8],
    s: npt.NDArray[np.int64],
    e: npt.NDArray[np.int64],
    names: tuple[str, ...],
) -> list[npt.NDArray[np.int64]]:
    """For each name, the indices (ascending) of the string tokens (``s``, ``e``:
    opening and closing quote of each, shape (t,)) that may spell it: those of
    its length, first byte and third byte from the end. Every token that spells
    it is among them; one that only looks alike is caught by the checks after
    (a row with two, or whose Arrow parse has no such member, gives up)."""
    width = max(len(x) for x in names) + 1
    lut = np.zeros(width * 65536, dtype=np.int8)
    for i, x in enumerate(names):
        at = len(x) * 65536 + ord(x[0]) * 256 + ord(x[-3])
        if len(x) < 3 or lut[at]:
            raise ValueError(f"map names alike or too short: {names}")
        lut[at] = i + 1
    # only the tokens of a name's length are looked at further: a few of them
    of_length = np.zeros(width + 1, dtype=bool)
    of_length[[len(x) for x in names]] = True
    cand = np.flatnonzero(of_length[np.minimum(e - s - 1, width)])
    sc, ec = s[cand], e[cand]
    code = (ec - sc - 1) * 65536 + b[sc + 1].astype(np.int64) * 256 + b[ec - 3]
    found = lut[code]
    hit = cand[found != 0]
    which = found[found != 0]
    return [hit[which == i + 1] for i in range(len(names))]


def _read_map(
    b: npt.NDArray[np.uint8],
    blob: pa.Buffer,
    s: npt.NDArray[np.int64],
    e: npt.NDArray[np.int64],
    tok: npt.NDArray[np.int64],
    opens: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    n: int,
) -> CountMap:
    """The entries ``"key":count`` between each ``opens``/``ends`` pair (shape (m,)),
    checked to be exactly that form, as a dense matrix over the rows."""
    first = tok + 1  # the first string token after the map's name
    last = _tokens_before(s, first, ends)  # tokens starting before the closing brace
    count = last - first
    if np.any(count < 0):
        raise _GiveUp("token order")
    empty = count == 0
    if np.any(ends[empty] != opens[empty] + 1):
        raise _GiveUp("something but keys in a map")
    total = int(count.sum())
    if total == 0:
        return CountMap([], np.zeros((n, 0), np.int64), np.zeros((n, 0), bool), rows)
    owner = np.repeat(np.arange(len(tok)), count)  # map of each entry
    within = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    ent = first[owner] + within  # token index of each entry's key
    ks, ke = s[ent], e[ent]
    is_first = within == 0
    is_last = within == count[owner] - 1
    if np.any(ks[is_first] != opens[owner[is_first]] + 1):
        raise _GiveUp("map does not start with a key")
    if np.any(ke >= ends[owner]) or np.any(ke - ks < 2):
        raise _GiveUp("key runs past the map, or is empty")
    if np.any(b[ke + 1] != _COLON):
        raise _GiveUp("key without a colon")
    vs = ke + 2
    nxt = np.where(is_last, ends[owner], s[np.minimum(ent + 1, len(s) - 1)] - 1)
    if np.any(b[nxt[~is_last]] != _COMMA):
        raise _GiveUp("entries not separated by one comma")
    vlen = nxt - vs
    width = int(vlen.max())
    if int(vlen.min()) < 1 or width > _MAX_DIGITS:
        raise _GiveUp("count of no digits or too many")
    idx = np.minimum(vs[:, None] + np.arange(width), b.size - 1)
    digits = b[idx].astype(np.int64) - _ZERO
    used = np.arange(width) < vlen[:, None]
    if np.any(used & ((digits < 0) | (digits > 9))):
        raise _GiveUp("count not a plain whole number")
    if np.any((vlen > 1) & (digits[:, 0] == 0)):
        raise _GiveUp("leading zero")
    values = np.zeros(total, dtype=np.int64)
    for j in range(width):
        values = np.where(used[:, j], values * 10 + digits[:, j], values)
    # the keys: text between each key's quotes, coded by distinct key
    bounds = np.empty(2 * total, dtype=np.int64)
    bounds[0::2], bounds[1::2] = ks + 1, ke
    pieces = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), 2 * total - 1, [None, pa.py_buffer(bounds), blob]
    )
    enc = pc.dictionary_encode(pieces.take(pa.array(np.arange(0, 2 * total, 2))))
    try:
        distinct = [v.decode("utf-8") for v in enc.dictionary.to_pylist()]
    except UnicodeDecodeError as exc:
        raise _GiveUp("key not UTF-8") from exc
    if any(ch < " " for key in distinct for ch in key):
        raise _GiveUp("control character in a key")
    order = sorted(range(len(distinct)), key=distinct.__getitem__)
    rank = np.empty(len(distinct), dtype=np.int64)
    rank[order] = np.arange(len(distinct))
    col = rank[np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
    if total > 1:
        same_map = owner[1:] == owner[:-1]
        if np.any(same_map & (col[1:] <= col[:-1])):
            # not in ascending key order: check for a key named twice
            pair = owner * len(distinct) + col
            if len(np.unique(pair)) != total:
                raise _GiveUp("a key twice in one map")
    row = rows[owner]
    vals = np.zeros((n, len(distinct)), dtype=np.int64)
    present = np.zeros((n, len(distinct)), dtype=bool)
    vals[row, col] = values
    present[row, col] = True
    return CountMap([distinct[i] for i in order], vals, present, rows)


#: string tokens looked at after a map's name before searching (see :func:`_tokens_before`)
_PROBE = 8


def _tokens_before(
    s: npt.NDArray[np.int64], first: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """``np.searchsorted(s, ends)`` where token ``first[i] - 1`` (a map's name)
    starts before ``ends[i]`` (its closing brace): ``first[i]`` plus how many of
    the tokens from ``first[i]`` on start before ``ends[i]``.

    The next :data:`_PROBE` tokens of each map are compared, next to each other
    in memory; only maps with more keys than that are searched for. A binary
    search over a whole batch's tokens (a million and more) misses the cache at
    almost every step: it was a quarter of reading the maps.

    Parameters
    ----------
    s : numpy.ndarray of int64, shape (t,)
        Where each string token starts, ascending.
    first, ends : numpy.ndarray of int64, shape (m,)
        Each map's first token after its name (``first[i] - 1 < t``), and the
        position of its closing brace (after the start of token ``first[i] - 1``).

    Returns
    -------
    numpy.ndarray of int64, shape (m,)
    """
    idx = first[:, None] + np.arange(_PROBE, dtype=np.int64)
    inside = idx < len(s)
    np.minimum(idx, len(s) - 1, out=idx)
    before = (s[idx] < ends[:, None]) & inside  # true, then false, along each row
    last = first + before.sum(axis=1)
    more = before[:, -1]
    if more.any():
        last[more] = np.searchsorted(s, ends[more])
    return last


def _emptied(blob: pa.Buffer, lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64]) -> pa.Buffer:
    """``blob`` without the bytes ``lo[i]:hi[i]`` (disjoint ranges)."""
    if not len(lo):
        return blob
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    bounds = np.empty(2 * len(lo) + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, blob.size
    bounds[1:-1:2], bounds[2:-1:2] = lo, hi
    if np.any(np.diff(bounds) < 0):
        raise _GiveUp("overlapping maps")
    pieces = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(bounds) - 1, [None, pa.py_buffer(bounds), blob]
    )
    kept = pieces.take(pa.array(np.arange(0, len(bounds) - 1, 2)))
    size = int(np.frombuffer(kept.buffers()[1], dtype=np.int64)[len(kept)])
    return kept.buffers()[2].slice(0, size)
