"""The batch route's set-based path (``DecisionEngine.prepare_many`` over
``EventStore.hcp_states``, the answer serialized once) against the per-HCP path
(one ``EventStore.hcp_state`` per HCP, as the batch read its HCPs before).

A real ``nba serve`` on 127.0.0.1 answers varied batches (unknown HCPs, holdout
HCPs, HCPs blocked by consent, by the contact rules' gaps and by trigger
suppressions, a channels filter and none, ``k`` of 1 to 3, reasons on and off,
deferred activation) over a store of varied histories; the same batches are then
decided in-process over a copy of the store taken before them, each HCP's state
read on its own, with the server's event ids. The answers, the stored decision
rows and the no-contact records must be identical.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serving_testkit import auth, make_settings, sqlite_rows, start_server, stop_server
from test_store_hcp_state import NOW, _populate

from nba.catalog import Catalog
from nba.contact import ContactPolicy
from nba.domain import HCPProfile, StatedPreference, Touch
from serving import engine as engine_mod
from serving import schemas
from serving.main import open_services
from serving.store import EventStore

BATCHES: list[dict[str, Any]] = [
    {"channels": ["email"], "k": 3, "explain": True},
    {"k": 1, "defer_activation": True},
    {"channels": ["email", "portal"], "k": 2, "explain": True, "defer_activation": True},
    {"channels": ["webinar"], "k": 2},
]


def _rules(tmp: Path) -> Path:
    text = Path(ContactPolicy.default().source).read_text(encoding="utf-8")
    p = tmp / "rules.toml"
    p.write_text(text.replace("share = 0.05", "share = 0.25"), encoding="utf-8")
    return p


def _population(store: EventStore, catalog: Catalog) -> list[str]:
    """Rich histories (h1..h3: outcomes, feedback, overrides, trigger suppressions)
    and 36 HCPs drawn from a seed: consents, recent contacts, pulls, statements."""
    _populate(store, catalog, 13)
    rng = np.random.default_rng(13)
    topics = sorted({it.topic for it in catalog.items})
    content = [c for c in catalog.by_id if c]
    ids = [f"P{i:02d}" for i in range(36)]
    consents: tuple[list[str], ...] = (["email", "portal", "webinar"], ["portal"], ["email"], [])
    store.upsert_hcps(
        [
            HCPProfile(
                h,
                "cardiology" if i % 3 else "oncology",
                int(rng.integers(1, 11)),
                "US",
                "aware",
                frozenset(consents[i % 4] if i % 5 else consents[0]),
                no_see=i % 11 == 10,
                digital_affinity=round(float(rng.random()), 3),
            )
            for i, h in enumerate(ids)
        ]
    )
    touches = []
    for i, h in enumerate(ids):
        for _ in range(int(rng.integers(0, 4))):
            ago = timedelta(days=float(rng.uniform(0.5, 120)))
            c = content[int(rng.integers(len(content)))]
            if rng.random() < 0.3:
                picked = (topics[int(rng.integers(len(topics)))],)
                touches.append(
                    Touch(h, NOW - ago, "portal", c, "external", "portal_view", picked, (c,), 8.0)
                )
            else:
                touches.append(Touch(h, NOW - ago, "email", c, "ours"))
        if i % 6 == 1:
            store.add_stated_preference(
                StatedPreference(h, NOW - timedelta(days=3), "rep", (topics[i % len(topics)],), ())
            )
    store.add_touches(touches)
    return ["h1", "GHOST-1", *ids[:20], "h2", "GHOST-2", *ids[20:], "h3"]


@pytest.mark.parametrize("holdout", ["uniform", "no_contact"])
def test_batch_answers_and_rows_equal_the_per_hcp_path(
    tmp_path: Path, holdout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = Catalog.default()
    db = tmp_path / "events.db"
    store = EventStore(db)
    asked = _population(store, catalog)
    store.close()
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    shutil.copy(db, ref_dir / "events.db")  # the same state, before any batch
    rules = _rules(tmp_path)
    env: dict[str, str] = {
        "NBA_RULES_PATH": str(rules),
        "NBA_HOLDOUT_POLICY": holdout,
        "NBA_ALLOW_CLIENT_TIME": "true",
    }
    bodies = [{"hcp_ids": asked, "as_of": NOW.isoformat(), **b} for b in BATCHES]
    proc, base = start_server(tmp_path, 1, **env)
    try:
        with httpx.Client(base_url=base, timeout=60) as c:
            answers = []
            for body in bodies:
                r = c.post("/v1/decisions:batch", json=body, headers=auth("decide"))
                assert r.status_code == 201, r.text
                answers.append(r.json())
    finally:
        stop_server(proc)

    # the same batches in-process, each HCP's state read on its own, the same ids
    svc = open_services(
        make_settings(
            ref_dir,
            rules_path=rules,
            holdout_policy=holdout,
            allow_client_time=True,
            group_commit=False,
        )
    )
    ref_store = svc.store
    monkeypatch.setattr(
        ref_store,
        "hcp_states",
        lambda *a, **kw: EventStore.hcp_states(ref_store, *a, **kw),  # per HCP
    )
    for body, answer in zip(bodies, answers, strict=True):
        by_hcp = {d["hcp_id"]: d["event_id"] for d in answer["decisions"]}
        ids = [by_hcp.get(h) or f"01UNUSED{i:018d}" for i, h in enumerate(body["hcp_ids"])]
        monkeypatch.setattr(engine_mod, "event_ids", lambda ms, rng, ids=ids: np.array(ids))
        req = schemas.BatchDecisionRequest.model_validate(body)
        want = svc.engine.decide_batch(req, "decide-client", max_batch=10_000)
        assert answer == json.loads(want.model_dump_json())
    ref_store.close()

    # what the answers cover: every kind of item is there
    items = [d for a in answers for d in a["decisions"]]
    blocked = [r for d in items for r in d["blocked_by"]]
    assert all(a["unknown_hcp_ids"] == ["GHOST-1", "GHOST-2"] for a in answers)
    assert {"consent", "holdout" if holdout == "no_contact" else "consent"} <= set(blocked)
    supp = " ".join(r[0] for r in sqlite_rows(db, "SELECT suppressed FROM decisions"))
    assert "trigger:t1" in supp and "repeat" in supp  # rules that left something
    assert any(len(d["suggestions"]) == 3 for d in items)
    assert any(s["reasons"] for d in items for s in d["suggestions"])
    # the stored rows: decisions identical, column by column; no-contact records
    # identical but for their event ids (drawn apart from the batch's)
    every = "SELECT * FROM decisions ORDER BY event_id"
    got, want_rows = sqlite_rows(db, every), sqlite_rows(ref_dir / "events.db", every)
    assert got == want_rows and len(got) >= 25 + 40
    held = (
        "SELECT ts_us, hcp_id, requester, channels_requested FROM holdout_requests ORDER BY 2, 1, 4"
    )
    assert sqlite_rows(db, held) == sqlite_rows(ref_dir / "events.db", held)
    if holdout == "no_contact":
        assert sqlite_rows(db, held)
