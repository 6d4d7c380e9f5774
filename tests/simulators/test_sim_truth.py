"""Ground truth (exact expected reward inside the window) against Monte-Carlo
averages of outcomes drawn by the same world, for fixed hidden state.

Tolerance: the Monte-Carlo mean must lie within 4.5 standard errors of the
exact value (plus 1e-4 for numerical integration), per action; with the fixed
seeds below this is a deterministic check."""

from __future__ import annotations

import numpy as np
import pytest

from nba.reward import RewardDefinition
from simulators.hcp.world import World

SUM_DEF = RewardDefinition.default()
#: outcome values (sample requests and Rx signals included) minus channel costs
VALUE_DEF = RewardDefinition.business_value()
MAX_CLIP_DEF = RewardDefinition(
    name="capped",
    version="1",
    window_days=3.0,
    aggregation="max",
    default_reward=-0.05,
    clip=(-0.5, 0.9),
    weights={
        "opened": 0.2,
        "clicked": 0.7,
        "unsubscribed": -1.0,
        "meeting_held": 1.0,
        "call_held": 0.8,
        "registered": 0.3,
        "attended": 1.0,
        "visited": 0.2,
        "downloaded": 0.6,
        "delivered": 0.01,
    },
)


def _entries(world: World, k_per_channel: int) -> tuple[np.ndarray, np.ndarray]:
    cat = world.catalog
    rng = np.random.default_rng(0)
    hcp, action = [], []
    for ch in cat.channels:
        acts = [i for i, a in enumerate(cat.actions) if a.channel == ch]
        for _ in range(k_per_channel):
            hcp.append(int(rng.integers(world.population.n)))
            action.append(int(rng.choice(acts)))
    return np.array(hcp), np.array(action)


def _mc_rewards(world: World, probs, draws: int, rd: RewardDefinition) -> np.ndarray:
    """Reward of each draw, from in-window outcome types, with reward_of (shape (m, draws))."""
    m = probs.channel.shape[0]
    rep = np.repeat(np.arange(m), draws)
    s = world.response.sample(probs.take(rep), np.random.default_rng(123))
    types = world.response.outcome_types
    in_w = s.delay_days <= rd.window_days
    if rd.aggregation == "sum" and rd.clip is None and rd.default_reward == 0:
        w = np.array([rd.weights.get(t, 0.0) for t in types])
        r = np.bincount(s.entry[in_w], weights=w[s.type_code[in_w]], minlength=m * draws)
        # each draw pays its channel's contact cost (zero without costs)
        chans = world.catalog.channels
        r = r - np.array([rd.cost_of(chans[c]) for c in probs.channel.tolist()])[rep]
    else:
        sets: list[set[str]] = [set() for _ in range(m * draws)]
        for e, c in zip(s.entry[in_w].tolist(), s.type_code[in_w].tolist(), strict=True):
            sets[e].add(types[c])
        r = np.array([rd.reward_of(x) for x in sets])
    return r.reshape(m, draws)


@pytest.mark.parametrize(
    ("rd", "per_channel", "draws"),
    [(SUM_DEF, 4, 40_000), (MAX_CLIP_DEF, 2, 6_000), (VALUE_DEF, 4, 40_000)],
    ids=["sum-14d", "max-clip-default-3d", "value-minus-cost"],
)
def test_ground_truth_matches_monte_carlo(rd, per_channel, draws):
    world = World(300, reward_definition=rd, seed=9)
    pop = world.population
    pop.fatigue[:] = np.random.default_rng(1).gamma(1.0, 1.5, size=pop.fatigue.shape)
    pop.unsubscribe_hazard[:] *= 20  # make unsubscribes frequent enough to be measured
    hcp, action = _entries(world, per_channel)
    probs = world.response.probabilities(pop, hcp, action)
    truth = world.response.expected_reward(probs)
    r = _mc_rewards(world, probs, draws, rd)
    mean = r.mean(axis=1)
    se = r.std(axis=1, ddof=1) / np.sqrt(draws)
    assert np.all(np.abs(mean - truth) <= 4.5 * se + 1e-4), np.c_[truth, mean, se]
    assert np.ptp(truth) > 0.05  # actions differ: the check is not trivially flat


def test_logged_reward_mean_is_close_to_ground_truth_of_chosen_actions(campaign_run):
    s = campaign_run.summary
    # sum of per-decision truths vs realised rewards: same expectation
    assert abs(s.reward_mean - s.expected_reward_mean) < 0.02


@pytest.mark.parametrize("kw", [{"aggregation": "max"}, {"clip": (-1.0, 1.0)}], ids=["max", "clip"])
def test_value_types_need_additive_weights_in_the_simulator(kw):
    from simulators.hcp.config import SimulatorConfigError

    rd = RewardDefinition("v", "1", {"opened": 0.2, "rx_signal": 5.0}, **kw)
    with pytest.raises(SimulatorConfigError, match=r"v@1#\w+: weighing .*rx_signal.* needs"):
        World(50, reward_definition=rd, seed=1)
