"""A batch's decisions against single decisions of the same HCPs.

``POST /v1/decisions:batch`` shares work between its decisions (the states read
together, the candidates once, the suppression counts added to the metrics once
for the batch); ``POST /v1/decisions`` decides one HCP at a time. For the same
store, time, request and event ids, both must give the same answers and store
the same rows. Each batch below is decided in-process by
``DecisionEngine.decide_batch_json`` (the route's call; its JSON, written without
models, must be pydantic's text of the answer's model); the same HCPs are then
decided one by one by ``DecisionEngine.decide`` (the single route's engine call)
over a copy of the store taken before the batch, each with the batch's event id. The suggestions,
chosen actions, rules versions and markets, the rules that blocked an HCP, the
stored decision rows (every column) and the no-contact records (but for their
event ids, which the batch draws apart) must be identical, and so must the
suppression counts the metrics gained.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serving_testkit import make_settings, sqlite_rows
from test_batch_prepare_many import BATCHES, _population, _rules
from test_store_hcp_state import NOW

from nba.catalog import Catalog
from nba.context import DecisionContext
from nba.domain import HCPProfile
from nba.policies.vw import VWConfig, VWPolicy
from serving import engine as engine_mod
from serving import schemas
from serving.errors import ApiError
from serving.main import open_services
from serving.store import EventStore, _SharedColumns


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small VW model that prefers some actions (so the policy's scores, not a
    uniform vector, decide), saved where the service loads it."""
    catalog = Catalog.default()
    pol = VWPolicy(VWConfig(epsilon=0.2), catalog=catalog, seed=3, model_version="batch-vw")
    rng = np.random.default_rng(3)
    day = NOW.date()
    for i in range(200):
        ctx = DecisionContext(
            HCPProfile(
                f"T{i}",
                "cardiology",
                int(rng.integers(1, 11)),
                "US",
                "aware",
                frozenset({"email", "portal", "webinar"}),
                digital_affinity=round(float(rng.random()), 3),
            ),
            day,
        )
        acts = catalog.eligible_actions("US", day, ["email", "portal", "webinar"])
        chosen = int(rng.integers(len(acts)))
        reward = 1.0 if acts[chosen].content_id.endswith("1") else 0.0
        pol.learn(ctx, acts, chosen, reward, 1.0 / len(acts))
    path = tmp_path_factory.mktemp("model") / "batch-vw"
    pol.save(path)
    return path


def _suppression_counts(svc: Any) -> dict[str, float]:
    """The suppressions counter's value per rule (``rule`` label)."""
    out: dict[str, float] = {}
    for metric in svc.engine.metrics.suppressions.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                out[sample.labels["rule"]] = sample.value
    return out


@pytest.mark.parametrize("holdout", ["uniform", "no_contact"])
def test_batch_answers_and_rows_equal_single_decisions(
    tmp_path: Path, holdout: str, model: Path
) -> None:
    catalog = Catalog.default()
    store = EventStore(tmp_path / "events.db")
    asked = _population(store, catalog)
    store.close()
    rules = _rules(tmp_path)
    common = {
        "rules_path": rules,
        "holdout_policy": holdout,
        "allow_client_time": True,
        "group_commit": False,
        "model_uri": str(model),
    }
    checked = {"items": 0, "decided": 0, "blocked": 0, "slates": 0}
    counted_rules: set[str] = set()
    for b, extra in enumerate(BATCHES):
        # two copies of the store as it is before the batch: one per way
        batch_dir, single_dir = tmp_path / f"batch{b}", tmp_path / f"single{b}"
        for d in (batch_dir, single_dir):
            d.mkdir()
            shutil.copy(tmp_path / "events.db", d / "events.db")
        body = {
            "hcp_ids": asked,
            "as_of": NOW.isoformat(),
            "context": {"requester": "nightly", "wave": b},
            **extra,
        }

        batch_svc = open_services(make_settings(batch_dir, **common))
        assert batch_svc.engine.models.current.version == "batch-vw"
        req = schemas.BatchDecisionRequest.model_validate(body)
        raw = batch_svc.engine.decide_batch_json(req, "decide-client", max_batch=10_000)
        # the answer written without models is pydantic's text of its model, byte for
        # byte (the fields in order, the numbers and strings as pydantic writes them)
        assert raw == schemas.BatchResponse.model_validate_json(raw).model_dump_json().encode()
        answer = json.loads(raw)
        batch_counts = _suppression_counts(batch_svc)
        counted_rules |= set(batch_counts)
        batch_svc.store.close()

        single_svc = open_services(make_settings(single_dir, **common))
        items = {d["hcp_id"]: d for d in answer["decisions"]}
        unknown = []
        for i, h in enumerate(asked):
            item = items.get(h)
            single = schemas.DecisionRequest.model_validate(
                {
                    "hcp_id": h,
                    "as_of": NOW.isoformat(),
                    "context": body["context"],
                    "channels": extra.get("channels"),
                    "k": extra.get("k", 1),
                    "explain": extra.get("explain", False),
                    "defer_activation": extra.get("defer_activation", False),
                    # the batch's event id; a blocked HCP's is unused, a held one's
                    # names its no-contact record (the batch draws those apart)
                    "event_id": (item or {}).get("event_id") or f"01UNUSED{b}{i:017d}",
                }
            )
            try:
                status, out = single_svc.engine.decide(single, "decide-client")
            except ApiError as exc:  # an HCP the store does not know
                assert exc.status == 404 and item is None
                unknown.append(h)
                continue
            assert item is not None
            got = json.loads(out.model_dump_json())
            assert item["event_id"] == got["event_id"]
            assert item["chosen_action_id"] == got["chosen_action_id"]
            assert item["suggestions"] == got["suggestions"]
            assert item["rules_version"] == got["rules_version"]
            assert item["rules_market"] == got["rules_market"]
            assert item["journey"] == got["journey"]
            if status == 201:
                assert item["blocked_by"] == []
                checked["decided"] += 1
                checked["slates"] += len(got["suggestions"]) > 1
            elif got["policy"] == engine_mod.NO_CONTACT:
                assert item["blocked_by"] == ["holdout"] and item["event_id"] is None
                checked["blocked"] += 1
            else:
                assert item["blocked_by"] == sorted({s["rule"] for s in got["suppressed"]})
                assert item["blocked_by"] and item["event_id"] is None
                checked["blocked"] += 1
            checked["items"] += 1
        assert unknown == answer["unknown_hcp_ids"] == ["GHOST-1", "GHOST-2"]
        assert _suppression_counts(single_svc) == batch_counts
        single_svc.store.close()

        every = "SELECT * FROM decisions ORDER BY event_id"
        got_rows = sqlite_rows(batch_dir / "events.db", every)
        assert got_rows == sqlite_rows(single_dir / "events.db", every)
        before = len(sqlite_rows(tmp_path / "events.db", every))
        assert len(got_rows) - before == answer["n_decisions"] > 0
        held = (
            "SELECT ts_us, hcp_id, requester, channels_requested FROM holdout_requests"
            " ORDER BY 2, 1, 4"
        )
        assert sqlite_rows(batch_dir / "events.db", held) == sqlite_rows(
            single_dir / "events.db", held
        )
        if holdout == "no_contact":
            assert sqlite_rows(batch_dir / "events.db", held)

    # what was compared: decided and blocked HCPs, lists of several suggestions,
    # and every metric of suppressions a batch adds (consent, gaps, triggers)
    assert checked["items"] == len(BATCHES) * (len(asked) - 2)
    assert checked["decided"] >= 40 and checked["blocked"] >= 10 and checked["slates"] >= 10
    assert {"consent", "trigger", "repeat"} <= counted_rules, counted_rules


def test_rows_written_with_shared_columns_equal_rows_written_alone(
    tmp_path: Path, model: Path
) -> None:
    """``add_decisions`` writes the columns its decisions share once per distinct
    value (time, channels, eligible actions, suppressions): each row equals the row
    written for its decision alone, over batches of every shape, decisions of other
    times and zones, and repeated values."""
    catalog = Catalog.default()
    store = EventStore(tmp_path / "events.db")
    asked = _population(store, catalog)
    store.close()
    svc = open_services(
        make_settings(tmp_path, model_uri=str(model), allow_client_time=True, group_commit=False)
    )
    decisions = []
    for b, extra in enumerate(BATCHES):
        prepared, _ = svc.engine.prepare_many(
            asked,
            now=NOW + timedelta(minutes=b),
            channels=svc.engine._channels(extra.get("channels")),
            k=int(extra.get("k", 1)),
            request={"requester": "nightly"},
            requester="nightly",
            defer_activation=bool(extra.get("defer_activation", False)),
            explain=bool(extra.get("explain", False)),
        )
        decisions += [p.decision for p in prepared if p.decision is not None]
    svc.store.close()
    # the same instant in another zone, and a second later
    decisions += [
        replace(decisions[0], event_id="01ZONE", ts=NOW.astimezone(timezone(timedelta(hours=2)))),
        replace(decisions[1], event_id="01LATER", ts=NOW + timedelta(seconds=1)),
    ]
    assert len({d.action_ids for d in decisions}) > 3
    assert len({d.suppressed for d in decisions}) > 3
    assert len({d.ts for d in decisions}) > 3
    for deferred in (False, True):
        some = [d for d in decisions if not (deferred and d.activated)]
        shared = _SharedColumns()
        alone = [EventStore._decision_row(d, deferred) for d in some]
        assert [EventStore._decision_row(d, deferred, shared) for d in some] == alone
