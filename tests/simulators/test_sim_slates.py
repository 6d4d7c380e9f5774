"""Simulated lists: slot 1 is untouched, HCPs respond to later slots with
position-discounted attention, and slate OPE recovers a fixed target policy's
true per-slot and whole-list values (docs/evaluation.md, "Slates")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from nba.logs import io as logio
from nba.logs.join import load_joined
from nba.ope.slates import SlateLog, evaluate_slates, position_marginals
from nba.reward import RewardDefinition
from simulators.hcp.slates import slot_truth
from simulators.hcp.world import SimulationError, World, simulate

K = 3
ATTENTION = 0.6


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("slates")
    one, three = root / "k1", root / "k3"
    simulate(800, 30, policy="uniform", seed=4, out=one)
    simulate(800, 30, policy="uniform", seed=4, out=three, slate_size=K, slot_attention=ATTENTION)
    return one, three


def test_slot_one_is_the_world_without_lists(runs: tuple[Path, Path]) -> None:
    one, three = runs
    d1 = logio.read(one, "decisions")
    d3 = logio.read(three, "decisions")
    assert d1.column("slate").null_count == d1.num_rows
    assert d3.drop(["slate"]).equals(d1.drop(["slate"]))
    o3 = logio.read(three, "outcomes")
    chosen = o3.filter(pc.is_null(o3.column("action_id")))
    assert chosen.equals(logio.read(one, "outcomes"))
    later = o3.filter(pc.is_valid(o3.column("action_id")))
    assert later.num_rows > 0
    assert set(later.column("source_id").to_pylist()) == {
        f"sim|{a}" for a in later.column("action_id").to_pylist()
    }
    # every later-slot outcome names an action of its decision's list, never slot 1
    slates = {r["event_id"]: r["slate"] for r in d3.select(["event_id", "slate"]).to_pylist()}
    for r in later.select(["event_id", "action_id"]).to_pylist():
        shown = [s["action_id"] for s in slates[r["event_id"]]]
        assert r["action_id"] in shown[1:]


def _target(action_ids: list[str]) -> np.ndarray:
    """A fixed target policy: emails and webinars four times as likely as the rest."""
    w = np.array([5.0 if a.endswith(("@email", "@webinar")) else 1.0 for a in action_ids])
    return w / w.sum()


def test_slate_estimates_cover_the_true_values(runs: tuple[Path, Path]) -> None:
    _, three = runs
    rd = RewardDefinition.default()
    joined = load_joined(three, rd).table
    assert joined.num_rows > 2000
    truth_tab = logio.read(three, "ground_truth")
    expected = dict(
        zip(
            truth_tab.column("event_id").to_pylist(),
            truth_tab.column("expected_rewards").to_pylist(),
            strict=True,
        )
    )
    log = SlateLog.from_joined(joined)
    assert log.k == K
    targets, true_slot = [], np.zeros((joined.num_rows, K))
    for i, (eid, ids) in enumerate(
        zip(
            joined.column("event_id").to_pylist(),
            joined.column("action_ids").to_pylist(),
            strict=True,
        )
    ):
        q = _target(ids)
        targets.append(q)
        ki = log.slots[i].shape[0]
        marg = position_marginals(q, ki)
        er = np.array(expected[eid])
        for j in range(ki):
            true_slot[i, j] = marg[j] @ slot_truth(er, ATTENTION, j + 1, rd.default_reward)
    truth = true_slot.mean(axis=0)
    est = {e.name: e for e in evaluate_slates(log, targets, alpha=0.01)}
    for j in range(K):
        for kind in ("ips", "snips"):
            e = est[f"slot{j + 1}:{kind}"]
            assert e.low <= truth[j] <= e.high, (e, truth[j])
            assert e.high - e.low < truth[j], e  # informative, not vacuous
    for kind in ("ips", "pi"):
        e = est[f"list:{kind}"]
        assert e.low <= truth.sum() <= e.high, (e, truth.sum())
        assert e.high - e.low < 0.5 * truth.sum(), e
    # the discount is visible: later slots are worth less for the same policy
    assert truth[0] > truth[1] > truth[2] > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"slate_size": 0}, "slate_size must be an integer >= 1, got 0"),
        ({"slate_size": 2.0}, "slate_size must be an integer >= 1, got 2.0"),
        ({"slot_attention": 0.0}, r"slot_attention must be in \(0, 1\], got 0.0"),
        ({"slot_attention": 1.5}, r"slot_attention must be in \(0, 1\], got 1.5"),
    ],
)
def test_bad_slate_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(SimulationError, match=match):
        World(10, **kwargs)  # type: ignore[arg-type]
