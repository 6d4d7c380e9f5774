"""The states of many HCPs at once (a batch of decisions): EventStore.hcp_states
equals one EventStore.hcp_state per HCP, field by field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import pytest
from test_store_hcp_state import NOW, _populate

from nba.catalog import Catalog
from nba.domain import HCPProfile, Touch
from serving.store import EventStore
from serving.store_sqlite import SQLiteStore


def _more(store: EventStore) -> list[str]:
    """HCPs of the edges: none of anything, only an old contact (the latest contact
    is read beyond the window), only pulls, a contact on the day itself."""
    ids = ["e-empty", "e-old", "e-pulls", "e-today"]
    for h in ids:
        store.upsert_hcp(HCPProfile(h, "oncology", 3, "US", "aware", frozenset({"email"})))
    store.add_touches(
        [
            Touch("e-old", NOW - timedelta(days=400), "email", "VEL-EFF-01", "ours"),
            Touch("e-old", NOW - timedelta(days=300), "email", "VEL-EFF-02", "ours"),
            Touch(
                "e-pulls",
                NOW - timedelta(days=3),
                "portal",
                "VEL-EFF-01",
                "external",
                "portal_view",
                ("efficacy",),
                ("VEL-EFF-01",),
                4.0,
            ),
            Touch("e-today", NOW - timedelta(minutes=5), "email", "VEL-EFF-03", "ours"),
        ]
    )
    return ids


@pytest.mark.parametrize("evidence", [True, False])
@pytest.mark.parametrize("chunk", [500, 2])
def test_many_states_equal_one_state_each(
    store_at: Callable[..., str | Path], evidence: bool, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = Catalog.default()
    store = EventStore(store_at("many.db"))
    _populate(store, catalog, 5)
    asked = ["h2", "nobody", *_more(store), "h1", "h3", "h2"]
    if isinstance(store, SQLiteStore):  # several chunks: HCPs split across statements
        monkeypatch.setattr(SQLiteStore, "_MANY_CHUNK", chunk)
    since = NOW - timedelta(days=30)
    many = store.hcp_states(asked, NOW, since, catalog, evidence=evidence)
    assert list(many) == ["h2", "e-empty", "e-old", "e-pulls", "e-today", "h1", "h3"]
    for h, state in many.items():
        one = store.hcp_state(h, NOW, since, catalog, evidence=evidence)
        for f in fields(state):
            assert getattr(state, f.name) == getattr(one, f.name), (h, f.name)
    # the edges gave each branch something to compare
    assert many["e-old"].history.last_content_id == "VEL-EFF-02"
    assert many["e-old"].touches == [] and many["e-empty"].history.last_content_id is None
    assert many["e-pulls"].history.topic_pulls_90d and many["e-pulls"].touches
    assert many["h1"].history.overrides_90d == 1 and many["h1"].trigger_suppressions
    assert (many["h1"].action_outcomes is not None) == evidence


def test_many_states_of_nobody_and_naive_times(store_at: Callable[..., str | Path]) -> None:
    from nba.domain import ValidationError

    store = EventStore(store_at())
    catalog = Catalog.default()
    assert store.hcp_states([], NOW, NOW, catalog) == {}
    assert store.hcp_states(["nobody"], NOW, NOW - timedelta(days=1), catalog) == {}
    with pytest.raises(ValidationError, match="timezone"):
        store.hcp_states(["h1"], NOW.replace(tzinfo=None), NOW, catalog)
