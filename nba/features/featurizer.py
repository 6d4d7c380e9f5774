"""The :class:`Featurizer`: one decision (serving) or a whole log table (training).

The per-decision methods assemble lines from :mod:`nba.features.tokens`;
:meth:`Featurizer.featurize_table` hands native contexts to the bulk Arrow path
(:mod:`nba.features.bulk`) and foreign DSJSON contexts to
:mod:`nba.features.dsjson`, and merges them back in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from nba.catalog import Catalog
from nba.context import DecisionContext, TextPerObject, topic_channel_key
from nba.domain import Action, ValidationError
from nba.features.batch import FeaturizedBatch
from nba.features.bulk import featurize_bulk
from nba.features.config import FeaturizeError, FeaturizerConfig, age_bucket, clean, fixed3
from nba.features.dsjson import (
    DSJSON_PREFIX,
    DSJSON_PREFIX_PATTERN,
    dsjson_passthrough_lines,
    line_to_namespaces,
)
from nba.features.tokens import (
    attribute_tokens,
    calendar_tokens,
    channel_tokens,
    cross_tokens,
    history_tokens,
    profile_tokens,
    request_tokens,
)


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
        #: the shared namespaces in order (``config.shared`` builds the tuple per call)
        self._shared_namespaces = self.config.shared
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
        # what :func:`cross_tokens` writes of each action that does not depend on the
        # context: (static line, channel, topic, content id, clean topic, clean
        # channel, topic-channel key) -- :meth:`featurize_one` writes the x line from it
        self._cross: dict[str, tuple[str, str, str, str, str, str, str]] = {
            a.action_id: (
                self._static[a.action_id],
                a.channel,
                self._topic[a.action_id],
                a.content_id,
                clean(self._topic[a.action_id]),
                clean(a.channel),
                topic_channel_key(self._topic[a.action_id], a.channel),
            )
            for a in catalog.actions
        }

        #: the profile's and the history's tokens, made once per (immutable) object
        self._tokens_of = TextPerObject(self.KEPT_TOKENS)

    #: how many profiles and histories :attr:`_tokens_of` keeps (together)
    KEPT_TOKENS = 4096

    @property
    def interactions(self) -> tuple[str, ...]:
        return self.config.interactions

    # ------------------------------------------------------------ one decision
    def shared_line(self, context: DecisionContext) -> str:
        """The ``shared`` line of one decision."""
        parts = ["shared"]
        for ns in self._shared_namespaces:
            if ns == "p":
                parts.append(
                    "|p"
                    + self._tokens_of(context.hcp, profile_tokens)
                    + attribute_tokens(context.attributes)
                )
            elif ns == "h":
                parts.append("|h" + self._tokens_of(context.history, history_tokens))
            elif ns == "r":
                parts.append("|r" + request_tokens(context.request))
            else:
                parts.append("|c" + calendar_tokens(context.day))
        return " ".join(parts)

    def _static_of(self, action: Action, action_id: str | None = None) -> str:
        try:
            return self._static[action.action_id if action_id is None else action_id]
        except KeyError:
            raise FeaturizeError(
                f"action {action.action_id!r} is not in catalog {self.catalog.version} "
                f"({self.catalog.source})"
            ) from None

    def action_line(
        self,
        context: DecisionContext,
        action: Action,
        channel_parts: dict[str, str] | None = None,
    ) -> str:
        """The line of one action in the context of one decision.

        ``channel_parts`` (channel -> :func:`~nba.features.tokens.channel_tokens`)
        keeps the channel's tokens of this context for the next actions of the
        same decision; it must not outlive the decision.
        """
        action_id = action.action_id
        line = self._static_of(action, action_id)
        if "x" not in self.config.namespaces:
            return line
        part = None
        if channel_parts is not None:
            part = channel_parts.get(action.channel)
            if part is None:
                part = channel_parts[action.channel] = channel_tokens(context, action.channel)
        x = cross_tokens(context, action.channel, self._topic[action_id], action.content_id, part)
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
        parts: dict[str, str] = {}  # each channel's tokens, once per decision
        if "x" not in self.config.namespaces:
            return [
                self.shared_line(context),
                *(self.action_line(context, a, parts) for a in actions),
            ]
        # :meth:`action_line` of each action, its x tokens written as cross_tokens
        # writes them, from the parts of the action known ahead (the same bytes: the
        # tests hold the two together)
        lines = [self.shared_line(context)]
        h = context.history
        last = h.last_content_id
        top_e90 = h.topic_engagements_90d
        tc_e90 = h.topic_channel_engagements_90d
        ago = h.days_since_content
        interest = h.interest
        pulls = h.topic_pulls_90d
        stated_topics = context.stated_topics
        stated_channels = context.stated_channels
        stage = context.hcp.adoption_stage
        cross = self._cross
        for a in actions:
            known = cross.get(a.action_id)
            if known is None:  # not in the catalog: action_line names it
                lines.append(self.action_line(context, a, parts))
                continue
            line, ch, topic, content_id, topic_c, ch_c, tc_key = known
            x = " same_last" if last is not None and last == content_id else ""
            part = parts.get(ch)
            if part is None:
                part = parts[ch] = channel_tokens(context, ch)
            x += part
            v = top_e90.get(topic, 0)
            if v:
                x += f" top_e90:{v}"
            x += f" st_top={stage}_{topic_c}"
            v = tc_e90.get(tc_key, 0)
            if v:
                x += f" tc_e90:{v}"
            d = ago.get(content_id)
            if d is not None:
                x += f" it_ago={age_bucket(d)}"
            i = interest.get(topic)
            if i is not None:
                x += f" it_int:{fixed3(i)}"
            v = pulls.get(topic, 0)
            if v:
                x += f" it_pull:{v} it_pull_{ch_c}:{v}"
            if topic in stated_topics:
                x += " sp_top"
            if ch in stated_channels:
                x += " sp_ch"
            lines.append(f"{line} |x{x}" if line else f"|x{x}")
        return lines

    def featurize_json(self, context_json: str, action_ids: Sequence[str]) -> list[str]:
        """Like :meth:`featurize_one` for a logged ``context`` column value.

        Handles foreign DSJSON contexts (``{"dsjson": {...}}``) by passing their
        namespaces through.
        """
        if DSJSON_PREFIX.match(context_json):
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
        c: dict[str, Any] = dict(line_to_namespaces(lines[0][len("shared ") :]))
        c["_multi"] = [line_to_namespaces(line) for line in lines[1:]]
        return c

    # ----------------------------------------------------------------- bulk
    def featurize_table(self, table: pa.Table, action_json: bool = False) -> FeaturizedBatch:
        """VW lines of every decision of a log table, built column-wise.

        Parameters
        ----------
        table : pyarrow.Table
            Needs columns ``context`` (string, the logged JSON) and ``action_ids``
            (list of string); ``event_id`` is used in error messages if present.
        action_json : bool, default False
            Also give each action line as its DSJSON object
            (:attr:`FeaturizedBatch.actions_json`), written from the same
            pieces as the line where the bulk path covers them (else None).

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
        is_ds = pc.match_substring_regex(ctx, DSJSON_PREFIX_PATTERN).to_numpy(zero_copy_only=False)
        if is_ds.any():
            return self._mixed(table, is_ds)
        batch = featurize_bulk(self, ctx, acts, event_ids, action_json)
        return self._rowwise(ctx, acts, event_ids) if batch is None else batch

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


def _parse_action(action_id: str) -> Action:
    try:
        return Action.parse(action_id)
    except ValidationError as exc:
        raise FeaturizeError(f"action id {action_id!r}: {exc}") from exc
