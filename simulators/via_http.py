"""Drive a running decision service with the simulated world (``nba simulate --via URL``).

The world plays every party around the service, over HTTP only:

- the **CRM**: on the first day it imports the whole population
  (``POST /v1/hcps:import``, Parquet); afterwards, once a day, it upserts the
  profiles that changed (adoption stage moved, email consent withdrawn after an
  unsubscribe) with ``PUT /v1/hcps/{id}``;
- the **email platform**: every weekday, for the HCPs the world's email
  requester finds due, one ``POST /v1/decisions:batch`` (``channels=["email"]``);
  it sends the chosen email and reports what the HCP did (delivered, opened,
  clicked, unsubscribed) with ``POST /v1/events/{id}/outcomes`` (or, with
  ``outcomes_batch``, the reports due at the same simulated time in
  ``POST /v1/outcomes:batch`` calls, as an email platform's event webhook does:
  the service stores each item as the single route would);
- the **rep app**: for the HCPs the reps can see that day (the world's rep
  requester, its capacity and gaps), one ``POST /v1/decisions`` each
  (``channels=["rep_visit", "remote_call"]``, ``k=3``); the rep accepts the chosen
  suggestion (feedback ``accepted``) and holds it, or dismisses it (feedback
  ``dismissed``, reason ``not_relevant``) and sometimes visits anyway with a
  topic of their own choosing among the other suggestions -- a touch outside
  nba, reported with ``POST /v1/touches``;
- **other systems**: now and then an email from another system reaches an HCP
  (``POST /v1/touches``, origin ``external``);
- the **CLM, email platform, portal and webinar systems** report what the HCPs
  pulled (``POST /v1/touches`` with ``kind`` ``detail_pull``, ``email_click``,
  ``portal_view`` or ``webinar_question``, and their ``topics``,
  ``content_ids`` and ``dwell_s``): the pulls the world's own pull model
  draws (docs/simulator.md, "Pull signals") from every action carried out --
  chosen, a rep's own visit, another system's email -- and the portal views
  it draws once a day after the requesters, as ``nba simulate`` does. Each
  is the row the in-process run would log (``World.touches_table``), posted
  once simulated time has passed its ``ts``. The world states no
  preferences (its HCPs tell no rep what they want), so the driver posts no
  stated preferences.

What an HCP does with an action comes from the world's own response model and
state (fatigue, repeats, knowledge, stage, unsubscribes), exactly as in
``nba simulate``; only the choice of action comes from the service. Every
outcome is posted with ``ts`` = decision time + the simulated delay, and only
once simulated time has passed it, so the service never sees the future.

Time: the service must accept the simulated decision time (``as_of``), which it
does only when started with ``NBA_ALLOW_CLIENT_TIME=true``; the driver checks
this before its first call and says so if not.

Randomness: the world and the driver's own draws (decision times, rep
acceptance, external touches) are seeded; the service samples its actions from
its own event ids, so two runs against two fresh services make the same calls
only until the first choice differs.

>>> rd = RepBehaviour(accept_prob=0.8, own_visit_prob=0.5)
>>> rd.accept_prob
0.8
>>> RepBehaviour(accept_prob=1.5)
Traceback (most recent call last):
...
simulators.via_http.ViaError: RepBehaviour: accept_prob must be in [0, 1], got 1.5
"""

from __future__ import annotations

import heapq
import io
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from nba.catalog import Catalog
from nba.domain import ValidationError
from simulators.hcp.config import WorldConfig
from simulators.hcp.pulls import Touches
from simulators.hcp.world import HOUR_US, REQUESTERS, Requester, World

I64 = npt.NDArray[np.int64]

EMAIL_CHANNELS: tuple[str, ...] = ("email",)
REP_CHANNELS: tuple[str, ...] = ("rep_visit", "remote_call")
REP_K = 3
#: HCP responses are reported by the system that saw them
RESPONSE_SOURCE = "sim"
DISMISS_REASON = "not_relevant"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class ViaError(ValidationError):
    """The driver cannot go on: a bad parameter or an answer the service should not
    give. The message names the call and what was wrong."""


def _unit(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ViaError(f"RepBehaviour: {name} must be in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RepBehaviour:
    """How the simulated reps and other systems act around the service.

    Parameters
    ----------
    accept_prob : float
        Chance a rep accepts (and holds) the chosen suggestion.
    own_visit_prob : float
        After a dismissal, chance the rep still visits with another of the
        suggestions (a touch outside nba).
    external_email_prob : float
        Chance, per email-consented HCP and weekday, that another system emails them.
    """

    accept_prob: float = 0.8
    own_visit_prob: float = 0.5
    external_email_prob: float = 0.01

    def __post_init__(self) -> None:
        for name in ("accept_prob", "own_visit_prob", "external_email_prob"):
            _unit(name, getattr(self, name))


@dataclass(frozen=True)
class Served:
    """One decision the service acknowledged (stored) and the driver acted on.

    ``probability`` is the served probability of the chosen action (suggestion 1).
    """

    event_id: str
    hcp_id: str
    requester: str
    ts: datetime
    chosen_action_id: str
    probability: float
    model_version: str


@dataclass
class ViaSummary:
    """What a driven run did (what ``nba simulate --via`` prints)."""

    url: str
    hcps: int
    days: int
    seed: int
    decisions: int = 0
    by_requester: dict[str, int] = field(default_factory=dict)
    blocked: int = 0
    outcomes_posted: int = 0
    outcomes_stored: int = 0
    late_outcomes: int = 0
    feedback_posted: int = 0
    touches_posted: int = 0
    pulls_posted: int = 0
    profiles_upserted: int = 0
    requests: int = 0
    model_versions: list[str] = field(default_factory=list)
    seconds: float = 0.0
    executed: int = 0
    expected_reward_mean: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        by_req = ", ".join(f"{k} {v}" for k, v in sorted(self.by_requester.items())) or "none"
        return "\n".join(
            [
                f"via {self.url}: {self.hcps} HCPs x {self.days} days, seed {self.seed}",
                f"decisions stored by the service {self.decisions} ({by_req}); "
                f"blocked by its contact policy {self.blocked}",
                f"outcomes posted {self.outcomes_posted} (newly stored {self.outcomes_stored}, "
                f"late {self.late_outcomes}); rep feedback {self.feedback_posted}; "
                f"external touches {self.touches_posted}; pull signals {self.pulls_posted}; "
                f"profile upserts {self.profiles_upserted}",
                f"ground truth: mean expected reward {self.expected_reward_mean:.4f} over the "
                f"{self.executed} chosen actions carried out",
                f"model versions: {', '.join(self.model_versions) or 'none'}; "
                f"{self.requests} HTTP requests in {self.seconds:.1f} s",
            ]
        )


def _iso(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / 1e6, UTC).isoformat().replace("+00:00", "Z")


def _day_us(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * 1_000_000


class ServiceClient:
    """The HTTP calls the driver makes, with errors that name the call.

    Parameters
    ----------
    url : str
        Base URL of the service, e.g. ``http://127.0.0.1:8000``.
    api_key : str, optional
        Sent as ``Authorization: Bearer``; needs the ``decide`` and ``report`` scopes.
    timeout : float
        Seconds per request.
    http : httpx.Client, optional
        A client to send the requests with instead of a new one (e.g. FastAPI's
        ``TestClient`` for an in-process app); its base URL is used as is.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ViaError(f"--via: {url!r} is not an http(s) URL")
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        if http is None:
            http = httpx.Client(base_url=self.url, timeout=timeout)
        http.headers.update(headers)
        self._http = http
        self.requests = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        ok: tuple[int, ...] = (200, 201),
        **kwargs: Any,
    ) -> tuple[int, Any]:
        """One request; (status, JSON body); any other status raises :class:`ViaError`."""
        with self._lock:
            self.requests += 1
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ViaError(f"{method} {self.url}{path}: {type(exc).__name__}: {exc}") from None
        if r.status_code not in ok:
            try:
                body = r.json()
                detail = f"{body.get('code', '?')}: {body.get('message', r.text)}"
            except ValueError:
                detail = r.text[:300]
            hint = ""
            if r.status_code in (401, 403):
                hint = " (pass --api-key or NBA_API_KEY: a key with the decide and report scopes)"
            raise ViaError(f"{method} {path}: HTTP {r.status_code} {detail}{hint}")
        try:
            return r.status_code, r.json()
        except ValueError:
            raise ViaError(f"{method} {path}: the answer is not JSON") from None


@dataclass(order=True)
class _Post:
    """A report waiting until simulated time reaches ``ts_us``."""

    ts_us: int
    seq: int
    path: str = field(compare=False)
    body: dict[str, Any] = field(compare=False)
    kind: str = field(compare=False)


class HttpDriver:
    """Runs a :class:`~simulators.hcp.world.World` against a decision service.

    Parameters
    ----------
    world : World
        A fresh world (not run yet); its catalog must be the service's.
    client : ServiceClient
    seed : int
        Seed of the driver's own draws (decision times, reps, external touches).
    reps : RepBehaviour, optional
    batch_size : int
        HCPs per ``/v1/decisions:batch`` call.
    concurrency : int
        Reports (outcomes, feedback, touches) due at the same point of simulated
        time are posted by this many threads; the reports of one event stay in
        order. 1 posts everything in time order.
    on_day_end : callable, optional
        ``on_day_end(day_index, boundary)`` is called after each simulated day,
        once every report due before ``boundary`` (midnight UTC starting the
        next day) was posted: e.g. to run a retraining cycle at the simulated
        day boundary, with the simulated clock as its horizon.
    outcomes_batch : int, optional
        When set, the outcomes and rep feedback due at the same point of simulated
        time go out in ``POST /v1/outcomes:batch`` calls of at most this many
        items (in time order, so the reports of one event stay in order) instead
        of one ``POST /v1/events/{id}/outcomes`` each: what the service stores is
        the same, with far fewer requests. At most the service's
        ``NBA_MAX_OUTCOME_BATCH`` (default 1,000). Touches are posted one by one
        either way.
    """

    def __init__(
        self,
        world: World,
        client: ServiceClient,
        seed: int = 0,
        reps: RepBehaviour | None = None,
        batch_size: int = 1000,
        concurrency: int = 1,
        on_day_end: Callable[[int, datetime], None] | None = None,
        outcomes_batch: int | None = None,
    ) -> None:
        checked = [("batch_size", batch_size), ("concurrency", concurrency)]
        if outcomes_batch is not None:
            checked.append(("outcomes_batch", outcomes_batch))
        for name, v in checked:
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ViaError(f"{name} must be a positive integer, got {v!r}")
        self.concurrency = concurrency
        self.outcomes_batch = outcomes_batch
        self.on_day_end = on_day_end
        self._executor: ThreadPoolExecutor | None = None
        self.world = world
        self.client = client
        self.seed = seed
        self.reps = reps or RepBehaviour()
        self.batch_size = batch_size
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED_F00D]))
        cat = world.catalog
        self._action_index = cat.action_index
        self._hcp_index = {str(h): i for i, h in enumerate(world.population.hcp_ids)}
        types = world.response.outcome_types
        self._types = list(types)
        self._email_actions = np.flatnonzero(
            np.array([a.channel == "email" for a in cat.actions])
        ).astype(np.int64)
        self._queue: list[_Post] = []
        self._seq = 0
        self._synced: npt.NDArray[np.object_] | None = None
        self.served: list[Served] = []
        #: event id -> the world's exact expected reward of the executed chosen action
        self.truth: dict[str, float] = {}

    # ------------------------------------------------------------------ run
    def run(self, days: int, progress: bool = False) -> ViaSummary:
        """Simulate ``days`` days against the service.

        Returns
        -------
        ViaSummary
        """
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise ViaError(f"days must be a positive integer, got {days!r}")
        w = self.world
        t0 = time.perf_counter()
        summary = ViaSummary(self.client.url, w.population.n, days, self.seed)
        self._summary = summary
        by_req: dict[str, int] = defaultdict(int)
        self._by_req = by_req
        self._versions: dict[str, None] = {}
        try:
            self._check_service()
            self._run_days(days, progress)
            self._deliver(until_us=None)  # what happens after the last day is still reported
        finally:
            if self._executor is not None:
                self._executor.shutdown()
                self._executor = None
        summary.by_requester = dict(by_req)
        summary.model_versions = list(self._versions)
        summary.requests = self.client.requests
        summary.executed = len(self.truth)
        summary.expected_reward_mean = (
            float(np.mean(list(self.truth.values()))) if self.truth else 0.0
        )
        summary.seconds = time.perf_counter() - t0
        return summary

    def _run_days(self, days: int, progress: bool) -> None:
        w = self.world
        requesters = {r.name: r for r in REQUESTERS}
        email_req, rep_req = requesters["email_platform"], requesters["rep_app"]
        bar = tqdm(
            range(days), desc="simulate via", unit="day", file=sys.stderr, disable=not progress
        )
        for d in bar:
            if d > 0:
                w.next_day(d)  # the world's own day change: decay, effects, unsubscribes
            the_day = w.start + timedelta(days=d)
            self._sync_profiles()
            email_at = _day_us(the_day) + int(email_req.hour * HOUR_US)
            self._deliver(until_us=email_at)
            hcps = w.due(email_req, d, the_day.weekday())
            if hcps.size:
                self._email_run(hcps, d, email_at)
            rep_hcps = w.due(rep_req, d, the_day.weekday())
            if rep_hcps.size:
                self._rep_run(rep_hcps, d, the_day, rep_req)
            if the_day.weekday() < 5:
                self._external_emails(d, the_day)
            # the HCPs' own portal visits, drawn after the requesters as in World.run
            self._pulls(w.portal_views(d))
            if self.on_day_end is not None:
                boundary = the_day + timedelta(days=1)
                self._deliver(until_us=_day_us(boundary))
                at = datetime(boundary.year, boundary.month, boundary.day, tzinfo=UTC)
                self.on_day_end(d, at)
            bar.set_postfix(decisions=self._summary.decisions, refresh=False)

    # ------------------------------------------------------------- service
    def _check_service(self) -> None:
        """Import the population, and make sure the service takes simulated time."""
        w = self.world
        buf = io.BytesIO()
        pq.write_table(w.population.to_table(), buf)
        _, body = self.client.call(
            "POST",
            "/v1/hcps:import",
            files={"file": ("population.parquet", buf.getvalue(), "application/octet-stream")},
        )
        if body.get("imported") != w.population.n:
            raise ViaError(
                f"POST /v1/hcps:import: imported {body.get('imported')} of {w.population.n}"
            )
        self._synced = w.profile_json.copy()
        self._summary.profiles_upserted += w.population.n
        # a probe decision in the past the service must refuse unless it allows client time
        probe = {
            "hcp_id": str(w.population.hcp_ids[0]),
            "channels": list(EMAIL_CHANNELS),
            "as_of": "2000-01-01T00:00:00Z",
            "exclude": [a.action_id for a in w.catalog.actions if a.channel == "email"],
        }
        status, answer = self.client.call("POST", "/v1/decisions", ok=(200, 201, 422), json=probe)
        if status == 422:
            raise ViaError(
                f"{self.client.url} does not accept simulated time ({answer.get('message')}); "
                "start it with NBA_ALLOW_CLIENT_TIME=true to drive it with nba simulate --via"
            )
        if status == 201:  # cannot happen: every email action was excluded
            raise ViaError("POST /v1/decisions: the probe decision was stored; expected none")

    def _sync_profiles(self) -> None:
        """The CRM's nightly sync: upsert the profiles that changed since the last one."""
        w = self.world
        assert self._synced is not None
        changed = np.flatnonzero(w.profile_json != self._synced)
        for i in changed.tolist():
            prof = w.population.profile(i).to_dict()
            hid = prof.pop("hcp_id")
            self.client.call("PUT", f"/v1/hcps/{hid}", json=prof)
        if changed.size:
            self._synced[changed] = w.profile_json[changed]
            self._summary.profiles_upserted += int(changed.size)

    def _served(self, item: Mapping[str, Any], requester: str, ts_us: int, version: str) -> Served:
        eid = item.get("event_id")
        chosen = item.get("chosen_action_id")
        sugg = item.get("suggestions") or []
        where = f"decision for {item.get('hcp_id')!r}"
        if not eid or not chosen or not sugg or sugg[0].get("action_id") != chosen:
            raise ViaError(f"{where}: the chosen action is not suggestion 1 ({item!r})")
        if chosen not in self._action_index:
            raise ViaError(
                f"{where}: action {chosen!r} is not in the world's catalog "
                f"(version {self.world.catalog.version}); use the service's catalog (--catalog)"
            )
        s = Served(
            event_id=str(eid),
            hcp_id=str(item["hcp_id"]),
            requester=requester,
            ts=datetime.fromtimestamp(ts_us / 1e6, UTC),
            chosen_action_id=str(chosen),
            probability=float(sugg[0]["probability"]),
            model_version=version,
        )
        self.served.append(s)
        self._versions.setdefault(version, None)
        self._summary.decisions += 1
        self._by_req[requester] += 1
        return s

    # ------------------------------------------------------------ requesters
    def _email_run(self, hcps: I64, d: int, at_us: int) -> None:
        w = self.world
        ids = w.population.hcp_ids
        acted: list[tuple[int, int, str]] = []
        for lo in range(0, hcps.size, self.batch_size):
            part = hcps[lo : lo + self.batch_size]
            _, body = self.client.call(
                "POST",
                "/v1/decisions:batch",
                json={
                    "hcp_ids": [str(ids[i]) for i in part],
                    "channels": list(EMAIL_CHANNELS),
                    "context": {"requester": "email_platform"},
                    "as_of": _iso(at_us),
                },
            )
            if body.get("unknown_hcp_ids"):
                raise ViaError(
                    f"POST /v1/decisions:batch: the service does not know "
                    f"{body['unknown_hcp_ids'][:3]} (was the population imported?)"
                )
            for item in body["decisions"]:
                if item.get("event_id") is None:
                    self._summary.blocked += 1
                    continue
                s = self._served(item, "email_platform", at_us, str(body["model_version"]))
                acted.append(
                    (self._hcp_index[s.hcp_id], self._action_index[s.chosen_action_id], s.event_id)
                )
        if acted:
            h, a, e = zip(*acted, strict=True)
            ts = np.full(len(acted), at_us, dtype=np.int64)
            self._execute(np.array(h), np.array(a), ts, d, list(e))

    def _rep_run(self, hcps: I64, d: int, the_day: date, req: Requester) -> None:
        w = self.world
        start = _day_us(the_day) + int(req.hour * HOUR_US)
        spread = int(req.spread_hours * HOUR_US)
        ts_all = np.sort(start + self.rng.integers(0, spread // 1000, size=hcps.size) * 1000)
        order = self.rng.permutation(hcps.size)  # reps see their HCPs in no fixed order
        done_h: list[int] = []
        done_a: list[int] = []
        done_ts: list[int] = []
        done_e: list[str | None] = []
        for slot, j in enumerate(order.tolist()):
            i = int(hcps[j])
            ts_us = int(ts_all[slot])
            self._deliver(until_us=ts_us)
            status, body = self.client.call(
                "POST",
                "/v1/decisions",
                json={
                    "hcp_id": str(w.population.hcp_ids[i]),
                    "channels": list(REP_CHANNELS),
                    "k": REP_K,
                    "context": {"requester": "rep_app"},
                    "as_of": _iso(ts_us),
                },
            )
            if status == 200 or body.get("event_id") is None:
                self._summary.blocked += 1
                continue
            s = self._served(
                {**body, "hcp_id": str(w.population.hcp_ids[i])},
                "rep_app",
                ts_us,
                str(body["model_version"]),
            )
            fb_ts = ts_us + int(self.rng.integers(60, 7200)) * 1_000_000
            if self.rng.random() < self.reps.accept_prob:
                self._report(fb_ts, s.event_id, {"type": "accepted"}, "feedback")
                done_h.append(i)
                done_a.append(self._action_index[s.chosen_action_id])
                done_ts.append(ts_us)
                done_e.append(s.event_id)
                continue
            self._report(
                fb_ts,
                s.event_id,
                {"type": "dismissed", "reason_code": DISMISS_REASON},
                "feedback",
            )
            others = [x["action_id"] for x in body["suggestions"][1:]]
            if others and self.rng.random() < self.reps.own_visit_prob:
                own = others[int(self.rng.integers(len(others)))]
                a = self._action_index[own]
                visit_ts = fb_ts
                done_h.append(i)
                done_a.append(a)
                done_ts.append(visit_ts)
                done_e.append(None)
                self._touch(i, a, visit_ts)
        if done_h:
            self._execute(
                np.array(done_h, dtype=np.int64),
                np.array(done_a, dtype=np.int64),
                np.array(done_ts, dtype=np.int64),
                d,
                done_e,
            )

    def _external_emails(self, d: int, the_day: date) -> None:
        """Emails from systems other than nba: the world feels them, the service is told."""
        w = self.world
        pop = w.population
        e = w.chan_pos.get("email")
        if e is None or self.reps.external_email_prob == 0.0 or self._email_actions.size == 0:
            return
        hit = np.flatnonzero(
            pop.consent[:, e] & (self.rng.random(pop.n) < self.reps.external_email_prob)
        )
        if hit.size == 0:
            return
        approved = w.approved_on(the_day)[pop.market[hit]][:, self._email_actions]
        keep = approved.any(axis=1)
        hit, approved = hit[keep], approved[keep]
        if hit.size == 0:
            return
        # a random approved email for each: first True after a random rotation
        k = self._email_actions.size
        shift = self.rng.integers(0, k, size=hit.size)
        rolled = np.array([np.roll(row, -s) for row, s in zip(approved, shift, strict=True)])
        pick = (np.argmax(rolled, axis=1) + shift) % k
        action = self._email_actions[pick]
        ts = _day_us(the_day) + self.rng.integers(9 * 3600, 17 * 3600, size=hit.size) * 1_000_000
        for i, a, t in zip(hit.tolist(), action.tolist(), ts.tolist(), strict=True):
            self._touch(i, a, t)
        self._execute(hit.astype(np.int64), action, ts.astype(np.int64), d, [None] * hit.size)

    # ---------------------------------------------------------- world state
    def _execute(
        self, hcp: I64, action: I64, ts_us: I64, d: int, event_ids: list[str | None]
    ) -> None:
        """Carry out catalog actions (one per HCP, shape (n,)) at ``ts_us`` with the
        world's own :meth:`~simulators.hcp.world.World.execute` (response model and
        state updates), and queue the outcomes of actions that came from a decision
        (``event_ids[k]`` not None) for reporting."""
        w = self.world
        ex = w.execute(hcp, action, ts_us, d)
        self._pulls(ex.pulls)
        truth = w.response.expected_reward(ex.probs)
        for k, eid in enumerate(event_ids):
            if eid is not None:
                self.truth[eid] = float(truth[k])
        sampled = ex.sampled
        for k, code, t in zip(
            sampled.entry.tolist(), sampled.type_code.tolist(), ex.ts_us.tolist(), strict=True
        ):
            eid = event_ids[k]
            if eid is not None:
                body = {"type": self._types[code], "source_id": RESPONSE_SOURCE}
                self._report(int(t), eid, body, "outcome")

    # --------------------------------------------------------------- reports
    def _push(self, ts_us: int, path: str, body: dict[str, Any], kind: str) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Post(ts_us, self._seq, path, body, kind))

    def _report(self, ts_us: int, event_id: str, body: dict[str, Any], kind: str) -> None:
        self._push(ts_us, f"/v1/events/{event_id}/outcomes", {**body, "ts": _iso(ts_us)}, kind)

    def _touch(self, hcp: int, action: int, ts_us: int) -> None:
        a = self.world.catalog.actions[action]
        body = {
            "hcp_id": str(self.world.population.hcp_ids[hcp]),
            "channel": a.channel,
            "content_id": a.content_id,
            "ts": _iso(ts_us),
            "origin": "external",
        }
        self._push(ts_us, "/v1/touches", body, "touch")

    def _pulls(self, pulls: Touches) -> None:
        """Queue what the HCPs pulled, one ``POST /v1/touches`` each at its own time,
        with exactly the fields the in-process run logs for it."""
        if pulls.n == 0:
            return
        for row in self.world.touches_table(pulls).to_pylist():
            ts = row["ts"]
            body = {
                "hcp_id": row["hcp_id"],
                "channel": row["channel"],
                "content_id": row["content_id"],
                "ts": ts.isoformat().replace("+00:00", "Z"),
                "origin": row["origin"],
                "kind": row["kind"],
                "topics": row["topics"],
                "content_ids": row["content_ids"],
            }
            if row["dwell_s"] is not None:
                body["dwell_s"] = row["dwell_s"]
            self._push((ts - _EPOCH) // _US, "/v1/touches", body, "pull")

    def _deliver(self, until_us: int | None) -> None:
        """Post every queued report with ``ts < until_us`` (all when None), oldest first."""
        q = self._queue
        due: list[_Post] = []
        while q and (until_us is None or q[0].ts_us < until_us):
            due.append(heapq.heappop(q))
        if not due:
            return
        if self.outcomes_batch is not None:
            self._deliver_batched(due)
            return
        if self.concurrency == 1 or len(due) == 1:
            results = [self._post_group([p]) for p in due]
        else:
            # reports of one event stay in order in one task; events and touches are
            # independent of each other, so they go out in parallel
            groups: dict[str, list[_Post]] = {}
            for p in due:
                key = f"touch:{p.seq}" if p.kind in ("touch", "pull") else p.path
                groups.setdefault(key, []).append(p)
            pool = self._pool()
            results = list(pool.map(self._post_group, groups.values()))
        for res in results:
            self._count(res)

    def _deliver_batched(self, due: list[_Post]) -> None:
        """Post ``due`` (oldest first) with the outcomes and feedback in
        ``POST /v1/outcomes:batch`` calls, beside the touches (one call each)."""
        assert self.outcomes_batch is not None
        reports = [p for p in due if p.kind in ("outcome", "feedback")]
        touches = [p for p in due if p.kind not in ("outcome", "feedback")]
        # the batches one after the other (the reports of one event stay in order),
        # beside the touches
        tasks: list[tuple[Callable[[list[_Post]], list[tuple[_Post, Any]]], list[_Post]]] = []
        if reports:
            tasks.append((self._post_batches, reports))
        tasks += [(self._post_group, [p]) for p in touches]
        if self.concurrency == 1 or len(tasks) == 1:
            results = [post(posts) for post, posts in tasks]
        else:
            results = list(self._pool().map(lambda t: t[0](t[1]), tasks))
        for res in results:
            self._count(res)

    def _post_batches(self, posts: list[_Post]) -> list[tuple[_Post, Any]]:
        assert self.outcomes_batch is not None
        step = self.outcomes_batch
        return [
            r for lo in range(0, len(posts), step) for r in self._post_batch(posts[lo : lo + step])
        ]

    def _post_batch(self, posts: list[_Post]) -> list[tuple[_Post, Any]]:
        """One ``POST /v1/outcomes:batch``; each item's answer is the single route's
        (a refused item stops the run, naming it, as the single route's error would)."""
        items = []
        for p in posts:
            event_id = p.path.removeprefix("/v1/events/").removesuffix("/outcomes")
            items.append({"event_id": event_id, **p.body})
        _, body = self.client.call(
            "POST", "/v1/outcomes:batch", ok=(200,), json={"outcomes": items}
        )
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or len(results) != len(posts):
            raise ViaError(f"POST /v1/outcomes:batch: expected {len(posts)} results, got {body!r}")
        out: list[tuple[_Post, Any]] = []
        for p, r in zip(posts, results, strict=True):
            if r.get("status") == "error":
                err = r.get("error") or {}
                raise ViaError(
                    f"POST /v1/outcomes:batch: item {r.get('index')} (POST {p.path}): HTTP "
                    f"{err.get('status')} {err.get('code', '?')}: {err.get('message')}"
                )
            out.append((p, r.get("outcome") or {}))
        return out

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="via")
        return self._executor

    def _post_group(self, group: list[_Post]) -> list[tuple[_Post, Any]]:
        return [(p, self.client.call("POST", p.path, json=p.body)[1]) for p in group]

    def _count(self, results: list[tuple[_Post, Any]]) -> None:
        sm = self._summary
        for p, body in results:
            if p.kind == "touch":
                sm.touches_posted += 1
            elif p.kind == "pull":
                sm.pulls_posted += 1
            elif p.kind == "feedback":
                sm.feedback_posted += 1
            else:
                sm.outcomes_posted += 1
                sm.outcomes_stored += bool(body.get("stored"))
                sm.late_outcomes += bool(body.get("late"))

    # ---------------------------------------------------------------- record
    def served_table(self) -> pa.Table:
        """The acknowledged decisions as an Arrow table (one row per decision).

        ``expected_reward`` is the world's exact expected reward (the driver's
        reward definition, in its window) of the chosen action as it was carried
        out; null when it was not (a rep dismissed it).
        """
        rows = self.served
        return pa.table(
            {
                "event_id": pa.array([s.event_id for s in rows], pa.string()),
                "ts": pa.array([s.ts for s in rows], pa.timestamp("us", tz="UTC")),
                "hcp_id": pa.array([s.hcp_id for s in rows], pa.string()),
                "requester": pa.array([s.requester for s in rows], pa.string()),
                "chosen_action_id": pa.array([s.chosen_action_id for s in rows], pa.string()),
                "probability": pa.array([s.probability for s in rows], pa.float64()),
                "model_version": pa.array([s.model_version for s in rows], pa.string()),
                "expected_reward": pa.array(
                    [self.truth.get(s.event_id) for s in rows], pa.float64()
                ),
            }
        )


def drive(
    url: str,
    hcps: int,
    days: int,
    seed: int = 0,
    api_key: str | None = None,
    start: date | None = None,
    catalog: Catalog | str | Path | None = None,
    config: WorldConfig | None = None,
    reps: RepBehaviour | None = None,
    out: str | Path | None = None,
    progress: bool = False,
    http: httpx.Client | None = None,
    concurrency: int = 1,
    on_day_end: Callable[[int, datetime], None] | None = None,
    outcomes_batch: int | None = None,
) -> tuple[ViaSummary, HttpDriver]:
    """Build a world and drive the service at ``url`` with it: the Python API behind
    ``nba simulate --via``.

    Parameters
    ----------
    url : str
        Base URL of a running service (started with ``NBA_ALLOW_CLIENT_TIME=true``).
    hcps, days, seed : int
    api_key : str, optional
    start : date, optional
        First simulated day (default: the simulator's).
    catalog : Catalog or path, optional
        Must be the catalog the service serves.
    config : WorldConfig, optional
    reps : RepBehaviour, optional
    out : path, optional
        Where to write the driver's record: ``served.parquet`` (every acknowledged
        decision with the probability it was served with) and ``via_summary.json``.
    progress : bool
    concurrency : int
        Threads posting the reports due at the same simulated time (see :class:`HttpDriver`).
    http : httpx.Client, optional
        See :class:`ServiceClient` (the caller keeps ownership of it).
    on_day_end : callable, optional
        Called at each simulated day boundary (see :class:`HttpDriver`).
    outcomes_batch : int, optional
        Report outcomes and feedback in ``POST /v1/outcomes:batch`` calls of at
        most this many items (see :class:`HttpDriver`).

    Returns
    -------
    (ViaSummary, HttpDriver)
    """
    import json

    from simulators.hcp.world import DEFAULT_START

    if catalog is not None and not isinstance(catalog, Catalog):
        catalog = Catalog.load(catalog)
    world = World(
        hcps,
        catalog=catalog,
        config=config,
        seed=seed,
        start=start or DEFAULT_START,
    )
    outp = None if out is None else Path(out)
    if outp is not None and (outp / "served.parquet").exists():
        raise ViaError(f"{outp}: already holds served.parquet; use a new --out")
    client = ServiceClient(url, api_key=api_key, http=http)
    try:
        driver = HttpDriver(
            world,
            client,
            seed=seed,
            reps=reps,
            concurrency=concurrency,
            on_day_end=on_day_end,
            outcomes_batch=outcomes_batch,
        )
        summary = driver.run(days, progress=progress)
    finally:
        if http is None:
            client.close()
    if outp is not None:
        outp.mkdir(parents=True, exist_ok=True)
        pq.write_table(driver.served_table(), outp / "served.parquet")
        (outp / "via_summary.json").write_text(
            json.dumps(summary.to_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
    return summary, driver


__all__ = [
    "HttpDriver",
    "RepBehaviour",
    "Served",
    "ServiceClient",
    "ViaError",
    "ViaSummary",
    "drive",
]
