"""In the simulator, the holdout lift (treated minus holdout mean reward per
decision, HCP-clustered interval) recovers the true lift: the difference of the
ground-truth expected rewards of the actions each arm was given."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from nba.contact import ContactPolicy
from nba.lift import holdout_lift
from nba.logs import io as logio
from nba.logs.join import load_joined
from nba.reward import RewardDefinition
from simulators.hcp.world import SimulationError, World


def _lift_run(tmp: Path, rd: RewardDefinition | None, seed: int):
    rules = dataclasses.replace(ContactPolicy.default(), holdout_share=0.3)
    world = World(1500, seed=seed, rules=rules, holdout_policy="campaign", reward_definition=rd)
    out = tmp / "logs"
    world.run(28, policy="oracle", out=out)
    joined = load_joined(out, world.reward_definition).table.sort_by("event_id")
    gt = logio.read(out, "ground_truth", columns=["event_id", "expected_rewards"])
    gt = gt.sort_by("event_id")
    assert gt.column("event_id").equals(joined.column("event_id"))
    lists = gt.column("expected_rewards").combine_chunks()
    offsets = np.asarray(lists.offsets, dtype=np.int64)
    truth = np.asarray(lists.values)[offsets[:-1] + np.asarray(joined.column("chosen_index"))]
    versions = joined.column("model_version")
    hold = np.asarray(pc.starts_with(versions, "holdout:"))
    assert set(pc.unique(versions.filter(pa.array(hold))).to_pylist()) == {
        "holdout:baseline:campaign"
    }
    est = holdout_lift(
        np.asarray(joined.column("reward")), hold, np.asarray(joined.column("hcp_id"))
    )
    true_lift = float(truth[~hold].mean() - truth[hold].mean())
    return est, true_lift


@pytest.mark.parametrize(
    ("rd", "seed"),
    [(None, 3), (RewardDefinition.business_value(), 4)],
    ids=["engagement", "net-value"],
)
def test_holdout_lift_covers_the_true_lift(tmp_path: Path, rd, seed: int) -> None:
    est, true_lift = _lift_run(tmp_path, rd, seed)
    assert est.decisions_holdout > 1000 and est.hcps_holdout > 300
    assert est.covers(true_lift), (est, true_lift)
    # the oracle is truly better than the campaign, and the interval says so
    assert true_lift > 0 and est.low > 0


def test_unknown_holdout_policy_is_refused() -> None:
    with pytest.raises(SimulationError, match="holdout_policy: 'oracle' is not one of"):
        World(10, holdout_policy="oracle")
