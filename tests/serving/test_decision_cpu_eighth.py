"""The eighth round on a decision's CPU (docs/performance.md, "Eighth round"), in the
engine: the logged context written from parts kept per object is the context's own
``to_json``, also when the store gives the same profile and history objects again,
and the logged slate holds the conditional probabilities ``slot_probability`` gives.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from serving_testkit import add_population, make_settings

from nba.domain import slot_probability
from serving import schemas
from serving.main import open_services


def test_logged_context_and_slate_equal_the_reference(tmp_path: Path) -> None:
    svc = open_services(make_settings(tmp_path, group_commit=False))
    try:
        rng = np.random.default_rng(8)
        hcp_ids = add_population(svc.store, svc.catalog, 40, rng)
        channels = [["email"], ["email", "webinar"], None, ["portal"]]
        seen = 0
        for i in range(240):  # each HCP about six times: the kept parts are met again
            body: dict[str, object] = {
                "hcp_id": hcp_ids[int(rng.integers(0, len(hcp_ids)))],
                "k": int(rng.integers(1, 5)),
                "explain": bool(i % 3),
                "context": {"requester": "t", "n": i, "w": float(i) / 7, "ü": 'é"\\'},
            }
            if channels[i % 4] is not None:
                body["channels"] = channels[i % 4]
            req = schemas.DecisionRequest.model_validate_json(json.dumps(body))
            work = svc.engine.start_decision(req, "decide-client")
            d = work.prepared.decision
            if d is None:
                continue
            seen += 1
            assert d.context == work.prepared.context.to_json()
            p = list(d.probabilities)
            placed = [d.action_ids.index(s.action_id) for s in d.slate]
            for j, slot in enumerate(d.slate):
                want = p[placed[0]] if j == 0 else slot_probability(p, placed[:j], placed[j])
                assert slot.probability == want
        assert seen > 150
    finally:
        svc.store.close()
