"""nba evaluate on a log with lists adds per-slot and whole-list estimates; a log
without lists evaluates exactly as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nba.reward import RewardDefinition
from simulators.hcp.world import simulate
from training.evaluate import SLATE_COLUMNS, evaluate

RD = RewardDefinition.default()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eval-slates")
    simulate(400, 20, policy="uniform", seed=6, out=root / "k1")
    simulate(400, 20, policy="uniform", seed=6, out=root / "k3", slate_size=3, slot_attention=0.7)
    return root / "k1", root / "k3"


def _run(logs_dir: Path):  # type: ignore[no-untyped-def]
    return evaluate(
        logs_dir,
        RD,
        ["uniform", "segment"],
        estimators=["ips"],
        intervals=["gaussian"],
        # 16 intervals (2 policies x 8 estimates) are checked at once: 0.1 % each keeps
        # the chance that any one misses the truth by bad luck under 2 %
        alpha=0.001,
    )


def test_lists_get_per_slot_and_list_estimates_with_truth(logs: tuple[Path, Path]) -> None:
    one, three = _run(logs[0]), _run(logs[1])
    # slot 1 is the same log: the single-slot table is unchanged
    assert [r["estimate"] for r in one.rows] == [r["estimate"] for r in three.rows]
    assert one.slate_rows == [] and "slates" not in one.to_dict()
    names = [r["estimate"] for r in three.slate_rows if r["policy"] == "uniform"]
    assert names == [
        *(f"slot{j}:{e}" for j in (1, 2, 3) for e in ("ips", "snips")),
        "list:ips",
        "list:pi",
    ]
    assert set(three.slate_rows[0]) == set(SLATE_COLUMNS)
    by = {(r["policy"], r["estimate"]): r for r in three.slate_rows}
    # slot 1 IPS is the ordinary IPS row of the same policy
    for pol in ("uniform", "segment"):
        assert by[(pol, "slot1:ips")]["value"] == pytest.approx(three.row(pol, "ips")["estimate"])
    # the logging policy itself: every weight is 1, so each slot's estimate is its mean
    assert by[("uniform", "list:ips")]["value"] == pytest.approx(
        sum(by[("uniform", f"slot{j}:ips")]["value"] for j in (1, 2, 3))
    )
    # every 99.9 % interval covers the simulator's true value (attention 0.7 per slot)
    for r in three.slate_rows:
        assert r["truth"] is not None and r["low"] <= r["truth"] <= r["high"], r
    t = [by[("uniform", f"slot{j}:ips")]["truth"] for j in (1, 2, 3)]
    assert t[0] > t[1] > t[2] > 0
    assert by[("uniform", "list:ips")]["truth"] == pytest.approx(sum(t))
    assert "Slates (per slot and whole list" in three.to_markdown()
    assert json.loads(json.dumps(three.to_dict()))["slates"][0]["policy"] == "uniform"
