"""Featurized decisions kept columnar, and the Arrow string helpers behind them.

:class:`FeaturizedBatch` is what the bulk path returns and what training writes
to VW; :func:`join` (element-wise concatenation where a null piece writes
nothing) is the building block of every bulk line.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from nba.features.config import FeaturizeError


class FeaturizedBatch:
    """VW lines for many decisions, kept columnar.

    Parameters
    ----------
    shared : pyarrow.StringArray, shape (n_decisions,), or a function giving it
        The ``shared`` line of each decision (a function is called once, when
        :attr:`shared` is first read).
    actions : pyarrow.StringArray, shape (n_action_lines,)
        Action lines of all decisions, concatenated in decision order.
    offsets : ndarray of int64, shape (n_decisions + 1,)
        Decision ``i`` owns ``actions[offsets[i]:offsets[i+1]]``.

    See :meth:`from_parts` for action lines kept as pieces until needed.
    """

    __slots__ = ("_actions", "_parts", "_shared", "actions_json", "offsets", "shared_json")

    def __init__(
        self,
        shared: pa.StringArray | Callable[[], pa.StringArray],
        actions: pa.StringArray,
        offsets: npt.NDArray[np.int64],
    ) -> None:
        self._shared = shared
        self.offsets = offsets
        self._actions: pa.StringArray | None = actions
        self._parts: tuple[pa.Array, ...] | Callable[[], list[pa.Array]] = ()
        #: each action line as its DSJSON object (``json.dumps`` of
        #: :func:`nba.features.dsjson.line_to_namespaces`, compact), shape
        #: (n_action_lines,), when asked for and the bulk path could write it;
        #: else None
        self.actions_json: pa.StringArray | None = None
        #: each shared line's namespaces as the start of its DSJSON ``c``
        #: object, left open for more keys: ``json.dumps`` of
        #: :func:`nba.features.dsjson.line_to_namespaces` (compact) without its
        #: closing brace and with a comma after its last namespace (``{`` alone
        #: when it has none), shape (n_decisions,), when asked for with
        #: :attr:`actions_json` and the bulk path could write it; else None
        self.shared_json: pa.StringArray | None = None

    @classmethod
    def from_parts(
        cls,
        shared: pa.StringArray | Callable[[], pa.StringArray],
        parts: list[pa.Array] | Callable[[], list[pa.Array]],
        offsets: npt.NDArray[np.int64],
    ) -> FeaturizedBatch:
        """A batch whose action lines are the element-wise join of ``parts`` (each
        shape (n_action_lines,); nulls write nothing), joined only when
        :attr:`actions` is read: :meth:`text` writes them straight into the
        example text, one pass over the lines fewer. ``parts`` may also be a
        function that builds them, called only when the lines are needed."""
        batch = cls(shared, pa.nulls(0, pa.string()), offsets)
        batch._actions = None
        batch._parts = parts if callable(parts) else tuple(parts)
        return batch

    @property
    def shared(self) -> pa.StringArray:
        """The ``shared`` line of each decision, shape (n_decisions,) (joined now
        if it was deferred: the DSJSON export reads :attr:`shared_json`)."""
        if callable(self._shared):
            self._shared = self._shared()
        return self._shared

    def _pending(self) -> tuple[pa.Array, ...]:
        """The pieces of the action lines (built now if they were deferred)."""
        if callable(self._parts):
            self._parts = tuple(self._parts())
        return self._parts

    @property
    def actions(self) -> pa.StringArray:
        """Action lines of all decisions, concatenated in decision order, shape
        (n_action_lines,)."""
        if self._actions is None:
            self._actions = join(*self._pending())
            self._parts = ()
        return self._actions

    def _action_parts(self) -> list[pa.Array]:
        return [self._actions] if self._actions is not None else list(self._pending())

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lines(self, i: int) -> list[str]:
        """The lines of decision ``i`` (what :meth:`Featurizer.featurize_one` returns)."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return [str(self.shared[i].as_py()), *(str(s) for s in self.actions[lo:hi].to_pylist())]

    def select(
        self,
        rows: npt.NDArray[np.int64],
        action_lines: npt.NDArray[np.int64],
        offsets: npt.NDArray[np.int64],
        shared_suffix: pa.StringArray | None = None,
    ) -> FeaturizedBatch:
        """A batch of examples made from this one's lines.

        Parameters
        ----------
        rows : ndarray of int64, shape (n_out,)
            Decision whose shared line each new example uses.
        action_lines : ndarray of int64, shape (m_out,)
            Flat indices into :attr:`actions`, concatenated per new example.
        offsets : ndarray of int64, shape (n_out + 1,)
            New example ``e`` owns ``action_lines[offsets[e]:offsets[e + 1]]``.
        shared_suffix : pyarrow.StringArray, shape (n_out,), optional
            Appended to each shared line (e.g. a further shared namespace).
        """
        shared = self.shared.take(pa.array(rows, pa.int64()))
        if shared_suffix is not None:
            shared = join(shared, shared_suffix)
        actions = self.actions.take(pa.array(action_lines, pa.int64()))
        return FeaturizedBatch(shared, actions, np.asarray(offsets, dtype=np.int64))

    def text(
        self,
        action_prefix: pa.StringArray | None = None,
        *,
        label_positions: npt.NDArray[np.int64] | None = None,
        label_prefixes: pa.StringArray | None = None,
    ) -> bytes:
        """All examples as one VW text file (examples separated by a blank line).

        Parameters
        ----------
        action_prefix : pyarrow.StringArray, shape (n_action_lines,), optional
            Written before each action line; nulls write nothing.
        label_positions : ndarray of int64, shape (k,), optional
            Action lines (flat indices) that get a prefix from ``label_prefixes``
            (shape (k,)): the sparse, cheaper form used for labels.
        """
        return self.text_buffer(
            action_prefix, label_positions=label_positions, label_prefixes=label_prefixes
        ).to_pybytes()

    def text_buffer(
        self,
        action_prefix: pa.StringArray | None = None,
        *,
        label_positions: npt.NDArray[np.int64] | None = None,
        label_prefixes: pa.StringArray | None = None,
    ) -> pa.Buffer:
        """:meth:`text` without copying it into a bytes object: a buffer (it has
        the buffer protocol: files and pipes write it as is)."""
        m = int(self.offsets[-1])
        n = len(self.shared)
        if action_prefix is not None and len(action_prefix) != m:
            raise FeaturizeError(f"text: {len(action_prefix)} prefixes for {m} action lines")
        pos = None
        if label_positions is not None:
            pos = np.asarray(label_positions, dtype=np.int64)
            if label_prefixes is None or len(label_prefixes) != len(pos):
                raise FeaturizeError("text: label_prefixes must match label_positions")
            if len(pos) and (pos.min() < 0 or pos.max() >= m):
                raise FeaturizeError(f"text: label positions must be in 0..{m - 1}")
        if n == 0:
            return pa.py_buffer(b"")
        sizes = np.diff(self.offsets)
        if np.any(sizes == 0):
            return self._text_by_lines(action_prefix, pos, label_prefixes)
        # One string per action line, written back to back: the first line of a
        # decision carries the shared line before it, the chosen one its label,
        # the last one the blank line after it. A single join over the action
        # lines, instead of lines gathered into decision order.
        first = np.zeros(m, dtype=bool)
        first[self.offsets[:-1]] = True
        last = np.zeros(m, dtype=bool)
        last[self.offsets[1:] - 1] = True
        head = join(self.shared, "\n").take(
            pa.array(np.repeat(np.arange(n, dtype=np.int64), sizes), mask=~first)
        )
        parts: list[pa.Array] = [head]
        if pos is not None and label_prefixes is not None:
            at = np.zeros(m, dtype=np.int64)
            has = np.zeros(m, dtype=bool)
            at[pos] = np.arange(len(pos), dtype=np.int64)
            has[pos] = True
            parts.append(label_prefixes.take(pa.array(at, mask=~has)))
        if action_prefix is not None:
            parts.append(action_prefix)
        blank = pa.array(["\n\n", "\n"], pa.string()).take(pa.array(np.where(last, 0, 1)))
        return concat_buffer(join(*parts, *self._action_parts(), blank))

    def _text_by_lines(
        self,
        action_prefix: pa.StringArray | None,
        pos: npt.NDArray[np.int64] | None,
        label_prefixes: pa.StringArray | None,
    ) -> pa.Buffer:
        """:meth:`text_buffer` for batches with decisions that have no action line: every
        line gathered into decision order."""
        acts = self.actions
        if action_prefix is not None:
            acts = join(action_prefix, acts)
        m = int(self.offsets[-1])
        n = len(self.shared)
        sizes = np.diff(self.offsets)
        pieces: list[pa.Array] = [
            join(self.shared, "\n"),
            join(acts, "\n"),
            pa.array(["\n"], pa.string()),
        ]
        act_src = n + np.arange(m, dtype=np.int64)
        if pos is not None and label_prefixes is not None:
            pieces.append(join(label_prefixes, acts.take(pa.array(pos)), "\n"))
            act_src[pos] = n + m + 1 + np.arange(len(pos), dtype=np.int64)
        # each decision: shared, its actions, then an empty line
        starts = self.offsets[:-1] + np.arange(n, dtype=np.int64) * 2
        order = np.empty(m + 2 * n, dtype=np.int64)
        order[starts] = np.arange(n, dtype=np.int64)
        act_pos = np.repeat(starts + 1, sizes) + (
            np.arange(m, dtype=np.int64) - np.repeat(self.offsets[:-1], sizes)
        )
        order[act_pos] = act_src
        order[starts + 1 + sizes] = n + m
        lines = pa.concat_arrays([p.cast(pa.string()) for p in pieces]).take(pa.array(order))
        return concat_buffer(lines)


def concat(arr: pa.Array) -> bytes:
    """The strings of ``arr`` back to back, as one bytes object."""
    return concat_buffer(arr).to_pybytes()


def concat_buffer(arr: pa.Array) -> pa.Buffer:
    """The strings of ``arr`` back to back: a slice of its data buffer, no copy."""
    if len(arr) == 0:
        return pa.py_buffer(b"")
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    bufs = arr.buffers()
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offs = np.frombuffer(bufs[1], dtype=width)[arr.offset : arr.offset + len(arr) + 1]
    lo, hi = int(offs[0]), int(offs[-1])
    return bufs[2].slice(lo, hi - lo) if bufs[2] is not None else pa.py_buffer(b"")


def concat_lines(arr: pa.Array) -> bytes:
    """Every string of ``arr`` followed by a newline, as one bytes object."""
    if len(arr) == 0:
        return b""
    return concat(pc.binary_join_element_wise(arr, "\n", ""))


def join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation; null pieces write nothing."""
    return pc.binary_join_element_wise(*parts, "", null_handling="replace", null_replacement="")
