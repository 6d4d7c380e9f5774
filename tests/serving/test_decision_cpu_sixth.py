"""The sixth pass on a decision's CPU (docs/performance.md, "Sixth pass"): each
shortcut gives what the code it replaces gave, on varied inputs.

- the parts of an HCP's state copied from templates whose statement is built
  ahead equal the parts built from scratch by the part functions;
- a profile read from a row already seen is the profile that row builds, and a
  changed row builds a new one (the cache is keyed on the row's whole content).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from nba.catalog import Catalog
from nba.context import STATED_WINDOW_DAYS
from nba.domain import HCPProfile, Touch
from serving import store as store_mod
from serving.store import (
    _AO_TYPES,
    EventStore,
    _action_outcomes_part,
    _extras_part,
    _feedback_part,
    _history_parts_built,
    _Part,
    _profile_part,
    _stated_part,
    _suppressions_part,
    _to_us,
    _touches_part,
)


def _from_scratch(
    store: EventStore, hcp_id: str, now: datetime, since: datetime, evidence: bool
) -> dict[str, _Part]:
    """The parts as they were built before the templates: each part function anew."""
    day = now.date()
    now_us = _to_us(now)
    parts = {
        "profile": _profile_part(hcp_id),
        "touches": _touches_part(hcp_id, _to_us(since)),
        "feedback": _feedback_part(hcp_id, now_us, -(2**62)),
        "extras": _extras_part(hcp_id, day),
        "suppressions": _suppressions_part(hcp_id, now_us),
    }
    parts.update(_history_parts_built(store.dialect, hcp_id, day))
    if evidence:
        parts["outcomes"] = _action_outcomes_part(hcp_id, _to_us(since), now_us)
        parts["stated"] = _stated_part(hcp_id)
    return parts


def test_state_parts_from_templates_equal_parts_built_anew(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "s.db")
    rng = np.random.default_rng(7)
    base = datetime(2026, 3, 1, 12, tzinfo=UTC)
    for i in range(60):
        now = base + timedelta(days=float(rng.uniform(-400, 400)))
        since = now - timedelta(days=float(rng.choice([1.0, 30.0, 90.0, 95.5])))
        hcp_id = f"hcp-{i}" if i % 7 else "h'q\"uote"
        for evidence in (False, True):
            got = store._state_parts(hcp_id, now, since, evidence)
            want = _from_scratch(store, hcp_id, now, since, evidence)
            assert list(got) == list(want)  # the same parts, in the same order
            for name, p in want.items():
                g = got[name]
                assert (g.cols, g.rest, g.order, g.args, g.limit) == (
                    p.cols,
                    p.rest,
                    p.order,
                    p.args,
                    p.limit,
                ), name
                assert g.sql() == p.sql(), name
    # the outcome types and the stated window are the ones the part functions use
    assert got["outcomes"].args[1:-2] == _AO_TYPES
    day = now.date()
    lo = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=STATED_WINDOW_DAYS)
    assert got["extras"].args[0] == _to_us(lo)


def test_part_text_is_its_statement() -> None:
    """A part that carries its text gives that text; one without builds it."""
    p = _profile_part("h1")
    assert p.text == ""
    carried = p.with_args(("h2",))
    assert carried.text == p.sql() and carried.sql() == p.sql()
    assert carried.args == ("h2",) and carried.cols == p.cols
    assert isinstance(carried, _Part) and carried.limit is None
    assert (
        _Part((("x", "t"),), "FROM t", "x", limit=2).sql() == "SELECT x FROM t ORDER BY x LIMIT 2"
    )


def test_history_shapes_carry_their_text(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "s.db")
    day = date(2026, 5, 17)
    got = store_mod._history_parts(store.dialect, "h", day)
    want = _history_parts_built(store.dialect, "h", day)
    for name, p in want.items():
        assert got[name].text == p.sql()
        assert got[name].args == p.args


def test_part_equality_ignores_the_carried_text() -> None:
    p = _profile_part("h1")
    carried = p.with_args(p.args)
    assert carried == p and not (carried != p) and hash(carried) == hash(p)
    assert carried != p.with_args(("h2",))
    assert p != _Part(p.cols, p.rest, p.order, p.args, 3)


def _profile_anew(row: tuple[object, ...]) -> HCPProfile:
    return HCPProfile(
        hcp_id=str(row[0]),
        specialty=str(row[1]),
        decile=int(row[2]),  # type: ignore[call-overload]
        market=str(row[3]),
        adoption_stage=str(row[4]),
        consents=frozenset(json.loads(str(row[5]))),
        no_see=bool(row[6]),
        digital_affinity=float(row[7]),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "row",
    [
        ("h1", "cardiology", 5, "US", "aware", '["email"]', 0, 0.25),
        ("h1", "cardiology", 5, "US", "aware", '["email", "rep_visit"]', 0, 0.25),
        ("h1", "cardiology", 6, "US", "aware", '["email"]', 0, 0.25),
        ("h1", "cardiology", 5, "US", "aware", '["email"]', 1, 0.25),
        ("h1", "cardiology", 5, "US", "aware", '["email"]', 0, 1),
        ("h1", "cardiology", 5, "US", "aware", '["email"]', 0, 1.0),
        ("h1", "cardiology", 5, "US", "aware", '["email"]', 0, 0.0),
        ("h1", "cardiology", 5, "US", "aware", '["email"]', 0, -0.0),
        ("h2", "oncology", 1, "DE", "advocate", "[]", 1, 0.9),
    ],
)
def test_profile_from_a_row_is_the_profile_that_row_builds(row: tuple[object, ...]) -> None:
    want = _profile_anew(row)
    for _ in range(3):  # built, then given again
        got = EventStore._profile_from([row])
        assert got == want
        assert repr(got.digital_affinity) == repr(want.digital_affinity)  # -0.0 stays -0.0
        assert got.to_dict() == want.to_dict()


def test_profile_cache_follows_the_stored_row(tmp_path: Path) -> None:
    """An HCP whose profile changes in the store is read with its new profile, by
    this process's store and by another store object on the same file."""
    store = EventStore(tmp_path / "s.db")
    other = EventStore(tmp_path / "s.db")
    cat = Catalog.default()
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    since = now - timedelta(days=90)
    first = HCPProfile("h1", "cardiology", 5, "US", "aware", frozenset({"email"}), False, 0.4)
    store.upsert_hcp(first)
    assert store.hcp_state("h1", now, since, cat).profile == first
    assert other.hcp_state("h1", now, since, cat).profile == first
    changed = HCPProfile(
        "h1", "cardiology", 5, "US", "aware", frozenset({"email", "rep_visit"}), True, 0.4
    )
    other.upsert_hcp(changed)
    assert store.hcp_state("h1", now, since, cat).profile == changed
    assert store.get_hcp("h1") == changed
    store.upsert_hcp(first)
    assert other.hcp_state("h1", now, since, cat).profile == first


def test_profile_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "_PROFILES", {})
    monkeypatch.setattr(store_mod, "_PROFILES_MAX", 5)
    for i in range(23):
        row = (f"h{i}", "cardiology", 5, "US", "aware", '["email"]', 0, 0.5)
        assert EventStore._profile_from([row]) == _profile_anew(row)
        assert len(store_mod._PROFILES) <= 5


def _touch_anew(r: tuple[object, ...]) -> Touch:
    return Touch(
        str(r[0]),
        datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(r[1])),  # type: ignore[call-overload]
        str(r[2]),
        str(r[3]),
        str(r[4]),
        str(r[5]),
        tuple(json.loads(str(r[6]))),
        tuple(json.loads(str(r[7]))),
        None if r[8] is None else float(r[8]),  # type: ignore[arg-type]
    )


#: a portal view's row up to its dwell time (the last column)
_PORTAL_VIEW = (
    "h1",
    1_700_000_000_000_000,
    "portal",
    "p",
    "external",
    "portal_view",
    '["dosing"]',
    '["C1", "C2"]',
)


@pytest.mark.parametrize(
    "row",
    [
        ("h1", 1_700_000_000_000_000, "email", "C1", "ours", "contact", "[]", "[]", None),
        ("h1", 1_700_000_000_000_001, "email", "C1", "ours", "contact", "[]", "[]", None),
        ("h1", 1_700_000_000_000_000, "email", "C2", "ours", "contact", "[]", "[]", None),
        (*_PORTAL_VIEW, 31.5),
        (*_PORTAL_VIEW, 0.0),
        (*_PORTAL_VIEW, -0.0),
        (*_PORTAL_VIEW, 31),
    ],
)
def test_touch_from_a_row_is_the_touch_that_row_builds(row: tuple[object, ...]) -> None:
    want = _touch_anew(row)
    for extra in ((), ("override-event", 1, 2)):  # the reps' rows carry more columns
        got = EventStore._touch_from_row(row + extra)
        assert got == want
        assert repr(got.dwell_s) == repr(want.dwell_s)


def test_touch_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "_TOUCHES", {})
    monkeypatch.setattr(store_mod, "_TOUCHES_MAX", 3)
    for i in range(10):
        row = ("h1", 1_700_000_000_000_000 + i, "email", "C1", "ours", "contact", "[]", "[]", None)
        assert EventStore._touch_from_row(row) == _touch_anew(row)
        assert len(store_mod._TOUCHES) <= 3


def test_history_follows_the_store_and_equals_one_built_anew(tmp_path: Path) -> None:
    """The history given again for equal rows equals the one built anew; a new touch,
    another day or another catalog gives a history of its own."""
    store = EventStore(tmp_path / "s.db")
    other = EventStore(tmp_path / "s.db")
    cat = Catalog.default()
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    since = now - timedelta(days=90)
    store.upsert_hcp(HCPProfile("h1", "cardiology", 5, "US", "aware", frozenset({"email"})))
    item = cat.items[0]
    channel = item.channels[0]

    def built(s: EventStore, at: datetime) -> object:
        parts = store_mod._history_parts(s.dialect, "h1", at.date())
        return EventStore._history_built({n: s._rows(p) for n, p in parts.items()}, at.date(), cat)

    seen = []
    for i in range(4):
        got = store.hcp_state("h1", now, since, cat).history
        assert got == built(store, now)
        assert store.hcp_state("h1", now, since, cat).history == got  # given again
        seen.append(got)
        # another process's store adds a touch: the next read must count it
        other.add_touch(Touch("h1", now - timedelta(days=3 + i), channel, item.id, "ours"))
    assert len({repr(h) for h in seen}) == 4
    assert seen[-1].touches_30d[channel] == 3
    later = now + timedelta(days=40)
    assert store.hcp_state("h1", later, later - timedelta(days=90), cat).history == built(
        store, later
    )


def test_history_rows_that_are_not_tuples_are_built_not_kept() -> None:
    rows: dict[str, list[object]] = {n: [] for n in store_mod._HISTORY_ROWS}
    rows["h_overridden"] = [[2]]  # a list row: unhashable
    h = EventStore._history_from(rows, date(2026, 3, 1), Catalog.default())  # type: ignore[arg-type]
    assert h.overrides_90d == 2


def test_history_of_another_catalog_object_is_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "_HISTORIES", {})
    cat = Catalog.default()
    other = Catalog.default()
    rows: dict[str, list[tuple[object, ...]]] = {n: [] for n in store_mod._HISTORY_ROWS}
    day = date(2026, 3, 1)
    a = EventStore._history_from(rows, day, cat)  # type: ignore[arg-type]
    assert EventStore._history_from(rows, day, cat) is a  # type: ignore[arg-type]
    b = EventStore._history_from(rows, day, other)  # type: ignore[arg-type]
    assert b == a and (b is not a or id(cat) == id(other))
    monkeypatch.setattr(store_mod, "_HISTORIES_MAX", 2)
    for i in range(6):
        EventStore._history_from(rows, day + timedelta(days=i), cat)  # type: ignore[arg-type]
        assert len(store_mod._HISTORIES) <= 2
