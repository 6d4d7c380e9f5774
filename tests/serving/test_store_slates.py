"""The event store keeps every slot of a list and refuses outcomes about unshown actions."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nba.domain import Decision, Outcome, SlateSlot
from nba.logs import io as logio
from serving.store import EventStore, StoreError

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
IDS = ("VEL-EFF-02@email", "VEL-SAF-01@email", "VEL-DOS-01@email", "VEL-ACC-01@email")


def _decision(event_id: str, slate: tuple[SlateSlot, ...]) -> Decision:
    return Decision(
        event_id=event_id,
        ts=T0,
        hcp_id="h1",
        requester="rep",
        channels_requested=("email",),
        context="{}",
        catalog_version="v",
        action_ids=IDS,
        probabilities=(0.4, 0.3, 0.2, 0.1),
        chosen_index=0,
        chosen_action_id=IDS[0],
        propensity=0.4,
        policy="p",
        model_version="m",
        slate=slate,
    )


SLATE = (SlateSlot(IDS[0], 0.4), SlateSlot(IDS[2], 0.2 / 0.6), SlateSlot(IDS[1], 0.3 / 0.4))


def test_slate_round_trips_and_exports(tmp_path: Path, store_at: Callable[..., str | Path]) -> None:
    store = EventStore(store_at("e.db"))
    store.add_decisions([_decision("e1", SLATE), _decision("e2", ())])
    got = store.get_decision("e1")
    assert got is not None and got.slate == SLATE
    assert store.get_decision("e2").slate == ()  # type: ignore[union-attr]
    store.add_outcome(Outcome("e1", T0 + timedelta(hours=1), "opened", 1.0, "esp", "o1", IDS[2]))
    store.export(tmp_path / "log")
    dec = logio.read(tmp_path / "log", "decisions").to_pylist()
    by_id = {r["event_id"]: r["slate"] for r in dec}
    assert [s["action_id"] for s in by_id["e1"]] == [IDS[0], IDS[2], IDS[1]]
    assert by_id["e2"] is None
    store.close()


def test_outcome_about_an_action_not_in_the_list_is_refused(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    store = EventStore(store_at("e.db"))
    store.add_decisions([_decision("e1", SLATE), _decision("e2", ())])
    late = Outcome("e1", T0 + timedelta(hours=1), "opened", 1.0, "esp", "o1", IDS[3])
    with pytest.raises(
        StoreError,
        match=rf"event 'e1': action_id '{IDS[3]}' was not shown in this decision's list "
        rf"\(its 3 slots: {IDS[0]}, {IDS[2]}, {IDS[1]}\)",
    ):
        store.add_outcome(late)
    # without a slate (one slot, or logged before slates) any eligible action is kept
    store.add_outcome(Outcome("e2", T0 + timedelta(hours=1), "opened", 1.0, "esp", "o1", IDS[3]))
    assert store.counts()["outcomes"] == 1
    store.close()


def test_a_file_without_the_slate_column_gains_it(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    EventStore(path).close()
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE decisions DROP COLUMN slate")
    con.commit()
    con.close()
    store = EventStore(path)
    store.add_decisions([_decision("e1", SLATE)])
    assert store.get_decision("e1").slate == SLATE  # type: ignore[union-attr]
    store.close()
