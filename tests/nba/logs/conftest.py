"""Factories for small, valid event-log tables (real Arrow tables, real contexts)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from nba.catalog import Catalog
from nba.context import DecisionContext, History
from nba.domain import HCPProfile
from nba.logs.schema import DECISIONS, OUTCOMES

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

MakeDecisions = Callable[..., pa.Table]
MakeOutcomes = Callable[[Sequence[tuple[Any, ...]]], pa.Table]


def _context(hcp_id: str, day: date, rng: np.random.Generator) -> str:
    hcp = HCPProfile(
        hcp_id,
        str(rng.choice(["cardiology", "endocrinology", "general_practice"])),
        int(rng.integers(1, 11)),
        str(rng.choice(["US", "DE", "FR"])),
        "aware",
        frozenset({"email", "rep_visit"}),
        digital_affinity=float(rng.uniform()),
    )
    hist = History(touches_30d={"email": int(rng.integers(0, 4))}, last_content_id="VEL-EFF-01")
    return DecisionContext(hcp=hcp, day=day, history=hist).to_json()


@pytest.fixture
def make_decisions() -> MakeDecisions:
    """``make_decisions(n, start=T0, step=timedelta(hours=1), seed=0, activated=None)``.

    Each decision offers 3-6 real catalog actions with random probabilities.
    """
    catalog = Catalog.default()
    actions = catalog.action_ids

    def make(
        n: int,
        start: datetime = T0,
        step: timedelta = timedelta(hours=1),
        seed: int = 0,
        activated: Sequence[bool] | None = None,
        prefix: str = "e",
    ) -> pa.Table:
        rng = np.random.default_rng(seed)
        rows = []
        for i in range(n):
            k = int(rng.integers(3, 7))
            ids = [actions[j] for j in rng.choice(len(actions), size=k, replace=False)]
            p = rng.dirichlet(np.ones(k))
            p = p / p.sum()
            chosen = int(rng.integers(0, k))
            ts = start + i * step
            rows.append(
                {
                    "event_id": f"{prefix}{i:05d}",
                    "ts": ts,
                    "hcp_id": f"h{i % 7}",
                    "requester": "test",
                    "channels_requested": ["email", "rep_visit"],
                    "context": _context(f"h{i % 7}", ts.date(), rng),
                    "catalog_version": catalog.version,
                    "action_ids": ids,
                    "probabilities": p.tolist(),
                    "chosen_index": chosen,
                    "chosen_action_id": ids[chosen],
                    "propensity": float(p[chosen]),
                    "policy": "uniform",
                    "model_version": "m-1",
                    "suppressed": [{"action_id": "VEL-SAF-01@email", "rule": "frequency_cap"}],
                    "activated": True if activated is None else bool(activated[i]),
                }
            )
        return pa.Table.from_pylist(rows, schema=DECISIONS)

    return make


@pytest.fixture
def make_outcomes() -> MakeOutcomes:
    """``make_outcomes([(event_id, ts, type[, source_id[, value[, action_id]]]), ...])``."""

    def make(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
        out = []
        for r in rows:
            event_id, ts, typ = r[0], r[1], r[2]
            source_id = r[3] if len(r) > 3 else f"{event_id}:{typ}"
            value = r[4] if len(r) > 4 else 1.0
            action_id = r[5] if len(r) > 5 else None
            out.append(
                {
                    "event_id": event_id,
                    "ts": ts,
                    "type": typ,
                    "value": value,
                    "source": "hcp",
                    "source_id": source_id,
                    "action_id": action_id,
                }
            )
        return pa.Table.from_pylist(out, schema=OUTCOMES)

    return make
