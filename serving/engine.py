"""The decision engine behind the routes: context from the store, contact policy,
policy, ranking, reasons, and the decision record that is stored.

Routes only parse and format; everything a decision does happens here, in this
order:

1. the HCP profile, recent touches, engagements and rep feedback come from the
   event store; the :class:`~nba.context.DecisionContext` is built from them and
   from the request's own features -- its JSON is what the decision logs;
2. the candidate actions are the catalog's actions on the requested channels,
   minus the caller's ``exclude`` list; the contact policy removes the rest of
   what may not be offered, each with its rule;
3. the serving policy (or, for HCPs in the global holdout, the baseline) gives
   a probability to every allowed action and samples one with randomness fixed
   by ``(seed, event_id)``; the logged propensity is that action's served
   probability;
4. the chosen action is suggestion 1; suggestions 2..``k`` are drawn without
   replacement from the same probabilities (:func:`nba.policies.base.sample_slate`)
   and logged in the decision's ``slate`` with their conditional probabilities
   (docs/DESIGN.md, "Decisions taken here", "Slates"); when reasons are
   asked for, they come from the context and the HCP's record (pulls from the
   touches read in step 1, responses to our actions, stated preferences), no two
   suggestions leading alike (:mod:`serving.reasons`);
5. the decision is written to the store (durable) before the caller gets it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import orjson

from nba.catalog import Catalog
from nba.contact import ContactPolicy
from nba.context import ContextJSON, DecisionContext, request_json
from nba.domain import (
    REP_FEEDBACK_TYPES,
    Action,
    Decision,
    HCPProfile,
    Outcome,
    SlateSlot,
    Suppression,
    Touch,
    ValidationError,
)
from nba.hcp_features import HCPFeatures
from nba.ids import EventIdSource, event_ids
from nba.journeys import JourneySet, JourneyState
from nba.policies.base import Policy, sample_slate
from nba.policies.registry import create
from nba.reward import RewardDefinition
from nba.triggers import OUTCOME_EVENTS, SAFETY_TOPIC, TriggerSet
from serving import heap, schemas
from serving.auth import pseudonym
from serving.commit import GroupCommitter
from serving.commit_outcomes import OutcomeCommitter
from serving.errors import ApiError, invalid, unknown_event, unknown_hcp
from serving.journeys import JourneysKeeper, journey_events
from serving.lifecycle import ModelManager, ServedModel, baseline_policy
from serving.metrics import ServiceMetrics
from serving.reasons import Evidence, reasons_for_list
from serving.rules import RulesKeeper
from serving.store import (
    DuplicateEventError,
    EventStore,
    HCPState,
    OutcomeTarget,
    OutcomeWrite,
    StoreError,
    UnknownEventError,
)
from serving.store_sql import Connection
from serving.store_triggers import ActiveSuppression, Fired, TriggerEvent, fire

log = logging.getLogger("nba.serving.engine")

RULE_EXCLUDED = "excluded_by_request"

#: outcomes that prove our suggestion reached the HCP: the first one records a touch
CONTACT_TYPES: frozenset[str] = frozenset(
    {
        "delivered",
        "opened",
        "clicked",
        "meeting_held",
        "call_held",
        "attended",
        "visited",
        "downloaded",
        "registered",
    }
)
_CONTACT_TYPES_SORTED = tuple(sorted(CONTACT_TYPES))
#: how many contact outcomes one action of a decision has (the first records a touch)
_CONTACTS_OF_ACTION = (
    "SELECT COUNT(*) FROM outcomes WHERE event_id=?"
    f" AND type IN ({','.join('?' * len(_CONTACT_TYPES_SORTED))}) AND COALESCE(action_id, ?)=?"
)
HOLDOUT_PREFIX = "holdout:"
FALLBACK_PREFIX = "fallback:"
NO_CONTACT = "no_contact"
#: what the global holdout may get (``Settings.holdout_policy``)
HOLDOUT_POLICIES: tuple[str, ...] = ("uniform", "campaign", NO_CONTACT)


@dataclass(frozen=True)
class _PendingOutcome:
    """One checked outcome waiting for its commit: the request, the write, and what
    its answer needs (``fired`` is filled by the write's hook when it is stored)."""

    req: schemas.OutcomeRequest
    write: OutcomeWrite
    is_feedback: bool
    late: bool
    fired: list[tuple[str, Fired] | None]


class Shown(NamedTuple):
    """One suggestion of a decision as its answer shows it: the fields of
    :class:`serving.schemas.Suggestion`, in that order, as plain values (a batch's
    answer is written from these without a model per suggestion)."""

    action_id: str
    content_id: str
    title: str
    topic: str
    channel: str
    probability: float
    reasons: list[str]
    slot: int
    slot_probability: float | None

    def model(self) -> schemas.Suggestion:
        """The suggestion's model, as the single decision's answer carries it."""
        return schemas.Suggestion(
            action_id=self.action_id,
            content_id=self.content_id,
            title=self.title,
            topic=self.topic,
            channel=self.channel,
            probability=self.probability,
            reasons=self.reasons,
            slot=self.slot,
            slot_probability=self.slot_probability,
        )


#: builds a :class:`Shown` from a tuple of its nine fields in order, in C (what
#: ``Shown._make`` does, without the call through Python of ``Shown(...)``)
_new_shown = tuple.__new__


@dataclass(frozen=True)
class Prepared:
    """One decision computed but not yet stored (``decision`` is None when blocked)."""

    hcp_id: str
    decision: Decision | None
    context: DecisionContext
    #: the suggestions in slot order (empty when blocked)
    shown: tuple[Shown, ...]
    suppressed: tuple[Suppression, ...]
    model_version: str
    policy: str
    #: the policy's expected score of the decision, ``sum_a p(a) * score(a)``, when the
    #: policy gives scores (None otherwise); it does not depend on the sampled action
    value: float | None = None
    #: a holdout HCP answered with no contact (``holdout_policy="no_contact"``)
    no_contact: bool = False
    rules_version: str = ""
    rules_market: str = ""
    #: the journey step that allowed the actions ("<journey>/<step>"), or None
    journey: str | None = None

    @property
    def suggestions(self) -> list[schemas.Suggestion]:
        """The suggestions' models (built on each access: the single routes ask once)."""
        return [s.model() for s in self.shown]


@dataclass(frozen=True)
class DecisionWork:
    """One decision request computed by :meth:`DecisionEngine.start_decision`, its
    answer built, nothing stored yet."""

    #: 201 when a decision is to be stored, 200 when nothing may be offered
    status: int
    response: schemas.DecisionResponse
    prepared: Prepared
    #: the request's ``defer_activation`` (how the decision is stored)
    deferred: bool
    now: datetime
    requester: str
    channels: tuple[str, ...]
    #: the request's own event id, if it gave one
    event_id: str | None

    @property
    def no_contact(self) -> bool:
        """A holdout HCP answered with no contact: that request is to be recorded."""
        return self.prepared.no_contact


class _BatchScope:
    """What the decisions of one batch share while :meth:`DecisionEngine.prepare`
    computes them one by one: the suppressions counted by rule, added to the
    metrics once for the batch (a labelled child looked up per decision cost more
    than the decision's count), and the text of the batch's one request mapping in
    each decision's logged context (``request_json(request)``, written once: made
    from the very mapping each decision's context copies, not looked up by value).
    """

    def __init__(self, request_text: str | None = None) -> None:
        self.suppressions: dict[str, int] = {}
        self.request_text = request_text

    def count(self, rule: str, n: int) -> None:
        self.suppressions[rule] = self.suppressions.get(rule, 0) + n


def _batch_item(pr: Prepared) -> dict[str, Any]:
    """The :class:`serving.schemas.BatchItem` of ``pr`` as plain values, its fields
    in the model's order (its suggestions' those of :class:`serving.schemas.Suggestion`)."""
    d = pr.decision
    return {
        "hcp_id": pr.hcp_id,
        "event_id": d.event_id if d is not None else None,
        "chosen_action_id": d.chosen_action_id if d is not None else None,
        "suggestions": [
            {
                "action_id": s[0],
                "content_id": s[1],
                "title": s[2],
                "topic": s[3],
                "channel": s[4],
                "probability": s[5],
                "reasons": s[6],
                "slot": s[7],
                "slot_probability": s[8],
            }
            for s in pr.shown
        ],
        "blocked_by": []
        if d is not None
        else ["holdout"]
        if pr.no_contact
        else sorted({s.rule for s in pr.suppressed}),
        "rules_version": pr.rules_version,
        "rules_market": pr.rules_market,
        "journey": pr.journey,
    }


def event_id_conflict(event_id: str) -> ApiError:
    """The 409 answer to a decision whose event id is already stored."""
    return ApiError(409, "event_id_conflict", f"event id {event_id!r} is already used")


class DecisionEngine:
    """Everything the routes call; holds the long-lived objects opened at start.

    Parameters
    ----------
    store : EventStore
    catalog : Catalog
    contact : ContactPolicy
        The rules when no :attr:`rules` keeper is attached (tests, benchmarks).
    models : ModelManager
    reward : RewardDefinition
    metrics : ServiceMetrics
    seed : int
        Sampling seed of the holdout baseline.
    holdout : {"uniform", "campaign", "no_contact"}
        What holdout HCPs get (``Settings.holdout_policy``).
    history_days : int
        How far back touches and outcomes are read for a decision.
    allow_client_time : bool
    features : HCPFeatures, optional
        Declared attributes and their featurize rules (default: the packaged
        config); decides which stored attributes a context carries.
    triggers : TriggerSet, optional
        Event-triggered journeys (default: none); ``webhook`` queues their
        notifications for the outgoing webhook.
    """

    def __init__(
        self,
        store: EventStore,
        catalog: Catalog,
        contact: ContactPolicy,
        models: ModelManager,
        reward: RewardDefinition,
        metrics: ServiceMetrics,
        seed: int = 0,
        history_days: int = 90,
        allow_client_time: bool = False,
        features: HCPFeatures | None = None,
        holdout: str = "uniform",
        triggers: TriggerSet | None = None,
        webhook: bool = False,
    ) -> None:
        if holdout not in HOLDOUT_POLICIES:
            raise ValueError(f"holdout: {holdout!r} is not one of {', '.join(HOLDOUT_POLICIES)}")
        self.holdout = holdout
        self.store = store
        self.triggers = triggers if triggers is not None else TriggerSet(())
        self.webhook = webhook
        self.features = features if features is not None else HCPFeatures.default()
        self.catalog = catalog
        self._contact = contact
        #: the rules in force, reloaded from the store when they change (see serving.rules)
        self.rules: RulesKeeper | None = None
        #: the journeys in force (serving.journeys); None or an empty set: no journeys
        self.journeys: JourneysKeeper | None = None
        self.models = models
        self.reward = reward
        self.metrics = metrics
        self.history_days = history_days
        self.allow_client_time = allow_client_time
        self.holdout_policy: Policy = (
            create("campaign", seed=seed, catalog=catalog)
            if holdout == "campaign"
            else baseline_policy(seed)
        )
        # a model that fails on a request falls back to the uniform baseline
        self.fallback_policy: Policy = baseline_policy(seed)
        # event ids need uniqueness across workers, not reproducibility
        self._rng = np.random.default_rng()
        self._ids = EventIdSource(self._rng)  # one id a request, drawn a block ahead
        self._rng_lock = threading.Lock()
        self._policy_lock = threading.Lock()
        self.committer: GroupCommitter | None = None
        self.outcome_committer: OutcomeCommitter | None = None
        self._topics_cache: tuple[str, dict[str, str]] | None = None
        self._candidates_cache: dict[tuple[str, tuple[str, ...]], tuple[Action, ...]] = {}
        #: the outcome counter's child per (type, late), made on first use
        self._outcome_counters: dict[tuple[str, bool], Any] = {}
        self._decision_counters: dict[str, Any] = {}
        #: the suppressions counter's child per rule, made on first use
        self._suppression_counters: dict[str, Any] = {}
        #: the logged context's JSON, the profile's and history's parts kept per object
        self._context_json = ContextJSON()

    @property
    def contact(self) -> ContactPolicy:
        """The contact rules in force (the store's version when a keeper is attached)."""
        return self.rules.current() if self.rules is not None else self._contact

    def store_decisions(self, decisions: list[Decision], deferred: bool) -> None:
        """Commit decisions (all or none) before returning; group-committed with other
        requests' decisions when a :class:`GroupCommitter` is attached.

        Raises
        ------
        DuplicateEventError
        """
        if self.committer is not None:
            self.committer.add_many(decisions, deferred)
        else:
            self.store.add_decisions(decisions, deferred=deferred)

    # ------------------------------------------------------------- helpers
    def decision_time(self, as_of: datetime | None) -> datetime:
        """The service's clock, or the request's ``as_of`` when client time is allowed."""
        if as_of is None:
            return datetime.now(UTC)
        if not self.allow_client_time:
            raise invalid(
                "as_of: client-supplied decision time is switched off "
                "(start the service with NBA_ALLOW_CLIENT_TIME=true to simulate or replay)"
            )
        return as_of.astimezone(UTC)

    def new_event_id(self, now: datetime) -> str:
        with self._rng_lock:
            return self._ids.new(now)

    def _topic_of(self) -> dict[str, str]:
        """Content id -> topic of the current catalog (cached per catalog version)."""
        cached = self._topics_cache
        if cached is None or cached[0] != self.catalog.version:
            cached = (self.catalog.version, {c: it.topic for c, it in self.catalog.by_id.items()})
            self._topics_cache = cached
        return cached[1]

    def _candidates(self, channels: tuple[str, ...]) -> tuple[Action, ...]:
        """The catalog's actions on ``channels``, in catalog order (cached per catalog
        version and channel set: every decision request asks for them)."""
        key = (self.catalog.version, channels)
        found = self._candidates_cache.get(key)
        if found is None:
            found = tuple(a for a in self.catalog.actions if a.channel in channels)
            if len(self._candidates_cache) >= 64:  # channel sets are few; stay bounded
                self._candidates_cache.clear()
            self._candidates_cache[key] = found
        return found

    def _channels(self, channels: Sequence[str] | None) -> tuple[str, ...]:
        if not channels:
            return tuple(self.catalog.channels)
        unknown = [c for c in channels if c not in self.catalog.channels]
        if unknown:
            known = ", ".join(self.catalog.channels)
            raise invalid(f"channels: unknown channel {unknown[0]!r}; known: {known}")
        return tuple(dict.fromkeys(channels))

    def _parse_action_ids(self, ids: Sequence[str], field: str) -> list[Action]:
        out = []
        for i, aid in enumerate(ids):
            try:
                out.append(Action.parse(aid))
            except ValidationError:
                raise invalid(
                    f"{field}[{i}]: {aid!r} is not an action id 'content@channel'"
                ) from None
        return out

    def build_context(
        self,
        hcp: HCPProfile,
        now: datetime,
        request: Mapping[str, Any],
        state: HCPState | None = None,
    ) -> DecisionContext:
        """The exact context the policy featurizes and the decision logs (from
        ``state`` when given: :meth:`serving.store.EventStore.hcp_state` of ``now``)."""
        day = now.date()
        if state is None:
            history = self.store.history(hcp.hcp_id, day, self.catalog)
            extras = self.store.context_extras(hcp.hcp_id, day)
        else:
            history, extras = state.history, state.extras
        attributes, topics, channels = extras if extras is not None else ({}, (), ())
        return DecisionContext(
            hcp=hcp,
            day=day,
            history=history,
            request=dict(request),
            stated_topics=topics,
            stated_channels=channels,
            attributes=self.features.context_attributes(attributes),
        )

    # ------------------------------------------------------------ decisions
    def prepare(
        self,
        hcp: HCPProfile,
        *,
        now: datetime,
        channels: tuple[str, ...],
        k: int,
        request: Mapping[str, Any],
        requester: str,
        exclude: Sequence[Action] = (),
        event_id: str | None = None,
        defer_activation: bool = False,
        explain: bool = True,
        served: ServedModel | None = None,
        candidates: Sequence[Action] | None = None,
        ranked_rest: bool = False,
        contact: ContactPolicy | None = None,
        state: HCPState | None = None,
        scope: _BatchScope | None = None,
    ) -> Prepared:
        """Compute one decision for ``hcp`` (not stored yet) under ``contact`` (default:
        the rules in force); the decision records the rules' version and the market
        whose rule set applied.

        ``ranked_rest`` (the Personalizer-compatible rank route): suggestions after
        the chosen one are ranked by the policy's scores (or probabilities) as
        Personalizer ranks them, and only the chosen slot is logged (no slate).

        Everything read about the HCP comes from one query
        (:meth:`serving.store.EventStore.hcp_state`), or from ``state`` when the
        caller already fetched it for the same ``now`` and history window.
        ``scope`` (a batch's, :meth:`prepare_many`) changes how the work is shared,
        never what is decided or logged.
        """
        served = served or self.models.current
        contact = contact or self.contact
        rules_version, rules_market = contact.version, contact.market_of(hcp.market)
        since = now - timedelta(days=self.history_days)
        if state is None:
            state = self.store.hcp_state(hcp.hcp_id, now, since, self.catalog, evidence=explain)
        recent = state.touches
        # caps and gaps count contacts; an HCP pulling information was not contacted
        touches = [t for t in recent if t.kind == "contact"]
        feedback = state.feedback
        context = self.build_context(hcp, now, request, state)

        if candidates is None:
            candidates = self._candidates(channels)
        pre: tuple[Suppression, ...] = ()
        kept = list(candidates)
        if exclude:
            excluded = {a.action_id for a in exclude}
            kept = [a for a in candidates if a.action_id not in excluded]
            pre = tuple(
                Suppression(a.action_id, RULE_EXCLUDED)
                for a in candidates
                if a.action_id in excluded
            )
        filtered = contact.filter(hcp, kept, now, touches, feedback, self.catalog)
        suppressed = pre + filtered.suppressed
        count = self._count_suppressed if scope is None else scope.count
        if filtered.suppressed:
            for rule, n in filtered.counts_by_rule().items():
                count(rule, n)
        allowed = list(filtered.allowed)
        # suppressions started by triggers (docs/triggers.md): rule "trigger:<name>"
        in_force = [ActiveSuppression(*row) for row in state.trigger_suppressions]
        for ts in in_force if allowed else ():
            hit = [a for a in allowed if ts.covers(a)]
            if hit:
                allowed = [a for a in allowed if not ts.covers(a)]
                suppressed += tuple(Suppression(a.action_id, f"trigger:{ts.trigger}") for a in hit)
                count("trigger", len(hit))
        # journeys (docs/journeys.md): a due step keeps only what it allows
        journey: str | None = None
        journeys = self.journeys.current() if self.journeys is not None else None
        if journeys and allowed:
            topic_of = self._topic_of()
            gate = journeys.gate(
                self.journey_states(hcp, now, journeys),
                [(a.channel, topic_of.get(a.content_id)) for a in allowed],
            )
            journey = gate.label
            if not all(gate.keep):
                suppressed += tuple(
                    Suppression(a.action_id, rule)
                    for a, rule in zip(allowed, gate.rules, strict=True)
                    if rule is not None
                )
                count("journey", gate.keep.count(False))
                allowed = [a for a, k in zip(allowed, gate.keep, strict=True) if k]

        holdout = contact.is_holdout(hcp.hcp_id)  # a hash of the id: once per decision
        if holdout and self.holdout == "no_contact":
            return Prepared(
                hcp.hcp_id,
                None,
                context,
                (),
                suppressed,
                f"{HOLDOUT_PREFIX}{NO_CONTACT}",
                NO_CONTACT,
                no_contact=True,
                rules_version=rules_version,
                rules_market=rules_market,
            )
        if holdout:
            policy = self.holdout_policy
            version = f"{HOLDOUT_PREFIX}baseline:{policy.name}"
        else:
            policy = served.policy
            version = served.version
        if not allowed:
            return Prepared(
                hcp.hcp_id,
                None,
                context,
                (),
                suppressed,
                version,
                policy.name,
                rules_version=rules_version,
                rules_market=rules_market,
            )

        eid = event_id or self.new_event_id(now)
        try:
            with self._policy_lock:  # a VW workspace is not safe for concurrent calls
                pd = policy.decide(context, allowed, eid)
        except Exception as exc:
            # a model that fails on one request must not fail the caller: this
            # decision comes from the baseline and its log says so
            log.error(
                "policy %s failed for %s (%s); baseline used for this decision",
                version,
                pseudonym(hcp.hcp_id),
                type(exc).__name__,
            )
            self.metrics.model_swaps.labels(result="fallback").inc()
            policy = self.fallback_policy
            version = f"{FALLBACK_PREFIX}baseline:{policy.name}"
            pd = policy.decide(context, allowed, eid)
        p = pd.probabilities
        # every slot is drawn (without replacement) and logged with its conditional
        # probability, so a response to any slot can be credited and evaluated
        if ranked_rest:
            order_key = pd.scores if pd.scores is not None else p
            rest = sorted(
                (i for i in range(len(allowed)) if i != pd.chosen_index),
                key=lambda i: (-float(order_key[i]), i),
            )
            ranked = [pd.chosen_index, *rest][:k]
            conditional = [pd.propensity] + [float("nan")] * (len(ranked) - 1)
        else:
            ranked, conditional = sample_slate(p, pd.chosen_index, k, policy.seed, eid)
        shown = [(allowed[i], self.catalog.by_id[allowed[i].content_id]) for i in ranked]
        reasons: list[list[str]] = [[] for _ in shown]
        if explain:
            # the HCP's own record: the pulls come from the touches read above; responses
            # to our actions and stated preferences came with them (state read with
            # evidence), or are two more queries (a state read without)
            evidence = Evidence.build(
                now.date(),
                recent,
                state.action_outcomes
                if state.action_outcomes is not None
                else self.store.action_outcomes(hcp.hcp_id, since, now),
                state.stated_preferences
                if state.stated_preferences is not None
                else self.store.stated_preferences(hcp.hcp_id),
                self._topic_of(),
                now=now,
            )
            reasons = reasons_for_list(context, [(a, it.topic) for a, it in shown], evidence)
        suggestions = tuple(
            _new_shown(  # a Shown, its fields in order (no NamedTuple.__new__)
                Shown,
                (
                    a.action_id,
                    a.content_id,
                    item.title,
                    item.topic,
                    a.channel,
                    float(p[i]),
                    why,
                    j,
                    None if q != q else q,
                ),
            )
            for j, (i, q, (a, item), why) in enumerate(
                zip(ranked, conditional, shown, reasons, strict=True), start=1
            )
        )
        decision = Decision(
            event_id=eid,
            ts=now,
            hcp_id=hcp.hcp_id,
            requester=requester,
            channels_requested=channels,
            context=self._context_json(context, scope.request_text if scope is not None else None),
            catalog_version=self.catalog.version,
            action_ids=tuple(a.action_id for a in allowed),
            probabilities=tuple(np.asarray(p, dtype=np.float64).tolist()),
            chosen_index=pd.chosen_index,
            chosen_action_id=allowed[pd.chosen_index].action_id,
            propensity=pd.propensity,
            policy=policy.name,
            model_version=version,
            suppressed=suppressed,
            activated=not defer_activation,
            slate=(
                tuple(
                    SlateSlot(allowed[i].action_id, q)
                    for i, q in zip(ranked, conditional, strict=True)
                )
                if len(ranked) > 1 and not ranked_rest
                else ()
            ),
            rules_version=rules_version,
            rules_market=rules_market,
            journey=journey,
        )
        value = None if pd.scores is None else float(np.dot(p, pd.scores))
        return Prepared(
            hcp.hcp_id,
            decision,
            context,
            suggestions,
            suppressed,
            version,
            policy.name,
            value,
            rules_version=rules_version,
            rules_market=rules_market,
            journey=journey,
        )

    def journey_states(
        self, hcp: HCPProfile, now: datetime, journeys: JourneySet
    ) -> list[JourneyState]:
        """Where ``hcp`` stands in each journey at ``now``, from the store's history."""
        since = datetime.combine(
            now.date() - timedelta(days=journeys.lookback_days), datetime.min.time(), UTC
        )
        events = journey_events(self.store, hcp.hcp_id, since, now, self._topic_of())
        return journeys.states(hcp, events, now)

    def _record_no_contact(
        self,
        prepared: Sequence[Prepared],
        now: datetime,
        requester: str,
        channels: tuple[str, ...],
        event_ids_: Sequence[str | None],
    ) -> None:
        """Record holdout requests answered with no contact (the holdout lift's
        no-contact arm); each gets an event id of its own."""
        rows = []
        for pr, eid in zip(prepared, event_ids_, strict=True):
            rows.append(
                (eid or self.new_event_id(now), now, pr.hcp_id, requester, json.dumps(channels))
            )
        self.store.add_holdout_requests(rows)

    def _count(self, prepared: Sequence[Prepared]) -> None:
        counters = self._decision_counters
        for pr in prepared:
            if pr.decision is not None:
                channel = Action.parse(pr.decision.chosen_action_id).channel
                counter = counters.get(channel)
                if counter is None:  # the labelled child, looked up once per channel
                    counter = counters[channel] = self.metrics.decisions.labels(channel=channel)
                counter.inc()

    def _count_suppressed(self, rule: str, n: int) -> None:
        """Add ``n`` to the suppressions counter's child of ``rule`` (looked up once
        per rule)."""
        counter = self._suppression_counters.get(rule)
        if counter is None:
            counter = self._suppression_counters[rule] = self.metrics.suppressions.labels(rule=rule)
        counter.inc(n)

    def decide(
        self, req: schemas.DecisionRequest, principal: str
    ) -> tuple[int, schemas.DecisionResponse]:
        """One decision; (status, body): 201 stored, 200 when nothing may be offered.

        :meth:`start_decision`, then its writes (:meth:`record_no_contact_of`,
        :meth:`store_decisions`) and its count, waiting for the commit here.
        """
        work = self.start_decision(req, principal)
        if work.no_contact:
            self.record_no_contact_of(work)
        decision = work.prepared.decision
        if decision is not None:
            try:
                self.store_decisions([decision], work.deferred)
            except DuplicateEventError:
                raise event_id_conflict(decision.event_id) from None
            self.decision_stored(work)
        return work.status, work.response

    def start_decision(self, req: schemas.DecisionRequest, principal: str) -> DecisionWork:
        """One decision computed and its answer built, nothing written yet.

        Reads the store (the HCP's state) but writes nothing: the caller stores
        :attr:`DecisionWork.prepared`'s decision (and the no-contact record when
        :attr:`DecisionWork.no_contact`), then calls :meth:`decision_stored` and
        answers :attr:`DecisionWork.response` -- as :meth:`decide` does, or with the
        commit awaited on an event loop (:meth:`submit_decision`).

        Raises
        ------
        ApiError
            Bad channels or ``exclude`` entries, client time switched off, or an
            unknown HCP.
        """
        channels = self._channels(req.channels)
        exclude = self._parse_action_ids(req.exclude, "exclude")
        now = self.decision_time(req.as_of)
        # the profile and everything the decision reads about the HCP: one round trip
        since = now - timedelta(days=self.history_days)
        state = self.store.hcp_state(req.hcp_id, now, since, self.catalog, evidence=req.explain)
        hcp = state.profile
        if hcp is None:
            raise unknown_hcp(req.hcp_id)
        request = dict(req.context or {})
        requester = str(request.get("requester", principal))
        pr = self.prepare(
            hcp,
            now=now,
            channels=channels,
            k=req.k,
            request=request,
            requester=requester,
            exclude=exclude,
            event_id=req.event_id,
            defer_activation=req.defer_activation,
            explain=req.explain,
            state=state,
        )
        supp = [schemas.SuppressedAction(action_id=s.action_id, rule=s.rule) for s in pr.suppressed]
        if pr.decision is None:
            response = schemas.DecisionResponse(
                event_id=None,
                model_version=pr.model_version,
                policy=pr.policy,
                suggestions=[],
                chosen_action_id=None,
                suppressed=supp,
                activated=False,
                rules_version=pr.rules_version,
                rules_market=pr.rules_market,
            )
            status = 200
        else:
            response = schemas.DecisionResponse(
                event_id=pr.decision.event_id,
                model_version=pr.model_version,
                policy=pr.policy,
                suggestions=pr.suggestions,
                chosen_action_id=pr.decision.chosen_action_id,
                suppressed=supp,
                activated=pr.decision.activated,
                rules_version=pr.rules_version,
                rules_market=pr.rules_market,
                journey=pr.journey,
            )
            status = 201
        return DecisionWork(
            status, response, pr, req.defer_activation, now, requester, channels, req.event_id
        )

    def record_no_contact_of(self, work: DecisionWork) -> None:
        """Record ``work``'s holdout request answered with no contact (a write)."""
        self._record_no_contact(
            [work.prepared], work.now, work.requester, work.channels, [work.event_id]
        )

    def submit_decision(self, work: DecisionWork) -> Future[None] | None:
        """Hand ``work``'s decision to the group committer without waiting: the future
        is settled once it is committed (its exception a
        :class:`~serving.store.DuplicateEventError` when its event id is taken). None
        when no committer is attached (then :meth:`decide` stores it in place)."""
        decision = work.prepared.decision
        if self.committer is None or decision is None:
            return None
        return self.committer.submit_many([decision], work.deferred)

    def decision_stored(self, work: DecisionWork) -> None:
        """Count ``work``'s decision once stored (the decisions counter)."""
        self._count([work.prepared])

    def prepare_many(
        self,
        hcp_ids: Sequence[str],
        *,
        now: datetime,
        channels: tuple[str, ...],
        k: int,
        request: Mapping[str, Any],
        requester: str,
        defer_activation: bool = False,
        explain: bool = False,
        served: ServedModel | None = None,
    ) -> tuple[list[Prepared], list[str]]:
        """One decision each for many HCPs at one ``now`` (a batch), not stored yet.

        Each is :meth:`prepare`'s decision of the HCP under one rules version and
        one served model for the whole batch; what differs from calling
        :meth:`prepare` with :meth:`serving.store.EventStore.hcp_state` per HCP is
        only how the work is shared: the states of all HCPs are read together
        (:meth:`serving.store.EventStore.hcp_states`, a few set-based statements on
        SQLite), the candidates once, and the event ids drawn in one vectorized call
        (one per listed HCP, in order, known or not, as before).

        Returns
        -------
        prepared : list of Prepared
            One per HCP in the store, in ``hcp_ids`` order.
        unknown : list of str
            The HCPs not in the store, in order.
        """
        served = served or self.models.current
        contact = self.contact  # one rules version for the whole batch
        since = now - timedelta(days=self.history_days)
        states = self.store.hcp_states(hcp_ids, now, since, self.catalog, evidence=explain)
        candidates = self._candidates(channels)
        prepared: list[Prepared] = []
        unknown: list[str] = []
        with self._rng_lock:  # all ids of the batch in one vectorized call
            ms = np.full(len(hcp_ids), int(now.timestamp() * 1000), dtype=np.int64)
            ids = event_ids(ms, self._rng)
        scope = _BatchScope(request_json(request))
        for hid, eid in zip(hcp_ids, ids, strict=True):
            state = states.get(hid)
            if state is None or state.profile is None:
                unknown.append(hid)
                continue
            prepared.append(
                self.prepare(
                    state.profile,
                    event_id=str(eid),
                    now=now,
                    channels=channels,
                    k=k,
                    request=request,
                    requester=requester,
                    defer_activation=defer_activation,
                    explain=explain,
                    served=served,
                    candidates=candidates,
                    contact=contact,
                    state=state,
                    scope=scope,
                )
            )
        for rule, n in scope.suppressions.items():
            self._count_suppressed(rule, n)
        return prepared, unknown

    def decide_batch(
        self, req: schemas.BatchDecisionRequest, principal: str, max_batch: int
    ) -> schemas.BatchResponse:
        """One decision per HCP, all stored in one transaction: the answer of
        :meth:`decide_batch_json` as its model (for callers in the process)."""
        return schemas.BatchResponse.model_validate_json(
            self.decide_batch_json(req, principal, max_batch)
        )

    def decide_batch_json(
        self, req: schemas.BatchDecisionRequest, principal: str, max_batch: int
    ) -> bytes:
        """One decision per HCP, all stored in one transaction; the answer as the
        JSON of a :class:`serving.schemas.BatchResponse`.

        The text is what pydantic writes for that model (the same keys in the same
        order, the same numbers and strings), written by orjson from plain values:
        no model per decision and per suggestion, which cost about as much as the
        rest of the answer's work (docs/performance.md, "Ninth round: batch
        decisions").

        The collector is paused while the batch runs (:func:`serving.heap.paused`):
        its decisions' objects stay alive until the answer is written and are freed
        by their reference counts when the work returns, so a collection during it
        would only walk them.

        Raises
        ------
        ApiError
            Too many or repeated HCPs, bad channels, client time switched off.
        """
        with heap.paused():  # the batch's objects are freed before the pause ends
            return self._decide_batch_json(req, principal, max_batch)

    def _decide_batch_json(
        self, req: schemas.BatchDecisionRequest, principal: str, max_batch: int
    ) -> bytes:
        """:meth:`decide_batch_json`'s work (its frame and the batch's objects gone
        when it returns)."""
        if len(req.hcp_ids) > max_batch:
            raise invalid(f"hcp_ids: {len(req.hcp_ids)} HCPs; at most {max_batch} per batch")
        if len(set(req.hcp_ids)) != len(req.hcp_ids):
            seen: set[str] = set()
            dup = next(h for h in req.hcp_ids if h in seen or seen.add(h))  # type: ignore[func-returns-value]
            raise invalid(
                f"hcp_ids: an HCP is listed twice (first repeat at {req.hcp_ids.index(dup)})"
            )
        channels = self._channels(req.channels)
        request = dict(req.context or {})
        requester = str(request.get("requester", principal))
        now = self.decision_time(req.as_of)
        served = self.models.current
        prepared, unknown = self.prepare_many(
            req.hcp_ids,
            now=now,
            channels=channels,
            k=req.k,
            request=request,
            requester=requester,
            defer_activation=req.defer_activation,
            explain=req.explain,
            served=served,
        )
        decisions = [pr.decision for pr in prepared if pr.decision is not None]
        if decisions:
            self.store_decisions(decisions, req.defer_activation)
        held = [pr for pr in prepared if pr.no_contact]
        if held:
            self._record_no_contact(held, now, requester, channels, [None] * len(held))
        self._count(prepared)
        return orjson.dumps(
            {  # the fields of schemas.BatchResponse, in order
                "model_version": served.version,
                "decisions": [_batch_item(pr) for pr in prepared],
                "n_decisions": len(decisions),
                "n_blocked": len(prepared) - len(decisions),
                "unknown_hcp_ids": unknown,
            }
        )

    # ------------------------------------------------------------- outcomes
    def record_outcome(
        self, event_id: str, req: schemas.OutcomeRequest
    ) -> tuple[int, schemas.OutcomeResponse]:
        """Store one outcome; (201, ...) when new, (200, ...) when already stored."""
        pending = self.start_outcome(event_id, req)
        (result,) = self.commit_outcomes([pending.write])
        return self.finish_outcome(pending, result)

    def submit_outcome(self, pending: _PendingOutcome) -> Future[list[bool | Exception]] | None:
        """Hand ``pending``'s write to the outcome committer without waiting: the
        future is settled once it is committed, with a one-entry list as
        :meth:`commit_outcomes` returns it. None when no committer is attached
        (then :meth:`commit_outcomes` stores it in place)."""
        if self.outcome_committer is None:
            return None
        return self.outcome_committer.submit_many([pending.write])

    def finish_outcome(
        self, pending: _PendingOutcome, result: bool | Exception
    ) -> tuple[int, schemas.OutcomeResponse]:
        """The answer of :meth:`record_outcome` once ``pending``'s write is settled
        (``result`` as :meth:`commit_outcomes` gives it): (201, ...) when new,
        (200, ...) when already stored; its error raised as the route answers it."""
        stored = self._settle_outcome(pending, result)
        return (201 if stored else 200), self._outcome_answer(pending, stored)

    def record_outcomes(
        self, items: Sequence[tuple[str, schemas.OutcomeRequest] | ApiError]
    ) -> list[schemas.OutcomeResponse | ApiError]:
        """Store many outcomes in one group commit, each on its own (a batch request).

        Parameters
        ----------
        items : sequence of (event_id, OutcomeRequest) or ApiError
            The outcomes in request order; an :class:`ApiError` stands for an item
            already refused (invalid, outside the caller's territory) and is
            passed through.

        Returns
        -------
        list of OutcomeResponse or ApiError
            One entry per item, in order: the answer the single route would give
            (``stored`` False for a repeat), or the error it would answer with. The
            outcomes that are valid are committed whatever happens to the others.
        """
        results: list[schemas.OutcomeResponse | ApiError | None] = []
        pending: list[tuple[int, _PendingOutcome]] = []
        for i, item in enumerate(items):
            if isinstance(item, ApiError):
                results.append(item)
                continue
            try:
                pending.append((i, self.start_outcome(*item)))
                results.append(None)
            except ApiError as exc:
                results.append(exc)
        written = self.commit_outcomes([p.write for _, p in pending])
        for (i, p), res in zip(pending, written, strict=True):
            try:
                results[i] = self._outcome_answer(p, self._settle_outcome(p, res))
            except ApiError as exc:
                results[i] = exc
            except Exception:  # e.g. its trigger hook failed: this item only (rolled back)
                log.exception("outcome %d of a batch failed", i)
                results[i] = ApiError(500, "internal", "internal error; it has been logged")
        return [r for r in results if r is not None]

    def commit_outcomes(self, writes: list[OutcomeWrite]) -> list[bool | Exception]:
        """Commit outcomes before returning, each on its own, in one transaction;
        group-committed with other requests' outcomes when an
        :class:`OutcomeCommitter` is attached. One entry per write: stored (True),
        already stored (False) or that outcome's error."""
        if not writes:
            return []
        if self.outcome_committer is not None:
            return self.outcome_committer.add_many(writes)
        if len(writes) == 1:  # one transaction, as before group commit
            w = writes[0]
            try:
                return [
                    self.store.add_outcome(w.outcome, w.reason_code, w.snooze_until, w.on_stored)
                ]
            except (UnknownEventError, StoreError) as exc:
                return [exc]
        return self.store.add_outcomes(writes)

    def start_outcome(self, event_id: str, req: schemas.OutcomeRequest) -> _PendingOutcome:
        """Check one outcome against its decision and build its write (nothing stored).

        Raises
        ------
        ApiError
            404 for an unknown event, 422 for an outcome its decision refuses.
        """
        # the decision and its override in one read (not the whole decision)
        decision = self.store.outcome_target(event_id)
        if decision is None:
            raise unknown_event(event_id)
        is_feedback = req.type in REP_FEEDBACK_TYPES
        if not is_feedback and (req.reason_code is not None or req.until is not None):
            raise invalid(f"reason_code and until belong to rep feedback, not to {req.type!r}")
        if req.type == "dismissed" and not req.reason_code:
            raise invalid("reason_code: a dismissal needs a reason code")
        if req.until is not None and req.type != "snoozed":
            raise invalid("until: only a snooze has an end date")
        now = datetime.now(UTC)
        ts = (req.ts or now).astimezone(UTC)
        if ts < decision.ts:
            if req.ts is not None:
                raise invalid(
                    f"ts: {ts.isoformat()} is before its decision ({decision.ts.isoformat()})"
                )
            ts = decision.ts  # clock skew between workers: never before the decision
        until_dt = None
        if req.until is not None:
            until_dt = datetime(req.until.year, req.until.month, req.until.day, tzinfo=UTC)
            if until_dt <= ts:
                raise invalid(f"until: {req.until.isoformat()} is not after the feedback time")
        concerns_chosen = req.action_id is None or req.action_id == decision.chosen_action_id
        if concerns_chosen and req.type not in ("dismissed", "snoozed"):
            overridden = decision.overridden
            if overridden is not None:
                # the rep did something else: the chosen action did not happen, and a
                # response or acceptance must not be credited to it
                raise invalid(
                    f"type: event {event_id!r} was overridden by the rep "
                    f"({overridden.isoformat()}); a {req.type!r} cannot concern its chosen "
                    "action"
                )
        source_id = req.source_id
        if req.action_id is not None and req.action_id != decision.chosen_action_id:
            # an outcome about another suggestion of the same event is its own outcome:
            # the idempotency key (event, type, source_id) must not merge it with the
            # same report about the chosen action
            source_id = f"{source_id}|{req.action_id}"
        outcome = Outcome(
            event_id,
            ts,
            req.type,
            float(req.value),
            "rep" if is_feedback else "hcp",
            source_id,
            req.action_id,
        )
        late = ts > decision.ts + timedelta(days=float(self.reward.window_days))
        fired: list[tuple[str, Fired] | None] = []

        def on_stored(c: Connection, hcp_id: str, action_id: str) -> None:
            # in the outcome's own transaction: its triggers and its touch are
            # written with it, or nothing is
            fired.append(self._fire_outcome(c, outcome, hcp_id, action_id))
            if outcome.type in CONTACT_TYPES:
                self._touch_from_outcome(c, decision, action_id, ts)

        write = OutcomeWrite(
            outcome,
            reason_code=req.reason_code if is_feedback else None,
            snooze_until=until_dt,
            on_stored=on_stored,
        )
        return _PendingOutcome(req, write, is_feedback, late, fired)

    def _settle_outcome(self, p: _PendingOutcome, result: bool | Exception) -> bool:
        """The store's answer for one outcome as the API's: stored or not, or the
        ApiError of its failure (the store refuses an action the decision did not
        offer and a type that cannot happen on the action's channel, naming both)."""
        if isinstance(result, UnknownEventError):
            raise unknown_event(p.write.outcome.event_id)
        if isinstance(result, StoreError):
            raise invalid(str(result))
        if isinstance(result, Exception):
            raise result
        if result:
            key = (p.req.type, p.late)
            child = self._outcome_counters.get(key)
            if child is None:  # labels() per request costs more than the increment
                child = self.metrics.outcomes.labels(type=key[0], late=str(key[1]).lower())
                self._outcome_counters[key] = child
            child.inc()
        return result

    @staticmethod
    def _outcome_answer(p: _PendingOutcome, stored: bool) -> schemas.OutcomeResponse:
        fired = p.fired[0] if p.fired else None
        return schemas.OutcomeResponse(
            event_id=p.write.outcome.event_id,
            type=p.req.type,
            action_id=p.req.action_id,
            kind="rep_feedback" if p.is_feedback else "hcp_response",
            stored=stored,
            late=p.late,
            trigger_event=fired[0] if fired else None,
            notifications=list(fired[1].notifications) if fired else [],
            suppressions=fired[1].suppressions if fired else 0,
        )

    def _fire_outcome(
        self, c: Any, outcome: Outcome, hcp_id: str, action_id: str
    ) -> tuple[str, Fired] | None:
        """Fire the triggers of the event a new outcome is (in its transaction)."""
        event = OUTCOME_EVENTS.get(outcome.type)
        if event is None:  # most outcome types fire nothing
            return None
        a = Action.parse(action_id)
        if event == "safety_click":
            item = self.catalog.by_id.get(a.content_id)
            if item is None or item.topic != SAFETY_TOPIC:
                return None
        ev = TriggerEvent(
            event,
            hcp_id,
            outcome.ts,
            a.channel,
            a.content_id,
            key=f"outcome:{outcome.event_id}|{outcome.type}|{outcome.source_id}",
        )
        return event, fire(c, self.triggers, ev, webhook=self.webhook)

    def _touch_from_outcome(
        self, c: Connection, decision: OutcomeTarget, concerned: str, ts: datetime
    ) -> None:
        """The first outcome proving contact with one of the decision's actions
        (``concerned``) turns that action into a touch ("ours"); in the outcome's
        transaction ``c``, after the outcome itself is inserted."""
        (n,) = c.execute(
            _CONTACTS_OF_ACTION,
            (decision.event_id, *_CONTACT_TYPES_SORTED, decision.chosen_action_id, concerned),
        ).fetchone()
        if n != 1:
            return
        a = Action.parse(concerned)
        self.store.insert_touch(c, Touch(decision.hcp_id, ts, a.channel, a.content_id, "ours"))

    def activate(self, event_id: str) -> schemas.ActivateResponse:
        """Activate a deferred decision; harmless when it is already active."""
        try:
            already = self.store.activate(event_id)
        except UnknownEventError:
            raise unknown_event(event_id) from None
        return schemas.ActivateResponse(event_id=event_id, activated=True, already_active=already)

    # -------------------------------------------------------------- touches
    def record_touch(self, req: schemas.TouchRequest) -> schemas.TouchResponse:
        ts = (req.ts or datetime.now(UTC)).astimezone(UTC)
        try:
            touch = Touch(
                req.hcp_id,
                ts,
                req.channel,
                req.content_id,
                req.origin,
                req.kind,
                tuple(req.topics),
                tuple(req.content_ids),
                req.dwell_s,
            )
            # external content and portal pages may be unknown to the catalog: they still
            # count; the channel and the topics must be the catalog's
            self.catalog.check_touch(touch)
        except ValidationError as exc:
            raise invalid(str(exc)) from None
        if self.store.get_hcp(req.hcp_id) is None:
            raise unknown_hcp(req.hcp_id)
        if req.event is not None:
            if req.overrides_event_id is not None:
                raise invalid("event: an override of a suggestion is not a trigger event")
            return self._record_event_touch(touch, req.event, req.source_id)
        if req.source_id is not None:
            raise invalid("source_id: only a touch with an `event` has a source id")
        if req.overrides_event_id is None:
            self.store.add_touch(touch)
            return schemas.TouchResponse(
                hcp_id=req.hcp_id, channel=req.channel, kind=req.kind, ts=ts, stored=True
            )
        return self._record_override(touch, req.overrides_event_id)

    def _record_event_touch(
        self, touch: Touch, event: str, source_id: str | None
    ) -> schemas.TouchResponse:
        """A touch that is also a trigger event: the touch and what its triggers write
        are stored in one transaction, once per event key."""
        ident = (
            source_id
            if source_id is not None
            else f"{touch.channel}|{touch.content_id}|{touch.ts.isoformat()}"
        )
        ev = TriggerEvent(
            event,
            touch.hcp_id,
            touch.ts,
            touch.channel,
            touch.content_id,
            key=f"touch:{touch.hcp_id}|{event}|{ident}",
        )
        with self.store._write() as c:
            fired = fire(c, self.triggers, ev, webhook=self.webhook)
            if not fired.duplicate:
                c.execute(EventStore._INSERT_TOUCH, EventStore._touch_row(touch))
        return schemas.TouchResponse(
            hcp_id=touch.hcp_id,
            channel=touch.channel,
            kind=touch.kind,
            ts=touch.ts,
            stored=not fired.duplicate,
            event=event,
            notifications=list(fired.notifications),
            suppressions=fired.suppressions,
        )

    def _record_override(self, touch: Touch, event_id: str) -> schemas.TouchResponse:
        """A rep's contact instead of decision ``event_id``'s suggestion: stored with the
        link, never as an outcome of that decision (its reward stays untouched)."""
        from serving.rep_day import override_kind
        from serving.store_reps import add_override_touch

        if touch.kind != "contact":
            raise invalid(
                f"overrides_event_id: only a contact overrides a suggestion, not a {touch.kind!r}"
            )
        decision = self.store.get_decision(event_id)
        if decision is None:
            raise unknown_event(event_id)
        if touch.ts < decision.ts:
            raise invalid(
                f"ts: {touch.ts.isoformat()} is before the decision it overrides "
                f"({decision.ts.isoformat()})"
            )
        try:
            add_override_touch(self.store, touch, event_id)
        except UnknownEventError:
            raise unknown_event(event_id) from None
        except StoreError as exc:
            raise invalid(str(exc)) from None
        kind = override_kind(self.catalog, decision.hcp_id, decision.chosen_action_id, touch)
        return schemas.TouchResponse(
            hcp_id=touch.hcp_id,
            channel=touch.channel,
            kind=touch.kind,
            ts=touch.ts,
            stored=True,
            overrides_event_id=event_id,
            override_kind=kind,  # type: ignore[arg-type]
        )
