"""Training learns every slot of a logged list; logs without lists train as before."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nba.catalog import Catalog
from nba.logs.join import load_joined
from nba.policies.vw import VWPolicy, labelled_text
from nba.reward import RewardDefinition
from simulators.hcp.world import simulate
from training.slates import has_slates, labelled_slot_text, slot_examples
from training.train import train

RD = RewardDefinition.default()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train-slates")
    simulate(150, 10, policy="uniform", seed=8, out=root / "k1")
    simulate(150, 10, policy="uniform", seed=8, out=root / "k3", slate_size=3)
    return root / "k1", root / "k3"


def _featurized(logs_dir: Path):  # type: ignore[no-untyped-def]
    table = load_joined(logs_dir, RD).table
    cat = Catalog.read_snapshot(next((logs_dir / "catalog").glob("*.json")))
    policy = VWPolicy(None, None, cat, 0)
    policy.close()
    return table, policy.featurizer.featurize_table(table)


def _examples(text: bytes) -> list[str]:
    return [e for e in text.decode().split("\n\n") if e.strip()]


def test_without_lists_the_slot_path_writes_the_same_bytes(logs: tuple[Path, Path]) -> None:
    table, batch = _featurized(logs[0])
    assert not has_slates(table)
    plain = labelled_text(
        batch,
        table.column("chosen_index").to_numpy(),
        table.column("reward").to_numpy(),
        table.column("propensity").to_numpy(),
    )
    assert labelled_slot_text(table, batch) == plain


def test_every_slot_is_an_example_over_the_actions_left(logs: tuple[Path, Path]) -> None:
    table, batch = _featurized(logs[1])
    assert has_slates(table)
    examples, chosen, reward, prob, ids = slot_examples(table, batch)
    rows = table.to_pylist()
    n_slots = sum(len(r["slate"]) if r["slate"] else 1 for r in rows)
    assert len(examples) == n_slots == len(ids) > table.num_rows
    text = _examples(labelled_slot_text(table, batch))
    assert len(text) == n_slots
    e = 0
    for i, r in enumerate(rows):
        own = batch.lines(i)
        slots = r["slate"] or [{"action_id": r["chosen_action_id"], "probability": r["propensity"]}]
        rewards = r["slot_rewards"] or [r["reward"]]
        left = list(r["action_ids"])
        for j, (slot, rew) in enumerate(zip(slots, rewards, strict=True), start=1):
            lines = text[e].split("\n")
            assert len(lines) == 1 + len(left)
            if j == 1:
                assert lines[0] == own[0]  # slot 1: the decision's own shared line
            else:
                assert lines[0] == own[0] + f" |z slot={j}"
            k = left.index(slot["action_id"])
            assert chosen[e] == k and prob[e] == slot["probability"] and reward[e] == rew
            label = re.match(r"^0:(\S+):(\S+) ", lines[1 + k])
            assert label is not None
            assert float(label.group(1)) == pytest.approx(-rew)
            assert float(label.group(2)) == pytest.approx(slot["probability"], rel=1e-6)
            assert sum(bool(re.match(r"^0:", ln)) for ln in lines[1:]) == 1
            left.remove(slot["action_id"])
            e += 1
        if i > 40:
            break


def test_vw_learns_every_slot(logs: tuple[Path, Path], tmp_path: Path) -> None:
    one = train(logs[0], RD, seed=3, work_dir=tmp_path / "a")
    three = train(logs[1], RD, seed=3, work_dir=tmp_path / "b")
    assert one.n_train == three.n_train  # the same decisions
    table = load_joined(logs[1], RD).table
    n_slots = sum(len(s) if s else 1 for s in table.column("slate").to_pylist())
    assert one.n_examples == one.n_train and three.n_examples == n_slots > three.n_train
    assert three.policy.model_bytes() != one.policy.model_bytes()
