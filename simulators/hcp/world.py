"""The simulated world's day loop: requesters, eligibility, decisions, outcomes,
ground truth, and the event log it writes.

>>> s = simulate(hcps=60, days=5, policy="uniform", seed=1)
>>> s.decisions > 0 and s.decisions == simulate(hcps=60, days=5, policy="uniform", seed=1).decisions
True
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import multiprocessing as mp
import os
import pickle
import platform
import queue
import struct
import sys
import threading
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from nba.catalog import Catalog
from nba.contact import ContactPolicy
from nba.domain import ADOPTION_STAGES, ENGAGEMENT_TYPES, HCPProfile, ValidationError
from nba.ids import event_id_bytes
from nba.journeys import DECISION, JourneyEvent, JourneySet
from nba.logs import io as logio
from nba.logs.schema import (
    DECISIONS,
    GROUND_TRUTH,
    OUTCOMES,
    SUPPRESSION,
    TOUCH_KINDS,
    TOUCHES,
)
from nba.policies.base import PolicyError
from nba.reward import RewardDefinition
from simulators.hcp.config import SimulatorConfigError, WorldConfig
from simulators.hcp.history import (
    ContactState,
    ContextBuilder,
    HistoryTracker,
    add_counts,
    nonzero_2d,
)
from simulators.hcp.policies import (
    WORLD_POLICIES,
    BatchPolicy,
    CampaignBatch,
    DecisionBatch,
    LearnBatch,
    OracleBatch,
    SegmentBatch,
    UniformBatch,
    make_policy,
)
from simulators.hcp.population import Population
from simulators.hcp.pulls import EXTERNAL_KINDS, KIND_CODE, PULL_OF_OUTCOME, PullModel, Touches
from simulators.hcp.response import (
    BOTH,
    NEITHER,
    PRIMARY_ONLY,
    OutcomeProbabilities,
    ResponseModel,
    SampledOutcomes,
)
from simulators.hcp.slates import sample_slates, slot_attention

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

DEFAULT_START = date(2026, 1, 5)
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
#: how serving marks holdout decisions in ``model_version`` (serving.engine.HOLDOUT_PREFIX)
HOLDOUT_PREFIX = "holdout:"
#: the baseline holdout HCPs get by default (serving.lifecycle.BASELINE_POLICY)
HOLDOUT_BASELINE = "uniform"
#: what the holdout may get instead in the simulator (fixed policies that need no model)
HOLDOUT_POLICIES: tuple[str, ...] = ("uniform", "campaign", "segment")
#: policies known not to read ``DecisionBatch.contexts`` (exact types: a subclass may)
_CONTEXT_FREE = (UniformBatch, CampaignBatch, SegmentBatch, OracleBatch)


class SimulationError(ValidationError):
    """The simulation was asked for something impossible; the message says what."""


@dataclass(frozen=True)
class Requester:
    """A system that asks for decisions.

    Attributes
    ----------
    name : str
        Logged in ``decisions.requester``.
    channels : tuple of str
        Channels it requests (those missing from the catalog are dropped).
    weekdays_only : bool
    hour : float
        Start of its daily run (UTC hours); decisions spread over ``spread_hours``.
    spread_hours : float
    """

    name: str
    channels: tuple[str, ...]
    weekdays_only: bool
    hour: float
    spread_hours: float


#: in the order they run each day
REQUESTERS: tuple[Requester, ...] = (
    Requester("email_platform", ("email",), True, 6.0, 1.0),
    Requester("rep_app", ("rep_visit", "remote_call", "email"), True, 8.0, 9.0),
    Requester("digital", ("webinar", "portal"), False, 18.0, 5.0),
)

#: which system reports each channel's outcomes (``outcomes.source``)
OUTCOME_SOURCE = {
    "email": "email_platform",
    "rep_visit": "rep_app",
    "remote_call": "rep_app",
    "webinar": "webinar_platform",
    "portal": "portal",
}


@dataclass
class Summary:
    """What a simulation did, with rates per channel (see :meth:`format`)."""

    policy: str
    hcps: int
    days: int
    seed: int
    decisions: int
    skipped: int
    mean_eligible: float
    outcomes: int
    late_outcomes: int
    unsubscribes: int
    reward_mean: float
    expected_reward_mean: float
    reward_definition: str
    by_channel: dict[str, dict[str, float]] = field(default_factory=dict)
    by_requester: dict[str, int] = field(default_factory=dict)
    no_see_share: float = 0.0
    out: str | None = None
    rules: str | None = None
    suppressed_by_rule: dict[str, int] = field(default_factory=dict)
    skipped_by_rule: dict[str, int] = field(default_factory=dict)
    holdout_decisions: int = 0
    pulls_by_kind: dict[str, int] = field(default_factory=dict)
    #: visit requests drawn, answered by a rep visit or call while waiting, and
    #: whether the reps acted on notifications (None: the world drew no requests)
    visit_requests: dict[str, Any] | None = None
    #: the journeys' version and how many decisions each step governed (None: no journeys)
    journeys: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.rules is None:  # runs without contact rules report what they always did
            for k in ("rules", "suppressed_by_rule", "skipped_by_rule", "holdout_decisions"):
                del d[k]
        if self.visit_requests is None:  # likewise runs without visit requests
            del d["visit_requests"]
        if self.journeys is None:  # and runs without journeys
            del d["journeys"]
        return d

    def format(self) -> str:
        """Human-readable summary (what ``nba simulate`` prints)."""
        lines = [
            f"policy {self.policy}: {self.hcps} HCPs x {self.days} days, seed {self.seed}",
            f"decisions {self.decisions} (skipped, no eligible action: {self.skipped}); "
            f"mean eligible actions {self.mean_eligible:.1f}",
            "by requester: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_requester.items())),
            f"outcomes {self.outcomes} ({self.late_outcomes} after the reward window); "
            f"unsubscribes {self.unsubscribes}; no-see HCPs {100 * self.no_see_share:.0f}%",
            f"reward ({self.reward_definition}): mean {self.reward_mean:.4f} per decision; "
            f"ground-truth mean of chosen actions {self.expected_reward_mean:.4f}",
        ]
        for ch, stats in sorted(self.by_channel.items()):
            rates = ", ".join(f"{k} {100 * v:.2f}%" for k, v in stats.items() if k != "decisions")
            lines.append(f"  {ch:<12} {int(stats['decisions']):>8} decisions  {rates}")
        if self.pulls_by_kind:
            lines.append(
                "pull signals (touches the HCPs pulled): "
                + ", ".join(f"{k} {v}" for k, v in self.pulls_by_kind.items())
            )
        if self.rules is not None:
            lines.append(
                f"contact rules {self.rules}: {self.holdout_decisions} decisions for holdout "
                f"HCPs ({HOLDOUT_BASELINE} baseline); suppressed actions "
                + (", ".join(f"{k} {v}" for k, v in self.suppressed_by_rule.items()) or "none")
            )
            lines.append(
                "  skipped decisions by rule (a decision counts under every rule that removed "
                "one of its actions): "
                + (", ".join(f"{k} {v}" for k, v in self.skipped_by_rule.items()) or "none")
            )
        if self.visit_requests is not None:
            vr = self.visit_requests
            lines.append(
                f"visit requests {vr['requests']}, answered by a rep while waiting "
                f"{vr['served']} (reps act on notifications: {vr['triggers']})"
            )
        if self.journeys is not None:
            steps = self.journeys["decisions_by_step"]
            lines.append(
                f"journeys {self.journeys['version']}: decisions governed by a journey step "
                + (", ".join(f"{k} {v}" for k, v in steps.items()) or "none")
            )
        if self.out:
            lines.append(f"logs written to {self.out}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Executed:
    """Actions carried out by :meth:`World.execute`.

    Attributes
    ----------
    probs : OutcomeProbabilities
        Outcome probabilities of each action, shape (n,).
    sampled : SampledOutcomes
        The events drawn, shape (k,), ``entry`` indexing the actions.
    channel, item : ndarray of int64, shape (n,)
        Channel and content item index of each action.
    ts_us : ndarray of int64, shape (k,)
        When each event happens (action time + delay).
    day : ndarray of int64, shape (k,)
        Simulated day index of each event.
    pulls : Touches
        What the HCPs pulled in these actions (details in held visits and calls,
        email clicks, webinar questions), at the time of the outcome revealing it.
    """

    probs: OutcomeProbabilities
    sampled: SampledOutcomes
    channel: I64
    item: I64
    ts_us: I64
    day: I64
    pulls: Touches = field(default_factory=Touches.empty)


def _early_release_days(pol: Any) -> int | None:
    """A learner's ``release_after_days`` (None: learn only at window close)."""
    days = getattr(pol, "release_after_days", None)
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise SimulationError(
            f"{getattr(pol, 'name', pol)!s}: release_after_days must be an integer >= 1, "
            f"got {days!r}"
        )
    if not callable(getattr(pol, "learn_early", None)):
        raise SimulationError(
            f"{getattr(pol, 'name', pol)!s}: release_after_days is set but it has no learn_early"
        )
    return days


@dataclass
class _Pending:
    """Decisions waiting for their reward window to close (closed-loop learning)."""

    day: int
    batch: LearnBatch


class _Buffer:
    """Columns of one log table accumulated between flushes."""

    def __init__(self) -> None:
        self.parts: dict[str, list[Any]] = defaultdict(list)

    def add(self, **cols: Any) -> None:
        for k, v in cols.items():
            self.parts[k].append(v)

    def take(self) -> dict[str, list[Any]]:
        out = dict(self.parts)
        self.parts = defaultdict(list)
        return out

    def __len__(self) -> int:
        first = next(iter(self.parts.values()), [])
        return len(first)


class _PartWriter:
    """Writes log parts (:func:`nba.logs.io.append`) on a thread of its own, in the
    order they are given, while the day loop goes on.

    Parquet encoding and compression run in Arrow's C++ code without the GIL, so
    on a second core they overlap the next days' simulation. Parts are appended
    one at a time in submission order, so the files (names, sequence numbers,
    contents) are those of writing them inline. At most ``depth`` tables wait, to
    bound memory. The first error is raised again by the next :meth:`append` or
    by :meth:`close`; nothing is written after it.
    """

    def __init__(self, depth: int = 2) -> None:
        self._jobs: queue.Queue[tuple[Path, str, pa.Table] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="sim-log-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._error is not None:
                continue  # drain: nothing is written after a failure
            try:
                logio.append(*job, fsync=False)
            except BaseException as exc:  # raised again in the simulating thread
                self._error = exc

    def append(self, out: Path, name: str, table: pa.Table) -> None:
        """Queue ``table`` for log table ``name`` under ``out``."""
        self._raise()
        self._jobs.put((out, name, table))

    def close(self, raise_error: bool = True) -> None:
        """Wait until every queued part is written; raise the first error if any
        (unless ``raise_error`` is false: closing after another error)."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        if raise_error:
            self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


#: every end of a :class:`_JobPipe` that the simulating process holds: a forked
#: writer closes those it inherited, but for its own pipe's read end
_PIPE_ENDS: set[int] = set()
_HEAD = struct.Struct("<QQ")


def _write_all(fd: int, data: memoryview) -> None:
    """Write all of ``data`` (bytes, format "B") to ``fd``; ``os.write`` releases
    the GIL while the pipe is full."""
    while data:
        data = data[os.write(fd, data) :]


def _read_exact(fd: int, n: int) -> bytearray | None:
    """``n`` bytes read from ``fd`` into a buffer of their own; None at the end of
    the pipe before the first byte."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            if got == 0:
                return None
            raise EOFError(f"job pipe: {got} of {n} bytes, then the end of the pipe")
        got += k
    return buf


class _JobPipe:
    """Jobs to a forked process over an OS pipe, with NumPy arrays sent out of band.

    A job is pickled with protocol 5: its arrays' buffers are left out of the
    pickle's bytes and each is written to the pipe from its own memory, then read
    into a buffer of its own that the unpickled array keeps, so no array is copied
    into or out of a pickle (``multiprocessing.Queue`` copies each twice on each
    side). A feeder thread writes them; ``os.write`` releases the GIL while the
    reader has not caught up. At most ``depth`` jobs wait for the feeder. The
    pipe is made before the fork: :meth:`parent_started` and
    :meth:`child_started` close the ends each side does not use.
    """

    def __init__(self, depth: int) -> None:
        self._r, self._w = os.pipe()
        _PIPE_ENDS.update((self._r, self._w))
        try:  # fewer wake-ups for the large jobs (Linux; the default is 64 kB)
            import fcntl

            fcntl.fcntl(self._w, fcntl.F_SETPIPE_SZ, 1 << 20)
        except (ImportError, AttributeError, OSError):  # pragma: no cover - not Linux
            pass
        self._pending: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._thread: threading.Thread | None = None
        self._closed = False

    def parent_started(self) -> None:
        """In the simulating process, once the reader is forked."""
        os.close(self._r)
        _PIPE_ENDS.discard(self._r)

    def child_started(self) -> None:
        """In the forked reader: close every inherited pipe end but our read end
        (so that a writer whose reader ended gets an error, not a wait)."""
        for fd in _PIPE_ENDS - {self._r}:
            os.close(fd)
        _PIPE_ENDS.clear()

    def put(self, job: Any, timeout: float) -> None:
        """Queue ``job`` (None: the last); :class:`queue.Full` after ``timeout`` s."""
        if self._thread is None:
            # started on the first job, after every fork of the run
            self._thread = threading.Thread(target=self._feed, name="sim-job-pipe", daemon=True)
            self._thread.start()
        self._pending.put(job, timeout=timeout)

    def _feed(self) -> None:
        broken = False
        while True:
            job = self._pending.get()
            if not broken:
                try:
                    buffers: list[pickle.PickleBuffer] = []
                    meta = pickle.dumps(job, protocol=5, buffer_callback=buffers.append)
                    raws = [b.raw() for b in buffers]
                    sizes = struct.pack(f"<{len(raws)}Q", *(r.nbytes for r in raws))
                    _write_all(self._w, memoryview(_HEAD.pack(len(meta), len(raws)) + sizes))
                    _write_all(self._w, memoryview(meta))
                    for raw in raws:
                        _write_all(self._w, raw)
                except OSError:  # the reader is gone: its exit is reported apart
                    broken = True
            if job is None:
                return

    def get(self) -> Any:
        """The next job, in the reader (None once the writer sent the last, or
        ended)."""
        head = _read_exact(self._r, _HEAD.size)
        if head is None:
            return None
        meta_len, n = _HEAD.unpack(head)
        sizes = struct.unpack(f"<{n}Q", _read_exact(self._r, 8 * n) or b"")
        meta = _read_exact(self._r, meta_len)
        buffers = [_read_exact(self._r, size) if size else bytearray() for size in sizes]
        return pickle.loads(meta or b"", buffers=buffers)

    def close(self) -> None:
        """In the simulating process: send the last job (if the feeder runs) and
        wait until it is written (or the reader is gone), then close the pipe."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._pending.put(None)
            self._thread.join()
        os.close(self._w)
        _PIPE_ENDS.discard(self._w)


class _ForkedWriter:
    """Writes log parts in a process of its own (forked from the simulating one),
    while the day loop goes on: the base of :class:`_DecisionsProcess` and
    :class:`_TablesProcess`, which say what a job is (:meth:`_write`).

    Jobs pass through a :class:`_JobPipe` of depth ``depth`` (its feeder thread
    writes them) and are written one at a time in the order given, so the part
    files are those of writing inline. The first error is sent back at once,
    raised again by the next :meth:`_submit` or by :meth:`close`; nothing is
    written after it. If the process dies without a word, the run stops with
    "the <what> process stopped (exit code N)".
    """

    #: named in the error when the process dies without a word
    what = "log writer"

    def __init__(self, world: World, depth: int = 2) -> None:
        ctx = mp.get_context("fork")
        self._jobs = _JobPipe(depth)
        self._results, self._send_result = ctx.Pipe(duplex=False)
        self._error: BaseException | None = None
        self._closed = False
        self._proc = ctx.Process(
            target=self._work,
            args=(world,),
            name=f"sim-{self.what.replace(' ', '-')}",
            daemon=True,
        )
        try:
            self._proc.start()
        finally:
            self._jobs.parent_started()

    def _start(self, world: World) -> Any:
        """State the process keeps across jobs (made once, in the process)."""
        return None

    def _write(self, world: World, state: Any, job: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def _work(self, world: World) -> None:
        self._jobs.child_started()
        failed = False
        state = self._start(world)
        while (job := self._jobs.get()) is not None:
            if failed:
                continue  # drain: nothing is written after a failure
            try:
                self._write(world, state, job)
            except BaseException as exc:
                failed = True
                self._send_result.send(_picklable(exc))
        self._send_result.send(None)  # done

    def _submit(self, job: Any) -> None:
        """Queue ``job`` (raising the process's first error, if any, first)."""
        if self._error is None and not self._proc.is_alive():
            self._error = self._receive(wait=True)  # its error, or that it died
        self._raise()
        self._put(job)

    def _put(self, job: Any) -> None:
        while True:
            try:
                self._jobs.put(job, 0.2)
                return
            except queue.Full:
                if not self._proc.is_alive():
                    self._error = self._error or self._receive(wait=True)
                    self._raise()

    def close(self, raise_error: bool = True) -> None:
        """Wait until every queued part is written (or the process stopped); raise
        its first error if any (unless ``raise_error`` is false)."""
        if not self._closed:
            self._closed = True
            if raise_error:
                self._put(None)
                while True:
                    msg = self._receive(wait=True)
                    if msg is None:
                        break
                    self._error = self._error or msg
                    if isinstance(msg, _WriterDied):
                        break
                self._proc.join()
                self._jobs.close()
            else:  # closing after another error: stop writing now
                self._proc.terminate()
                self._proc.join()
                self._jobs.close()  # the reader is gone: the feeder stops at once
        if raise_error:
            self._raise()

    def _receive(self, wait: bool) -> BaseException | None:
        """The next message of the process: an error, or None once it is done (or,
        with ``wait`` false, when nothing has come)."""
        while True:
            if self._results.poll(0.2 if wait else 0):
                msg: BaseException | None = self._results.recv()
                return msg
            if not wait:
                return None
            if not self._proc.is_alive() and not self._results.poll(0):
                return _WriterDied(
                    f"the {self.what} process stopped (exit code {self._proc.exitcode})"
                )

    def _raise(self) -> None:
        if self._error is None and not self._closed:
            self._error = self._receive(wait=False)
        if self._error is not None:
            raise self._error


class _DecisionsProcess(_ForkedWriter):
    """Renders the contexts' JSON, builds the ``decisions`` table and appends its
    parts in a process of its own (:class:`_ForkedWriter`).

    The day loop gathers each decision's context numbers
    (:meth:`ContextBuilder.gather`, on the decision day) and sends, with each
    batch, the profiles' JSON that changed since the previous batch; this process
    keeps every HCP's profile JSON (its forked copy, updated by those changes, in
    order), renders the contexts (:meth:`ContextBuilder.render_column`) into the
    same strings the loop would have written, builds the table with the forked
    copy of the world (the catalog, HCP ids and rules do not change during a run)
    and appends it. Only the ``decisions`` parts are written here; the other
    tables go to :class:`_TablesProcess`. Used only when no policy reads the
    contexts (the named policies, with no learning) and logs are written.
    """

    what = "decisions writer"

    def _start(self, world: World) -> npt.NDArray[np.object_]:
        # every HCP's profile JSON as the run started (forked), kept up to date with
        # the changes each batch brings (sent, instead of each decision's profile)
        return world.profile_json.copy()

    def _write(self, world: World, profiles: npt.NDArray[np.object_], job: Any) -> None:
        out, dec = job
        # straight to Arrow: no Python string per decision in this process
        dec["context"] = [
            world.builder.render_column(
                day, _profiles(world.population, profiles, changes, hcp), history, req
            )
            for day, hcp, changes, history, req in dec.pop("context_in")
        ]
        logio.append(out, "decisions", world._decisions_table(dec), fsync=False)

    def append(self, out: Path, dec: dict[str, list[Any]]) -> None:
        """Queue the day loop's buffered decision columns ``dec`` (with
        ``context_in`` in place of ``context``) for the log under ``out``."""
        self._submit((out, dec))


class _TablesProcess(_ForkedWriter):
    """Builds the ``outcomes``, ``touches`` and ``ground_truth`` tables from the
    day loop's arrays (:meth:`World._log_table`) and appends their parts in a
    process of its own (:class:`_ForkedWriter`), beside :class:`_DecisionsProcess`,
    so that the simulating process keeps only the day loop: its Parquet encoding
    no longer shares that process with it. Each table has its own directory, so
    the part files are those of writing inline."""

    what = "log tables writer"

    def _write(self, world: World, state: None, job: Any) -> None:
        out, name, payload = job
        logio.append(out, name, world._log_table(name, payload), fsync=False)

    def append(self, out: Path, name: str, payload: Any) -> None:
        """Queue the arrays ``payload`` of log table ``name`` (what
        :meth:`World._log_table` takes) for the log under ``out``."""
        self._submit((out, name, payload))


#: the profiles that changed on a day: HCP indices (shape (k,)), their adoption
#: stages (shape (k,)) and consents (shape (k, n_channels)), the only profile
#: fields a run changes
_ProfileChange = tuple[I64, npt.NDArray[np.integer[Any]], npt.NDArray[np.bool_]]


def _profiles(
    pop: Population,
    profiles: npt.NDArray[np.object_],
    changes: list[_ProfileChange],
    hcp: I64,
) -> npt.NDArray[np.object_]:
    """Apply ``changes`` (in the order made) to ``pop`` (the decisions process's
    forked population) and write the changed HCPs' JSON into ``profiles`` (shape
    (n_hcps,), in place), then take the profiles of ``hcp`` (shape (b,))."""
    for idx, stage, consent in changes:
        pop.stage[idx] = stage
        pop.consent[idx] = consent
        profiles[idx] = np.array(pop.profile_json(idx), dtype=object)
    return profiles[hcp]


class _WriterDied(RuntimeError):
    """The decisions writer process ended without saying why."""


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


_US_PER_DAY = 86_400 * 1_000_000


def _iso_us(ts_us: int) -> str:
    """ISO 8601 (UTC, microseconds) of an integer microsecond timestamp."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ts_us)).isoformat()


def _id_column(ids: npt.NDArray[np.bytes_]) -> pa.Array:
    """Event ids (ASCII bytes of one width, shape (n,)) as an Arrow string column
    made from their buffer (no Python string per id)."""
    n, width = ids.shape[0], ids.dtype.itemsize
    if n == 0 or ids.dtype.kind != "S":
        return pa.array(ids.astype(str), pa.string())
    data = np.ascontiguousarray(ids).view(np.uint8)
    if not data.max() < 128:  # pragma: no cover - ids are base32
        raise ValueError("event ids: not ASCII")
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(width)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _strings(values: Sequence[str], index: npt.NDArray[np.integer[Any]]) -> pa.Array:
    """A string column of ``values[index]`` (``index`` shape (n,)), taken from an
    Arrow array of the few distinct ``values``: no Python string per row."""
    return pa.array(values, pa.string()).take(pa.array(index))


def _context_column(parts: list[Any]) -> pa.Array:
    """The ``context`` column from each batch's contexts: Arrow string arrays
    (:meth:`ContextBuilder.render_column`, the decisions process) or object
    arrays of str (rendered in the day loop), shape (b,) each."""
    if parts and all(isinstance(p, pa.Array) for p in parts):
        return pa.concat_arrays(parts)
    return pa.array(np.concatenate(parts), pa.string())


def _list_array(offsets: I64, values: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32), pa.int32()), values)


class World:
    """A seeded simulated HCP world.

    Parameters
    ----------
    hcps : int
        Population size.
    catalog : Catalog, optional
        Default: the shipped catalog.
    config : WorldConfig, optional
    reward_definition : RewardDefinition, optional
        Default: the shipped definition. Ground truth uses it.
    seed : int
    start : date
        First simulated day.
    rules : ContactPolicy, optional
        Contact rules applied to every decision (as serving applies them): removed
        actions are logged in ``suppressed``, policies see only what is left,
        decisions with nothing left are skipped, and HCPs in the rules' holdout get
        the ``holdout_policy`` (``model_version`` ``holdout:baseline:<name>``).
        Default: none (the world's own eligibility only).
    slate_size : int
        Suggestions shown per decision (``k``); slots 2..k are drawn without
        replacement and logged in ``slate`` (:mod:`simulators.hcp.slates`).
    slot_attention : float
        The HCP looks at slot ``j`` with probability ``slot_attention ** (j - 1)``.
    holdout_policy : {"uniform", "campaign", "segment"}
        What holdout HCPs get: what the company would do without nba (default
        ``uniform``, as serving's default).
    triggers : bool
        The reps act on visit-request notifications (docs/triggers.md): an HCP whose
        visit request waits is put first in the rep app's daily list, within the
        reps' capacity (docs/simulator.md, "Visit requests"). Needs
        ``config.visit_request_rate > 0`` to matter.
    journeys : JourneySet, optional
        Journeys applied after the contact rules, by the same function the service
        applies (:meth:`nba.journeys.JourneySet.states` and ``gate``) over the same
        history (each HCP's executed decisions and the outcomes on them): a due
        step keeps only what it allows and the decision logs it in ``journey``.
        Needs ``rules``. Default: none (no draw or output changes).
    """

    def __init__(
        self,
        hcps: int,
        catalog: Catalog | None = None,
        config: WorldConfig | None = None,
        reward_definition: RewardDefinition | None = None,
        seed: int = 0,
        start: date = DEFAULT_START,
        rules: ContactPolicy | None = None,
        slate_size: int = 1,
        slot_attention: float = 0.5,
        holdout_policy: str = HOLDOUT_BASELINE,
        triggers: bool = False,
        journeys: JourneySet | None = None,
    ) -> None:
        if journeys is not None and not isinstance(journeys, JourneySet):
            raise SimulationError(f"journeys must be a JourneySet, got {type(journeys).__name__}")
        if journeys and rules is None:
            raise SimulationError(
                "journeys apply after the contact rules, as in the service: give rules too "
                "(nba simulate --rules default --journeys FILE)"
            )
        self.journeys = journeys if journeys else None
        #: each HCP's journey history (decisions and outcomes), only with journeys
        self._jevents: dict[int, list[JourneyEvent]] = defaultdict(list)
        self._journey_counts: dict[str, int] = {}
        if holdout_policy not in HOLDOUT_POLICIES:
            raise SimulationError(
                f"holdout_policy: {holdout_policy!r} is not one of {', '.join(HOLDOUT_POLICIES)}"
            )
        self.holdout_policy = holdout_policy
        if isinstance(hcps, bool) or not isinstance(hcps, int) or hcps < 1:
            raise SimulationError(f"hcps must be a positive integer, got {hcps!r}")
        if isinstance(slate_size, bool) or not isinstance(slate_size, int) or slate_size < 1:
            raise SimulationError(f"slate_size must be an integer >= 1, got {slate_size!r}")
        if not (
            isinstance(slot_attention, int | float)
            and not isinstance(slot_attention, bool)
            and 0.0 < slot_attention <= 1.0
        ):
            raise SimulationError(f"slot_attention must be in (0, 1], got {slot_attention!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SimulationError(f"seed must be a non-negative integer, got {seed!r}")
        if rules is not None and not isinstance(rules, ContactPolicy):
            raise SimulationError(f"rules must be a ContactPolicy, got {type(rules).__name__}")
        self.rules = rules
        self.slate_size = slate_size
        self.slot_attention = float(slot_attention)
        # slots 2..k draw from their own child of the seed (the eighth), so a world with
        # k > 1 makes exactly the draws of the same world with k = 1, plus its own
        self.rng_slates = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
        self.catalog = catalog or Catalog.default()
        self.config = config or WorldConfig()
        self.reward_definition = reward_definition or RewardDefinition.default()
        self.seed = seed
        self.start = start
        seeds = np.random.SeedSequence(seed).spawn(5)
        self._policy_seed = seeds[4]
        self.population = Population.generate(hcps, self.catalog, seeds[0], self.config)
        self._market_names = np.asarray(self.population.markets, dtype=object)
        self.response = ResponseModel(self.catalog, self.config, self.reward_definition)
        self.rng_requests = np.random.default_rng(seeds[1])
        self.rng_outcomes = np.random.default_rng(seeds[2])
        self.rng_ids = np.random.default_rng(seeds[3])
        # pull signals draw from their own child of the seed (the seventh; the sixth is
        # the holdout baseline's), so the outcome, request and id draws above are unchanged
        self.rng_pulls = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(6,)))
        # business value events (sample requests, Rx signals) from the eighth child, so
        # every draw above is the same with or without them
        self.rng_value = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
        self.pulls = PullModel(self.catalog, self.config, self.population)
        cat = self.catalog
        self.channels = cat.channels
        self.chan_pos = {c: i for i, c in enumerate(self.channels)}
        self.history = HistoryTracker(
            hcps,
            len(self.channels),
            len(cat.topics),
            self.config.max_delay_days + 1,
            n_items=len(cat.items),
        )
        self.builder = ContextBuilder(self.channels, cat.topics, [it.id for it in cat.items])
        self.profile_json = np.array(self.population.profile_json(np.arange(hcps)), dtype=object)
        self.initial_population = self.population.to_table()
        n, c = hcps, len(self.channels)
        self.last_sent = np.full((n, c), -(10**6), dtype=np.int64)
        self.last_rep_request = np.full(n, -(10**6), dtype=np.int64)
        self._effects: dict[int, list[tuple[I64, I64, npt.NDArray[np.bool_], int]]] = defaultdict(
            list
        )
        self._unsubs: dict[int, list[I64]] = defaultdict(list)
        self._decay = np.array(
            [0.5 ** (1.0 / self.config.fatigue_halflife.get(ch, 7.0)) for ch in self.channels]
        )
        self._action_ids = pa.array(cat.action_ids, pa.string())
        # string columns are taken from these by index: no Python str per row
        self._hcp_ids = pa.array(self.population.hcp_ids, pa.string())
        self._channel_names = pa.array(self.channels, pa.string())
        self._action_channel = cat.action_channel_index.astype(np.int64)
        self._action_topic = cat.action_topic_index.astype(np.int64)
        self._action_item = cat.action_item_index.astype(np.int64)
        self._is_rep_visit = np.array([a.channel == "rep_visit" for a in cat.actions])
        types = self.response.outcome_types
        self._engagement_code = np.array([t in ENGAGEMENT_TYPES for t in types])
        self._knowledge_code = self._engagement_code | np.array([t == "registered" for t in types])
        self._unsub_code = np.array([t == "unsubscribed" for t in types])
        self._pull_kind_code = np.array(
            [KIND_CODE[PULL_OF_OUTCOME[t]] if t in PULL_OF_OUTCOME else -1 for t in types]
        )
        # knowledge gains of pulls waiting for their day: (effective day, hcp * n_topics + topic)
        self._pull_queue: list[tuple[I64, I64]] = []
        self._pull_counts = np.zeros(len(TOUCH_KINDS), dtype=np.int64)
        self._type_names = pa.array(list(types), pa.string())
        self._requesters = [
            (r, tuple(ch for ch in r.channels if ch in self.chan_pos)) for r in REQUESTERS
        ]
        self._day_index = 0
        markets = self.population.markets
        self._approval_start = np.zeros((len(markets), len(cat.actions)), dtype=np.int64)
        self._approval_expiry = np.zeros((len(markets), len(cat.actions)), dtype=np.int64)
        for mi, market in enumerate(markets):
            for j, a in enumerate(cat.actions):
                for ap in cat.by_id[a.content_id].approvals:
                    if ap.market == market:
                        self._approval_start[mi, j] = ap.start.toordinal()
                        self._approval_expiry[mi, j] = ap.expiry.toordinal()
        # visit requests (off at rate 0: no draws, no state): the eighth child of the
        # seed, so every other stream is unchanged
        self.triggers = bool(triggers)
        self._request_day = np.full(n, -1, dtype=np.int64)
        self._request_until = np.full(n, -1, dtype=np.int64)
        self._rep_chans = np.array(
            [self.chan_pos[ch] for ch in ("rep_visit", "remote_call") if ch in self.chan_pos],
            dtype=np.int64,
        )
        self.visit_requests = 0
        self.visit_requests_served = 0
        self.rng_events: np.random.Generator | None = None
        if self.config.visit_request_rate > 0:
            self.rng_events = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
            self.population.channel_boost = np.zeros((n, c))
        self._contact: ContactState | None = None
        if rules is not None:
            depth = max((cap.max for cap in rules.frequency_caps), default=1)
            self._contact = ContactState(n, c, len(cat.items), depth)
            # journey suppressions after the rules' own: the rules' indices stay valid
            self._rule_names = np.array(self._rule_names_t, dtype=object)
            self._holdout = rules.holdout_mask(self.population.hcp_ids.tolist())
            # the sixth child of the world's seed: the five above are unchanged
            self._holdout_pol = make_policy(
                holdout_policy, cat, np.random.SeedSequence(seed, spawn_key=(5,))
            )

    def approved_on(self, day: date) -> npt.NDArray[np.bool_]:
        """Same as ``catalog.approval_matrix(population.markets, day)``, vectorized,
        shape (n_markets, n_actions)."""
        o = day.toordinal()
        return (self._approval_start <= o) & (o < self._approval_expiry)

    # ------------------------------------------------------------- requesters
    def due(self, requester: Requester, day: int, weekday: int) -> I64:
        """HCPs the requester asks a decision for today, ascending."""
        pop, cfg, rng = self.population, self.config, self.rng_requests
        n = pop.n
        if requester.weekdays_only and weekday >= 5:
            return np.empty(0, dtype=np.int64)
        if requester.name == "email_platform":
            e = self.chan_pos.get("email")
            if e is None:
                return np.empty(0, dtype=np.int64)
            gap_ok = pop.consent[:, e] & (day - self.last_sent[:, e] >= cfg.email_min_gap_days)
            due = np.flatnonzero(gap_ok & (rng.random(n) < cfg.email_due_prob))
            cap = max(1, int(cfg.email_cap_share * n))
            if due.size > cap:
                due = np.sort(rng.choice(due, size=cap, replace=False))
            return due.astype(np.int64)
        if requester.name == "rep_app":
            ok = np.zeros(n, dtype=bool)
            if "rep_visit" in self.chan_pos:
                ok |= pop.consent[:, self.chan_pos["rep_visit"]] & ~pop.no_see
            if "remote_call" in self.chan_pos:
                ok |= pop.consent[:, self.chan_pos["remote_call"]]
            cand = np.flatnonzero(ok & (day - self.last_rep_request >= cfg.rep_min_gap_days))
            cap = self.rep_capacity
            first = self._requested(ok, day) if self.triggers else None
            if first is not None and first.size:
                # the reps answer waiting visit requests first, oldest first, within capacity
                first = first[:cap]
                cand = np.setdiff1d(cand, first)
                cap -= first.size
            if cap == 0:
                rng.gumbel(size=cand.size)
                cand = np.empty(0, dtype=np.int64)
            elif cand.size > cap:
                # weighted sampling without replacement (Gumbel top-k), higher deciles first
                keys = np.log(pop.decile[cand].astype(np.float64)) + rng.gumbel(size=cand.size)
                cand = np.sort(cand[np.argpartition(-keys, cap - 1)[:cap]])
            else:
                rng.gumbel(size=cand.size)  # same draws whatever the branch
            if first is not None and first.size:
                cand = np.sort(np.concatenate([first, cand]))
            self.last_rep_request[cand] = day
            return cand.astype(np.int64)
        if requester.name == "digital":
            ok = np.zeros(n, dtype=bool)
            for ch in ("webinar", "portal"):
                if ch in self.chan_pos:
                    ok |= pop.consent[:, self.chan_pos[ch]]
            p = cfg.digital_due_prob * (0.5 + pop.digital_affinity)
            return np.flatnonzero(ok & (rng.random(n) < p)).astype(np.int64)
        raise SimulationError(f"unknown requester {requester.name!r}")

    def _requested(self, ok: npt.NDArray[np.bool_], day: int) -> I64:
        """HCPs (among ``ok``) whose visit request waits on ``day``, oldest first."""
        waiting = np.flatnonzero(ok & (self._request_day >= 0) & (self._request_until >= day))
        order = np.lexsort((waiting, self._request_day[waiting]))
        return waiting[order].astype(np.int64)

    def visit_request_events(self, d: int) -> I64:
        """Draw today's portal visit requests (docs/simulator.md, "Visit requests") and
        expire those that waited too long; returns the requesting HCPs. Nothing is
        drawn when ``config.visit_request_rate`` is 0."""
        boost = self.population.channel_boost
        if self.rng_events is None or boost is None:
            return np.empty(0, dtype=np.int64)
        pop, cfg = self.population, self.config
        expired = np.flatnonzero((self._request_day >= 0) & (self._request_until < d))
        self._close_requests(expired)
        ok = np.zeros(pop.n, dtype=bool)
        if "rep_visit" in self.chan_pos:
            ok |= pop.consent[:, self.chan_pos["rep_visit"]] & ~pop.no_see
        if "remote_call" in self.chan_pos:
            ok |= pop.consent[:, self.chan_pos["remote_call"]]
        rv = self.chan_pos.get("rep_visit")
        like = np.exp(pop.channel_affinity[:, rv]) if rv is not None else np.ones(pop.n)
        p = np.minimum(cfg.visit_request_rate * like, 1.0)
        new = np.flatnonzero((self.rng_events.random(pop.n) < p) & ok & (self._request_day < 0))
        self._request_day[new] = d
        self._request_until[new] = d + cfg.visit_request_days - 1
        boost[np.ix_(new, self._rep_chans)] = cfg.visit_request_logit
        self.visit_requests += int(new.size)
        return new.astype(np.int64)

    def _close_requests(self, hcp: I64) -> None:
        boost = self.population.channel_boost
        if boost is None or hcp.size == 0:
            return
        self._request_day[hcp] = -1
        self._request_until[hcp] = -1
        boost[np.ix_(hcp, self._rep_chans)] = 0.0

    @property
    def rep_capacity(self) -> int:
        """Rep app decisions per weekday at most."""
        return max(1, int(self.config.rep_capacity_share * self.population.n))

    @property
    def email_cap(self) -> int:
        """Email platform decisions per weekday at most."""
        return max(1, int(self.config.email_cap_share * self.population.n))

    def eligible(
        self, hcp: I64, channels: tuple[str, ...], approved: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.bool_]:
        """Eligible catalog actions per decision, shape (len(hcp), n_actions):
        approved in the HCP's market today, on a requested and consented channel,
        and no rep visit for no-see HCPs."""
        pop = self.population
        req = np.zeros(len(self.channels), dtype=bool)
        for ch in channels:
            req[self.chan_pos[ch]] = True
        ac = self._action_channel
        elig = approved[pop.market[hcp]] & req[ac][None, :] & pop.consent[hcp][:, ac]
        elig &= ~(pop.no_see[hcp][:, None] & self._is_rep_visit[None, :])
        return elig

    # ------------------------------------------------------------------ run
    def run(
        self,
        days: int,
        policy: str | BatchPolicy = "campaign",
        out: str | Path | None = None,
        epsilon: float | None = None,
        progress: bool = False,
        flush_days: int = 7,
        horizon_cut: bool = False,
    ) -> Summary:
        """Simulate ``days`` days under ``policy``; write the logs to ``out`` if given.

        Parameters
        ----------
        days : int
        policy : str or BatchPolicy
            One of ``uniform``, ``campaign``, ``segment``, ``oracle``, or an object.
        out : path, optional
            Log directory (must not already hold logs).
        epsilon : float, optional
            Exploration of the named policy (default per policy).
        progress : bool
            Show a progress bar over days on stderr.
        flush_days : int
            Write the buffered logs every this many days.
        horizon_cut : bool
            Write the logs as a store export at the end of the last simulated
            day would hold them: outcomes stamped after that time are withheld
            and the manifest's ``as_of`` is that time. Ground truth and the
            summary still cover every decision and outcome.
        """
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise SimulationError(f"days must be a positive integer, got {days!r}")
        if self._day_index != 0:
            raise SimulationError("a World runs once; build a new one to simulate again")
        if isinstance(policy, str):
            if policy not in WORLD_POLICIES:
                raise SimulationError(
                    f"unknown policy {policy!r}; expected one of {', '.join(WORLD_POLICIES)}"
                )
            pol: BatchPolicy = make_policy(
                policy, self.catalog, self._policy_seed, epsilon, campaign_anchor=self.start
            )
        else:
            pol = policy
        outp = None if out is None else Path(out)
        if outp is not None:
            for table in ("decisions", "outcomes", "touches", "ground_truth"):
                if logio.part_files(outp, table):
                    raise SimulationError(f"{outp}: already holds a '{table}' log; use a new --out")
            outp.mkdir(parents=True, exist_ok=True)
        learner = getattr(pol, "learn_batch", None)
        early = _early_release_days(pol) if learner is not None else None
        self._stats = _Stats(len(self.channels), len(self.response.outcome_types))
        self._bufs = {t: _Buffer() for t in ("decisions", "outcomes", "touches", "ground_truth")}
        self._pending: deque[_Pending] = deque()
        self._early: deque[_Pending] = deque()
        self._cut_us = self._start_us + days * _US_PER_DAY - 1 if horizon_cut else None
        self._last_outcome_us = -1
        self._withheld = 0
        window = float(self.reward_definition.window_days)
        release_lag = math.ceil(window) + 1
        if early is not None and early >= release_lag:
            raise SimulationError(
                f"{pol.name}: release_after_days {early} is not before the window closes "
                f"({release_lag} days)"
            )
        self._early_days = early
        # contexts rendered and decisions written in a process of their own when no
        # policy reads the contexts, and the other three tables in another, so the
        # simulating process keeps only the day loop (both forked before any thread
        # of the run starts)
        forked = (
            outp is not None
            and learner is None
            and self._contexts_unread(pol)
            and "fork" in mp.get_all_start_methods()  # not on Windows: written inline
        )
        self._tables_proc = _TablesProcess(self) if forked else None
        try:
            self._dec_proc = _DecisionsProcess(self) if forked else None
        except BaseException:
            if self._tables_proc is not None:
                self._tables_proc.close(raise_error=False)
            raise
        self._profile_changes: list[_ProfileChange] = []
        self._stale_profiles: list[I64] = []
        bar = tqdm(range(days), desc="simulate", unit="day", file=sys.stderr, disable=not progress)
        self._writer = _PartWriter() if outp is not None and not forked else None
        try:
            for d in bar:
                if d > 0:
                    self._next_day(d)
                if learner is not None:
                    # decisions whose reward window has closed, before today's decisions
                    while self._pending and self._pending[0].day + release_lag <= d:
                        learner(self._pending.popleft().batch)
                    if early is not None:
                        # decisions old enough for an early label: what was observed by now
                        while self._early and self._early[0].day + early <= d:
                            pol.learn_early(self._early.popleft().batch)  # type: ignore[attr-defined]
                the_day = self.start + timedelta(days=d)
                approved = self.approved_on(the_day)
                self.visit_request_events(d)
                for requester, channels in self._requesters:
                    if not channels:
                        continue
                    hcp = self.due(requester, d, the_day.weekday())
                    if hcp.size:
                        self._decide(
                            pol,
                            requester,
                            channels,
                            hcp,
                            d,
                            the_day,
                            approved,
                            keep=learner is not None,
                        )
                views = self.portal_views(d)
                if views.n:
                    self._bufs["touches"].add(rows=views)
                if outp is not None and (d + 1) % flush_days == 0:
                    self._flush(outp, final=False, before_day=d + 1)
            if outp is not None:
                self._flush(outp, final=True, before_day=days)
            self._resync_profiles()  # while the writers finish the last parts
        except BaseException:
            for w in (self._writer, self._tables_proc, self._dec_proc):
                if w is not None:
                    w.close(raise_error=False)
            raise
        finally:
            writers = [
                w for w in (self._writer, self._tables_proc, self._dec_proc) if w is not None
            ]
            self._writer = self._tables_proc = self._dec_proc = None
        # every part is on disk before the manifest names them
        for i, w in enumerate(writers):
            try:
                w.close()
            except BaseException:
                for rest in writers[i + 1 :]:
                    rest.close(raise_error=False)
                raise
        if outp is not None:
            self.catalog.write_snapshot(outp / "catalog")
            self._write_population(outp)
        summary = self._summary(pol, days, outp)
        if outp is not None:
            self._write_manifest(outp, pol, days, epsilon, summary, self._horizon(days))
        return summary

    def _resync_profiles(self) -> None:
        """Write the profile JSON (``profile_json``) of the HCPs whose profile
        changed while the decisions process kept the profiles (the JSON is a
        function of the current profile, so once per HCP at the end gives what
        writing it at each change gave)."""
        if self._stale_profiles:
            idx = np.unique(np.concatenate(self._stale_profiles))
            self.profile_json[idx] = np.array(self.population.profile_json(idx), dtype=object)
            self._stale_profiles = []

    def _contexts_unread(self, pol: BatchPolicy) -> bool:
        """Whether neither ``pol`` nor the holdout's baseline reads the contexts."""
        pols = [pol] + ([self._holdout_pol] if getattr(self, "_holdout_pol", None) else [])
        return all(type(p) in _CONTEXT_FREE for p in pols)

    def _horizon(self, days: int) -> dict[str, Any]:
        """The manifest's horizon fields (docs/DESIGN.md, "Decisions taken here")."""
        from nba.logs.join import MANIFEST_AS_OF, MANIFEST_AS_OF_BASIS

        if self._cut_us is not None:
            return {
                MANIFEST_AS_OF: _iso_us(self._cut_us),
                MANIFEST_AS_OF_BASIS: "simulator --horizon-cut: outcomes after the last "
                "simulated day withheld",
                "horizon_cut": True,
                "outcomes_withheld": self._withheld,
            }
        # every outcome of every decision is written: complete until all windows close
        window_us = round(float(self.reward_definition.window_days) * _US_PER_DAY)
        closed = self._start_us + days * _US_PER_DAY - 1 + window_us
        return {
            MANIFEST_AS_OF: _iso_us(max(closed, self._last_outcome_us)),
            MANIFEST_AS_OF_BASIS: "simulator: every outcome of every decision written",
            "horizon_cut": False,
            "outcomes_withheld": 0,
        }

    def next_day(self, d: int) -> None:
        """Move the world from day ``d - 1`` to day ``d``: due effects (knowledge,
        stage, consent withdrawal) apply, fatigue decays, history windows move.
        For drivers that run their own day loop (``run`` calls it itself)."""
        if isinstance(d, bool) or not isinstance(d, int) or d != self._day_index + 1:
            raise SimulationError(f"next_day: the world is on day {self._day_index}, not {d!r} - 1")
        self._next_day(d)

    def execute(
        self,
        hcp: I64,
        action: I64,
        ts_us: I64,
        day: int,
        probs: OutcomeProbabilities | None = None,
    ) -> Executed:
        """Carry out catalog actions on HCPs on simulated day ``day``: draw what each
        HCP does with the response model and update the world's state (fatigue,
        repeats, last contact, history, knowledge and stage effects, unsubscribes).

        The day loop uses it for the chosen actions; drivers that get their choices
        elsewhere (``simulators.via_http``) use it the same way.

        Parameters
        ----------
        hcp : ndarray of int64, shape (n,)
            HCP indices, each at most once per call.
        action : ndarray of int64, shape (n,)
            Indices into ``catalog.actions``.
        ts_us : ndarray of int64, shape (n,)
            When each action happens (microseconds since the epoch, UTC).
        day : int
            The current simulated day index.
        probs : OutcomeProbabilities, optional
            The entries' outcome probabilities if already computed (shape (n,)).

        Returns
        -------
        Executed
        """
        pop = self.population
        if probs is None:
            probs = self.response.probabilities(pop, hcp, action)
        sampled = self.response.sample(probs, self.rng_outcomes, self.rng_value)
        n = hcp.shape[0]
        d = day
        ch = self._action_channel[action]
        topic = self._action_topic[action]
        item = self._action_item[action]
        ev_entry = sampled.entry
        ev_delay_us = np.rint(sampled.delay_days * DAY_US).astype(np.int64)
        ev_ts = ts_us[ev_entry] + ev_delay_us
        ev_day = (ev_ts - self._start_us) // DAY_US
        # ----- state changes: touches, fatigue, repeats, history
        pop.fatigue[hcp, ch] += 1.0
        if pop.channel_boost is not None:
            # a rep visit or call answers a waiting visit request (its boost applied above)
            served = hcp[np.isin(ch, self._rep_chans) & (self._request_day[hcp] >= 0)]
            self.visit_requests_served += int(served.size)
            self._close_requests(served)
        add_counts(pop.seen, (hcp, item), distinct=True)  # each HCP once per call
        self.last_sent[hcp, ch] = d
        self.history.record_touches(d, hcp, ch, item, ts_us)
        if self._contact is not None:
            self._contact.record(hcp, ch, item, ts_us)
        if self.journeys is not None:
            self._record_journey_events(hcp, ts_us, None, action)
            self._record_journey_events(hcp[ev_entry], ev_ts, sampled.type_code, action[ev_entry])
        eng = self._engagement_code[sampled.type_code]
        if eng.any():
            e_ent = ev_entry[eng]
            self.history.record_engagements(ev_day[eng], hcp[e_ent], ch[e_ent], topic[e_ent])
        know = self._knowledge_code[sampled.type_code]
        if know.any():
            k_ent = ev_entry[know]
            first_day = np.full(n, np.iinfo(np.int64).max)
            np.minimum.at(first_day, k_ent, ev_day[know])
            engaged = np.flatnonzero(first_day < np.iinfo(np.int64).max)
            match = self.response.stage_match[pop.stage[hcp[engaged]], topic[engaged]]
            adv = self.rng_outcomes.random(engaged.size) < self.config.advance_prob * (1 + match)
            eff_day = first_day[engaged] + 1
            for dd in np.unique(eff_day):
                sel = eff_day == dd
                self._effects[int(dd)].append(
                    (hcp[engaged[sel]], topic[engaged[sel]], adv[sel], int(dd))
                )
        uns = self._unsub_code[sampled.type_code]
        if uns.any():
            for ent, dd in zip(ev_entry[uns], ev_day[uns], strict=True):
                self._unsubs[int(dd) + 1].append(np.array([hcp[ent]], dtype=np.int64))
        # ----- what the HCPs pulled, revealed by their outcomes
        pk = self._pull_kind_code[sampled.type_code]
        parts: list[Touches] = []
        if (pk >= 0).any():
            approved = self.pulls.approved_items(
                self.population.markets, self.start + timedelta(days=d)
            )
            for kind in ("detail_pull", "email_click", "webinar_question"):
                sel = np.flatnonzero(pk == KIND_CODE[kind])
                if sel.size:
                    ent = ev_entry[sel]
                    parts.append(
                        self.pulls.from_outcomes(
                            self.rng_pulls, kind, hcp[ent], ch[ent], item[ent], ev_ts[sel], approved
                        )
                    )
        pulls = Touches.concat(parts)
        self._record_pulls(pulls)
        return Executed(probs, sampled, ch, item, ev_ts, ev_day, pulls)

    def _record_journey_events(
        self, hcp: I64, ts_us: I64, type_code: npt.NDArray[np.integer[Any]] | None, action: I64
    ) -> None:
        """Append journey events: decisions (``type_code`` None) or outcomes, shape (n,)."""
        cat, types = self.catalog, self.response.outcome_types
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        for i in range(hcp.shape[0]):
            a = cat.actions[int(action[i])]
            self._jevents[int(hcp[i])].append(
                JourneyEvent(
                    epoch + timedelta(microseconds=int(ts_us[i])),
                    DECISION if type_code is None else types[int(type_code[i])],
                    a.channel,
                    a.content_id,
                    cat.by_id[a.content_id].topic,
                )
            )

    def _journey_gate(
        self,
        hcp: I64,
        ts_us: I64,
        cand: I64,
        allowed: npt.NDArray[np.bool_],
        rule: npt.NDArray[np.int16],
    ) -> npt.NDArray[np.object_]:
        """Apply the journeys to the rows of ``_apply_rules`` in place (``allowed`` and
        ``rule``, shape (b, n_actions)); returns each decision's journey label, shape (b,)."""
        js = self.journeys
        labels = np.full(hcp.shape[0], None, dtype=object)
        if js is None:
            return labels
        pop, cat = self.population, self.catalog
        code = {r: i for i, r in enumerate(self._rule_names_t)}
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        lookback = timedelta(days=js.lookback_days + 1)
        for row in range(hcp.shape[0]):
            h = int(hcp[row])
            events = self._jevents.get(h)
            if not events:
                continue
            now = epoch + timedelta(microseconds=int(ts_us[row]))
            kept = [e for e in events if e.ts >= now - lookback]
            self._jevents[h] = kept
            if not kept:
                continue
            profile = HCPProfile(
                str(pop.hcp_ids[h]),
                pop.specialties[int(pop.specialty[h])],
                int(pop.decile[h]),
                pop.markets[int(pop.market[h])],
                ADOPTION_STAGES[int(pop.stage[h])],
                frozenset(),
                bool(pop.no_see[h]),
            )
            states = js.states(profile, kept, now)
            if not any(st.status == "due" or st.holding for st in states):
                continue
            cols = cand[allowed[row, cand]]
            acts = [cat.actions[int(j)] for j in cols]
            gate = js.gate(states, [(a.channel, cat.by_id[a.content_id].topic) for a in acts])
            labels[row] = gate.label
            for j, r in zip(cols, gate.rules, strict=True):
                if r is not None:
                    allowed[row, j] = False
                    rule[row, j] = code[r]
        return labels

    def portal_views(self, d: int) -> Touches:
        """Draw the HCP-initiated portal views of simulated day ``d`` (the current
        day) and record them (history, knowledge). ``run`` calls it once a day after
        the requesters; drivers with their own day loop may call it the same way."""
        if isinstance(d, bool) or not isinstance(d, int) or d != self._day_index:
            raise SimulationError(f"portal_views: the world is on day {self._day_index}, not {d!r}")
        the_day = self.start + timedelta(days=d)
        views = self.pulls.portal_views(
            self.rng_pulls,
            self._start_us + d * DAY_US,
            self.pulls.approved_items(self.population.markets, the_day),
        )
        self._record_pulls(views)
        return views

    def _record_pulls(self, pulls: Touches) -> None:
        """Count pulls per topic in the history (on the day they happen) and queue
        their knowledge gain for the day after (email clicks gain through the
        click outcome already)."""
        if pulls.n == 0:
            return
        self._pull_counts += np.bincount(pulls.kind, minlength=len(TOUCH_KINDS))
        rows = pulls.topic_rows()
        hcp = pulls.hcp[rows]
        day = (pulls.ts_us[rows] - self._start_us) // DAY_US
        self.history.record_pulls(day, hcp, pulls.topics)
        learn = pulls.kind[rows] != KIND_CODE["email_click"]
        if self.config.pull_knowledge_gain > 0 and learn.any():
            n_t = self.population.knowledge.shape[1]
            self._pull_queue.append((day[learn] + 1, hcp[learn] * n_t + pulls.topics[learn]))

    # -------------------------------------------------------------- internals
    def _next_day(self, d: int) -> None:
        self.history.advance(d)
        pop = self.population
        pop.fatigue *= self._decay[None, :]
        changed: list[I64] = []
        for hcp, topic, advance, _day in self._effects.pop(d, []):
            k = pop.knowledge[hcp, topic]
            pop.knowledge[hcp, topic] = k + self.config.knowledge_gain * (1.0 - k)
            if advance.any():  # most effects advance nobody: no np.unique of nothing
                adv = np.unique(hcp[advance])
                pop.stage[adv] = np.minimum(pop.stage[adv] + 1, 5)
                changed.append(adv)
        if self._pull_queue:
            eff = np.concatenate([q[0] for q in self._pull_queue])
            cells = np.concatenate([q[1] for q in self._pull_queue])
            now = eff <= d
            self._pull_queue = [(eff[~now], cells[~now])] if not now.all() else []
            if now.any():
                # each pull moves knowledge `gain` of the way to 1: (1 - k) shrinks per pull
                cell, times = np.unique(cells[now], return_counts=True)
                h, t = np.divmod(cell, pop.knowledge.shape[1])
                keep = (1.0 - self.config.pull_knowledge_gain) ** times
                pop.knowledge[h, t] = 1.0 - (1.0 - pop.knowledge[h, t]) * keep
        e = self.chan_pos.get("email")
        for hcp in self._unsubs.pop(d, []):
            if e is not None:
                pop.consent[hcp, e] = False
                changed.append(hcp)
        if changed:
            idx = np.unique(np.concatenate(changed))
            if getattr(self, "_dec_proc", None) is not None:
                # the decisions process writes their JSON from the fields that
                # changed (its forked population, kept up to date in order); here
                # it is written once, at the end of the run (_resync_profiles)
                self._profile_changes.append((idx, pop.stage[idx], pop.consent[idx]))
                self._stale_profiles.append(idx)
            else:
                self.profile_json[idx] = np.array(pop.profile_json(idx), dtype=object)
        self._day_index = d

    def _decide(
        self,
        pol: BatchPolicy,
        requester: Requester,
        channels: tuple[str, ...],
        hcp: I64,
        d: int,
        the_day: date,
        approved: npt.NDArray[np.bool_],
        keep: bool,
    ) -> None:
        pop = self.population
        start_us = (
            int(datetime(the_day.year, the_day.month, the_day.day, tzinfo=UTC).timestamp())
            * 1_000_000
        )
        spread = int(requester.spread_hours * HOUR_US)
        supp_rule: npt.NDArray[np.int16] | None = None
        jlabel: npt.NDArray[np.object_] | None = None
        if self.rules is None:
            elig = self.eligible(hcp, channels, approved)
        else:
            # decision times first: the rules' windows are measured back from them
            ts_all = self._decision_times(start_us, requester, spread, hcp.shape[0])
            elig, supp_rule, jlabel = self._apply_rules(hcp, channels, approved, ts_all)
        counts = elig.sum(axis=1)
        has = counts > 0
        self._stats.skipped += int((~has).sum())
        if supp_rule is not None:
            self._stats.add_suppressed(supp_rule, ~has, len(self._rule_names))
        if not has.all():
            hcp, elig, counts = hcp[has], elig[has], counts[has]
            if supp_rule is not None:
                supp_rule, ts_all = supp_rule[has], ts_all[has]
            if jlabel is not None:
                jlabel = jlabel[has]
        n = hcp.shape[0]
        if n == 0:
            return
        _, action = nonzero_2d(elig)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        sizes = counts.astype(np.int64)
        seg = np.repeat(np.arange(n), sizes)
        if supp_rule is None:
            ts_us = self._decision_times(start_us, requester, spread, n)
        else:
            ts_us = ts_all
        # the logs keep the ids as ASCII bytes (S26); the policies get str
        ids = event_id_bytes(ts_us // 1000, self.rng_ids)
        eids = ids.astype("U26")
        request_json = json.dumps(
            {"requester": requester.name}, sort_keys=True, separators=(",", ":")
        )
        dec_proc = getattr(self, "_dec_proc", None)
        if dec_proc is None:
            contexts = self.builder.build(
                the_day, self.profile_json, self.history, hcp, request_json
            )
            context_log: dict[str, Any] = {"context": contexts}
        else:
            # no policy here reads them: the decisions writer renders them later
            contexts = np.full(n, None, dtype=object)
            # the profiles that changed since the last batch, not each decision's
            changes, self._profile_changes = self._profile_changes, []
            context_log = {
                "context_in": (
                    the_day,
                    hcp,
                    changes,
                    self.builder.gather(self.history, hcp),
                    request_json,
                )
            }
        probs_all = self.response.batch_probabilities(pop, hcp, seg, action)
        truth = self.response.expected_reward(probs_all)
        batch = DecisionBatch(
            day=the_day,
            day_index=d,
            requester=requester.name,
            event_ids=eids,
            contexts=contexts,
            offsets=offsets,
            action_index=action,
            catalog=self.catalog,
            specialties=pop.specialties,
            specialty=pop.specialty[hcp],
            decile=pop.decile[hcp],
            expected_rewards=truth if getattr(pol, "uses_ground_truth", False) else None,
        )
        hold = None if supp_rule is None else self._holdout[hcp]
        if hold is not None and hold.any():
            p, chosen = self._decide_split(pol, batch, hold, sizes, truth)
        else:
            p, chosen = pol.decide_batch(batch)
            p = np.asarray(p, dtype=np.float64)
            chosen = np.asarray(chosen, dtype=np.int64)
            self._check_policy_output(pol, p, chosen, offsets, sizes)
        flat = offsets[:-1] + chosen
        chosen_action = action[flat]
        propensity = p[flat]
        # ----- outcomes of the executed actions
        ex = self.execute(hcp, chosen_action, ts_us, d, probs=probs_all.take(flat))
        sampled, ch, item = ex.sampled, ex.channel, ex.item
        ev_entry, ev_ts, ev_day = sampled.entry, ex.ts_us, ex.day
        window = float(self.reward_definition.window_days)
        in_window = sampled.delay_days <= window
        reward = self._rewards(n, ch, sampled.entry, sampled.type_code, in_window)
        # ----- log rows
        self._stats.add(
            requester.name,
            n,
            int(sizes.sum()),
            ch,
            sampled.type_code,
            ev_entry,
            in_window,
            reward,
            truth[flat],
        )
        bufs = self._bufs
        bufs["decisions"].add(
            event_id=ids,
            ts=ts_us,
            hcp=hcp,
            requester=requester.name,
            channels=channels,
            sizes=sizes,
            action=action,
            probabilities=p,
            chosen=chosen,
            chosen_action=chosen_action,
            propensity=propensity,
            model_version=pol.model_version,
            policy=pol.name,
            **context_log,
        )
        if supp_rule is not None and hold is not None:
            rows, cols = nonzero_2d(supp_rule >= 0)
            hp = self._holdout_pol
            self._stats.holdout += int(hold.sum())
            bufs["decisions"].add(
                policy_rows=np.where(hold, hp.name, pol.name).astype(object),
                model_version_rows=np.where(
                    hold, f"{HOLDOUT_PREFIX}baseline:{hp.name}", pol.model_version
                ).astype(object),
                supp_sizes=np.bincount(rows, minlength=n).astype(np.int64),
                supp_action=cols.astype(np.int64),
                supp_rule=supp_rule[rows, cols].astype(np.int64),
            )
        if self.journeys is not None and jlabel is not None:
            bufs["decisions"].add(journey=jlabel)
            for lab in jlabel:
                if lab is not None:
                    self._journey_counts[lab] = self._journey_counts.get(lab, 0) + 1
        if self.slate_size > 1:
            self._slot_hcp = hcp  # whose slots they are (journey histories)
            self._later_slots(ts_us, ids, offsets, action, p, chosen, probs_all)
        bufs["touches"].add(rows=Touches.contacts(hcp, ts_us, ch, item))
        if ex.pulls.n:
            bufs["touches"].add(rows=ex.pulls)
        bufs["ground_truth"].add(event_id=ids, ts=ts_us, sizes=sizes, truth=truth)
        bufs["outcomes"].add(
            event_id=ids[ev_entry],
            ts=ev_ts,
            day=ev_day,
            type_code=sampled.type_code,
            channel=ch[ev_entry],
            action=np.full(ev_entry.shape[0], -1, dtype=np.int64),
        )
        if keep:
            partial = None
            early_days = getattr(self, "_early_days", None)
            if early_days is not None:
                # outcomes stamped before midnight `early` days after the decision day
                cut = start_us + early_days * DAY_US
                seen = in_window & (ev_ts < cut)
                partial = self._rewards(n, ch, sampled.entry, sampled.type_code, seen)
            lb = LearnBatch(
                event_ids=eids,
                contexts=contexts,
                offsets=offsets,
                action_index=action,
                probabilities=p,
                chosen=chosen,
                propensity=propensity,
                reward=reward,
                channel=ch.astype(np.int64),
                partial_reward=partial,
            )
            self._pending.append(_Pending(d, lb))
            if partial is not None:
                # the early batch carries no final reward: it is not known yet
                self._early.append(_Pending(d, replace(lb, reward=partial)))

    def _later_slots(
        self,
        ts_us: I64,
        ids: npt.NDArray[np.bytes_],
        offsets: I64,
        action: I64,
        p: F64,
        chosen: I64,
        probs_all: OutcomeProbabilities,
    ) -> None:
        """Draw slots 2..k of the day's decisions and the HCPs' responses to them.

        Each slot is drawn without replacement from the decision's probabilities;
        the HCP looks at slot ``j`` with probability ``slot_attention ** (j - 1)``
        and then responds to its action as to the same action alone. The responses
        are outcomes naming the slot's action (``source_id`` ``sim|<action id>``);
        they change no state (docs/simulator.md, "Slates"). ``ids`` are the
        decisions' event ids as logged (ASCII bytes, shape (n,))."""
        k = self.slate_size
        positions, conditional = sample_slates(p, offsets, chosen, k, self.rng_slates)
        slot_action = np.where(positions >= 0, action[offsets[:-1, None] + positions], -1)
        self._bufs["decisions"].add(
            slate_action=slot_action.reshape(-1), slate_prob=conditional.reshape(-1)
        )
        for j in range(1, k):
            rows = np.flatnonzero(positions[:, j] >= 0)
            look = self.rng_slates.random(rows.shape[0]) < slot_attention(
                self.slot_attention, j + 1
            )
            rows = rows[look]
            if rows.size == 0:
                continue
            flat = offsets[rows] + positions[rows, j]
            sampled = self.response.sample(probs_all.take(flat), self.rng_slates)
            ent = rows[sampled.entry]
            ev_ts = ts_us[ent] + np.rint(sampled.delay_days * DAY_US).astype(np.int64)
            if self.journeys is not None:
                self._record_journey_events(
                    self._slot_hcp[ent], ev_ts, sampled.type_code, action[flat[sampled.entry]]
                )
            self._bufs["outcomes"].add(
                event_id=ids[ent],
                ts=ev_ts,
                day=(ev_ts - self._start_us) // DAY_US,
                type_code=sampled.type_code,
                channel=self._action_channel[action[flat[sampled.entry]]],
                action=action[flat[sampled.entry]],
            )

    def _decide_split(
        self,
        pol: BatchPolicy,
        batch: DecisionBatch,
        hold: npt.NDArray[np.bool_],
        sizes: I64,
        truth: F64,
    ) -> tuple[F64, I64]:
        """Decisions of holdout HCPs (``hold``, shape (n,)) from the baseline, the others
        from ``pol``; returns probabilities (m,) and chosen positions (n,)."""
        p = np.empty(int(sizes.sum()), dtype=np.float64)
        chosen = np.empty(sizes.shape[0], dtype=np.int64)
        for sel, bp in ((~hold, pol), (hold, self._holdout_pol)):
            if not sel.any():
                continue
            ent = np.repeat(sel, sizes)
            sub_sizes = sizes[sel]
            sub_off = np.zeros(sub_sizes.shape[0] + 1, dtype=np.int64)
            np.cumsum(sub_sizes, out=sub_off[1:])
            sub = replace(
                batch,
                event_ids=batch.event_ids[sel],
                contexts=batch.contexts[sel],
                offsets=sub_off,
                action_index=batch.action_index[ent],
                specialty=batch.specialty[sel],
                decile=batch.decile[sel],
                expected_rewards=truth[ent] if getattr(bp, "uses_ground_truth", False) else None,
            )
            sp, sc = bp.decide_batch(sub)
            sp = np.asarray(sp, dtype=np.float64)
            sc = np.asarray(sc, dtype=np.int64)
            self._check_policy_output(bp, sp, sc, sub_off, sub_sizes)
            p[ent] = sp
            chosen[sel] = sc
        return p, chosen

    def _decision_times(self, start_us: int, requester: Requester, spread: int, n: int) -> I64:
        """When each of ``n`` decisions is made (microseconds, ms resolution), shape (n,)."""
        return np.asarray(
            start_us
            + int(requester.hour * HOUR_US)
            + self.rng_ids.integers(0, spread // 1000, size=n) * 1000,
            dtype=np.int64,
        )

    def _apply_rules(
        self,
        hcp: I64,
        channels: tuple[str, ...],
        approved: npt.NDArray[np.bool_],
        ts_us: I64,
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int16], npt.NDArray[np.object_]]:
        """The contact rules (and then the journeys) over the actions on the requested
        channels.

        Returns
        -------
        allowed : ndarray of bool, shape (b, n_actions)
        rule : ndarray of int16, shape (b, n_actions)
            Index into ``rules.rule_names`` (then the journeys' rule names) of the rule
            that removed each requested action, -1 where allowed or not requested.
        journey : ndarray of object, shape (b,)
            The journey step that governed each decision, or None.
        """
        rules, st, pop = self.rules, self._contact, self.population
        assert rules is not None and st is not None
        req = np.zeros(len(self.channels), dtype=bool)
        for ch in channels:
            req[self.chan_pos[ch]] = True
        cand = np.flatnonzero(req[self._action_channel])
        counts, since_touch, since_content = st.inputs(hcp, ts_us, rules.cap_windows)
        mask = rules.mask_batch(
            action_channel=self._action_channel[cand],
            action_content=self._action_item[cand],
            channels=self.channels,
            approved=approved[pop.market[hcp]][:, cand],
            consents=pop.consent[hcp],
            no_see=pop.no_see[hcp],
            touch_counts=counts,
            days_since_touch=since_touch,
            days_since_content=since_content,
            # per-market rule sets: each HCP gets its market's rules, as in serving
            markets=self._market_names[pop.market[hcp]] if rules.markets else None,
        )
        b, n_act = hcp.shape[0], self._action_channel.shape[0]
        allowed = np.zeros((b, n_act), dtype=bool)
        allowed[:, cand] = mask.allowed
        rule = np.full((b, n_act), -1, dtype=np.int16)
        rule[:, cand] = mask.rule
        labels = self._journey_gate(hcp, ts_us, cand, allowed, rule)
        return allowed, rule, labels

    @property
    def _start_us(self) -> int:
        s = self.start
        return int(datetime(s.year, s.month, s.day, tzinfo=UTC).timestamp()) * 1_000_000

    def _check_policy_output(
        self, pol: BatchPolicy, p: F64, chosen: I64, offsets: I64, sizes: I64
    ) -> None:
        name = getattr(pol, "name", type(pol).__name__)
        m = int(offsets[-1])
        if p.shape != (m,) or chosen.shape != (sizes.shape[0],):
            raise PolicyError(
                f"{name}: decide_batch returned shapes {p.shape}, {chosen.shape}; "
                f"expected ({m},), ({sizes.shape[0]},)"
            )
        if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
            raise PolicyError(f"{name}: probabilities outside [0, 1]")
        sums = np.add.reduceat(p, offsets[:-1])
        if np.any(np.abs(sums - 1.0) > 1e-6):
            bad = int(np.flatnonzero(np.abs(sums - 1.0) > 1e-6)[0])
            raise PolicyError(f"{name}: probabilities of decision {bad} sum to {sums[bad]}")
        if np.any(chosen < 0) or np.any(chosen >= sizes):
            raise PolicyError(f"{name}: a chosen position is outside its decision")
        if np.any(p[offsets[:-1] + chosen] <= 0):
            raise PolicyError(f"{name}: chose an action it gave probability 0")

    def _rewards(
        self, n: int, ch: I64, entry: I64, code: I64, in_window: npt.NDArray[np.bool_]
    ) -> F64:
        """Reward of each executed decision from its in-window outcomes, shape (n,)."""
        resp = self.response
        gate = np.zeros(n, dtype=bool)
        prim = np.zeros(n, dtype=bool)
        sec = np.zeros(n, dtype=bool)
        side = np.zeros(n, dtype=bool)
        c_ev = ch[entry]
        for arr, codes in (
            (gate, resp.gate_code),
            (prim, resp.primary_code),
            (sec, resp.secondary_code),
            (side, resp.side_code),
        ):
            hit = in_window & (code == codes[c_ev])
            arr[entry[hit]] = True
        gate |= ~resp.has_gate[ch]
        state = np.where(sec, BOTH, np.where(prim, PRIMARY_ONLY, NEITHER))
        out = resp.reward_table[ch, gate.astype(np.int64), state, side.astype(np.int64)]
        changed = False
        for j, v_code in enumerate(resp.value_code.tolist()):
            hit = in_window & (code == v_code)
            if hit.any() and resp.value_weight[j] != 0:
                # aggregation is "sum" whenever a value type is weighed (ResponseModel)
                out = out + resp.value_weight[j] * np.bincount(entry[hit], minlength=n)
                changed = True
        if resp.channel_cost.any():
            out = out - resp.channel_cost[ch]
            changed = True
        return np.round(out, 12) if changed else out

    # ------------------------------------------------------------------ output
    def _flush(self, out: Path, final: bool, before_day: int) -> None:
        # Simulated logs are regenerable from the seed: parts are still renamed
        # into place atomically, but not fsync'ed one by one (that cost ~15 % of
        # a 10k x 90 run).
        dec = self._bufs["decisions"].take()
        if dec:
            dec_proc = getattr(self, "_dec_proc", None)
            if dec_proc is not None:
                if len(self.catalog.actions) <= np.iinfo(np.int16).max:
                    # the bulkiest column to send (an entry per eligible action): halve it
                    dec["action"] = [a.astype(np.int16) for a in dec["action"]]
                dec_proc.append(out, dec)
            else:
                self._append(out, "decisions", self._decisions_table(dec))
        tch = self._bufs["touches"].take()
        if tch:
            rows = Touches.concat(tch["rows"])
            if not final:
                # pulls revealed by outcomes still to come wait, so each day gets one part
                later = (rows.ts_us - self._start_us) // DAY_US >= before_day
                if later.any():
                    self._bufs["touches"].add(rows=rows.take(np.flatnonzero(later)))
                    rows = rows.take(np.flatnonzero(~later))
            if rows.n:
                self._emit(out, "touches", rows)
        gt = self._bufs["ground_truth"].take()
        if gt:
            self._emit(out, "ground_truth", gt)
        oc = self._bufs["outcomes"].take()
        if oc:
            cols = {k: np.concatenate(v) for k, v in oc.items()}
            if not final:
                # outcomes of days still to come wait, so each day gets exactly one part
                later = cols["day"] >= before_day
                self._bufs["outcomes"].add(**{k: v[later] for k, v in cols.items()})
                cols = {k: v[~later] for k, v in cols.items()}
            if final and self._cut_us is not None:
                keep = cols["ts"] <= self._cut_us
                self._withheld += int((~keep).sum())
                cols = {k: v[keep] for k, v in cols.items()}
            if cols["event_id"].shape[0]:
                self._last_outcome_us = max(self._last_outcome_us, int(cols["ts"].max()))
                self._emit(out, "outcomes", cols)

    def _emit(self, out: Path, name: str, payload: Any) -> None:
        """Log table ``name`` from the day loop's arrays ``payload``: built and
        appended by the tables process during :meth:`run` when there is one, else
        built here and appended on the writer thread (or inline)."""
        proc = getattr(self, "_tables_proc", None)
        if proc is not None:
            proc.append(out, name, payload)
        else:
            self._append(out, name, self._log_table(name, payload))

    def _log_table(self, name: str, payload: Any) -> pa.Table:
        """The ``touches``, ``ground_truth`` or ``outcomes`` table of ``payload``:
        the touch rows (:class:`Touches`), the ground-truth buffer's columns (lists
        of arrays), or the outcome columns (arrays of one length, in any order)."""
        if name == "touches":
            return self.touches_table(payload)
        if name == "ground_truth":
            return self._ground_truth_table(payload)
        if name == "outcomes":
            return self._outcomes_table(payload)
        raise ValueError(f"no log table {name!r} is built from arrays")  # pragma: no cover

    def _ground_truth_table(self, gt: Mapping[str, list[Any]]) -> pa.Table:
        sizes = np.concatenate(gt["sizes"])
        offsets = np.zeros(sizes.shape[0] + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        return pa.table(
            {
                "event_id": _id_column(np.concatenate(gt["event_id"])),
                "ts": pa.array(np.concatenate(gt["ts"]), GROUND_TRUTH.field("ts").type),
                "reward_definition": _strings(
                    [self.reward_definition.id], np.zeros(sizes.shape[0], np.int64)
                ),
                "expected_rewards": _list_array(
                    offsets, pa.array(np.concatenate(gt["truth"]), pa.float64())
                ),
            },
            schema=GROUND_TRUTH,
        )

    def _outcomes_table(self, cols: Mapping[str, npt.NDArray[Any]]) -> pa.Table:
        n = cols["event_id"].shape[0]
        order = np.lexsort((cols["action"], cols["type_code"], cols["event_id"], cols["ts"]))
        cols = {k: v[order] for k, v in cols.items()}
        sources = [OUTCOME_SOURCE.get(c, "simulator") for c in self.channels]
        slot = cols["action"] >= 0
        if slot.any():
            named = self._action_ids.take(pa.array(np.where(slot, cols["action"], 0)))
            action_id = pc.if_else(pa.array(slot), named, pa.nulls(n, pa.string()))
            source_id = pc.if_else(
                pa.array(slot),
                pc.binary_join_element_wise("sim", named, "|"),
                "sim",
            )
        else:
            action_id = pa.nulls(n, pa.string())
            source_id = pa.array(np.full(n, "sim", dtype=object), pa.string())
        return pa.table(
            {
                "event_id": _id_column(cols["event_id"]),
                "ts": pa.array(cols["ts"], OUTCOMES.field("ts").type),
                "type": self._type_names.take(pa.array(cols["type_code"])),
                "value": pa.array(np.ones(n), pa.float64()),
                "source": _strings(sources, cols["channel"]),
                "source_id": source_id,
                # null: the chosen action; else a later slot of the decision's list
                "action_id": action_id,
            },
            schema=OUTCOMES,
        )

    def _append(self, out: Path, name: str, table: pa.Table) -> None:
        """Append to log table ``name``: on the writer thread during :meth:`run`."""
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.append(out, name, table)
        else:
            logio.append(out, name, table, fsync=False)

    def touches_table(self, rows: Touches) -> pa.Table:
        """Touch rows as a table of schema TOUCHES, in time order (then HCP, kind): what
        the world logs, and what the HTTP driver (``simulators.via_http``) posts."""
        order = np.lexsort((rows.kind, rows.hcp, rows.ts_us))
        r = rows.take(order)
        kinds = list(TOUCH_KINDS)
        origin = ["external" if k in EXTERNAL_KINDS else "ours" for k in TOUCH_KINDS]
        content = pa.array(self.pulls.content_ids, pa.string())
        t_off = np.zeros(r.n + 1, dtype=np.int64)
        np.cumsum(r.topic_sizes, out=t_off[1:])
        s_off = np.zeros(r.n + 1, dtype=np.int64)
        np.cumsum(r.slide_sizes, out=s_off[1:])
        return pa.table(
            {
                "hcp_id": self._hcp_ids.take(pa.array(r.hcp)),
                "ts": pa.array(r.ts_us, TOUCHES.field("ts").type),
                "channel": self._channel_names.take(pa.array(r.channel)),
                "content_id": content.take(pa.array(r.content)),
                "origin": _strings(origin, r.kind),
                "kind": _strings(kinds, r.kind),
                "topics": _list_array(
                    t_off, pa.array(self.catalog.topics, pa.string()).take(pa.array(r.topics))
                ),
                "content_ids": _list_array(s_off, content.take(pa.array(r.slides))),
                "dwell_s": pa.array(r.dwell_s, pa.float64(), mask=np.isnan(r.dwell_s)),
                # simulated reps do what the policy chose: no overrides
                "overrides_event_id": pa.nulls(r.n, pa.string()),
            },
            schema=TOUCHES,
        )

    def _decisions_table(self, dec: Mapping[str, list[Any]]) -> pa.Table:
        sizes = np.concatenate(dec["sizes"])
        nrows = sizes.shape[0]
        offsets = np.zeros(nrows + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        per_batch = [len(e) for e in dec["event_id"]]
        batch_of = np.repeat(np.arange(len(per_batch)), per_batch)  # each row's batch
        requester = _strings(dec["requester"], batch_of)
        chan_lists = [list(c) for c in dec["channels"]]
        chan_sizes = np.array([len(c) for c in chan_lists], dtype=np.int64)[batch_of]
        chan_off = np.zeros(nrows + 1, dtype=np.int64)
        np.cumsum(chan_sizes, out=chan_off[1:])
        # each row's requested channels: its batch's list, as indices into self.channels
        chan_codes = np.concatenate(
            [
                np.tile(np.array([self.chan_pos[c] for c in lst], dtype=np.int64), k)
                for lst, k in zip(chan_lists, per_batch, strict=True)
            ]
        )
        hcp = np.concatenate(dec["hcp"])
        chosen_action = np.concatenate(dec["chosen_action"])
        if "policy_rows" in dec:  # per decision (holdout HCPs get the baseline)
            policy = pa.array(np.concatenate(dec["policy_rows"]), pa.string())
            model_version = pa.array(np.concatenate(dec["model_version_rows"]), pa.string())
        else:
            policy = _strings(dec["policy"], batch_of)
            model_version = _strings(dec["model_version"], batch_of)
        if "supp_sizes" in dec:
            s_off = np.zeros(nrows + 1, dtype=np.int64)
            np.cumsum(np.concatenate(dec["supp_sizes"]), out=s_off[1:])
            names = self._rule_names[np.concatenate(dec["supp_rule"])]
            s_values = pa.StructArray.from_arrays(
                [
                    self._action_ids.take(pa.array(np.concatenate(dec["supp_action"]))),
                    pa.array(names, pa.string()),
                ],
                fields=list(SUPPRESSION),
            )
            suppressed = _list_array(s_off, s_values)
        else:
            suppressed = pa.ListArray.from_arrays(
                pa.array(np.zeros(nrows + 1, dtype=np.int32)), pa.array([], SUPPRESSION)
            )
        return pa.table(
            {
                "event_id": _id_column(np.concatenate(dec["event_id"])),
                "ts": pa.array(np.concatenate(dec["ts"]), DECISIONS.field("ts").type),
                "hcp_id": self._hcp_ids.take(pa.array(hcp)),
                "requester": requester,
                "channels_requested": _list_array(
                    chan_off, self._channel_names.take(pa.array(chan_codes))
                ),
                "context": _context_column(dec["context"]),
                "catalog_version": _strings([self.catalog.version], np.zeros(nrows, np.int64)),
                "action_ids": _list_array(
                    offsets, self._action_ids.take(pa.array(np.concatenate(dec["action"])))
                ),
                "probabilities": _list_array(
                    offsets, pa.array(np.concatenate(dec["probabilities"]), pa.float64())
                ),
                "chosen_index": pa.array(np.concatenate(dec["chosen"]).astype(np.int32)),
                "chosen_action_id": self._action_ids.take(pa.array(chosen_action)),
                "propensity": pa.array(np.concatenate(dec["propensity"]), pa.float64()),
                "policy": policy,
                "model_version": model_version,
                "suppressed": suppressed,
                "activated": pa.array(np.ones(nrows, dtype=bool)),
                "slate": self._slate_column(dec, nrows),
                **self._rules_columns(hcp),
                "journey": pa.array(np.concatenate(dec["journey"]), pa.string())
                if "journey" in dec
                else pa.nulls(nrows, pa.string()),
            },
            schema=DECISIONS,
        )

    def _slate_column(self, dec: Mapping[str, list[Any]], nrows: int) -> pa.Array:
        """The ``slate`` column: null with one slot, else every slot with its probability."""
        typ = DECISIONS.field("slate").type
        if "slate_action" not in dec:
            return pa.nulls(nrows, typ)
        k = self.slate_size
        act = np.concatenate(dec["slate_action"]).reshape(nrows, k)
        prob = np.concatenate(dec["slate_prob"]).reshape(nrows, k)
        keep = act >= 0
        lengths = keep.sum(axis=1)
        offsets = np.zeros(nrows + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = pa.StructArray.from_arrays(
            [self._action_ids.take(pa.array(act[keep])), pa.array(prob[keep], pa.float64())],
            fields=list(typ.value_type),
        )
        slates = _list_array(offsets, values)
        # a decision with one eligible action shows one slot: no slate
        return pc.if_else(pa.array(lengths > 1), slates, pa.nulls(nrows, typ))

    def _rules_columns(self, hcp: I64) -> dict[str, pa.Array]:
        """``rules_version`` and ``rules_market`` of decisions for ``hcp``, shape (n,):
        null without contact rules, else the rules' hash and the HCP's market when the
        rules have a section for it ("global" otherwise), as serving records them."""
        n = hcp.shape[0]
        if self.rules is None:
            return {
                "rules_version": pa.nulls(n, pa.string()),
                "rules_market": pa.nulls(n, pa.string()),
            }
        names = np.array([self.rules.market_of(m) for m in self.population.markets], dtype=object)
        return {
            "rules_version": pa.array(np.full(n, self.rules.version, dtype=object), pa.string()),
            "rules_market": pa.array(names[self.population.market[hcp]], pa.string()),
        }

    def _write_population(self, out: Path) -> None:
        import pyarrow.parquet as pq

        path = out / "population.parquet"
        tmp = out / ".population.parquet.tmp"
        pq.write_table(self.initial_population, tmp, compression="zstd")
        tmp.replace(path)

    def _write_manifest(
        self,
        out: Path,
        pol: BatchPolicy,
        days: int,
        epsilon: float | None,
        summary: Summary,
        horizon: Mapping[str, Any],
    ) -> None:
        def version(pkg: str) -> str:
            try:
                return importlib.metadata.version(pkg)
            except importlib.metadata.PackageNotFoundError:
                return "unknown"

        # a learner's own params (its model's, plus how it learns), else its model's
        pol_params = getattr(pol, "params", None)
        if pol_params is None:
            pol_params = getattr(getattr(pol, "policy", None), "params", None)
        manifest = {
            "writer": "simulators.hcp",
            "hcps": self.population.n,
            "days": days,
            "start": self.start.isoformat(),
            "seed": self.seed,
            "policy": pol.name,
            "model_version": pol.model_version,
            "epsilon": epsilon,
            "policy_params": pol_params,
            "catalog_version": self.catalog.version,
            "reward_definition": self.reward_definition.id,
            "world_params": self.config.params,
            "requesters": [asdict(r) for r in REQUESTERS],
            "rep_capacity_per_day": self.rep_capacity,
            "email_cap_per_day": self.email_cap,
            "versions": {
                "nba": version("nba"),
                "numpy": np.__version__,
                "pyarrow": pa.__version__,
                "python": platform.python_version(),
            },
            "summary": {k: v for k, v in summary.to_dict().items() if k not in ("out",)},
            **horizon,
        }
        if self.slate_size > 1:
            manifest["slates"] = {
                "slate_size": self.slate_size,
                "slot_attention": self.slot_attention,
            }
        if self.rules is not None:
            manifest["contact_rules"] = {
                "name": self.rules.name,
                "version": self.rules.version,
                "source": self.rules.source,
                "holdout_share": self.rules.holdout_share,
                "holdout_baseline": HOLDOUT_BASELINE,
            }
        if self.journeys is not None:
            manifest["journeys"] = {
                "name": self.journeys.name,
                "version": self.journeys.version,
                "source": self.journeys.source,
            }
        text = json.dumps(manifest, sort_keys=True, indent=1, default=str)
        tmp = out / ".manifest.json.tmp"
        tmp.write_text(text + "\n", encoding="utf-8")
        tmp.replace(out / "manifest.json")

    def _summary(self, pol: BatchPolicy, days: int, out: Path | None) -> Summary:
        st = self._stats
        types = self.response.outcome_types
        by_channel: dict[str, dict[str, float]] = {}
        code = {t: i for i, t in enumerate(types)}
        for c, ch in enumerate(self.channels):
            nd = int(st.decisions_by_channel[c])
            if nd == 0:
                continue
            row: dict[str, float] = {"decisions": float(nd)}
            counts = st.events[c]
            if ch == "email":
                delivered = counts[code["delivered"]]
                opened = counts[code["opened"]]
                row["delivery_rate"] = delivered / nd
                row["open_rate"] = opened / delivered if delivered else 0.0
                row["click_rate"] = counts[code["clicked"]] / delivered if delivered else 0.0
                row["click_to_open"] = counts[code["clicked"]] / opened if opened else 0.0
                row["unsubscribe_rate"] = (
                    counts[code["unsubscribed"]] / delivered if delivered else 0.0
                )
            else:
                model = self.response.models[c]
                for t in (model.primary, model.secondary):
                    if t is not None:
                        row[f"{t}_rate"] = counts[code[t]] / nd
            by_channel[ch] = row
        unsub = int(st.events[:, code["unsubscribed"]].sum()) if "unsubscribed" in code else 0
        return Summary(
            policy=pol.name,
            hcps=self.population.n,
            days=days,
            seed=self.seed,
            decisions=st.decisions,
            skipped=st.skipped,
            mean_eligible=st.eligible / st.decisions if st.decisions else 0.0,
            outcomes=int(st.events.sum()),
            late_outcomes=st.late,
            unsubscribes=unsub,
            reward_mean=st.reward / st.decisions if st.decisions else 0.0,
            expected_reward_mean=st.truth / st.decisions if st.decisions else 0.0,
            reward_definition=self.reward_definition.id,
            by_channel=by_channel,
            by_requester=dict(st.by_requester),
            no_see_share=float(self.population.no_see.mean()),
            out=None if out is None else str(out),
            rules=None if self.rules is None else self.rules.version,
            suppressed_by_rule=self._stats.by_rule(self._stats.supp_counts, self._rule_names_t),
            skipped_by_rule=self._stats.by_rule(self._stats.skip_counts, self._rule_names_t),
            holdout_decisions=st.holdout,
            pulls_by_kind={
                k: int(c)
                for k, c in zip(TOUCH_KINDS, self._pull_counts, strict=True)
                if k != "contact"
            },
            visit_requests=None
            if self.rng_events is None
            else {
                "requests": self.visit_requests,
                "served": self.visit_requests_served,
                "triggers": self.triggers,
            },
            journeys=None
            if self.journeys is None
            else {
                "version": self.journeys.version,
                "decisions_by_step": dict(sorted(self._journey_counts.items())),
            },
        )

    @property
    def _rule_names_t(self) -> tuple[str, ...]:
        if self.rules is None:
            return ()
        extra = self.journeys.rule_names if self.journeys is not None else ()
        return self.rules.rule_names + extra


class _Stats:
    def __init__(self, n_channels: int, n_types: int) -> None:
        self.decisions = 0
        self.skipped = 0
        self.eligible = 0
        self.late = 0
        self.reward = 0.0
        self.truth = 0.0
        self.decisions_by_channel = np.zeros(n_channels, dtype=np.int64)
        self.events = np.zeros((n_channels, n_types), dtype=np.int64)
        self.by_requester: dict[str, int] = defaultdict(int)
        self.supp_counts: I64 | None = None
        self.holdout = 0
        self.skip_counts: I64 | None = None

    def add_suppressed(
        self, rule: npt.NDArray[np.int16], skipped: npt.NDArray[np.bool_], n_rules: int
    ) -> None:
        """Count removed actions per rule (``rule`` shape (b, n_actions), -1 = kept) and,
        for the ``skipped`` decisions (shape (b,)), each rule that removed any action."""
        if self.supp_counts is None or self.skip_counts is None:
            self.supp_counts = np.zeros(n_rules, dtype=np.int64)
            self.skip_counts = np.zeros(n_rules, dtype=np.int64)
        r = rule[rule >= 0].astype(np.int64)
        self.supp_counts += np.bincount(r, minlength=n_rules)
        if skipped.any():
            rs = rule[skipped]
            hit = np.zeros((rs.shape[0], n_rules + 1), dtype=bool)
            hit[np.arange(rs.shape[0])[:, None], rs.astype(np.int64) + 1] = True
            self.skip_counts += hit[:, 1:].sum(axis=0)

    @staticmethod
    def by_rule(counts: I64 | None, names: tuple[str, ...]) -> dict[str, int]:
        if counts is None:
            return {}
        return {name: int(c) for name, c in zip(names, counts, strict=True) if c}

    def add(
        self,
        requester: str,
        n: int,
        m: int,
        ch: I64,
        code: I64,
        entry: I64,
        in_window: npt.NDArray[np.bool_],
        reward: F64,
        truth: F64,
    ) -> None:
        self.decisions += n
        self.eligible += m
        self.by_requester[requester] += n
        self.decisions_by_channel += np.bincount(ch, minlength=self.decisions_by_channel.shape[0])
        flat = ch[entry] * self.events.shape[1] + code
        self.events += np.bincount(flat, minlength=self.events.size).reshape(self.events.shape)
        self.late += int((~in_window).sum())
        self.reward += float(reward.sum())
        self.truth += float(truth.sum())


def _load_catalog(catalog: Catalog | str | Path | None) -> Catalog:
    if catalog is None or isinstance(catalog, Catalog):
        return catalog or Catalog.default()
    return Catalog.load(catalog)


def _load_reward(rd: RewardDefinition | str | Path | None) -> RewardDefinition:
    if rd is None or isinstance(rd, RewardDefinition):
        return rd or RewardDefinition.default()
    return RewardDefinition.load(rd)


def _load_rules(rules: ContactPolicy | str | Path | None) -> ContactPolicy | None:
    if rules is None or isinstance(rules, ContactPolicy):
        return rules
    if str(rules) == "default":
        return ContactPolicy.default()
    return ContactPolicy.load(rules)


def simulate(
    hcps: int,
    days: int,
    policy: str | BatchPolicy = "campaign",
    seed: int = 0,
    out: str | Path | None = None,
    start: date = DEFAULT_START,
    epsilon: float | None = None,
    catalog: Catalog | str | Path | None = None,
    reward_definition: RewardDefinition | str | Path | None = None,
    config: WorldConfig | None = None,
    progress: bool = False,
    rules: ContactPolicy | str | Path | None = None,
    horizon_cut: bool = False,
    slate_size: int = 1,
    slot_attention: float = 0.5,
    journeys: JourneySet | None = None,
) -> Summary:
    """Build a world and run it: the Python API behind ``nba simulate``.

    Parameters
    ----------
    hcps, days : int
    policy : {"uniform", "campaign", "segment", "oracle"} or BatchPolicy
    seed : int
    out : path, optional
        Where to write the event log, catalog snapshot, population and manifest.
    start : date
    epsilon : float, optional
        Exploration of the named policy (defaults: campaign/segment 0.1, oracle 0).
    catalog, reward_definition : object or path, optional
    config : WorldConfig, optional
    progress : bool
    rules : ContactPolicy, path or "default", optional
        Contact rules to apply (``"default"``: ``nba/data/rules.toml``); none by default.
    horizon_cut : bool
        Withhold outcomes after the last simulated day (see :meth:`World.run`).
    slate_size, slot_attention
        Suggestions per decision and the attention decay per slot (see
        :class:`World`).
    journeys : JourneySet, optional
        Journeys applied after ``rules`` (see :class:`World`).

    Returns
    -------
    Summary
    """
    if epsilon is not None and not (0.0 <= epsilon <= 1.0):
        raise SimulationError(f"epsilon must be in [0, 1], got {epsilon!r}")
    if isinstance(policy, str) and policy not in WORLD_POLICIES:
        raise SimulationError(
            f"unknown policy {policy!r}; expected one of {', '.join(WORLD_POLICIES)}"
        )
    world = World(
        hcps,
        catalog=_load_catalog(catalog),
        config=config,
        reward_definition=_load_reward(reward_definition),
        seed=seed,
        start=start,
        rules=_load_rules(rules),
        slate_size=slate_size,
        slot_attention=slot_attention,
        journeys=journeys,
    )
    return world.run(
        days, policy=policy, out=out, epsilon=epsilon, progress=progress, horizon_cut=horizon_cut
    )


__all__ = [
    "DEFAULT_START",
    "REQUESTERS",
    "Executed",
    "Requester",
    "SimulationError",
    "SimulatorConfigError",
    "Summary",
    "World",
    "simulate",
]
