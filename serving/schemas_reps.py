"""Request and public schemas of the rep routes (``/v1/reps``, an HCP's alignment and
timeline), with the examples the OpenAPI document shows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from serving.schemas import Id


class RepBody(BaseModel):
    """A rep and their whole territory from ``effective_from``."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "Anna Weber",
                    "capacity_per_day": 6,
                    "hcp_ids": ["HCP-000123", "HCP-000124"],
                    "effective_from": "2026-01-05",
                }
            ]
        },
    )

    name: str | None = Field(default=None, min_length=1, max_length=128)
    capacity_per_day: int = Field(ge=0, le=1000, description="Visits and calls per day.")
    hcp_ids: list[Id] = Field(max_length=20_000, description="The whole territory.")
    effective_from: date | None = Field(
        default=None, description="First day of this territory (default: today, UTC)."
    )


class RepUpsertResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"rep_id": "REP-0042", "created": True, "territory_size": 2}]
        }
    )

    rep_id: str
    created: bool
    territory_size: int


class AlignmentPublic(BaseModel):
    rep_id: str
    hcp_id: str
    valid_from: date
    valid_to: date | None = Field(
        default=None, description="Exclusive; null while the alignment lasts."
    )


class HCPAlignment(BaseModel):
    """Who owned an HCP on a day, and every alignment row it ever had."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "hcp_id": "HCP-000123",
                    "date": "2026-02-01",
                    "rep_id": "REP-0042",
                    "history": [
                        {
                            "rep_id": "REP-0007",
                            "hcp_id": "HCP-000123",
                            "valid_from": "2025-07-01",
                            "valid_to": "2026-01-05",
                        },
                        {
                            "rep_id": "REP-0042",
                            "hcp_id": "HCP-000123",
                            "valid_from": "2026-01-05",
                            "valid_to": None,
                        },
                    ],
                }
            ]
        }
    )

    hcp_id: str
    date: date
    rep_id: str | None = Field(
        default=None, description="The owner on `date`; null when unaligned."
    )
    history: list[AlignmentPublic]


class RepImportResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"imported": 120, "reps": 3, "format": "csv"}]}
    )

    imported: int
    reps: int
    format: Literal["parquet", "csv"]


class DayEntry(BaseModel):
    """One suggestion of a rep's day: one logged decision."""

    rank: int
    hcp_id: str
    event_id: str = Field(description="The logged decision; outcomes and feedback name it.")
    action_id: str
    channel: str
    content_id: str
    title: str
    topic: str
    priority: float | None = Field(
        default=None,
        description="The policy's expected score of this HCP's decision (probability-"
        "weighted); null when the serving policy gives no scores.",
    )
    propensity: float
    reasons: list[str]
    due: date
    expires_at: datetime = Field(
        description="End of the day, or the content's approval expiry if sooner."
    )
    trigger: str | None = Field(
        default=None,
        description="The trigger whose notification this entry carries (docs/triggers.md); "
        "triggered entries come first, and their first reason names the event.",
    )
    notification_id: int | None = Field(default=None, description="That notification.")


class DayBlocked(BaseModel):
    hcp_id: str
    rules: list[str] = Field(description="Contact rules that left nothing to offer.")


class RepDay(BaseModel):
    """A rep's suggestions for one day, highest priority first, at most their capacity."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rep_id": "REP-0042",
                    "date": "2026-01-05",
                    "capacity_per_day": 6,
                    "model_version": "baseline:uniform",
                    "created_at": "2026-01-05T06:30:00Z",
                    "suggestions": [
                        {
                            "rank": 1,
                            "hcp_id": "HCP-000123",
                            "event_id": "01JGZ4K5R8T3M0Q2V7W9X1Y3Z5",
                            "action_id": "VEL-DOS-02@rep_visit",
                            "channel": "rep_visit",
                            "content_id": "VEL-DOS-02",
                            "title": "Dosing and titration guide",
                            "topic": "dosing",
                            "priority": None,
                            "propensity": 0.25,
                            "reasons": ["Asked about dosing during a visit on 2026-01-02"],
                            "due": "2026-01-05",
                            "expires_at": "2026-01-06T00:00:00Z",
                        }
                    ],
                    "blocked": [{"hcp_id": "HCP-000124", "rules": ["min_gap"]}],
                    "over_capacity": [],
                }
            ]
        }
    )

    rep_id: str
    date: date
    capacity_per_day: int
    model_version: str
    created_at: datetime = Field(description="When the list was made (and stored).")
    suggestions: list[DayEntry]
    blocked: list[DayBlocked] = Field(
        description="Territory HCPs the contact rules leave nothing to offer today."
    )
    over_capacity: list[str] = Field(
        description="HCPs with something to offer that did not fit the capacity (no "
        "decision is logged for them)."
    )


class LastTouch(BaseModel):
    ts: datetime
    channel: str
    content_id: str
    origin: str
    kind: str


class OpenSuggestion(BaseModel):
    event_id: str
    date: date
    action_id: str


class TerritoryHCP(BaseModel):
    hcp_id: str
    specialty: str
    decile: int
    aligned_since: date
    last_touch: LastTouch | None = Field(
        default=None, description="The latest contact, any channel."
    )
    open_suggestions: list[OpenSuggestion] = Field(
        description="Entries of the rep's lists from today on with no feedback, "
        "response or override yet."
    )


class RepTerritory(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rep_id": "REP-0042",
                    "date": "2026-01-05",
                    "hcps": [
                        {
                            "hcp_id": "HCP-000123",
                            "specialty": "cardiology",
                            "decile": 8,
                            "aligned_since": "2026-01-05",
                            "last_touch": {
                                "ts": "2025-12-18T10:00:00Z",
                                "channel": "rep_visit",
                                "content_id": "VEL-EFF-01",
                                "origin": "external",
                                "kind": "contact",
                            },
                            "open_suggestions": [
                                {
                                    "event_id": "01JGZ4K5R8T3M0Q2V7W9X1Y3Z5",
                                    "date": "2026-01-05",
                                    "action_id": "VEL-DOS-02@rep_visit",
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )

    rep_id: str
    date: date
    hcps: list[TerritoryHCP]


class OverrideRate(BaseModel):
    key: str
    suggestions: int
    overridden: int
    rate: float | None = Field(
        default=None, description="overridden / suggestions; null with none."
    )


class OverrideReport(BaseModel):
    """How often the rep did something else than their day lists suggested."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rep_id": "REP-0042",
                    "since": "2025-12-07",
                    "until": "2026-01-05",
                    "suggestions": 40,
                    "overridden": 6,
                    "rate": 0.15,
                    "by_kind": {"hcp": 2, "channel": 1, "topic": 3, "content": 0},
                    "by_channel": [
                        {"key": "rep_visit", "suggestions": 30, "overridden": 5, "rate": 0.1667}
                    ],
                    "by_topic": [
                        {"key": "dosing", "suggestions": 10, "overridden": 3, "rate": 0.3}
                    ],
                }
            ]
        }
    )

    rep_id: str
    since: date
    until: date
    suggestions: int
    overridden: int
    rate: float | None
    by_kind: dict[str, int] = Field(
        description="Overrides by what differed first: hcp, channel, topic, content."
    )
    by_channel: list[OverrideRate] = Field(description="By the suggested channel.")
    by_topic: list[OverrideRate] = Field(description="By the suggested topic.")


class TimelineItem(BaseModel):
    """One entry of an HCP's timeline; fields that do not apply to its type are null."""

    type: Literal["decision", "touch", "pull", "outcome", "feedback"]
    ts: datetime
    channel: str | None = None
    content_id: str | None = None
    topics: list[str] = Field(default_factory=list)
    event_id: str | None = None
    action_id: str | None = None
    outcome_type: str | None = None
    reason_code: str | None = None
    origin: str | None = Field(default=None, description="Touches: ours or external.")
    kind: str | None = Field(default=None, description="Touches: contact or the pull kind.")
    requester: str | None = None
    policy: str | None = Field(default=None, description="Decisions: the policy that chose.")
    model_version: str | None = None
    overrides_event_id: str | None = None


class ActiveSuppression(BaseModel):
    content_id: str
    rule: Literal["dismissed", "snoozed"]
    since: datetime
    until: datetime
    event_id: str


class Timeline(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "hcp_id": "HCP-000123",
                    "items": [
                        {
                            "type": "touch",
                            "ts": "2026-01-05T11:00:00Z",
                            "channel": "rep_visit",
                            "content_id": "VEL-SAF-01",
                            "topics": [],
                            "origin": "external",
                            "kind": "contact",
                            "overrides_event_id": "01JGZ4K5R8T3M0Q2V7W9X1Y3Z5",
                        },
                        {
                            "type": "decision",
                            "ts": "2026-01-05T06:30:00Z",
                            "channel": "rep_visit",
                            "content_id": "VEL-DOS-02",
                            "topics": [],
                            "event_id": "01JGZ4K5R8T3M0Q2V7W9X1Y3Z5",
                            "action_id": "VEL-DOS-02@rep_visit",
                            "requester": "rep_app",
                            "policy": "uniform",
                            "model_version": "baseline:uniform",
                        },
                    ],
                    "next_before": None,
                    "active_suppressions": [],
                }
            ]
        }
    )

    hcp_id: str
    items: list[TimelineItem] = Field(description="Newest first.")
    next_before: str | None = Field(
        default=None,
        description="Pass as `before` for the next (older) page; null on the last page.",
    )
    active_suppressions: list[ActiveSuppression] = Field(
        description="Dismissals and snoozes still suppressing content now, with their end."
    )
