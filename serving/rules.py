"""Contact rules that change safely: validate, diff, dry-run, apply, roll back, reload.

The versions live in the event store (:mod:`serving.store_rules`); this module
holds what the routes and the ``nba rules`` CLI share, so both behave the same:

- :func:`validate` parses TOML text into a :class:`~nba.contact.ContactPolicy`;
  a bad text raises :class:`~nba.contact.RulesError` naming the line and the key,
  and nothing is stored.
- :func:`apply` stores a validated text as the new version in force, with the
  audit record (who, when, the diff against the version it replaces, a required
  comment); :func:`rollback` re-applies the text of an earlier version. Both
  refuse (:class:`~serving.store_rules.RulesConflictError`) when another change
  landed after the caller read the version in force.
- :func:`dry_run` replays the stored decisions of the last ``days`` days under
  the rules in force and under a proposed text, from the same inputs (the HCP
  profile logged in the decision's context, the candidate actions it saw, the
  touches and rep feedback the store holds at its time), and counts the
  decisions whose allowed actions would differ.
- :class:`RulesKeeper` gives each worker the rules in force: it checks the
  store's version counter at most every ``check_ms`` milliseconds and reloads
  when it moved, so a change reaches every worker and replica sharing the store
  without a restart. A stored text that no longer validates (say, a market was
  removed from the HCP vocabulary) is logged and the worker keeps the rules it has.
"""

from __future__ import annotations

import difflib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import nba.contact
from nba.catalog import Catalog
from nba.contact import DEFAULT_RULES_FILE, ContactPolicy, RulesError
from nba.context import DecisionContext
from nba.domain import Action, ValidationError
from serving import store_rules
from serving.store import EventStore, _from_us, _to_us
from serving.store_rules import RulesVersion

log = logging.getLogger("nba.serving.rules")

#: suppressions the caller asked for; not the contact policy's, so never replayed
RULE_EXCLUDED = "excluded_by_request"
#: most decisions one dry run replays (the newest first); more are reported as skipped
DRY_RUN_MAX_DECISIONS = 50_000


class RulesChangeError(ValueError):
    """A change request that is well-formed TOML but cannot be applied (no comment,
    no change, unknown version); ``status`` and ``code`` are the HTTP answer."""

    def __init__(self, message: str, status: int = 422, code: str = "invalid_input") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def validate(text: str, markets: Sequence[str] | None, source: str = "rules") -> ContactPolicy:
    """The policy of a TOML text; raises :class:`RulesError` naming the line and key."""
    if not isinstance(text, str) or not text.strip():
        raise RulesError(f"{source}: the rules text is empty")
    return ContactPolicy.loads(text, source=source, markets=markets)


def diff_text(old: str, new: str, old_label: str, new_label: str) -> str:
    """Unified diff of two rules texts ("" when equal)."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_label,
            tofile=new_label,
        )
    )


def file_text(path: str | Path | None, markets: Sequence[str] | None = None) -> tuple[str, str]:
    """(TOML text, source) of a rules file for seeding the store: the file itself when
    it is TOML, the normalized rules as TOML when it is YAML; ``None``: packaged rules.

    Raises
    ------
    RulesError
        The file is unreadable or invalid (with ``markets`` as the market vocabulary).
    """
    if path is None:
        p = Path(nba.contact.__file__).resolve().parent / "data" / DEFAULT_RULES_FILE
    else:
        p = Path(path)
    pol = ContactPolicy.load(p, markets=markets)  # refuse a bad file before anything is stored
    if p.suffix.lower() in (".yaml", ".yml"):
        return pol.to_toml(), str(p)
    return p.read_text(encoding="utf-8"), str(p)


def seed(
    store: EventStore, text: str, who: str, comment: str, markets: Sequence[str] | None
) -> RulesVersion:
    """The version in force; when the store holds none yet, ``text`` becomes version 1.

    Several workers may start at once: exactly one of them stores version 1, the
    others read it.
    """
    current = store_rules.get(store)
    if current is not None:
        return current
    pol = validate(text, markets, source="startup rules")
    try:
        return store_rules.append(
            store,
            text=text,
            rules_hash=pol.version,
            who=who,
            action="seed",
            comment=comment,
            diff="",
            expected_head=0,
        )
    except store_rules.RulesConflictError:
        found = store_rules.get(store)
        assert found is not None
        return found


def _require_comment(comment: str | None) -> str:
    if comment is None or not comment.strip():
        raise RulesChangeError("comment: say why the rules change (a comment is required)")
    return comment.strip()


RULES_TABLE = "rules_versions"


def store_version(
    store: EventStore,
    *,
    kind: str,
    table: str,
    text: str,
    text_hash: str,
    who: str,
    why: str,
    expected_version: int | None,
) -> RulesVersion:
    """Store an already validated ``text`` as the new version in force of a
    versioned text (``kind``: ``rules`` or ``journeys``, kept in ``table``),
    with its diff against the version it replaces.

    Raises
    ------
    RulesChangeError
        The text has the same content (``text_hash``) as the version in force.
    RulesConflictError
        Another version was stored since ``expected_version`` (or meanwhile).
    """
    current = store_rules.get(store, table=table)
    head = 0 if current is None else current.version
    if expected_version is not None and expected_version != head:
        raise store_rules.RulesConflictError(
            f"{kind}: version {head} is in force, not {expected_version}; review its diff again"
        )
    if current is not None and current.rules_hash == text_hash:
        raise RulesChangeError(
            f"the text has the same {kind} as version {current.version} in force; nothing to apply",
            409,
            f"{kind}_unchanged",
        )
    diff = diff_text(
        "" if current is None else current.text,
        text,
        f"version {head}" if current is not None else "(none)",
        "proposed",
    )
    return store_rules.append(
        store,
        text=text,
        rules_hash=text_hash,
        who=who,
        action="apply",
        comment=why,
        diff=diff,
        expected_head=head,
        table=table,
    )


def rollback_target(store: EventStore, version: int, *, kind: str, table: str) -> RulesVersion:
    """The stored ``version`` a rollback would put back in force.

    Raises
    ------
    RulesChangeError
        Unknown version, or one with the content of the version in force.
    """
    target = store_rules.get(store, version, table=table)
    if target is None:
        raise RulesChangeError(
            f"version: no {kind} version {version} is stored", 404, f"unknown_{kind}_version"
        )
    current = store_rules.get(store, table=table)
    assert current is not None
    if target.rules_hash == current.rules_hash:
        raise RulesChangeError(
            f"version: {version} has the {kind} of version {current.version} in force",
            409,
            f"{kind}_unchanged",
        )
    return target


def store_rollback(
    store: EventStore,
    target: RulesVersion,
    *,
    table: str,
    text_hash: str,
    who: str,
    why: str,
) -> RulesVersion:
    """Store ``target``'s text, validated again by the caller (``text_hash`` its
    version now), as a new version in force."""
    current = store_rules.get(store, table=table)
    assert current is not None
    return store_rules.append(
        store,
        text=target.text,
        rules_hash=text_hash,
        who=who,
        action="rollback",
        comment=f"rollback to version {target.version}: {why}",
        diff=diff_text(
            current.text, target.text, f"version {current.version}", f"version {target.version}"
        ),
        expected_head=current.version,
        table=table,
    )


def apply(
    store: EventStore,
    text: str,
    *,
    who: str,
    comment: str | None,
    markets: Sequence[str] | None,
    expected_version: int | None = None,
) -> tuple[RulesVersion, ContactPolicy]:
    """Validate ``text`` and store it as the new version in force.

    Parameters
    ----------
    expected_version : int, optional
        The version the caller reviewed (its diff); refused if another is in force.

    Raises
    ------
    RulesError
        The text is invalid (line and key named); nothing is stored.
    RulesChangeError
        No comment, or the text has the same rules as the version in force.
    RulesConflictError
        Another version was stored since ``expected_version`` (or meanwhile).
    """
    why = _require_comment(comment)
    pol = validate(text, markets)
    stored = store_version(
        store,
        kind="rules",
        table=RULES_TABLE,
        text=text,
        text_hash=pol.version,
        who=who,
        why=why,
        expected_version=expected_version,
    )
    return stored, pol


def rollback(
    store: EventStore,
    version: int,
    *,
    who: str,
    comment: str | None,
    markets: Sequence[str] | None,
) -> tuple[RulesVersion, ContactPolicy]:
    """Put the text of an earlier ``version`` back in force, as a new version.

    Raises
    ------
    RulesChangeError
        Unknown version, the version in force itself, or no comment.
    RulesError
        The old text no longer validates (e.g. its market left the vocabulary).
    """
    why = _require_comment(comment)
    target = rollback_target(store, version, kind="rules", table=RULES_TABLE)
    pol = validate(target.text, markets, source=f"rules version {version}")
    stored = store_rollback(
        store, target, table=RULES_TABLE, text_hash=pol.version, who=who, why=why
    )
    return stored, pol


# ----------------------------------------------------------------------- dry run
@dataclass
class DryRun:
    """What :func:`dry_run` found; JSON-ready via :meth:`to_dict`.

    Attributes
    ----------
    since, until : datetime
        The replayed window ``[since, until]`` of decision times.
    decisions : int
        Stored decisions replayed.
    changed : int
        Decisions whose allowed actions differ under the proposed rules.
    newly_suppressed, newly_allowed : int
        Actions allowed now and suppressed under the proposed rules, and back.
    blocked : int
        Decisions that would have had no allowed action at all (nothing offered).
    by_rule : dict of str to int
        The proposed rules that suppress the newly suppressed actions.
    by_market : dict of str to int
        Changed decisions per HCP market.
    skipped : int
        Decisions left out: beyond :data:`DRY_RUN_MAX_DECISIONS`, or unreadable.
    examples : list of str
        Event ids of up to 20 changed decisions (newest first).
    """

    since: datetime
    until: datetime
    current_version: int
    current_hash: str
    proposed_hash: str
    decisions: int = 0
    changed: int = 0
    newly_suppressed: int = 0
    newly_allowed: int = 0
    blocked: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    by_market: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "current_version": self.current_version,
            "current_hash": self.current_hash,
            "proposed_hash": self.proposed_hash,
            "decisions": self.decisions,
            "changed": self.changed,
            "newly_suppressed": self.newly_suppressed,
            "newly_allowed": self.newly_allowed,
            "blocked": self.blocked,
            "by_rule": dict(sorted(self.by_rule.items())),
            "by_market": dict(sorted(self.by_market.items())),
            "skipped": self.skipped,
            "examples": self.examples,
        }


def dry_run(
    store: EventStore,
    current: ContactPolicy,
    proposed: ContactPolicy,
    *,
    now: datetime,
    days: float,
    catalog: Catalog,
    history_days: int = 90,
    current_version: int = 0,
    max_decisions: int = DRY_RUN_MAX_DECISIONS,
) -> DryRun:
    """Replay the decisions stored in ``[now - days, now]`` under both rule sets.

    Each decision is replayed from its own record: the HCP profile in its logged
    context, its candidate actions (the allowed ones plus those the contact policy
    suppressed; the caller's own exclusions stay out), the contact touches of the
    ``history_days`` before it and the rep feedback given before it, and the
    catalog snapshot it was made with (``catalog`` when that is not stored). A
    decision is *changed* when the two rule sets allow different actions.

    Decisions that the rules in force blocked entirely were never stored, so the
    actions the proposed rules would newly allow to such HCPs are not counted.
    """
    if not days > 0:
        raise RulesChangeError(f"days: must be positive, got {days!r}")
    since = now - timedelta(days=float(days))
    out = DryRun(
        since=since,
        until=now,
        current_version=current_version,
        current_hash=current.version,
        proposed_hash=proposed.version,
    )
    lo_us, hi_us = _to_us(since), _to_us(now)
    con = store._conn()
    total = con.execute(
        "SELECT count(*) FROM decisions WHERE ts_us>=? AND ts_us<=?", (lo_us, hi_us)
    ).fetchone()[0]
    rows = con.execute(
        "SELECT event_id, ts_us, hcp_id, context, catalog_version, action_ids, suppressed"
        " FROM decisions WHERE ts_us>=? AND ts_us<=? ORDER BY ts_us DESC, event_id LIMIT ?",
        (lo_us, hi_us, int(max_decisions)),
    ).fetchall()
    out.skipped = int(total) - len(rows)
    catalogs: dict[str, Catalog] = {catalog.version: catalog}
    for event_id, ts_us, hcp_id, context, cat_version, action_ids, suppressed in rows:
        ts = _from_us(ts_us)
        try:
            hcp = DecisionContext.from_json(context).hcp
            cands = [Action.parse(a) for a in json.loads(action_ids)]
            cands += [
                Action.parse(a) for a, rule in json.loads(suppressed) if rule != RULE_EXCLUDED
            ]
        except (ValidationError, ValueError, TypeError):
            out.skipped += 1
            continue
        cat = catalogs.get(cat_version)
        if cat is None:
            cat = store.get_catalog(cat_version) or catalog
            catalogs[cat_version] = cat
        touches = [
            t
            for t in store.recent_touches(hcp_id, ts - timedelta(days=history_days))
            if t.kind == "contact"
        ]
        feedback = store.recent_feedback(hcp_id, ts)
        before = current.filter(hcp, cands, ts, touches, feedback, cat)
        after = proposed.filter(hcp, cands, ts, touches, feedback, cat)
        out.decisions += 1
        allowed_before = {a.action_id for a in before.allowed}
        allowed_after = {a.action_id for a in after.allowed}
        if allowed_before == allowed_after:
            continue
        out.changed += 1
        out.by_market[hcp.market] += 1
        if len(out.examples) < 20:
            out.examples.append(event_id)
        gone = allowed_before - allowed_after
        out.newly_suppressed += len(gone)
        out.newly_allowed += len(allowed_after - allowed_before)
        for s in after.suppressed:
            if s.action_id in gone:
                out.by_rule[s.rule] += 1
        if not allowed_after:
            out.blocked += 1
    return out


# ------------------------------------------------------------------- the keeper
class RulesKeeper:
    """The rules in force for one worker process, reloaded when the store's version moves.

    Parameters
    ----------
    store : EventStore
    markets : sequence of str
        Markets a rules text may name (the service's HCP vocabulary).
    check_ms : float
        Check the store's version counter at most this often (0: on every call).
    clock : callable, optional
        Monotonic seconds (tests).
    """

    def __init__(
        self,
        store: EventStore,
        markets: Sequence[str],
        check_ms: float = 500.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not check_ms >= 0:
            raise ValueError(f"check_ms must be >= 0, got {check_ms!r}")
        self.store = store
        self.markets = tuple(markets)
        self.check_ms = float(check_ms)
        self._clock = clock
        self._lock = threading.Lock()
        self._checked = -float("inf")
        self._refused: int | None = None
        record = store_rules.get(store)
        if record is None:
            raise RulesChangeError("the store holds no rules version; seed it first")
        self._record = record
        self._policy = validate(record.text, self.markets, source=f"rules version {record.version}")

    @property
    def record(self) -> RulesVersion:
        """The stored version this worker applies."""
        return self._record

    def current(self) -> ContactPolicy:
        """The rules in force (checks the store at most every ``check_ms``)."""
        now = self._clock()
        if now - self._checked >= self.check_ms / 1000.0:
            self.refresh(now)
        return self._policy

    def snapshot(self) -> tuple[RulesVersion, ContactPolicy]:
        """(stored version, policy) after a check, consistent with each other."""
        self.current()
        with self._lock:
            return self._record, self._policy

    def refresh(self, now: float | None = None) -> bool:
        """Reload if the store's head moved; True when the rules changed."""
        with self._lock:
            self._checked = self._clock() if now is None else now
            if store_rules.head(self.store) == self._record.version:
                return False
            record = store_rules.get(self.store)
            if record is None or record.version in (self._record.version, self._refused):
                return False
            try:
                policy = validate(record.text, self.markets, f"rules version {record.version}")
            except RulesError as exc:
                self._refused = record.version
                log.error(
                    "rules version %d refused, keeping version %d: %s",
                    record.version,
                    self._record.version,
                    exc,
                )
                return False
            self._record, self._policy = record, policy
            log.info("contact rules version %d (%s) in force", record.version, policy.version)
            return True
