"""The world's vectorized policies serve exactly what the per-decision baseline
classes compute; the oracle picks the best ground truth; the BatchPolicy
protocol works for a policy that learns inside the world."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from nba.catalog import Catalog
from nba.context import DecisionContext
from nba.domain import Action
from nba.policies.base import PolicyError
from nba.policies.baselines import CampaignPolicy, SegmentPolicy, UniformPolicy
from simulators.hcp.policies import DecisionBatch, LearnBatch, sample_positions
from simulators.hcp.world import World, simulate


def _check_parity(dec, policy):
    for r in dec.itertuples():
        ctx = DecisionContext.from_json(r.context)
        actions = [Action.parse(a) for a in r.action_ids]
        p = policy.probabilities(ctx, actions)
        np.testing.assert_allclose(p, np.asarray(r.probabilities), rtol=0, atol=1e-12)


def test_campaign_world_equals_campaign_policy(campaign_run):
    dec = campaign_run.table("decisions")
    _check_parity(dec, CampaignPolicy(epsilon=0.1, anchor=date(2026, 1, 5)))
    # the push campaign really pushes: one action takes 1 - eps + eps/K
    top = dec.probabilities.map(max)
    assert (top > 0.9).all()


def test_segment_and_uniform_world_equal_their_policies(segment_run, tmp_path):
    _check_parity(segment_run.table("decisions"), SegmentPolicy(epsilon=0.1))
    out = tmp_path / "u"
    simulate(hcps=40, days=4, policy="uniform", seed=2, out=out)
    from nba.logs import io as logio

    _check_parity(logio.read(out, "decisions").to_pandas(), UniformPolicy())


def test_oracle_chooses_the_best_ground_truth(oracle_run):
    dec = oracle_run.table("decisions").merge(oracle_run.table("ground_truth"), on="event_id")
    for r in dec.itertuples():
        truth = np.asarray(r.expected_rewards)
        assert r.chosen_index == int(np.argmax(truth))
        assert r.propensity == 1.0


def test_personalization_lifts_engagement_by_tens_of_percent_not_multiples():
    res = {p: simulate(hcps=600, days=21, policy=p, seed=13) for p in ("campaign", "oracle")}
    lift = res["oracle"].expected_reward_mean / res["campaign"].expected_reward_mean
    assert 1.15 < lift < 3.0, lift


def test_sample_positions_is_the_inverse_cdf_rule_of_sample_index():
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 9, size=300)
    off = np.r_[0, np.cumsum(sizes)]
    p = rng.random(off[-1]) * (rng.random(off[-1]) > 0.3)
    for i in range(300):  # every decision needs some mass
        if p[off[i] : off[i + 1]].sum() == 0:
            p[off[i]] = 1.0
        p[off[i] : off[i + 1]] /= p[off[i] : off[i + 1]].sum()
    u = rng.random(300)
    got = sample_positions(off, p, u)
    for i in range(300):
        seg = p[off[i] : off[i + 1]]
        cdf = np.cumsum(seg)
        j = min(int(np.searchsorted(cdf, u[i] * cdf[-1], side="right")), len(seg) - 1)
        while seg[j] <= 0 and j > 0:
            j -= 1
        assert got[i] == j
        assert seg[got[i]] > 0


class GreedyCounter:
    """A small real learner: epsilon-greedy over per-action mean rewards, learnt
    only from what the world releases through learn_batch."""

    name = "greedy-counter"
    uses_ground_truth = False

    def __init__(self, n_actions: int, seed: int) -> None:
        self.sum = np.zeros(n_actions)
        self.count = np.zeros(n_actions)
        self.rng = np.random.default_rng(seed)
        self.learned: list[LearnBatch] = []
        self.decided: dict[str, int] = {}

    @property
    def model_version(self) -> str:
        return f"greedy-{int(self.count.sum())}"

    def decide_batch(self, batch: DecisionBatch):
        for e in batch.event_ids:
            self.decided[str(e)] = batch.day_index
        assert batch.expected_rewards is None  # no peeking at the truth
        est = (self.sum + 0.5) / (self.count + 1.0)
        score = est[batch.action_index]
        sizes = np.diff(batch.offsets)
        seg = np.repeat(np.arange(batch.n), sizes)
        best = score == np.maximum.reduceat(score, batch.offsets[:-1])[seg]
        first = np.minimum.reduceat(np.where(best, np.arange(batch.m), batch.m), batch.offsets[:-1])
        eps = 0.2
        p = np.repeat(eps / sizes, sizes)
        p[first] += 1 - eps
        return p, sample_positions(batch.offsets, p, self.rng.random(batch.n))

    def learn_batch(self, batch: LearnBatch) -> None:
        self.learned.append(batch)
        chosen = batch.action_index[batch.offsets[:-1] + batch.chosen]
        np.add.at(self.sum, chosen, batch.reward)
        np.add.at(self.count, chosen, 1.0)


def test_a_learning_batch_policy_runs_in_the_world_and_learns_only_closed_windows(tmp_path):
    world = World(300, seed=8)
    pol = GreedyCounter(len(world.catalog.actions), seed=1)
    out = tmp_path / "loop"
    s = world.run(days=30, policy=pol, out=out)
    assert s.policy == "greedy-counter" and s.decisions > 0
    assert pol.learned, "learn_batch was never called"
    from nba.logs import io as logio

    dec = logio.read(out, "decisions").to_pandas().set_index("event_id")
    window = 14
    n_learned = 0
    for b in pol.learned:
        for i, e in enumerate(b.event_ids):
            r = dec.loc[str(e)]
            assert r.propensity == b.propensity[i]
            assert list(r.probabilities) == list(b.probabilities[b.offsets[i] : b.offsets[i + 1]])
            n_learned += 1
    # decisions are released only once their reward window has closed (day + 15 <= 29)
    released_days = {pol.decided[str(e)] for b in pol.learned for e in b.event_ids}
    assert max(released_days) <= 29 - (window + 1)
    assert n_learned == sum(1 for d in pol.decided.values() if d <= 29 - (window + 1))
    assert dec.model_version.str.startswith("greedy-").all()
    # the rewards a learner gets are the ones the project's DuckDB join computes
    from nba.logs.join import load_joined
    from nba.reward import RewardDefinition

    joined = load_joined(out, RewardDefinition.default()).table.to_pandas().set_index("event_id")
    for b in pol.learned:
        np.testing.assert_allclose(
            b.reward, joined.loc[[str(e) for e in b.event_ids], "reward"].to_numpy(), atol=1e-9
        )
    assert abs(s.reward_mean - joined.reward.mean()) < 1e-9


def test_a_policy_returning_bad_vectors_is_refused():
    class Broken(GreedyCounter):
        def decide_batch(self, batch):
            p, c = super().decide_batch(batch)
            return p * 0.5, c

    world = World(50, seed=1)
    with pytest.raises(PolicyError, match="sum to"):
        world.run(days=2, policy=Broken(len(Catalog.default().actions), 0))
