"""Fixtures shared by the library's tests under ``tests/nba``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

#: the time of :func:`decision_row`'s rows unless a test gives its own
ROW_TS = datetime(2026, 1, 5, 9, tzinfo=UTC)

DecisionRow = Callable[..., dict[str, Any]]


@pytest.fixture
def decision_row() -> DecisionRow:
    """``decision_row(event_id, **changes)``: one valid logged decision as a row.

    The decision offers three email actions with probabilities 0.2, 0.3 and 0.5
    and chose the third (propensity 0.5), for HCP ``h1`` at ``ROW_TS``; each
    keyword replaces that column (``ts=``, ``hcp_id=``, ``probabilities=``, ...),
    so that a test states only what its row does differently. The keys are the
    columns of :data:`nba.logs.schema.DECISIONS`.
    """

    def row(event_id: str, **changes: Any) -> dict[str, Any]:
        values: dict[str, Any] = dict(
            event_id=event_id,
            ts=ROW_TS,
            hcp_id="h1",
            requester="sim",
            channels_requested=["email"],
            context="{}",
            catalog_version="v",
            action_ids=["a@email", "b@email", "c@email"],
            probabilities=[0.2, 0.3, 0.5],
            chosen_index=2,
            chosen_action_id="c@email",
            propensity=0.5,
            policy="p",
            model_version="p",
            suppressed=[],
            activated=True,
        )
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"decision_row: no column(s) {sorted(unknown)}")
        values.update(changes)
        return values

    return row
