"""Featurized decisions kept columnar, and the Arrow string helpers behind them.

:class:`FeaturizedBatch` is what the bulk path returns and what training writes
to VW; :func:`join` (element-wise concatenation where a null piece writes
nothing) is the building block of every bulk line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from nba.features.config import FeaturizeError


@dataclass(frozen=True)
class FeaturizedBatch:
    """VW lines for many decisions, kept columnar.

    Attributes
    ----------
    shared : pyarrow.StringArray, shape (n_decisions,)
        The ``shared`` line of each decision.
    actions : pyarrow.StringArray, shape (n_action_lines,)
        Action lines of all decisions, concatenated in decision order.
    offsets : ndarray of int64, shape (n_decisions + 1,)
        Decision ``i`` owns ``actions[offsets[i]:offsets[i+1]]``.
    """

    shared: pa.StringArray
    actions: pa.StringArray
    offsets: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.shared)

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
        acts = self.actions
        m = int(self.offsets[-1])
        if action_prefix is not None:
            if len(action_prefix) != len(acts):
                raise FeaturizeError(
                    f"text: {len(action_prefix)} prefixes for {len(acts)} action lines"
                )
            acts = join(action_prefix, acts)
        n = len(self.shared)
        sizes = np.diff(self.offsets)
        pieces: list[pa.Array] = [
            join(self.shared, "\n"),
            join(acts, "\n"),
            pa.array(["\n"], pa.string()),
        ]
        act_src = n + np.arange(m, dtype=np.int64)
        if label_positions is not None:
            pos = np.asarray(label_positions, dtype=np.int64)
            if label_prefixes is None or len(label_prefixes) != len(pos):
                raise FeaturizeError("text: label_prefixes must match label_positions")
            if len(pos) and (pos.min() < 0 or pos.max() >= m):
                raise FeaturizeError(f"text: label positions must be in 0..{m - 1}")
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
        return concat(lines)


def concat(arr: pa.Array) -> bytes:
    """The strings of ``arr`` back to back, as one bytes object."""
    if len(arr) == 0:
        return b""
    arr = pa.concat_arrays([arr])
    bufs = arr.buffers()
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offs = np.frombuffer(bufs[1], dtype=width)[arr.offset : arr.offset + len(arr) + 1]
    return bytes(memoryview(bufs[2])[int(offs[0]) : int(offs[-1])])


def concat_lines(arr: pa.Array) -> bytes:
    """Every string of ``arr`` followed by a newline, as one bytes object."""
    if len(arr) == 0:
        return b""
    return concat(pc.binary_join_element_wise(arr, "\n", ""))


def join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation; null pieces write nothing."""
    return pc.binary_join_element_wise(*parts, "", null_handling="replace", null_replacement="")
