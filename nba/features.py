"""The one featurizer: decision context + eligible actions -> VW examples.

Training (a whole Arrow table of logged decisions at once) and serving (one
decision at a time) go through this module, and both paths produce the same
bytes for the same decision, so what the model saw in training is exactly what
it sees when serving.

An example is VW's multi-line ADF text: one ``shared`` line built from the
context, then one line per eligible action, in the given order::

    shared |p spec=cardiology mkt=US stage=aware dec=7 aff:0.650 cons=email |h ... |r ... |c ...
    |T efficacy |K email |F video |I VEL-EFF-02 |x ch_t30:2 aff_email:0.650 st_top=aware_efficacy

Namespaces (the first letter is what VW's ``-q`` interactions refer to):

========  =====================================================================
``p``     HCP profile: specialty, market, adoption stage, decile, digital
          affinity, no-see flag, consents
``h``     history: touches per channel over 7/30/90 days, engagements per
          channel (30 days) and per topic (90 days), days since the last touch
          per channel, last content seen
``r``     request features supplied by the caller (strings are categorical,
          numbers numeric, booleans ``true``/``false``)
``c``     calendar: day of week, month
``T``     action topic
``K``     action channel
``F``     action format
``I``     action content id
``x``     crosses of the action with the context: touches and engagements on
          this action's channel, engagements on its topic, days since a touch
          on its channel, repeat of the last content, channel x digital
          affinity, stage x topic, missing consent
========  =====================================================================

Numbers are written as integers (counts) or with exactly three decimals
(affinity, numeric request values), so both paths format them identically.
Names are cleaned: whitespace, ``:`` and ``|`` become ``_``.

Contexts imported from foreign DSJSON logs (``{"dsjson": {...}}``) carry their
own namespaces; they are passed through (their ``_multi`` entries are the action
lines, in order).

>>> from datetime import date
>>> from nba.catalog import Catalog
>>> from nba.context import DecisionContext, History
>>> from nba.domain import Action, HCPProfile
>>> hcp = HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset({"email"}), False, 0.65)
>>> ctx = DecisionContext(hcp, date(2026, 1, 5), History(touches_30d={"email": 2}))
>>> f = Featurizer(Catalog.default())
>>> lines = f.featurize_one(ctx, [Action("VEL-EFF-02", "email")])
>>> print(lines[0])  # doctest: +NORMALIZE_WHITESPACE
shared |p spec=cardiology mkt=US stage=aware dec=7 aff:0.650 cons=email
       |h t30_email:2 |r |c dow=mon mon=1
>>> print(lines[1])  # doctest: +NORMALIZE_WHITESPACE
|T efficacy |K email |F video |I VEL-EFF-02
|x ch_t30:2 ch_dst_none aff_email:0.650 st_top=aware_efficacy
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from nba.catalog import Catalog
from nba.context import HISTORY_WINDOWS, DecisionContext, History
from nba.domain import ADOPTION_STAGES, Action, HCPProfile, ValidationError

FEATURIZER_VERSION = 1

#: shared (context) namespaces, in line order
SHARED_NAMESPACES: tuple[str, ...] = ("p", "h", "r", "c")
#: action namespaces, in line order
ACTION_NAMESPACES: tuple[str, ...] = ("T", "K", "F", "I", "x")
NAMESPACE_DOC: Mapping[str, str] = {
    "p": "HCP profile",
    "h": "recent history",
    "r": "request",
    "c": "calendar",
    "T": "topic",
    "K": "channel",
    "F": "format",
    "I": "content id",
    "x": "action x context crosses",
}
#: channels where the digital-affinity cross is meaningful in the model's eyes
_DOW = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLEAN = re.compile(r"[ \t\r\n\x0b\x0c:|]")
_CLEAN_RE2 = r"[ \t\r\n\x0b\x0c:|]"
_DSJSON_PREFIX = re.compile(r'^\s*\{\s*"dsjson"\s*:')


class FeaturizeError(ValidationError):
    """A context, action or table could not be featurized; names what and where."""


def clean(name: str) -> str:
    """A feature-name-safe version of ``name`` (whitespace, ``:`` and ``|`` -> ``_``).

    >>> clean("internal medicine|x:y")
    'internal_medicine_x_y'
    """
    return _CLEAN.sub("_", name)


def fixed3(x: float) -> str:
    """``x`` rounded half-to-even to three decimals, written without exponent.

    >>> fixed3(0.65), fixed3(-1.5), fixed3(2.0004)
    ('0.650', '-1.500', '2.000')
    """
    m = round(float(x) * 1000.0)
    sign = "-" if m < 0 else ""
    m = abs(int(m))
    return f"{sign}{m // 1000}.{m % 1000:03d}"


@dataclass(frozen=True)
class FeaturizerConfig:
    """Which namespaces are written and which pairs VW crosses (``-q``).

    Parameters
    ----------
    namespaces : tuple of str
        Enabled namespaces (letters of :data:`SHARED_NAMESPACES` and
        :data:`ACTION_NAMESPACES`). Disabled ones are left out of the lines.
    interactions : tuple of str
        Two-letter namespace pairs handed to VW as ``-q``; each letter must be
        an enabled namespace.

    >>> FeaturizerConfig().content_hash == FeaturizerConfig().content_hash
    True
    >>> FeaturizerConfig(interactions=("pZ",))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nba.features.FeaturizeError: FeaturizerConfig: field 'interactions': 'pZ' names ...
    """

    namespaces: tuple[str, ...] = SHARED_NAMESPACES + ACTION_NAMESPACES
    interactions: tuple[str, ...] = ("pT", "pK", "pF", "hT", "hK", "cK", "rK")
    version: int = FEATURIZER_VERSION
    _hash: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        def err(fieldname: str, problem: str) -> FeaturizeError:
            return FeaturizeError(f"FeaturizerConfig: field '{fieldname}': {problem}")

        object.__setattr__(self, "namespaces", tuple(self.namespaces))
        object.__setattr__(self, "interactions", tuple(self.interactions))
        known = SHARED_NAMESPACES + ACTION_NAMESPACES
        for ns in self.namespaces:
            if ns not in known:
                raise err("namespaces", f"unknown namespace {ns!r} (known: {', '.join(known)})")
        if len(set(self.namespaces)) != len(self.namespaces):
            raise err("namespaces", "lists a namespace twice")
        if not any(ns in ACTION_NAMESPACES for ns in self.namespaces):
            raise err("namespaces", "needs at least one action namespace")
        enabled = [ns for ns in known if ns in self.namespaces]
        object.__setattr__(self, "namespaces", tuple(enabled))
        for pair in self.interactions:
            if not isinstance(pair, str) or len(pair) != 2:
                raise err("interactions", f"{pair!r} is not a pair of namespace letters")
            for letter in pair:
                if letter not in enabled:
                    raise err(
                        "interactions",
                        f"{pair!r} names namespace {letter!r}, which is not enabled "
                        f"(enabled: {', '.join(enabled)})",
                    )
        if len(set(self.interactions)) != len(self.interactions):
            raise err("interactions", "lists a pair twice")
        if self.version != FEATURIZER_VERSION:
            raise err("version", f"{self.version} is not supported ({FEATURIZER_VERSION} is)")
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        object.__setattr__(self, "_hash", hashlib.sha256(blob.encode()).hexdigest()[:16])

    @property
    def content_hash(self) -> str:
        """First 16 hex digits of the SHA-256 of :meth:`to_dict` as canonical JSON."""
        return self._hash

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "namespaces": list(self.namespaces),
            "interactions": list(self.interactions),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeaturizerConfig:
        unknown = sorted(set(d) - {"version", "namespaces", "interactions"})
        if unknown:
            raise FeaturizeError(f"FeaturizerConfig: field '{unknown[0]}': unknown field")
        return cls(
            namespaces=tuple(d.get("namespaces", SHARED_NAMESPACES + ACTION_NAMESPACES)),
            interactions=tuple(d.get("interactions", cls.interactions)),
            version=int(d.get("version", FEATURIZER_VERSION)),
        )

    @property
    def shared(self) -> tuple[str, ...]:
        return tuple(ns for ns in self.namespaces if ns in SHARED_NAMESPACES)

    @property
    def action(self) -> tuple[str, ...]:
        return tuple(ns for ns in self.namespaces if ns in ACTION_NAMESPACES)


# --------------------------------------------------------------------------- tokens
def _profile_tokens(hcp: HCPProfile) -> str:
    out = (
        f" spec={clean(hcp.specialty)} mkt={clean(hcp.market)} stage={hcp.adoption_stage}"
        f" dec={hcp.decile} aff:{fixed3(hcp.digital_affinity)}"
    )
    if hcp.no_see:
        out += " nosee"
    for c in sorted(hcp.consents):
        out += f" cons={clean(c)}"
    return out


def _history_tokens(h: History) -> str:
    out = ""
    for w in HISTORY_WINDOWS:
        for k, v in getattr(h, f"touches_{w}d").items():
            out += f" t{w}_{clean(k)}:{v}"
    for k, v in h.engagements_30d.items():
        out += f" e30_{clean(k)}:{v}"
    for k, v in h.topic_engagements_90d.items():
        out += f" te90_{clean(k)}:{v}"
    for k, v in h.days_since_touch.items():
        out += f" dst_{clean(k)}:{v}"
    if h.last_content_id:
        out += f" last={clean(h.last_content_id)}"
    return out


def _request_tokens(req: Mapping[str, Any]) -> str:
    out = ""
    for k, v in req.items():
        if isinstance(v, bool):
            out += f" {clean(k)}={'true' if v else 'false'}"
        elif isinstance(v, int | float):
            out += f" {clean(k)}:{fixed3(v)}"
        else:
            out += f" {clean(k)}={clean(str(v))}"
    return out


def _calendar_tokens(day: date) -> str:
    return f" dow={_DOW[day.weekday()]} mon={day.month}"


# ---------------------------------------------------------------- bulk results
@dataclass(frozen=True)
class FeaturizedBatch:
    """VW lines for many decisions, kept columnar.

    Attributes
    ----------
    shared : pyarrow.StringArray, shape (n_decisions,)
        The ``shared`` line of each decision.
    actions : pyarrow.StringArray, shape (n_action_lines,)
        Action lines of all decisions, concatenated in decision order.
    offsets : ndarray of int64, shape (n_decisions + 1,)
        Decision ``i`` owns ``actions[offsets[i]:offsets[i+1]]``.
    """

    shared: pa.StringArray
    actions: pa.StringArray
    offsets: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.shared)

    def lines(self, i: int) -> list[str]:
        """The lines of decision ``i`` (what :meth:`Featurizer.featurize_one` returns)."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return [str(self.shared[i].as_py()), *(str(s) for s in self.actions[lo:hi].to_pylist())]

    def text(
        self,
        action_prefix: pa.StringArray | None = None,
        *,
        label_positions: npt.NDArray[np.int64] | None = None,
        label_prefixes: pa.StringArray | None = None,
    ) -> bytes:
        """All examples as one VW text file (examples separated by a blank line).

        Parameters
        ----------
        action_prefix : pyarrow.StringArray, shape (n_action_lines,), optional
            Written before each action line; nulls write nothing.
        label_positions : ndarray of int64, shape (k,), optional
            Action lines (flat indices) that get a prefix from ``label_prefixes``
            (shape (k,)): the sparse, cheaper form used for labels.
        """
        acts = self.actions
        m = int(self.offsets[-1])
        if action_prefix is not None:
            if len(action_prefix) != len(acts):
                raise FeaturizeError(
                    f"text: {len(action_prefix)} prefixes for {len(acts)} action lines"
                )
            acts = _join(action_prefix, acts)
        n = len(self.shared)
        sizes = np.diff(self.offsets)
        pieces: list[pa.Array] = [
            _join(self.shared, "\n"),
            _join(acts, "\n"),
            pa.array(["\n"], pa.string()),
        ]
        act_src = n + np.arange(m, dtype=np.int64)
        if label_positions is not None:
            pos = np.asarray(label_positions, dtype=np.int64)
            if label_prefixes is None or len(label_prefixes) != len(pos):
                raise FeaturizeError("text: label_prefixes must match label_positions")
            if len(pos) and (pos.min() < 0 or pos.max() >= m):
                raise FeaturizeError(f"text: label positions must be in 0..{m - 1}")
            pieces.append(_join(label_prefixes, acts.take(pa.array(pos)), "\n"))
            act_src[pos] = n + m + 1 + np.arange(len(pos), dtype=np.int64)
        # each decision: shared, its actions, then an empty line
        starts = self.offsets[:-1] + np.arange(n, dtype=np.int64) * 2
        order = np.empty(m + 2 * n, dtype=np.int64)
        order[starts] = np.arange(n, dtype=np.int64)
        act_pos = np.repeat(starts + 1, sizes) + (
            np.arange(m, dtype=np.int64) - np.repeat(self.offsets[:-1], sizes)
        )
        order[act_pos] = act_src
        order[starts + 1 + sizes] = n + m
        lines = pa.concat_arrays([p.cast(pa.string()) for p in pieces]).take(pa.array(order))
        return _concat(lines)


def _concat(arr: pa.Array) -> bytes:
    """The strings of ``arr`` back to back, as one bytes object."""
    if len(arr) == 0:
        return b""
    arr = pa.concat_arrays([arr])
    bufs = arr.buffers()
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offs = np.frombuffer(bufs[1], dtype=width)[arr.offset : arr.offset + len(arr) + 1]
    return bytes(memoryview(bufs[2])[int(offs[0]) : int(offs[-1])])


def _concat_lines(arr: pa.Array) -> bytes:
    """Every string of ``arr`` followed by a newline, as one bytes object."""
    if len(arr) == 0:
        return b""
    return _concat(pc.binary_join_element_wise(arr, "\n", ""))


# ----------------------------------------------------------------- featurizer
class Featurizer:
    """Turns contexts and actions into VW ADF lines (one decision or a table).

    Parameters
    ----------
    catalog : Catalog
        Where action topics and formats come from.
    config : FeaturizerConfig, optional
    """

    def __init__(self, catalog: Catalog, config: FeaturizerConfig | None = None) -> None:
        self.catalog = catalog
        self.config = config or FeaturizerConfig()
        ns = set(self.config.namespaces)
        self._static: dict[str, str] = {}
        for a in catalog.actions:
            item = catalog.by_id[a.content_id]
            parts = []
            if "T" in ns:
                parts.append(f"|T {clean(item.topic)}")
            if "K" in ns:
                parts.append(f"|K {clean(a.channel)}")
            if "F" in ns:
                parts.append(f"|F {clean(item.format)}")
            if "I" in ns:
                parts.append(f"|I {clean(a.content_id)}")
            self._static[a.action_id] = " ".join(parts)
        self._topic = {a.action_id: catalog.by_id[a.content_id].topic for a in catalog.actions}

    @property
    def interactions(self) -> tuple[str, ...]:
        return self.config.interactions

    # ------------------------------------------------------------ one decision
    def shared_line(self, context: DecisionContext) -> str:
        """The ``shared`` line of one decision."""
        parts = ["shared"]
        for ns in self.config.shared:
            if ns == "p":
                parts.append("|p" + _profile_tokens(context.hcp))
            elif ns == "h":
                parts.append("|h" + _history_tokens(context.history))
            elif ns == "r":
                parts.append("|r" + _request_tokens(context.request))
            else:
                parts.append("|c" + _calendar_tokens(context.day))
        return " ".join(parts)

    def _static_of(self, action: Action) -> str:
        try:
            return self._static[action.action_id]
        except KeyError:
            raise FeaturizeError(
                f"action {action.action_id!r} is not in catalog {self.catalog.version} "
                f"({self.catalog.source})"
            ) from None

    def action_line(self, context: DecisionContext, action: Action) -> str:
        """The line of one action in the context of one decision."""
        line = self._static_of(action)
        if "x" not in self.config.namespaces:
            return line
        h = context.history
        ch = action.channel
        topic = self._topic[action.action_id]
        x = ""
        if h.last_content_id is not None and h.last_content_id == action.content_id:
            x += " same_last"
        v = h.touches_7d.get(ch, 0)
        if v:
            x += f" ch_t7:{v}"
        v = h.touches_30d.get(ch, 0)
        if v:
            x += f" ch_t30:{v}"
        v = h.engagements_30d.get(ch, 0)
        if v:
            x += f" ch_e30:{v}"
        d = h.days_since_touch.get(ch)
        x += " ch_dst_none" if d is None else f" ch_dst:{d}"
        x += f" aff_{clean(ch)}:{fixed3(context.hcp.digital_affinity)}"
        if ch not in context.hcp.consents:
            x += " nocons"
        v = h.topic_engagements_90d.get(topic, 0)
        if v:
            x += f" top_e90:{v}"
        x += f" st_top={context.hcp.adoption_stage}_{clean(topic)}"
        return f"{line} |x{x}" if line else f"|x{x}"

    def featurize_one(self, context: DecisionContext, actions: Sequence[Action]) -> list[str]:
        """VW lines of one ADF example (no labels): ``shared`` then one per action.

        Parameters
        ----------
        context : DecisionContext
        actions : sequence of Action, length n_actions
            The eligible actions in scoring order.

        Returns
        -------
        list of str, length n_actions + 1
        """
        if not actions:
            raise FeaturizeError("featurize_one: no actions given")
        return [self.shared_line(context), *(self.action_line(context, a) for a in actions)]

    def featurize_json(self, context_json: str, action_ids: Sequence[str]) -> list[str]:
        """Like :meth:`featurize_one` for a logged ``context`` column value.

        Handles foreign DSJSON contexts (``{"dsjson": {...}}``) by passing their
        namespaces through.
        """
        if _DSJSON_PREFIX.match(context_json):
            return dsjson_passthrough_lines(context_json, action_ids)
        ctx = DecisionContext.from_json(context_json)
        return self.featurize_one(ctx, [_parse_action(a) for a in action_ids])

    def dsjson_c(self, context: DecisionContext, actions: Sequence[Action]) -> dict[str, Any]:
        """The DSJSON ``c`` object of one decision: the same features as
        :meth:`featurize_one`, as namespaces of ``{feature: value}`` and ``_multi``.

        Returns
        -------
        dict
            ``{"p": {...}, "h": {...}, ..., "_multi": [{"T": {...}, ...}, ...]}``
        """
        lines = self.featurize_one(context, actions)
        c: dict[str, Any] = dict(_line_to_namespaces(lines[0][len("shared ") :]))
        c["_multi"] = [_line_to_namespaces(line) for line in lines[1:]]
        return c

    # ----------------------------------------------------------------- bulk
    def featurize_table(self, table: pa.Table) -> FeaturizedBatch:
        """VW lines of every decision of a log table, built column-wise.

        Parameters
        ----------
        table : pyarrow.Table
            Needs columns ``context`` (string, the logged JSON) and ``action_ids``
            (list of string); ``event_id`` is used in error messages if present.

        Returns
        -------
        FeaturizedBatch
            Identical lines to :meth:`featurize_json` row by row.
        """
        for col in ("context", "action_ids"):
            if col not in table.column_names:
                raise FeaturizeError(f"featurize_table: missing column {col!r}")
        n = table.num_rows
        ctx = table.column("context").combine_chunks()
        if not pa.types.is_string(ctx.type) and not pa.types.is_large_string(ctx.type):
            raise FeaturizeError(f"featurize_table: column 'context' is {ctx.type}, not string")
        acts = table.column("action_ids").combine_chunks()
        event_ids = (
            table.column("event_id").combine_chunks()
            if "event_id" in table.column_names
            else pa.array([f"row {i}" for i in range(n)])
        )
        if n == 0:
            return FeaturizedBatch(
                pa.array([], pa.string()), pa.array([], pa.string()), np.zeros(1, np.int64)
            )
        if ctx.null_count or acts.null_count:
            bad = int(
                np.flatnonzero(
                    pc.or_(ctx.is_null(), acts.is_null()).to_numpy(zero_copy_only=False)
                )[0]
            )
            raise FeaturizeError(
                f"featurize_table: event {event_ids[bad].as_py()!r}: context or action_ids is null"
            )
        is_ds = pc.match_substring_regex(ctx, r'^\s*\{\s*"dsjson"\s*:').to_numpy(
            zero_copy_only=False
        )
        if is_ds.any():
            return self._mixed(table, is_ds)
        return self._bulk(ctx, acts, event_ids)

    def _mixed(self, table: pa.Table, is_ds: npt.NDArray[np.bool_]) -> FeaturizedBatch:
        """Foreign DSJSON rows one by one, native rows in bulk, merged in order."""
        native_idx = np.flatnonzero(~is_ds)
        native = self.featurize_table(table.take(pa.array(native_idx))) if len(native_idx) else None
        shared: list[str] = []
        actions: list[str] = []
        offsets = [0]
        ctx = table.column("context").to_pylist()
        aids = table.column("action_ids").to_pylist()
        k = 0
        for i in range(table.num_rows):
            if is_ds[i]:
                lines = dsjson_passthrough_lines(ctx[i], aids[i])
            else:
                assert native is not None
                lines = native.lines(k)
                k += 1
            shared.append(lines[0])
            actions.extend(lines[1:])
            offsets.append(len(actions))
        return FeaturizedBatch(
            pa.array(shared, pa.string()),
            pa.array(actions, pa.string()),
            np.asarray(offsets, dtype=np.int64),
        )

    def _bulk(self, ctx: pa.Array, acts: pa.Array, event_ids: pa.Array) -> FeaturizedBatch:
        n = len(ctx)
        blob = _concat_lines(ctx)
        opts = pj.ParseOptions(
            newlines_in_values=bool(pc.any(pc.match_substring(ctx, "\n")).as_py())
        )
        try:
            parsed = pj.read_json(io.BytesIO(blob), parse_options=opts)
        except pa.ArrowInvalid:
            # columns whose JSON type changes between rows (e.g. a request value
            # that is a number in one row and a string in another): row by row
            return self._rowwise(ctx, acts, event_ids)
        if parsed.num_rows != n:
            raise FeaturizeError(
                f"featurize_table: parsed {parsed.num_rows} contexts from {n} rows"
            )
        cols = _Columns(parsed, event_ids)
        ver = cols.get("v")
        if ver is not None:
            bad = pc.not_equal(ver, 1)
            cols.fail_if(bad, "v", "unsupported context version")
        spec = cols.req_str("hcp", "specialty")
        market = cols.req_str("hcp", "market")
        stage = cols.req_str("hcp", "adoption_stage")
        cols.fail_if(
            pc.invert(pc.is_in(stage, pa.array(ADOPTION_STAGES))),
            "hcp.adoption_stage",
            f"not one of {', '.join(ADOPTION_STAGES)}",
        )
        decile = cols.req_num("hcp", "decile")
        cols.fail_if(
            pc.or_(pc.less(decile, 1), pc.greater(decile, 10)), "hcp.decile", "must be 1-10"
        )
        aff_col = cols.get("hcp", "digital_affinity")
        aff = (
            np.full(n, 0.5)
            if aff_col is None
            else pc.fill_null(aff_col.cast(pa.float64()), 0.5).to_numpy(zero_copy_only=False)
        )
        if np.any((aff < 0) | (aff > 1)) or not np.all(np.isfinite(aff)):
            cols.fail_if(
                pa.array((aff < 0) | (aff > 1) | ~np.isfinite(aff)),
                "hcp.digital_affinity",
                "must be in [0, 1]",
            )
        aff_s = _fixed3_arrow(aff)
        day = cols.req("day")
        day = _as_date32(day, cols)

        shared_parts: list[pa.Array | str] = ["shared"]
        cfg = set(self.config.namespaces)
        consents = _Consents(cols.get("hcp", "consents"), n)
        if "p" in cfg:
            nosee_col = cols.get("hcp", "no_see")
            nosee = (
                pa.nulls(n, pa.string())
                if nosee_col is None
                else pc.if_else(
                    pc.fill_null(nosee_col, False), " nosee", pa.scalar(None, pa.string())
                )
            )
            cons = consents.tokens()
            p = _join(
                " |p spec=",
                _clean_arrow(spec),
                " mkt=",
                _clean_arrow(market),
                " stage=",
                stage,
                " dec=",
                pc.cast(decile.cast(pa.int64()), pa.string()),
                " aff:",
                aff_s,
                nosee,
                cons,
            )
            shared_parts.append(p)
        hist = _HistoryColumns(cols, n)
        if "h" in cfg:
            shared_parts.append(_join(" |h", *hist.tokens()))
        if "r" in cfg:
            shared_parts.append(_join(" |r", *_request_pieces(cols.get("request"), cols)))
        if "c" in cfg:
            dow = pa.array(list(_DOW), pa.string()).take(pc.day_of_week(day))
            mon = pc.cast(pc.month(day), pa.string())
            shared_parts.append(_join(" |c dow=", dow, " mon=", mon))
        shared = _join(*shared_parts)

        # ---- actions
        flat_ids = acts.flatten()
        list_offsets = np.asarray(acts.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        list_offsets = list_offsets - list_offsets[0]
        sizes = np.diff(list_offsets)
        if np.any(sizes == 0):
            bad = int(np.flatnonzero(sizes == 0)[0])
            raise FeaturizeError(
                f"featurize_table: event {event_ids[bad].as_py()!r}: no eligible actions"
            )
        cat_ids = pa.array(list(self.catalog.action_ids), pa.string())
        idx_arr = pc.index_in(flat_ids, value_set=cat_ids)
        if idx_arr.null_count:
            bad_flat = int(np.flatnonzero(idx_arr.is_null().to_numpy(zero_copy_only=False))[0])
            row = int(np.searchsorted(list_offsets, bad_flat, side="right") - 1)
            raise FeaturizeError(
                f"featurize_table: event {event_ids[row].as_py()!r}: action "
                f"{flat_ids[bad_flat].as_py()!r} is not in catalog {self.catalog.version}"
            )
        aidx = idx_arr.to_numpy(zero_copy_only=False).astype(np.int64)
        row_of = np.repeat(np.arange(n, dtype=np.int64), sizes)
        static = pa.array([self._static[a] for a in self.catalog.action_ids], pa.string())
        line = static.take(pa.array(aidx))
        if "x" in cfg:
            x = self._cross_pieces(aidx, row_of, hist, consents, stage, aff_s)
            sep = " |x" if self.config.action != ("x",) else "|x"
            line = _join(line, sep, *x)
        return FeaturizedBatch(shared, line, list_offsets)

    def _cross_pieces(
        self,
        aidx: npt.NDArray[np.int64],
        row_of: npt.NDArray[np.int64],
        hist: _HistoryColumns,
        consents: _Consents,
        stage: pa.Array,
        aff_s: pa.Array,
    ) -> list[pa.Array | str]:
        """The ``x`` namespace of every action line. Channel-dependent pieces are
        built once per (decision, channel) and topic-dependent ones once per
        (decision, topic), then gathered per action line."""
        cat = self.catalog
        n = len(stage)
        ch_of = cat.action_channel_index.astype(np.int64)[aidx]
        top_of = cat.action_topic_index.astype(np.int64)[aidx]
        item_of = cat.action_item_index.astype(np.int64)[aidx]
        channels = list(cat.channels)
        topics = list(cat.topics)
        nch, ntop = len(channels), len(topics)
        none = pa.scalar(None, pa.string())
        rows_c = np.repeat(np.arange(n, dtype=np.int64), nch)  # (n * nch,) row-major

        def count_piece(prefix: str, mat: npt.NDArray[np.int64]) -> pa.Array:
            vals = mat.reshape(-1)
            s = pc.binary_join_element_wise(prefix, pc.cast(pa.array(vals), pa.string()), "")
            return pc.if_else(pa.array(vals != 0), s, none)

        dst_m, dst_present = hist.matrix_present("days_since_touch", channels)
        dst = pc.if_else(
            pa.array(dst_present.reshape(-1)),
            pc.binary_join_element_wise(
                " ch_dst:", pc.cast(pa.array(dst_m.reshape(-1)), pa.string()), ""
            ),
            " ch_dst_none",
        )
        aff_prefix = pa.array([f" aff_{clean(c)}:" for c in channels], pa.string()).take(
            pa.array(np.tile(np.arange(nch, dtype=np.int64), n))
        )
        cons_m = consents.matrix(channels)
        per_channel = _join(
            count_piece(" ch_t7:", hist.matrix("touches_7d", channels)),
            count_piece(" ch_t30:", hist.matrix("touches_30d", channels)),
            count_piece(" ch_e30:", hist.matrix("engagements_30d", channels)),
            dst,
            aff_prefix,
            aff_s.take(pa.array(rows_c)),
            pc.if_else(pa.array(~cons_m.reshape(-1)), " nocons", none),
        )
        topic_names = pa.array([f"_{clean(t)}" for t in topics], pa.string()).take(
            pa.array(np.tile(np.arange(ntop, dtype=np.int64), n))
        )
        per_topic = _join(
            count_piece(" top_e90:", hist.matrix("topic_engagements_90d", topics)),
            " st_top=",
            stage.take(pa.array(np.repeat(np.arange(n, dtype=np.int64), ntop))),
            topic_names,
        )
        pieces: list[pa.Array | str] = []
        last = hist.last_content
        if last is not None:
            item_ids = pa.array([it.id for it in cat.items], pa.string())
            same = pc.equal(last.take(pa.array(row_of)), item_ids.take(pa.array(item_of)))
            pieces.append(pc.if_else(pc.fill_null(same, False), " same_last", none))
        pieces.append(per_channel.take(pa.array(row_of * nch + ch_of)))
        pieces.append(per_topic.take(pa.array(row_of * ntop + top_of)))
        return pieces

    def _rowwise(self, ctx: pa.Array, acts: pa.Array, event_ids: pa.Array) -> FeaturizedBatch:
        shared: list[str] = []
        actions: list[str] = []
        offsets = [0]
        for i, (c, a) in enumerate(zip(ctx.to_pylist(), acts.to_pylist(), strict=True)):
            try:
                lines = self.featurize_json(c, a)
            except ValidationError as exc:
                raise FeaturizeError(
                    f"featurize_table: event {event_ids[i].as_py()!r}: {exc}"
                ) from exc
            shared.append(lines[0])
            actions.extend(lines[1:])
            offsets.append(len(actions))
        return FeaturizedBatch(
            pa.array(shared, pa.string()),
            pa.array(actions, pa.string()),
            np.asarray(offsets, dtype=np.int64),
        )


# ------------------------------------------------------------- bulk helpers
def _parse_action(action_id: str) -> Action:
    try:
        return Action.parse(action_id)
    except ValidationError as exc:
        raise FeaturizeError(f"action id {action_id!r}: {exc}") from exc


def _join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation; null pieces write nothing."""
    return pc.binary_join_element_wise(*parts, "", null_handling="replace", null_replacement="")


def _clean_arrow(arr: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(arr, _CLEAN_RE2, "_")


def _fixed3_arrow(x: npt.NDArray[np.float64]) -> pa.Array:
    m = np.rint(np.asarray(x, dtype=np.float64) * 1000.0).astype(np.int64)
    neg = m < 0
    m = np.abs(m)
    ip = pc.cast(pa.array(m // 1000), pa.string())
    fp = pc.utf8_lpad(pc.cast(pa.array(m % 1000), pa.string()), 3, "0")
    sign = pc.if_else(pa.array(neg), "-", "")
    return _join(sign, ip, ".", fp)


def _as_date32(day: pa.Array, cols: _Columns) -> pa.Array:
    try:
        return pc.cast(day, pa.date32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise FeaturizeError(f"featurize_table: field 'day': not an ISO date: {exc}") from exc


class _Consents:
    """Consent lists of a batch, deduplicated and sorted per row (like a frozenset)."""

    def __init__(self, consents: pa.Array | None, n: int) -> None:
        self.n = n
        self.parents = np.zeros(0, dtype=np.int64)
        self.codes = np.zeros(0, dtype=np.int64)
        self.values: list[str] = []
        if consents is None or len(consents) == 0:
            return
        filled = pc.fill_null(consents, pa.scalar([], consents.type))
        parents = np.asarray(
            pc.list_parent_indices(filled).to_numpy(zero_copy_only=False), dtype=np.int64
        )
        flat = pc.list_flatten(filled)
        if len(flat) == 0:
            return
        enc = (
            pc.dictionary_encode(flat).combine_chunks()
            if isinstance(flat, pa.ChunkedArray)
            else pc.dictionary_encode(flat)
        )
        values = [str(v) for v in enc.dictionary.to_pylist()]
        rank = np.argsort(np.argsort(np.array(values, dtype=object)))  # sorted-string order
        order_values = [values[i] for i in np.argsort(rank)]
        codes = rank[np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
        k = len(values)
        key = np.sort(parents * k + codes)  # by row, then value
        key = key[np.r_[True, key[1:] != key[:-1]]]  # duplicates gone
        self.parents = key // k
        self.codes = key % k
        self.values = order_values

    def tokens(self) -> pa.Array:
        """`` cons=<value>`` tokens of each row, concatenated, shape (n,)."""
        if not self.values:
            return pa.nulls(self.n, pa.string())
        toks = pa.array([f" cons={clean(v)}" for v in self.values], pa.string()).take(
            pa.array(self.codes)
        )
        counts = np.bincount(self.parents, minlength=self.n)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), toks), "")

    def matrix(self, channels: list[str]) -> npt.NDArray[np.bool_]:
        """Whether each row consents to each channel, shape (n, len(channels))."""
        out = np.zeros((self.n, len(channels)), dtype=bool)
        if not self.values:
            return out
        pos = {c: i for i, c in enumerate(channels)}
        col = np.array([pos.get(v, -1) for v in self.values], dtype=np.int64)[self.codes]
        ok = col >= 0
        out[self.parents[ok], col[ok]] = True
        return out


class _Columns:
    """Typed access to the parsed context table with errors naming the event."""

    def __init__(self, parsed: pa.Table, event_ids: pa.Array) -> None:
        self.parsed = parsed
        self.event_ids = event_ids
        self.n = parsed.num_rows

    def get(self, *path: str) -> pa.Array | None:
        if path[0] not in self.parsed.column_names:
            return None
        arr: pa.Array = self.parsed.column(path[0]).combine_chunks()
        for name in path[1:]:
            if not pa.types.is_struct(arr.type) or arr.type.get_field_index(name) < 0:
                return None
            arr = pc.struct_field(arr, name)
        return arr

    def fail_if(self, mask: pa.Array, fieldname: str, problem: str) -> None:
        m = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
        if m.any():
            i = int(np.flatnonzero(m)[0])
            raise FeaturizeError(
                f"featurize_table: event {self.event_ids[i].as_py()!r}: field "
                f"'{fieldname}': {problem}"
            )

    def req(self, *path: str) -> pa.Array:
        arr = self.get(*path)
        name = ".".join(path)
        if arr is None:
            raise FeaturizeError(f"featurize_table: field '{name}' is missing from every context")
        self.fail_if(arr.is_null(), name, "missing")
        return arr

    def req_str(self, *path: str) -> pa.Array:
        arr = self.req(*path)
        name = ".".join(path)
        if not pa.types.is_string(arr.type):
            raise FeaturizeError(f"featurize_table: field '{name}' is {arr.type}, not a string")
        self.fail_if(pc.equal(pc.utf8_length(arr), 0), name, "must not be empty")
        return arr

    def req_num(self, *path: str) -> pa.Array:
        arr = self.req(*path)
        name = ".".join(path)
        if not pa.types.is_integer(arr.type):
            raise FeaturizeError(f"featurize_table: field '{name}' is {arr.type}, not an integer")
        return arr


class _HistoryColumns:
    """History maps as dense (n, k) matrices over a vocabulary, and as tokens."""

    def __init__(self, cols: _Columns, n: int) -> None:
        self.cols = cols
        self.n = n
        self.last_content = cols.get("history", "last_content_id")
        if self.last_content is not None and not pa.types.is_string(self.last_content.type):
            if self.last_content.null_count == len(self.last_content):
                self.last_content = None
            else:
                raise FeaturizeError(
                    "featurize_table: field 'history.last_content_id' is not a string"
                )

    def _fields(self, name: str) -> list[tuple[str, pa.Array]]:
        arr = self.cols.get("history", name)
        if arr is None or not pa.types.is_struct(arr.type):
            return []
        out = []
        for i in range(arr.type.num_fields):
            key = arr.type.field(i).name
            child = pc.struct_field(arr, [i])
            if pa.types.is_null(child.type):
                continue
            if not pa.types.is_integer(child.type):
                raise FeaturizeError(
                    f"featurize_table: field 'history.{name}.{key}' is {child.type}, "
                    "not a whole-number count"
                )
            self.cols.fail_if(pc.less(child, 0), f"history.{name}.{key}", "negative count")
            out.append((key, child))
        return sorted(out, key=lambda kv: kv[0])

    def matrix(self, name: str, vocab: list[str]) -> npt.NDArray[np.int64]:
        return self.matrix_present(name, vocab)[0]

    def matrix_present(
        self, name: str, vocab: list[str]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        vals = np.zeros((self.n, len(vocab)), dtype=np.int64)
        present = np.zeros((self.n, len(vocab)), dtype=bool)
        pos = {v: i for i, v in enumerate(vocab)}
        for key, child in self._fields(name):
            j = pos.get(key)
            if j is None:
                continue
            present[:, j] = child.is_valid().to_numpy(zero_copy_only=False)
            vals[:, j] = pc.fill_null(child, 0).to_numpy(zero_copy_only=False)
        return vals, present

    def tokens(self) -> list[pa.Array]:
        none = pa.scalar(None, pa.string())
        out: list[pa.Array] = []
        spec = [(f"touches_{w}d", f"t{w}_", True) for w in HISTORY_WINDOWS] + [
            ("engagements_30d", "e30_", True),
            ("topic_engagements_90d", "te90_", True),
            ("days_since_touch", "dst_", False),
        ]
        for name, prefix, drop_zero in spec:
            for key, child in self._fields(name):
                s = pc.binary_join_element_wise(
                    f" {prefix}{clean(key)}:", pc.cast(child, pa.string()), ""
                )
                if drop_zero:
                    s = pc.if_else(pc.fill_null(pc.not_equal(child, 0), False), s, none)
                out.append(s)
        if self.last_content is not None:
            out.append(
                pc.if_else(
                    pc.fill_null(pc.greater(pc.utf8_length(self.last_content), 0), False),
                    pc.binary_join_element_wise(" last=", _clean_arrow(self.last_content), ""),
                    none,
                )
            )
        return out


def _request_pieces(req: pa.Array | None, cols: _Columns) -> list[pa.Array]:
    if req is None or not pa.types.is_struct(req.type):
        return []
    fields = sorted(
        ((req.type.field(i).name, pc.struct_field(req, [i])) for i in range(req.type.num_fields)),
        key=lambda kv: kv[0],
    )
    out: list[pa.Array] = []
    for key, child in fields:
        k = clean(key)
        t = child.type
        if pa.types.is_null(t):
            continue
        if pa.types.is_boolean(t):
            s = pc.if_else(child, f" {k}=true", f" {k}=false")
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            vals = child.cast(pa.float64())
            num = _fixed3_arrow(pc.fill_null(vals, 0.0).to_numpy(zero_copy_only=False))
            s = pc.if_else(
                child.is_valid(),
                pc.binary_join_element_wise(f" {k}:", num, ""),
                pa.scalar(None, pa.string()),
            )
        elif pa.types.is_string(t):
            s = pc.binary_join_element_wise(f" {k}=", _clean_arrow(child), "")
        elif pa.types.is_timestamp(t):
            # the JSON reader guesses timestamps from ISO-looking strings; not
            # recoverable exactly, so such requests go row by row
            raise pa.ArrowInvalid("timestamp-like request value")
        else:
            raise FeaturizeError(
                f"featurize_table: field 'request.{key}' is {t}; request values must be "
                "strings, numbers or booleans"
            )
        out.append(s)
    return out


# ----------------------------------------------------- DSJSON pass-through
def _line_to_namespaces(line: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for chunk in line.split("|")[1:]:
        toks = chunk.split()
        if not toks:
            continue
        ns, feats = toks[0], toks[1:]
        d = out.setdefault(ns, {})
        for t in feats:
            name, sep, val = t.partition(":")
            d[name] = float(val) if sep else 1.0
    return out


def _dsjson_tokens(obj: Mapping[str, Any], prefix: str = "") -> list[str]:
    toks: list[str] = []
    for k, v in obj.items():
        name = clean(f"{prefix}{k}")
        if isinstance(v, bool):
            if v:
                toks.append(name)
        elif isinstance(v, int | float):
            toks.append(f"{name}:{fixed3(v)}")
        elif isinstance(v, str):
            toks.append(f"{name}={clean(v)}")
        elif isinstance(v, list):
            for j, e in enumerate(v):
                if isinstance(e, int | float) and not isinstance(e, bool):
                    toks.append(f"{name}_{j}:{fixed3(e)}")
                elif isinstance(e, str):
                    toks.append(f"{name}={clean(e)}")
        elif isinstance(v, Mapping):
            toks.extend(_dsjson_tokens(v, prefix=f"{name}_"))
    return toks


def _dsjson_namespaces(obj: Mapping[str, Any]) -> str:
    """VW namespaces from a DSJSON feature object: each object-valued key is a
    namespace; scalar keys go to the default namespace."""
    parts: list[str] = []
    scalars = {k: v for k, v in obj.items() if not k.startswith("_") and not isinstance(v, Mapping)}
    if scalars:
        parts.append("| " + " ".join(_dsjson_tokens(scalars)))
    for k, v in obj.items():
        if k.startswith("_") or not isinstance(v, Mapping):
            continue
        toks = _dsjson_tokens(v)
        parts.append(f"|{clean(k)} " + " ".join(toks) if toks else f"|{clean(k)}")
    return " ".join(parts)


def dsjson_passthrough_lines(context_json: str, action_ids: Sequence[str]) -> list[str]:
    """VW lines of an imported DSJSON context.

    Two forms are accepted: ``{"dsjson": {shared namespaces}, "dsjson_actions":
    {action_id: {namespaces}}}`` (what :mod:`nba.logs.dsjson` imports; an action
    without an entry gets ``{"action": {"id": action_id}}``), or ``{"dsjson": c}``
    where ``c`` holds ``_multi`` with one entry per action, in order.
    """
    try:
        d = json.loads(context_json)
    except json.JSONDecodeError as exc:
        raise FeaturizeError(f"DSJSON context: not valid JSON: {exc}") from exc
    c = d.get("dsjson") if isinstance(d, Mapping) else None
    if not isinstance(c, Mapping):
        raise FeaturizeError("DSJSON context: 'dsjson' must be an object (the shared features)")
    n_actions = len(action_ids)
    if "_multi" in c:
        multi = c["_multi"]
        if not isinstance(multi, list) or not all(isinstance(m, Mapping) for m in multi):
            raise FeaturizeError("DSJSON context: '_multi' must be a list of action objects")
        if len(multi) != n_actions:
            raise FeaturizeError(
                f"DSJSON context: '_multi' has {len(multi)} actions but the decision lists "
                f"{n_actions}"
            )
    else:
        per_action = d.get("dsjson_actions") or {}
        if not isinstance(per_action, Mapping):
            raise FeaturizeError("DSJSON context: 'dsjson_actions' must be an object")
        multi = [
            per_action[a] if isinstance(per_action.get(a), Mapping) else {"action": {"id": a}}
            for a in action_ids
        ]
    shared = _dsjson_namespaces(c)
    return [f"shared {shared}".rstrip(), *(_dsjson_namespaces(m) or "|" for m in multi)]
