"""The DuckDB reward join equals RewardDefinition.reward_of, and counts what it ignores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from nba.logs import io
from nba.logs.io import LogError
from nba.logs.join import JoinResult, join_rewards, load_joined
from nba.logs.schema import JOINED, PARTITION_KEY
from nba.reward import RewardDefinition

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # the factories' first decision
WEIGHTS = {"opened": 0.2, "clicked": 0.6, "meeting_held": 1.0, "unsubscribed": -1.0}


def rdef(**kw: Any) -> RewardDefinition:
    args: dict[str, Any] = {"name": "t", "version": "1", "weights": WEIGHTS}
    args.update(kw)
    return RewardDefinition(**args)


SUM = rdef()
MAX = rdef(aggregation="max")
CLIP = rdef(clip=(-0.5, 1.0), default_reward=0.05)

H = timedelta(hours=1)
D = timedelta(days=1)
US = timedelta(microseconds=1)

# (name, definition, outcomes as (offset from decision, type, source_id),
#  reward, n_outcomes, n_late, reward_is_default)
CASES = [
    ("no outcome gets the default", SUM, [], 0.0, 0, 0, True),
    ("no outcome gets the default, unclipped", CLIP, [], 0.05, 0, 0, True),
    ("one open", SUM, [(H, "opened", "s1")], 0.2, 1, 0, False),
    ("open and click sum", SUM, [(H, "opened", "s1"), (2 * H, "clicked", "s2")], 0.8, 2, 0, False),
    ("open and click max", MAX, [(H, "opened", "s1"), (2 * H, "clicked", "s2")], 0.6, 2, 0, False),
    (
        "duplicate counted once",
        SUM,
        [(H, "opened", "s1"), (3 * H, "opened", "s1")],
        0.2,
        1,
        0,
        False,
    ),
    (
        "same type, two sources: type once",
        SUM,
        [(H, "opened", "s1"), (2 * H, "opened", "s2")],
        0.2,
        2,
        0,
        False,
    ),
    ("late outcome ignored", SUM, [(15 * D, "clicked", "s1")], 0.0, 0, 1, True),
    ("exactly at the window end counts", SUM, [(14 * D, "clicked", "s1")], 0.6, 1, 0, False),
    ("one microsecond late", SUM, [(14 * D + US, "clicked", "s1")], 0.0, 0, 1, True),
    ("at the decision time counts", SUM, [(timedelta(0), "opened", "s1")], 0.2, 1, 0, False),
    ("early outcome ignored", SUM, [(-US, "opened", "s1")], 0.0, 0, 0, True),
    ("unweighted type: zero, not default", SUM, [(H, "delivered", "s1")], 0.0, 1, 0, False),
    ("unweighted type in max", MAX, [(H, "delivered", "s1")], 0.0, 1, 0, False),
    (
        "negative weight sum",
        SUM,
        [(H, "opened", "s1"), (D, "unsubscribed", "s2")],
        -0.8,
        2,
        0,
        False,
    ),
    (
        "negative weight max",
        MAX,
        [(H, "opened", "s1"), (D, "unsubscribed", "s2")],
        0.2,
        2,
        0,
        False,
    ),
    (
        "clip high",
        CLIP,
        [(H, "opened", "s1"), (H, "clicked", "s2"), (H, "meeting_held", "s3")],
        1.0,
        3,
        0,
        False,
    ),
    ("clip low", CLIP, [(H, "unsubscribed", "s1")], -0.5, 1, 0, False),
    (
        "in-window and late of one type",
        SUM,
        [(H, "clicked", "s1"), (20 * D, "clicked", "s2")],
        0.6,
        1,
        1,
        False,
    ),
]


@pytest.mark.parametrize(
    ("definition", "outs", "reward", "n_out", "n_late", "is_default"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_join_cases(
    make_decisions: Any,
    make_outcomes: Any,
    definition: RewardDefinition,
    outs: list[tuple[timedelta, str, str]],
    reward: float,
    n_out: int,
    n_late: int,
    is_default: bool,
) -> None:
    dec = make_decisions(1)
    eid, ts = dec.column("event_id")[0].as_py(), dec.column("ts")[0].as_py()
    o = make_outcomes([(eid, ts + off, typ, sid) for off, typ, sid in outs])
    res = join_rewards(dec, o, definition)
    row = res.table.to_pylist()[0]
    assert row["reward"] == reward
    assert (row["n_outcomes"], row["n_late_outcomes"], row["reward_is_default"]) == (
        n_out,
        n_late,
        is_default,
    )
    assert row["reward_definition"] == definition.id
    # the join's reward is exactly reward_of of the in-window types
    window = timedelta(days=definition.window_days)
    in_window = {typ for off, typ, _ in outs if timedelta(0) <= off <= window}
    assert row["reward"] == definition.reward_of(in_window)


def test_result_keeps_decision_columns_and_order(make_decisions: Any, make_outcomes: Any) -> None:
    dec = make_decisions(20, seed=3)
    res = join_rewards(dec, make_outcomes([]), SUM)
    assert res.table.schema == JOINED
    assert res.table.select(dec.column_names).equals(dec)
    assert res.counts.decisions == 20 and res.counts.default_decisions == 20


def test_counts_partition_the_outcomes(make_decisions: Any, make_outcomes: Any) -> None:
    dec = make_decisions(3)
    e = dec.column("event_id").to_pylist()
    ts = dec.column("ts").to_pylist()
    o = make_outcomes(
        [
            (e[0], ts[0] + H, "opened", "a"),
            (e[0], ts[0] + H, "opened", "a"),  # duplicate
            (e[0], ts[0] + H, "opened", "a"),  # duplicate
            (e[1], ts[1] + 30 * D, "clicked", "b"),  # late
            (e[1], ts[1] - H, "clicked", "c"),  # early
            ("nobody", ts[2], "clicked", "d"),  # unknown event id
            ("nobody", ts[2], "clicked", "d"),  # ... duplicated
            (e[2], ts[2] + D, "meeting_held", "e"),
        ]
    )
    c = join_rewards(dec, o, SUM).counts
    assert c.outcomes == 8
    assert c.duplicate_outcomes == 3
    assert c.late_outcomes == 1
    assert c.early_outcomes == 1
    assert c.unknown_event_outcomes == 1
    assert c.outcomes_used == 2
    assert c.default_decisions == 1
    assert c.outcomes == (
        c.outcomes_used
        + c.late_outcomes
        + c.early_outcomes
        + c.unknown_event_outcomes
        + c.duplicate_outcomes
        + c.unselected_outcomes
    )


def _python_join(
    dec: pa.Table, outcomes: list[tuple[str, datetime, str, str]], rd: RewardDefinition
) -> list[float]:
    """The reference: de-duplicate (keep earliest), window, then reward_of."""
    first: dict[tuple[str, str, str], datetime] = {}
    for eid, ts, typ, sid in outcomes:
        key = (eid, typ, sid)
        if key not in first or ts < first[key]:
            first[key] = ts
    by_event: dict[str, list[tuple[str, datetime]]] = {}
    for (eid, typ, _), ts in first.items():
        by_event.setdefault(eid, []).append((typ, ts))
    window = timedelta(days=rd.window_days)
    rewards = []
    for eid, dts, chosen in zip(
        dec.column("event_id").to_pylist(),
        dec.column("ts").to_pylist(),
        dec.column("chosen_action_id").to_pylist(),
        strict=True,
    ):
        inside = {typ for typ, ts in by_event.get(eid, []) if dts <= ts <= dts + window}
        rewards.append(rd.reward_of(inside, action_id=chosen))
    return rewards


@pytest.mark.parametrize(
    "definition",
    [
        SUM,
        MAX,
        CLIP,
        rdef(window_days=2.5, default_reward=-0.25),
        rdef(aggregation="max", clip=(0.0, 0.5), default_reward=0.1),
        rdef(weights={"opened": 0.137, "clicked": 0.5731, "registered": 0.3333}, window_days=7),
        rdef(
            weights={**WEIGHTS, "sample_requested": 60.0, "rx_signal": 400.0},
            costs={"email": 0.25, "rep_visit": 150.0},
            clip=(-10.0, 450.0),
        ),
        RewardDefinition.business_value(),
    ],
    ids=["sum", "max", "clip", "fractional-window", "max-clip", "odd-weights", "costs", "value"],
)
def test_sql_equals_reward_of_on_random_logs(
    make_decisions: Any, make_outcomes: Any, definition: RewardDefinition
) -> None:
    rng = np.random.default_rng(20260105)
    dec = make_decisions(300, step=timedelta(minutes=37), seed=11)
    ids = dec.column("event_id").to_pylist()
    tss = dec.column("ts").to_pylist()
    types = [*definition.weights, "delivered", "opened", "clicked"]
    costs_seen = {a.rpartition("@")[2] for a in dec.column("chosen_action_id").to_pylist()}
    if definition.costs:  # the test means something only if costed channels are chosen
        assert costs_seen & set(definition.costs)
    rows = []
    for _ in range(1500):
        i = int(rng.integers(0, len(ids) + 10))
        eid = ids[i] if i < len(ids) else f"orphan{i}"
        base = tss[i] if i < len(ids) else T0
        off = timedelta(hours=float(rng.uniform(-24, 24 * 20)))
        typ = str(rng.choice(types))
        sid = f"s{int(rng.integers(0, 3))}"
        rows.append((eid, base + off, typ, sid))
    # exact window boundaries and duplicates on purpose
    rows += [(ids[0], tss[0] + timedelta(days=definition.window_days), "clicked", "edge")]
    rows += rows[:200]
    res = join_rewards(dec, make_outcomes(rows), definition)
    expected = _python_join(dec, [(r[0], r[1], r[2], r[3]) for r in rows], definition)
    assert res.table.column("reward").to_pylist() == expected


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda t: t.drop_columns(["propensity"]), "missing column.*propensity"),
        (
            lambda t: pa.concat_tables([t, t.slice(0, 1)]),
            "column 'event_id': 'e00000' appears more than once",
        ),
    ],
    ids=["missing column", "duplicate event id"],
)
def test_bad_decisions_refused(
    make_decisions: Any, make_outcomes: Any, mutate: Any, match: str
) -> None:
    with pytest.raises(LogError, match=match):
        join_rewards(mutate(make_decisions(2)), make_outcomes([]), SUM)


def test_bad_outcomes_refused(make_decisions: Any, make_outcomes: Any) -> None:
    o = make_outcomes([("e00000", T0, "opened")]).drop_columns(["source_id"])
    with pytest.raises(LogError, match=r"outcomes: missing column.*source_id"):
        join_rewards(make_decisions(1), o, SUM)


# ------------------------------------------------------------- load_joined
@pytest.fixture
def log_dir(tmp_path: Path, make_decisions: Any, make_outcomes: Any) -> Path:
    """Decisions every 6 h over 4 days (16), outcomes 4 h and 20 days after each."""
    root = tmp_path / "logs"
    act = [i % 5 != 4 for i in range(16)]
    dec = make_decisions(16, step=timedelta(hours=6), activated=act)
    io.append(root, "decisions", dec)
    rows = []
    for eid, ts in zip(
        dec.column("event_id").to_pylist(), dec.column("ts").to_pylist(), strict=True
    ):
        rows.append((eid, ts + 4 * H, "opened", "a"))
        rows.append((eid, ts + 20 * D, "clicked", "b"))
    rows.append(("orphan", T0 + H, "clicked", "c"))
    io.append(root, "outcomes", make_outcomes(rows))
    return root


def test_load_joined_everything(log_dir: Path) -> None:
    res = load_joined(log_dir, SUM, activated_only=False)
    assert isinstance(res, JoinResult)
    c = res.counts
    assert (c.decisions, c.outcomes, c.outcomes_used, c.late_outcomes) == (16, 33, 16, 16)
    assert c.unknown_event_outcomes == 1 and c.unselected_outcomes == 0
    assert set(res.table.column("reward").to_pylist()) == {0.2}


def test_load_joined_activated_only(log_dir: Path) -> None:
    res = load_joined(log_dir, SUM)
    assert res.counts.decisions == 13
    assert all(res.table.column("activated").to_pylist())
    # outcomes of the 3 inactive decisions are set aside, not called unknown
    assert res.counts.unselected_outcomes == 6
    assert res.counts.unknown_event_outcomes == 1


def test_load_joined_date_range_reads_outcomes_after_until(log_dir: Path) -> None:
    day1 = T0.date() + timedelta(days=1)
    res = load_joined(log_dir, SUM, since=day1, until=day1, activated_only=False)
    ts = res.table.column("ts").to_pylist()
    assert len(ts) == 4 and all(t.date() == day1 for t in ts)
    # each decision's open is used; its click 20 days later is beyond the
    # read horizon (until + window) and not read at all
    assert res.counts.outcomes_used == 4
    assert res.table.column("reward").to_pylist() == [0.2] * 4
    # the open 4 h after the last decision of day1 falls on day2 and is still read
    assert (max(ts) + 4 * H).date() > day1
    # outcomes read of decisions on later days are set aside
    assert res.counts.unselected_outcomes > 0
    assert res.counts.unknown_event_outcomes == 0


def test_load_joined_outcome_read_errors_surface(log_dir: Path) -> None:
    # the outcomes are read in a thread beside the decisions: its error is raised
    # here as it was when they were read one after the other
    (log_dir / "outcomes" / f"{PARTITION_KEY}=not-a-day").mkdir()
    with pytest.raises(LogError, match=r"outcomes/.*=not-a-day: not a day directory"):
        load_joined(log_dir, SUM)
    # and, with a horizon given (none looked for among the outcomes), a decisions
    # error still comes first when both tables are broken
    (log_dir / "decisions" / f"{PARTITION_KEY}=not-a-day").mkdir()
    with pytest.raises(LogError, match=r"decisions/.*=not-a-day: not a day directory"):
        load_joined(log_dir, SUM, as_of=T0 + 365 * D)


def test_load_joined_not_a_log_dir(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="not a log directory"):
        load_joined(tmp_path / "nothing", SUM)


VALUED = rdef(weights={**WEIGHTS, "reward": 1.0}, value_types=frozenset({"reward"}))


@pytest.mark.parametrize(
    ("outs", "reward"),
    [
        ([(H, "reward", "r1", 0.5)], 0.5),
        ([(H, "reward", "r1", 0.5), (2 * H, "reward", "r2", 0.9)], 0.5),  # earliest counts
        ([(2 * H, "reward", "r2", 0.9), (H, "reward", "r1", -0.25)], -0.25),
        ([(H, "reward", "r1", 0.5), (H, "opened", "o1", 7.0)], 0.7),  # opened ignores value
        ([(20 * D, "reward", "r1", 0.5)], 0.0),  # late: default
        ([(H, "reward", "r1", 0.5), (H, "reward", "r1", 0.9)], 0.5),  # duplicate copy
    ],
)
def test_value_types_weigh_the_earliest_in_window_value(
    make_decisions: Any, make_outcomes: Any, outs: list[tuple[Any, ...]], reward: float
) -> None:
    dec = make_decisions(1)
    eid, ts = dec.column("event_id")[0].as_py(), dec.column("ts")[0].as_py()
    o = make_outcomes([(eid, ts + off, typ, sid, val) for off, typ, sid, val in outs])
    row = join_rewards(dec, o, VALUED).table.to_pylist()[0]
    assert row["reward"] == pytest.approx(reward, abs=1e-12)
    window = timedelta(days=VALUED.window_days)
    first: dict[str, float] = {}
    for off, typ, _, val in sorted(outs, key=lambda r: (r[0], r[2])):
        if timedelta(0) <= off <= window:
            first.setdefault(typ, val)
    assert row["reward"] == pytest.approx(VALUED.reward_of(first), abs=1e-12)


def test_value_type_without_weight_is_refused() -> None:
    with pytest.raises(ValueError, match=r"value_types.*'reward' has no weight"):
        rdef(value_types=frozenset({"reward"}))
