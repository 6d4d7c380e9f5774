"""Run one policy in the simulated world and measure it from the logs it wrote.

Every figure comes from the event log the world writes (decisions joined to
their outcomes by :func:`nba.logs.join.load_joined`, the ground truth table),
read back after the run: the same path any analysis of real logs would take.

>>> r = run_policy("uniform", hcps=40, days=8, seed=2)
>>> r.n == len(r.day) == len(r.reward) == len(r.truth) and r.n > 0
True
>>> bool(((r.truth >= -1) & (r.truth <= 3)).all())
True
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from nba.domain import ENGAGEMENT_TYPES, ValidationError
from nba.logs import io as logio
from nba.logs.join import load_joined
from nba.reward import RewardDefinition
from simulators.hcp.config import WorldConfig
from simulators.hcp.learning import VWBatchPolicy
from simulators.hcp.policies import WORLD_POLICIES, BatchPolicy
from simulators.hcp.world import DEFAULT_START, World

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

DAY_US = 86_400_000_000


class ExperimentError(ValidationError):
    """The experiment was asked for something it cannot run; the message says what."""


#: a policy spec ending in this runs in a world whose reps act on visit-request
#: notifications (docs/triggers.md; docs/simulator.md, "Visit requests")
TRIGGERS_SUFFIX = "+triggers"


def split_triggers(spec: str) -> tuple[str, bool]:
    """The policy part of a spec and whether its reps act on notifications.

    >>> split_triggers("campaign+triggers"), split_triggers("vw:bag")
    (('campaign', True), ('vw:bag', False))
    """
    if spec.endswith(TRIGGERS_SUFFIX):
        return spec[: -len(TRIGGERS_SUFFIX)], True
    return spec, False


def check_policy_spec(spec: str) -> str:
    """Accept a world policy name or ``vw[:CONFIG]``, each optionally with
    ``+triggers``; refuse anything else.

    >>> check_policy_spec("vw:bag")
    'vw:bag'
    >>> check_policy_spec("campaign+triggers")
    'campaign+triggers'
    >>> check_policy_spec("random")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    experiments.push_vs_pull.measure.ExperimentError: unknown policy 'random'; ...
    """
    base = split_triggers(spec)[0] if isinstance(spec, str) else spec
    if base in WORLD_POLICIES:
        return spec
    if isinstance(base, str) and (base == "vw" or base.startswith("vw:")):
        from simulators.hcp.learning import load_vw_spec, split_release

        load_vw_spec(split_release(base)[0])  # raises LearningConfigError naming what is wrong
        return spec
    raise ExperimentError(
        f"unknown policy {spec!r}; expected one of {', '.join(WORLD_POLICIES)} or "
        f"vw[:CONFIG][@Nd], optionally with {TRIGGERS_SUFFIX}"
    )


@dataclass
class PolicyRun:
    """Per-decision measurements of one policy in one seeded world.

    Attributes
    ----------
    policy : str
    seed : int
    day : ndarray of int64, shape (n,)
        Simulated day of each decision (0-based).
    reward : ndarray of float64, shape (n,)
        Realized reward (outcomes inside the window, the world's definition).
    truth : ndarray of float64, shape (n,)
        Ground-truth expected reward of the chosen action at decision time.
    engaged : ndarray of bool, shape (n,)
        At least one engagement outcome (open, click, meeting, ...) in the window.
    unsubscribed : ndarray of bool, shape (n,)
        The decision led to an unsubscribe (at any time).
    summary : dict
        The world's :class:`~simulators.hcp.world.Summary` as a dict.
    learning : str
        How the policy learns ("" for fixed policies).
    seconds : float
        Wall-clock seconds of the simulation (without the measurement).
    value : ndarray of float64, shape (n,)
        Business value of the in-window outcomes (sample requests, Rx signals and
        engagement, weighed by the packaged ``value`` definition), before costs.
    cost : ndarray of float64, shape (n,)
        Contact cost of the chosen action's channel (same definition).
    """

    policy: str
    seed: int
    day: I64
    reward: F64
    truth: F64
    engaged: B
    unsubscribed: B
    summary: dict[str, Any] = field(default_factory=dict)
    learning: str = ""
    seconds: float = 0.0
    value: F64 = field(default_factory=lambda: np.zeros(0))
    cost: F64 = field(default_factory=lambda: np.zeros(0))

    @property
    def n(self) -> int:
        return int(self.day.shape[0])


def build_policy(spec: str, world: World, seed: int) -> str | BatchPolicy:
    """The policy object (or world policy name) for ``spec`` in ``world``."""
    check_policy_spec(spec)
    if spec in WORLD_POLICIES:
        return spec
    return VWBatchPolicy.from_spec(spec, catalog=world.catalog, seed=seed)


def run_policy(
    spec: str,
    hcps: int,
    days: int,
    seed: int,
    start: date = DEFAULT_START,
    work_dir: str | Path | None = None,
    keep_logs: bool = False,
    visit_request_rate: float = 0.0,
) -> PolicyRun:
    """Simulate ``spec`` for ``days`` days in the world seeded ``seed`` and measure it.

    The world (population, requesters, outcome draws) depends only on ``hcps``,
    ``seed`` and ``start``, so every policy faces the same population; the
    policy's own generator (and VW's seed) is derived from ``seed`` too.

    Parameters
    ----------
    spec : str
        ``uniform``, ``campaign``, ``segment``, ``oracle`` or ``vw[:CONFIG]``.
    hcps, days, seed : int
    start : date
    work_dir : path, optional
        Where the logs are written (a temporary directory by default).
    keep_logs : bool
        Keep the logs in ``work_dir`` (otherwise they are deleted after measuring).
    visit_request_rate : float
        ``WorldConfig.visit_request_rate`` of the world (0: no visit requests, the
        world as before); a ``+triggers`` spec needs it above 0.
    """
    check_policy_spec(spec)
    base_spec, triggers = split_triggers(spec)
    if triggers and not visit_request_rate > 0:
        raise ExperimentError(
            f"{spec}: reps acting on notifications need visit requests (visit_request_rate > 0)"
        )
    tmp = None
    if work_dir is None:
        tmp = tempfile.mkdtemp(prefix="push-vs-pull-")
        base = Path(tmp)
    else:
        base = Path(work_dir)
    out = base / f"{spec.replace(':', '_').replace('/', '_')}-seed{seed}"
    try:
        config = WorldConfig(visit_request_rate=visit_request_rate) if visit_request_rate else None
        world = World(hcps, seed=seed, start=start, config=config, triggers=triggers)
        pol = build_policy(base_spec, world, seed)
        t0 = time.perf_counter()
        summary = world.run(days, policy=pol, out=out)
        seconds = time.perf_counter() - t0
        learning = pol.describe() if isinstance(pol, VWBatchPolicy) else ""
        if isinstance(pol, VWBatchPolicy):
            pol.close()
        measured = measure_logs(out, world)
        return PolicyRun(
            policy=spec,
            seed=seed,
            summary=summary.to_dict(),
            learning=learning,
            seconds=seconds,
            **measured,
        )
    finally:
        if not keep_logs:
            shutil.rmtree(out, ignore_errors=True)
        if tmp is not None and not keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)


def measure_logs(out: Path, world: World) -> dict[str, Any]:
    """Per-decision day, realized reward, chosen ground truth, engagement and
    unsubscribe flags, business value and cost from a log directory written by
    ``world``."""
    rd = world.reward_definition
    vd = RewardDefinition.business_value()
    net = load_joined(out, vd).table.select(["event_id", "chosen_action_id", "reward"])
    net = net.sort_by("event_id")
    joined = load_joined(out, rd).table.select(["event_id", "ts", "chosen_index", "reward"])
    joined = joined.sort_by("event_id")
    gt = logio.read(out, "ground_truth", columns=["event_id", "expected_rewards"])
    gt = gt.sort_by("event_id")
    if (
        gt.num_rows != joined.num_rows
        or not pc.all(pc.equal(gt.column("event_id"), joined.column("event_id"))).as_py()
    ):
        raise ExperimentError(f"{out}: ground truth and decisions do not line up")
    lists = gt.column("expected_rewards").combine_chunks()
    offsets = np.asarray(lists.offsets, dtype=np.int64)
    values = np.asarray(lists.values, dtype=np.float64)
    chosen = np.asarray(joined.column("chosen_index"), dtype=np.int64)
    truth = values[offsets[:-1] + chosen]
    start = world.start
    start_us = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()) * 10**6
    ts_us = np.asarray(joined.column("ts").cast(pa.int64()), dtype=np.int64)
    day = (ts_us - start_us) // DAY_US
    # engagement and unsubscribes from the raw outcomes
    oc = logio.read(out, "outcomes", columns=["event_id", "ts", "type"])
    ids = joined.column("event_id").combine_chunks()
    pos = np.asarray(pc.index_in(oc.column("event_id"), value_set=ids).fill_null(-1))
    known = pos >= 0
    o_ts = np.asarray(oc.column("ts").cast(pa.int64()), dtype=np.int64)
    types = oc.column("type")
    is_eng = np.asarray(pc.is_in(types, value_set=pa.array(sorted(ENGAGEMENT_TYPES))))
    is_unsub = np.asarray(pc.equal(types, "unsubscribed").fill_null(False))
    window_us = round(float(rd.window_days) * DAY_US)
    in_window = np.zeros(len(pos), dtype=bool)
    in_window[known] = o_ts[known] <= ts_us[pos[known]] + window_us
    n = joined.num_rows
    engaged = np.zeros(n, dtype=bool)
    engaged[pos[known & is_eng & in_window]] = True
    unsub = np.zeros(n, dtype=bool)
    unsub[pos[known & is_unsub]] = True
    if not pc.all(pc.equal(net.column("event_id"), joined.column("event_id"))).as_py():
        raise ExperimentError(f"{out}: value and engagement joins do not line up")
    cost = np.array([vd.cost_of(a) for a in net.column("chosen_action_id").to_pylist()])
    value = np.asarray(net.column("reward"), dtype=np.float64) + cost
    order = np.argsort(ts_us, kind="stable")
    return {
        "value": value[order],
        "cost": cost[order],
        "day": day[order].astype(np.int64),
        "reward": np.asarray(joined.column("reward"), dtype=np.float64)[order],
        "truth": truth[order],
        "engaged": engaged[order],
        "unsubscribed": unsub[order],
    }
