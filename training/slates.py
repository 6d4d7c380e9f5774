"""Every slot of a logged list as a contextual-bandit example (docs/evaluation.md, "Slates").

Slot ``j`` of a list was drawn from the actions not placed in slots ``1..j-1``
with a known conditional probability (:func:`nba.policies.base.sample_slate`),
so it is a contextual-bandit decision of its own: the decision's shared line,
the action lines of the actions left, the slot's action labelled with
``-slot reward`` and its conditional probability. Slot ``j >= 2`` examples add
the shared feature ``|z slot=<j>`` so the learner can absorb the position's
lower attention in a per-slot offset instead of in the actions' values; slot 1
examples are the decision's own lines, unchanged, and a decision without a
slate gives its one example exactly as before.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from nba.features.batch import FeaturizedBatch
from nba.ope.slates import has_slates
from nba.policies.vw import labelled_text

#: The shared namespace that carries a later slot's position.
SLOT_NAMESPACE = "z"


F64 = npt.NDArray[np.float64]


def slot_examples(
    table: pa.Table, batch: FeaturizedBatch
) -> tuple[FeaturizedBatch, npt.NDArray[np.int64], F64, F64, list[str]]:
    """One example per slot of every row, in row order, slot 1 first.

    Parameters
    ----------
    table : pyarrow.Table
        Joined rows (:data:`nba.logs.schema.JOINED`), n of them.
    batch : FeaturizedBatch
        ``table`` featurized (n decisions).

    Returns
    -------
    examples : FeaturizedBatch
        ``n_slots`` examples.
    chosen : ndarray of int64, shape (n_slots,)
        Position of each slot's action within its example.
    reward, probability : ndarray of float64, shape (n_slots,)
    ids : list of str, length n_slots
        ``event_id`` (slot 1) or ``event_id#slot<j>``, for error messages.
    """
    cols = table.select(
        ["event_id", "action_ids", "chosen_index", "propensity", "reward", "slate", "slot_rewards"]
    ).to_pylist()
    rows: list[int] = []
    lines: list[int] = []
    sizes: list[int] = []
    chosen: list[int] = []
    reward: list[float] = []
    prob: list[float] = []
    ids: list[str] = []
    suffix: list[str | None] = []
    for i, r in enumerate(cols):
        start = int(batch.offsets[i])
        n_a = len(r["action_ids"])
        if not r["slate"]:
            rows.append(i)
            lines.extend(range(start, start + n_a))
            sizes.append(n_a)
            chosen.append(int(r["chosen_index"]))
            reward.append(float(r["reward"]))
            prob.append(float(r["propensity"]))
            ids.append(r["event_id"])
            suffix.append(None)
            continue
        pos = {a: k for k, a in enumerate(r["action_ids"])}
        left = list(range(n_a))
        for j, (slot, rew) in enumerate(zip(r["slate"], r["slot_rewards"], strict=True), start=1):
            a = pos[slot["action_id"]]
            rows.append(i)
            lines.extend(start + k for k in left)
            sizes.append(len(left))
            chosen.append(left.index(a))
            reward.append(float(rew))
            prob.append(float(slot["probability"]))
            ids.append(r["event_id"] if j == 1 else f"{r['event_id']}#slot{j}")
            suffix.append(None if j == 1 else f" |{SLOT_NAMESPACE} slot={j}")
            left.remove(a)
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(np.asarray(sizes, dtype=np.int64), out=offsets[1:])
    examples = batch.select(
        np.asarray(rows, dtype=np.int64),
        np.asarray(lines, dtype=np.int64),
        offsets,
        pa.array(suffix, pa.string()),
    )
    return (
        examples,
        np.asarray(chosen, dtype=np.int64),
        np.asarray(reward, dtype=np.float64),
        np.asarray(prob, dtype=np.float64),
        ids,
    )


__all__ = ["SLOT_NAMESPACE", "has_slates", "labelled_slot_text", "slot_examples"]


def labelled_slot_text(table: pa.Table, batch: FeaturizedBatch) -> bytes:
    """VW ADF text of every slot of every row (see the module docstring)."""
    examples, chosen, reward, prob, ids = slot_examples(table, batch)
    return labelled_text(examples, chosen, reward, prob, ids)
