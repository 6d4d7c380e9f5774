"""A small synthetic event log with a known, learnable reward structure.

For tests and benchmarks of the training path that must not depend on the
full simulator: HCPs with random profiles receive decisions from a uniform
logging policy over the actions approved in their market and consented
channels; an HCP clicks with a probability that depends on how well the
action's channel suits their digital affinity and on whether the topic suits
their adoption stage. Nothing here is calibrated to the real world (the
simulator in :mod:`simulators` is); it only has to be learnable.

>>> import tempfile
>>> out = write_synthetic_logs(tempfile.mkdtemp(), n_decisions=50, seed=1)
>>> out.n_decisions
50
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from nba.catalog import Catalog
from nba.context import DecisionContext, History
from nba.domain import ADOPTION_STAGES, HCPProfile
from nba.ids import event_ids
from nba.logs import io
from nba.logs.join import MANIFEST_OUTCOMES_COMPLETE, update_manifest
from nba.logs.schema import DECISIONS, OUTCOMES

DIGITAL = frozenset({"email", "webinar", "portal"})
#: topics that suit early (unaware/aware/considering) vs later stages
EARLY_TOPICS = frozenset({"efficacy", "mechanism", "clinical_data", "guidelines", "safety"})
SPECIALTIES = ("cardiology", "endocrinology", "general_practice", "nephrology")


@dataclass(frozen=True)
class SyntheticLogs:
    """Where the log went and what it holds."""

    path: Path
    n_decisions: int
    start: date
    days: int


def click_probability(
    digital_affinity: npt.NDArray[np.float64],
    is_digital: npt.NDArray[np.bool_],
    early_stage: npt.NDArray[np.bool_],
    early_topic: npt.NDArray[np.bool_],
) -> npt.NDArray[np.float64]:
    """The synthetic world's click probability, shape of the inputs (broadcast)."""
    fit = np.where(is_digital, digital_affinity, 1.0 - digital_affinity)
    match = early_stage == early_topic
    return 0.02 + 0.25 * fit * fit + 0.15 * match


def write_synthetic_logs(
    out: str | Path,
    n_decisions: int = 10_000,
    n_hcps: int = 500,
    days: int = 30,
    start: date = date(2026, 1, 5),
    seed: int = 0,
    catalog: Catalog | None = None,
) -> SyntheticLogs:
    """Write decisions, outcomes and the catalog snapshot of a synthetic log.

    Decisions are spread evenly over ``days`` days; each picks an HCP at
    random and logs uniform probabilities over its eligible actions. Every
    outcome is written, so ``manifest.json`` declares ``outcomes_complete``.
    """
    if n_decisions < 1 or n_hcps < 1 or days < 1:
        raise ValueError("n_decisions, n_hcps and days must be positive")
    cat = catalog or Catalog.default()
    rng = np.random.default_rng(seed)
    root = Path(out)
    cat.write_snapshot(root / "catalog")

    markets = np.array(cat.markets)
    hcps = []
    for i in range(n_hcps):
        consents = [c for c in cat.channels if rng.random() < 0.7] or ["email"]
        hcps.append(
            HCPProfile(
                hcp_id=f"H{i:05d}",
                specialty=str(rng.choice(SPECIALTIES)),
                decile=int(rng.integers(1, 11)),
                market=str(rng.choice(markets)),
                adoption_stage=str(rng.choice(ADOPTION_STAGES)),
                consents=frozenset(consents),
                no_see=bool(rng.random() < 0.2),
                digital_affinity=round(float(rng.random()), 3),
            )
        )
    day_of = np.sort(rng.integers(0, days, size=n_decisions))
    secs = rng.integers(8 * 3600, 18 * 3600, size=n_decisions)
    base = datetime(start.year, start.month, start.day, tzinfo=UTC)
    ts = [base + timedelta(days=int(d), seconds=int(s)) for d, s in zip(day_of, secs, strict=True)]
    ts_ms = np.array([int(t.timestamp() * 1000) for t in ts], dtype=np.int64)
    ids = event_ids(ts_ms, rng)
    who = rng.integers(0, n_hcps, size=n_decisions)
    eligible_cache: dict[tuple[str, int], tuple[str, ...]] = {}
    topic_of = {a.action_id: cat.by_id[a.content_id].topic for a in cat.actions}

    rows: list[dict[str, object]] = []
    outcome_rows: list[dict[str, object]] = []
    u = rng.random(size=(n_decisions, 2))
    for i in range(n_decisions):
        hcp = hcps[int(who[i])]
        day = start + timedelta(days=int(day_of[i]))
        key = (hcp.market, int(day_of[i]))
        if key not in eligible_cache:
            eligible_cache[key] = tuple(a.action_id for a in cat.eligible_actions(hcp.market, day))
        allowed = [
            a
            for a in eligible_cache[key]
            if a.rpartition("@")[2] in hcp.consents
            and not (hcp.no_see and a.endswith("@rep_visit"))
        ]
        if not allowed:
            allowed = list(eligible_cache[key][:1])
        k = len(allowed)
        chosen = min(int(u[i, 0] * k), k - 1)
        ctx = DecisionContext(
            hcp,
            day,
            History(touches_30d={"email": int(who[i] % 3)}),
            {"requester": "synthetic"},
        )
        aid = allowed[chosen]
        channel = aid.rpartition("@")[2]
        aff = hcp.digital_affinity
        fit = aff if channel in DIGITAL else 1.0 - aff
        match = (ADOPTION_STAGES.index(hcp.adoption_stage) <= 2) == (topic_of[aid] in EARLY_TOPICS)
        p_click = 0.02 + 0.25 * fit * fit + 0.15 * match  # = click_probability, scalar
        rows.append(
            {
                "event_id": str(ids[i]),
                "ts": ts[i],
                "hcp_id": hcp.hcp_id,
                "requester": "synthetic",
                "channels_requested": [],
                "context": ctx.to_json(),
                "catalog_version": cat.version,
                "action_ids": allowed,
                "probabilities": [1.0 / k] * k,
                "chosen_index": chosen,
                "chosen_action_id": aid,
                "propensity": 1.0 / k,
                "policy": "uniform",
                "model_version": "uniform",
                "suppressed": [],
                "activated": True,
            }
        )
        if u[i, 1] < p_click:
            outcome_rows.append(
                {
                    "event_id": str(ids[i]),
                    "ts": ts[i] + timedelta(hours=2),
                    "type": "clicked",
                    "value": 1.0,
                    "source": "hcp",
                    "source_id": "",
                }
            )
    io.append(root, "decisions", pa.Table.from_pylist(rows, schema=DECISIONS))
    if outcome_rows:
        io.append(root, "outcomes", pa.Table.from_pylist(outcome_rows, schema=OUTCOMES))
    # every outcome of every decision is written: no reward window is open
    update_manifest(root, {"writer": "training.synthetic", MANIFEST_OUTCOMES_COMPLETE: True})
    return SyntheticLogs(root, n_decisions, start, days)
