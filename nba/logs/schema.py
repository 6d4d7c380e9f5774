"""Arrow schemas of the event log, the one contract every layer shares
(docs/DESIGN.md, "Data contracts").

A log directory looks like::

    DIR/decisions/date=YYYY-MM-DD/part-00000.parquet
    DIR/outcomes/date=YYYY-MM-DD/part-00000.parquet
    DIR/touches/date=YYYY-MM-DD/part-00000.parquet
    DIR/stated_preferences/date=YYYY-MM-DD/...  service only: what HCPs said they want
    DIR/catalog/<catalog_version>.json        one snapshot per catalog version
    DIR/ground_truth/date=YYYY-MM-DD/...      simulator only
    DIR/population.parquet                    simulator only: HCP profiles
    DIR/manifest.json                         who wrote it, how; its outcome horizon (as_of)

The ``date`` partition key is derived from ``ts`` (UTC) and is not part of the
schemas below: readers drop it.
"""

from __future__ import annotations

import pyarrow as pa

# the touch kinds live with nba.domain.Touch (which checks them), so that the
# domain records load without Arrow; re-exported here with the touches' schema
from nba.domain import TOUCH_KINDS as TOUCH_KINDS

TS = pa.timestamp("us", tz="UTC")

SUPPRESSION = pa.struct([pa.field("action_id", pa.string()), pa.field("rule", pa.string())])

SLATE_SLOT = pa.struct([pa.field("action_id", pa.string()), pa.field("probability", pa.float64())])

DECISIONS = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("hcp_id", pa.string(), nullable=False),
        pa.field("requester", pa.string(), nullable=False),
        pa.field("channels_requested", pa.list_(pa.string()), nullable=False),
        pa.field("context", pa.string(), nullable=False),
        pa.field("catalog_version", pa.string(), nullable=False),
        pa.field("action_ids", pa.list_(pa.string()), nullable=False),
        pa.field("probabilities", pa.list_(pa.float64()), nullable=False),
        pa.field("chosen_index", pa.int32(), nullable=False),
        pa.field("chosen_action_id", pa.string(), nullable=False),
        pa.field("propensity", pa.float64(), nullable=False),
        pa.field("policy", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("suppressed", pa.list_(SUPPRESSION), nullable=False),
        pa.field("activated", pa.bool_(), nullable=False),
        # every slot of the served list, slot 1 (the chosen action) first, each with its
        # probability given the slots before; null: one slot, the chosen action
        pa.field("slate", pa.list_(SLATE_SLOT), nullable=True),
        # the contact rules applied (their version hash) and whose rule set: the HCP's
        # market when the rules have a section for it, else "global"; null when no
        # rules were applied or the log predates these columns
        pa.field("rules_version", pa.string(), nullable=True),
        pa.field("rules_market", pa.string(), nullable=True),
        # the journey step that allowed the decision's actions ("<journey>/<step>");
        # null when no journey step governed it or the log predates the column
        pa.field("journey", pa.string(), nullable=True),
    ]
)

OUTCOMES = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        # idempotency key: (event_id, type, source_id) is stored once
        pa.field("source_id", pa.string(), nullable=False),
        # the decision's action the outcome concerns; null: its chosen action
        pa.field("action_id", pa.string(), nullable=True),
    ]
)

TOUCHES = pa.schema(
    [
        pa.field("hcp_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("content_id", pa.string(), nullable=False),
        pa.field("origin", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        # topics the HCP pulled (asked about, clicked, viewed); empty for a plain contact
        pa.field("topics", pa.list_(pa.string()), nullable=False),
        # further content or slide ids shown or viewed in the same touch (CLM slides)
        pa.field("content_ids", pa.list_(pa.string()), nullable=False),
        # seconds the HCP spent on it, when the source measures it
        pa.field("dwell_s", pa.float64(), nullable=True),
        # the decision a rep overrode with this touch (another HCP, channel or topic than
        # suggested); null for every other touch. Never a response to that decision.
        pa.field("overrides_event_id", pa.string(), nullable=True),
    ]
)

#: What an HCP told someone they want (:class:`nba.domain.StatedPreference`): a
#: statement, not behaviour, so a table of its own, never touches. Written by the
#: service's store export; a decision's context already carries the statements it
#: used (``stated``), so featurizing never reads this table.
STATED_PREFERENCES = pa.schema(
    [
        pa.field("hcp_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        # who recorded it (a rep id, a CRM import)
        pa.field("recorded_by", pa.string(), nullable=False),
        pa.field("topics", pa.list_(pa.string()), nullable=False),
        pa.field("channels", pa.list_(pa.string()), nullable=False),
    ]
)

#: Simulator ground truth: the expected reward of every eligible action of a
#: decision, aligned with that decision's ``action_ids``.
GROUND_TRUTH = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("reward_definition", pa.string(), nullable=False),
        pa.field("expected_rewards", pa.list_(pa.float64()), nullable=False),
    ]
)

#: HCP profiles (simulator population, service import/export).
HCPS = pa.schema(
    [
        pa.field("hcp_id", pa.string(), nullable=False),
        pa.field("specialty", pa.string(), nullable=False),
        pa.field("decile", pa.int8(), nullable=False),
        pa.field("market", pa.string(), nullable=False),
        pa.field("adoption_stage", pa.string(), nullable=False),
        pa.field("consents", pa.list_(pa.string()), nullable=False),
        pa.field("no_see", pa.bool_(), nullable=False),
        pa.field("digital_affinity", pa.float64(), nullable=False),
    ]
)

#: Decisions joined to their reward under one reward definition.
JOINED = pa.schema(
    [
        *DECISIONS,
        pa.field("reward", pa.float64(), nullable=False),
        pa.field("n_outcomes", pa.int32(), nullable=False),
        pa.field("n_late_outcomes", pa.int32(), nullable=False),
        pa.field("reward_is_default", pa.bool_(), nullable=False),
        pa.field("reward_definition", pa.string(), nullable=False),
        # reward of each slot of ``slate`` (slot 1 is ``reward``); null when no slate
        pa.field("slot_rewards", pa.list_(pa.float64()), nullable=True),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "decisions": DECISIONS,
    "outcomes": OUTCOMES,
    "touches": TOUCHES,
    "ground_truth": GROUND_TRUTH,
    "stated_preferences": STATED_PREFERENCES,
}

PARTITION_KEY = "date"
