"""The VW policy: learning, serving copies, batch scoring, persistence, training
from a file with VW's own parser, and the reward regressor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from nba.context import DecisionContext
from nba.domain import Action
from nba.logs.join import load_joined
from nba.policies.base import PolicyError
from nba.policies.vw import (
    RewardRegressor,
    VWConfig,
    VWPolicy,
    labelled_text,
    train_from_file,
)
from nba.reward import RewardDefinition
from training.synthetic import write_synthetic_logs


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    root = tmp_path_factory.mktemp("logs")
    write_synthetic_logs(root, n_decisions=3000, n_hcps=300, days=10, seed=3)
    return load_joined(root, RewardDefinition.default()).table


def _row(table: pa.Table, i: int) -> tuple[DecisionContext, list[Action]]:
    ctx = DecisionContext.from_json(table["context"][i].as_py())
    return ctx, [Action.parse(a) for a in table["action_ids"][i].as_py()]


def _train_file(policy: VWPolicy, table: pa.Table, path: Path) -> Path:
    batch = policy.featurizer.featurize_table(table)
    text = labelled_text(
        batch,
        table["chosen_index"].to_numpy(),
        table["reward"].to_numpy(),
        table["propensity"].to_numpy(),
    )
    path.write_bytes(text)
    return path


def test_training_from_a_file_learns_the_signal_and_is_deterministic(
    joined: pa.Table, tmp_path: Path
) -> None:
    cfg = VWConfig(epsilon=0.05)
    data = _train_file(VWPolicy(cfg), joined, tmp_path / "train.txt")
    a = train_from_file(data, cfg, seed=5, passes=2)
    b = train_from_file(data, cfg, seed=5, passes=2)
    assert a.n_examples == 2 * joined.num_rows
    assert np.isfinite(a.average_loss)
    assert a.policy.model_bytes() == b.policy.model_bytes()
    # the learned policy puts more mass than uniform on the better actions
    # (value under the synthetic world's click probability)
    from training.synthetic import DIGITAL, EARLY_TOPICS

    gain = []
    for i in range(200):
        ctx, acts = _row(joined, i)
        p = a.policy.probabilities(ctx, acts)
        aff = ctx.hcp.digital_affinity
        early = ctx.hcp.adoption_stage in ("unaware", "aware", "considering")
        v = []
        for act in acts:
            fit = aff if act.channel in DIGITAL else 1 - aff
            topic = a.policy.catalog.by_id[act.content_id].topic
            v.append(0.25 * fit * fit + 0.15 * (early == (topic in EARLY_TOPICS)))
        gain.append(float(np.dot(p, v) - np.mean(v)))
    assert np.mean(gain) > 0.02


def test_python_learn_and_native_parser_give_the_same_model(
    joined: pa.Table, tmp_path: Path
) -> None:
    small = joined.slice(0, 300)
    cfg = VWConfig(epsilon=0.1, bits=16)
    data = _train_file(VWPolicy(cfg), small, tmp_path / "small.txt")
    native = train_from_file(data, cfg, seed=2).policy
    online = VWPolicy(cfg, seed=2)
    for i in range(small.num_rows):
        ctx, acts = _row(small, i)
        online.learn(
            ctx,
            acts,
            small["chosen_index"][i].as_py(),
            small["reward"][i].as_py(),
            small["propensity"][i].as_py(),
        )
    for i in range(20):
        ctx, acts = _row(joined, 1000 + i)
        np.testing.assert_allclose(
            online.probabilities(ctx, acts), native.probabilities(ctx, acts), atol=1e-6
        )


def test_predict_only_copy_scores_the_same_and_refuses_to_learn(
    joined: pa.Table, tmp_path: Path
) -> None:
    cfg = VWConfig(exploration="squarecb")
    data = _train_file(VWPolicy(cfg), joined.slice(0, 500), tmp_path / "t.txt")
    pol = train_from_file(data, cfg, seed=1).policy
    serving = pol.predict_only()
    ctx, acts = _row(joined, 7)
    np.testing.assert_array_equal(serving.probabilities(ctx, acts), pol.probabilities(ctx, acts))
    with pytest.raises(PolicyError, match="predict-only"):
        serving.learn(ctx, acts, 0, 1.0, 0.5)
    pol.save(tmp_path / "saved")
    loaded = VWPolicy.load(tmp_path / "saved", predict_only=True, model_version="nba/9")
    assert loaded.model_version == "nba/9"
    np.testing.assert_array_equal(loaded.probabilities(ctx, acts), pol.probabilities(ctx, acts))
    with pytest.raises(PolicyError, match="predict-only"):
        loaded.learn_text("shared |p a\n0:1:0.5 |T x\n")


def test_batch_and_table_scoring_equal_one_at_a_time(joined: pa.Table, tmp_path: Path) -> None:
    cfg = VWConfig(exploration="softmax", lambda_=5.0)
    data = _train_file(VWPolicy(cfg), joined.slice(0, 500), tmp_path / "t.txt")
    pol = train_from_file(data, cfg, seed=1).policy
    part = joined.slice(600, 40)
    flat, offsets = pol.probabilities_table(part)
    rows = [_row(part, i) for i in range(part.num_rows)]
    batch = pol.probabilities_batch([r[0] for r in rows], [r[1] for r in rows])
    for i, (ctx, acts) in enumerate(rows):
        one = pol.probabilities(ctx, acts)
        np.testing.assert_array_equal(flat[offsets[i] : offsets[i + 1]], one)
        np.testing.assert_array_equal(batch[i], one)
        assert float(one.sum()) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(PolicyError, match="2 contexts but 1 action lists"):
        pol.probabilities_batch([rows[0][0], rows[1][0]], [rows[0][1]])


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({}, "not a saved VW policy"),
        ({"policy.json": "{", "catalog.json": "{}"}, "not a saved VW policy"),
        (
            {
                "policy.json": '{"format": 99, "policy": "vw"}',
                "catalog.json": "{}",
                "model.vw": "x",
            },
            "unsupported saved policy format",
        ),
        (
            {"policy.json": '{"format": 1, "policy": "vw"}', "catalog.json": "{}", "model.vw": "x"},
            "metadata is invalid",
        ),
    ],
    ids=["empty", "bad-json", "format", "metadata"],
)
def test_loading_something_else_fails_clearly(
    tmp_path: Path, files: dict[str, str], match: str
) -> None:
    d = tmp_path / "model"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    with pytest.raises(PolicyError, match=match):
        VWPolicy.load(d)


def test_train_from_file_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        train_from_file(tmp_path / "missing.txt")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(PolicyError, match="passes must be a positive integer"):
        train_from_file(tmp_path / "x.txt", passes=0)


def test_reward_regressor_ranks_rewarded_actions_higher(joined: pa.Table) -> None:
    pol = VWPolicy()
    batch = pol.featurizer.featurize_table(joined)
    chosen = batch.offsets[:-1] + joined["chosen_index"].to_numpy()
    r = joined["reward"].to_numpy()
    reg = RewardRegressor(pol.featurizer, passes=2, seed=1).fit(batch, chosen, r)
    pred = reg.predict(batch)
    assert pred.shape == (int(batch.offsets[-1]),)
    on_chosen = pred[chosen]
    assert on_chosen[r > 0].mean() > on_chosen[r == 0].mean()
    with pytest.raises(PolicyError, match="targets for"):
        reg.fit(batch, chosen, r[:-1])
    with pytest.raises(PolicyError, match="line indices must be in"):
        reg.fit(batch, chosen + 10**9, r)
    with pytest.raises(PolicyError, match="call fit"):
        RewardRegressor(pol.featurizer).predict(batch)


def test_ragged_batch_methods_match_one_at_a_time(joined: pa.Table) -> None:
    part = joined.slice(0, 60)
    pol_a = VWPolicy(VWConfig(epsilon=0.1), seed=4)
    pol_b = VWPolicy(VWConfig(epsilon=0.1), seed=4)
    cat_index = pol_a.catalog.action_index
    contexts = part["context"].to_pylist()
    aids = part["action_ids"].to_pylist()
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in aids])])
    action_index = np.array([cat_index[a] for row in aids for a in row])
    chosen = part["chosen_index"].to_numpy()
    reward = part["reward"].to_numpy()
    prop = part["propensity"].to_numpy()
    assert pol_a.learn_ragged(contexts, offsets, action_index, chosen, reward, prop) == 60
    for i in range(60):
        ctx, acts = _row(part, i)
        pol_b.learn(ctx, acts, int(chosen[i]), float(reward[i]), float(prop[i]))
    flat = pol_a.probabilities_ragged(contexts, offsets, action_index)
    for i in range(60):
        ctx, acts = _row(part, i)
        np.testing.assert_allclose(
            flat[offsets[i] : offsets[i + 1]], pol_b.probabilities(ctx, acts), atol=1e-6
        )
    with pytest.raises(PolicyError, match="ragged batch is inconsistent"):
        pol_a.probabilities_ragged(contexts[:-1], offsets, action_index)
    with pytest.raises(PolicyError, match="action_index must be in"):
        pol_a.probabilities_ragged(contexts, offsets, action_index + 10**6)


@pytest.mark.parametrize(
    "cfg",
    [
        VWConfig(epsilon=0.05),
        VWConfig(exploration="squarecb"),
        VWConfig(exploration="softmax"),
        VWConfig(exploration="bag"),
    ],
    ids=["epsilon", "squarecb", "softmax", "bag"],
)
def test_scoring_through_the_binding_equals_the_workspace_predict(
    joined: pa.Table, cfg: VWConfig, tmp_path: Path
) -> None:
    """``_predict`` (parse, predict, finish without pyvw's per-line Example wrapper)
    gives what ``Workspace.predict`` gives, on a learned model and its serving copy."""
    policy = VWPolicy(cfg, seed=2)
    for i in range(400):
        ctx, acts = _row(joined, i)
        policy.learn(
            ctx,
            acts,
            int(joined["chosen_index"][i].as_py()),
            float(joined["reward"][i].as_py()),
            float(joined["propensity"][i].as_py()),
        )
    policy.save(tmp_path / "m")
    served = VWPolicy.load(tmp_path / "m").predict_only()
    for pol in (policy, served):
        assert pol._scores_predicted
        differ = 0
        for i in range(400, 460):
            ctx, acts = _row(joined, i)
            text = "\n".join(pol.featurizer.featurize_one(ctx, acts))
            mine = pol._predict(text)
            assert mine == pol._ws.predict(text)
            assert len(mine) == len(acts)
            differ += len(set(mine)) > 1
        assert differ > 0  # the scores are not all uniform: the comparison says something
