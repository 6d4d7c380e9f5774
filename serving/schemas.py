"""Request and public (response) models of the HTTP API.

Three kinds of records are kept apart: *request* models (what callers send,
validated here, with OpenAPI examples), *stored* records (``nba.domain``
dataclasses that the event store keeps), and *public* models (what the API
returns). Nothing is returned that was not meant to be public.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from nba.domain import ADOPTION_STAGES, HCP_RESPONSE_TYPES, REP_FEEDBACK_TYPES, TOUCH_KINDS

Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\s/@]+$")]
ActionIdStr = Annotated[str, StringConstraints(min_length=3, max_length=200)]
Channel = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Scalar = str | int | float | bool

STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _check_context(v: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(v or {})
    if len(out) > 64:
        raise ValueError("at most 64 context entries")
    for k, x in out.items():
        if not isinstance(x, str | int | float | bool) or not k or len(k) > 64:
            raise ValueError(f"entry {k!r} must map a short name to a string, number or bool")
        if isinstance(x, str) and len(x) > 256:
            raise ValueError(f"entry {k!r} is longer than 256 characters")
        if isinstance(x, float) and x != x:
            raise ValueError(f"entry {k!r} is NaN")
    return out


def _check_aware(v: datetime | None) -> datetime | None:
    if v is not None and (v.tzinfo is None or v.utcoffset() is None):
        raise ValueError("timestamp must carry a timezone (e.g. 2026-01-05T09:30:00Z)")
    return v


# --------------------------------------------------------------- decisions
class _DecisionRequestBase(BaseModel):
    """Fields and checks shared by single and batch decision requests."""

    context: dict[str, Scalar] | None = Field(default=None, description="Flat request features.")
    defer_activation: bool = False
    as_of: datetime | None = Field(
        default=None,
        description="Decision time to use instead of the service's clock; refused unless "
        "the service runs with NBA_ALLOW_CLIENT_TIME=true (simulation, replay).",
    )

    @field_validator("context")
    @classmethod
    def _ctx(cls, v: dict[str, Any] | None) -> dict[str, Any]:
        return _check_context(v)

    @field_validator("as_of")
    @classmethod
    def _as_of_aware(cls, v: datetime | None) -> datetime | None:
        return _check_aware(v)


class DecisionRequest(_DecisionRequestBase):
    """One decision for one HCP."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "hcp_id": "HCP-000123",
                    "channels": ["rep_visit"],
                    "k": 3,
                    "context": {"requester": "rep_app", "territory": "NE-04"},
                }
            ]
        },
    )

    hcp_id: Id
    channels: list[Channel] | None = Field(
        default=None, min_length=1, max_length=16, description="Default: every channel."
    )
    k: int = Field(default=1, ge=1, le=10, description="How many suggestions to return.")
    exclude: list[ActionIdStr] = Field(default_factory=list, max_length=500)
    event_id: Id | None = Field(
        default=None, description="Caller-chosen id (unique); default: new."
    )
    explain: bool = True


class BatchDecisionRequest(_DecisionRequestBase):
    """One decision per HCP for one channel set (e.g. the nightly email run)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "hcp_ids": ["HCP-000123", "HCP-000124"],
                    "channels": ["email"],
                    "context": {"requester": "email_platform"},
                }
            ]
        },
    )

    hcp_ids: list[Id] = Field(min_length=1)
    channels: list[Channel] | None = Field(default=None, min_length=1, max_length=16)
    k: int = Field(default=1, ge=1, le=10)
    explain: bool = False


class Suggestion(BaseModel):
    action_id: str
    content_id: str
    title: str
    topic: str
    channel: str
    probability: float = Field(description="Probability with which the policy served it.")
    reasons: list[str] = Field(default_factory=list)
    slot: int = Field(default=1, description="Its place in the list, 1 first (the chosen).")
    slot_probability: float | None = Field(
        default=None,
        description=(
            "Probability it was drawn for this slot given the slots before it "
            "(slot 1: the logged propensity)."
        ),
    )


class SuppressedAction(BaseModel):
    action_id: str
    rule: str


class DecisionResponse(BaseModel):
    event_id: str | None = Field(description="None when nothing could be offered.")
    model_version: str
    policy: str
    suggestions: list[Suggestion]
    chosen_action_id: str | None
    suppressed: list[SuppressedAction] = Field(default_factory=list)
    activated: bool = True
    rules_version: str | None = Field(
        default=None, description="Version (hash) of the contact rules applied."
    )
    rules_market: str | None = Field(
        default=None,
        description="Whose rule set applied: the HCP's market, or 'global' when the "
        "market has no section of its own.",
    )
    journey: str | None = Field(
        default=None,
        description="The journey step that allowed the suggestions ('<journey>/<step>'); "
        "None when no journey step governed the decision.",
    )


class BatchItem(BaseModel):
    hcp_id: str
    event_id: str | None
    chosen_action_id: str | None
    suggestions: list[Suggestion]
    blocked_by: list[str] = Field(
        default_factory=list, description="Rules that left nothing to offer."
    )
    rules_version: str | None = None
    rules_market: str | None = None
    journey: str | None = None


class BatchResponse(BaseModel):
    model_version: str
    decisions: list[BatchItem]
    n_decisions: int
    n_blocked: int
    unknown_hcp_ids: list[str]


# ---------------------------------------------------------------- outcomes
class OutcomeRequest(BaseModel):
    """An HCP response or a rep's feedback on a suggestion."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"type": "opened", "source_id": "esp-msg-8812"},
                {"type": "dismissed", "reason_code": "not_relevant"},
                {"type": "snoozed", "until": "2026-02-01"},
                {"type": "accepted", "action_id": "VEL-EFF-03@rep_visit"},
            ]
        },
    )

    type: str = Field(min_length=1, max_length=64)
    value: float = Field(default=1.0, allow_inf_nan=False, ge=-1e6, le=1e6)
    ts: datetime | None = None
    source_id: str = Field(default="", max_length=200)
    reason_code: str | None = Field(default=None, min_length=1, max_length=64)
    until: date | None = None
    action_id: ActionIdStr | None = Field(
        default=None,
        description=(
            "The suggestion (one of the decision's action ids) this outcome concerns; "
            "default: the chosen action. Only outcomes about the chosen action enter "
            "its reward; the others are kept."
        ),
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        known = HCP_RESPONSE_TYPES | REP_FEEDBACK_TYPES
        if v not in known:
            raise ValueError(f"unknown outcome type {v!r}; expected one of {sorted(known)}")
        return v

    @field_validator("ts")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return _check_aware(v)


class OutcomeResponse(BaseModel):
    event_id: str
    type: str
    kind: Literal["hcp_response", "rep_feedback"]
    action_id: str | None = Field(
        default=None, description="The suggestion it concerns (null: the chosen action)."
    )
    stored: bool = Field(description="False when this (event, type, source_id) was already stored.")
    late: bool = Field(description="Arrived after the reward window.")
    trigger_event: str | None = Field(
        default=None,
        description="The trigger event this outcome is (docs/triggers.md), when it is one: "
        "unsubscribe, safety_click (a click on safety content), resource_download, "
        "webinar_attended.",
    )
    notifications: list[int] = Field(
        default_factory=list, description="Rep notifications its triggers created."
    )
    suppressions: int = Field(default=0, description="Suppressions its triggers started.")


class OutcomeBatchItem(OutcomeRequest):
    """One outcome of ``POST /v1/outcomes:batch``: the decision's ``event_id`` and the
    fields of ``POST /v1/events/{event_id}/outcomes``."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "event_id": "01JH8Z4W4Q0000000000000000",
                    "type": "opened",
                    "source_id": "esp-msg-8812",
                }
            ]
        },
    )

    event_id: str = Field(min_length=1, max_length=128)


class OutcomeBatchRequest(BaseModel):
    """Outcomes delivered in bulk (e.g. an email platform's event webhook)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "outcomes": [
                        {
                            "event_id": "01JH8Z4W4Q0000000000000000",
                            "type": "delivered",
                            "source_id": "esp-msg-8812",
                        },
                        {
                            "event_id": "01JH8Z4W4Q0000000000000000",
                            "type": "opened",
                            "source_id": "esp-msg-8812",
                        },
                    ]
                }
            ]
        },
    )

    outcomes: list[Annotated[Any, WithJsonSchema(OutcomeBatchItem.model_json_schema())]] = Field(
        min_length=1,
        description="The outcomes, each an OutcomeBatchItem. Each is validated, authorised "
        "and stored on its own: a bad item gets its own error in `results` and the others "
        "are still stored. At most `NBA_MAX_OUTCOME_BATCH` (default 1,000) items.",
    )


class OutcomeBatchError(BaseModel):
    """Why one item of a batch was not stored: what the single route would answer."""

    status: int = Field(description="The single route's status for it (403, 404, 422, ...).")
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class OutcomeBatchResult(BaseModel):
    index: int = Field(description="The item's place in `outcomes`, 0 first.")
    event_id: str | None = Field(description="The item's event id (null when it had none).")
    status: Literal["stored", "repeat", "error"] = Field(
        description="stored: new (the single route's 201); repeat: this (event, type, "
        "source_id) was already stored, also earlier in the same batch (its 200); error: "
        "not stored, see `error`."
    )
    outcome: OutcomeResponse | None = None
    error: OutcomeBatchError | None = None


class OutcomeBatchResponse(BaseModel):
    n_stored: int
    n_repeats: int
    n_errors: int
    results: list[OutcomeBatchResult] = Field(description="One per item, in request order.")


class ActivateResponse(BaseModel):
    event_id: str
    activated: bool
    already_active: bool


# ------------------------------------------------------------------ touches
Term = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ItemId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class TouchRequest(BaseModel):
    """A contact that reached the HCP, or something the HCP pulled (interest signal)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "hcp_id": "HCP-000123",
                    "channel": "rep_visit",
                    "content_id": "VEL-EFF-01",
                    "ts": "2026-01-05T10:00:00Z",
                },
                {
                    "hcp_id": "HCP-000123",
                    "channel": "rep_visit",
                    "content_id": "VEL-EFF-01",
                    "ts": "2026-01-05T10:20:00Z",
                    "origin": "ours",
                    "kind": "detail_pull",
                    "topics": ["dosing", "safety"],
                    "content_ids": ["VEL-EFF-01/slide-4", "VEL-EFF-01/slide-9"],
                    "dwell_s": 240,
                },
                {
                    "hcp_id": "HCP-000123",
                    "channel": "portal",
                    "content_id": "portal/access/coverage-checker",
                    "kind": "portal_view",
                    "topics": ["access_coverage"],
                    "dwell_s": 75.5,
                },
                {
                    "hcp_id": "HCP-000123",
                    "channel": "rep_visit",
                    "content_id": "VEL-SAF-01",
                    "ts": "2026-01-05T11:00:00Z",
                    "overrides_event_id": "01JGZ4K5R8T3M0Q2V7W9X1Y3Z5",
                },
                {
                    "hcp_id": "HCP-000123",
                    "channel": "portal",
                    "content_id": "portal/request-a-visit",
                    "ts": "2026-01-05T08:15:00Z",
                    "kind": "portal_view",
                    "event": "visit_request",
                    "source_id": "portal-form-77812",
                },
            ]
        },
    )

    hcp_id: Id
    channel: Channel
    content_id: ItemId = Field(
        description="The content item, or for a pull the page or item id the source gives."
    )
    ts: datetime | None = None
    origin: Literal["ours", "external"] = "external"
    kind: str = Field(
        default="contact",
        description="contact (reached the HCP) or a pull: " + ", ".join(TOUCH_KINDS[1:]) + ".",
    )
    topics: list[Term] = Field(
        default_factory=list,
        max_length=32,
        description="Catalog topics the HCP pulled; empty for a contact.",
    )
    content_ids: list[ItemId] = Field(
        default_factory=list,
        max_length=200,
        description="Further items or slides shown or viewed in the same touch.",
    )
    dwell_s: float | None = Field(
        default=None, ge=0, le=86_400, allow_inf_nan=False, description="Seconds spent."
    )
    overrides_event_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The decision (a suggestion) the rep did something else than: this "
        "contact is recorded as its override, never as a response to it.",
    )
    event: Literal["visit_request", "resource_download", "webinar_attended"] | None = Field(
        default=None,
        description="A trigger event the touch also is (docs/triggers.md): the HCP requested "
        "a visit, downloaded a resource or attended a webinar. Triggers of the event fire in "
        "the same transaction; the same event posted twice is stored and fires once.",
    )
    source_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="With `event`: the source's id of the event (e.g. the portal form "
        "submission), its idempotency key; without it the key is the touch's HCP, channel, "
        "content and time.",
    )

    @field_validator("ts")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return _check_aware(v)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in TOUCH_KINDS:
            raise ValueError(f"{v!r} is not one of {', '.join(TOUCH_KINDS)}")
        return v


class TouchResponse(BaseModel):
    hcp_id: str
    channel: str
    kind: str
    ts: datetime
    stored: bool
    overrides_event_id: str | None = None
    override_kind: Literal["hcp", "channel", "topic", "content"] | None = Field(
        default=None, description="What the override changed first (with overrides_event_id)."
    )
    event: str | None = Field(default=None, description="The trigger event, when given.")
    notifications: list[int] = Field(
        default_factory=list,
        description="Ids of the rep notifications the event's triggers created (empty when "
        "the same event was already stored: `stored` is false then).",
    )
    suppressions: int = Field(default=0, description="Suppressions the triggers started.")


class TouchImportResponse(BaseModel):
    imported: int
    format: Literal["parquet", "csv"]


# --------------------------------------------------------------------- HCPs
class HCPBody(BaseModel):
    """An HCP profile as sent by a caller (the id is in the path)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "specialty": "cardiology",
                    "decile": 8,
                    "market": "US",
                    "adoption_stage": "aware",
                    "consents": ["email", "rep_visit", "webinar"],
                    "no_see": False,
                    "digital_affinity": 0.6,
                },
                {
                    "specialty": "cardiology",
                    "decile": 9,
                    "market": "DE",
                    "adoption_stage": "considering",
                    "consents": ["email", "rep_visit"],
                    "attributes": {
                        "rx_volume_decile": 9,
                        "affiliations": ["academic_medical_center"],
                        "payer_mix_commercial": 0.62,
                        "sub_specialty": "preventive_cardiology",
                        "stated_channel_preference": ["email"],
                    },
                },
            ]
        },
    )

    specialty: str = Field(min_length=1, max_length=64)
    decile: int = Field(ge=1, le=10)
    market: str = Field(min_length=1, max_length=16)
    adoption_stage: str
    consents: list[Channel] = Field(default_factory=list, max_length=32)
    no_see: bool = False
    digital_affinity: float = Field(default=0.5, ge=0.0, le=1.0, allow_inf_nan=False)
    attributes: dict[str, Any] = Field(
        default_factory=dict,
        max_length=64,
        description="Declared syndicated and CRM attributes (the service's features config, "
        "NBA_FEATURES_PATH); an undeclared name or a bad value is refused.",
    )

    @field_validator("adoption_stage")
    @classmethod
    def _stage(cls, v: str) -> str:
        if v not in ADOPTION_STAGES:
            raise ValueError(f"{v!r} is not one of {', '.join(ADOPTION_STAGES)}")
        return v


class HCPPublic(HCPBody):
    model_config = ConfigDict(extra="forbid")
    hcp_id: str


class TouchPublic(BaseModel):
    ts: datetime
    channel: str
    content_id: str
    origin: str
    kind: str
    topics: list[str]
    content_ids: list[str]
    dwell_s: float | None


class StatedPreferenceRequest(BaseModel):
    """What the HCP said they want, as a rep (or another person) recorded it."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "recorded_by": "rep-0042",
                    "topics": ["dosing", "patient_support"],
                    "channels": ["email", "remote_call"],
                    "ts": "2026-01-05T10:30:00Z",
                }
            ]
        },
    )

    recorded_by: str = Field(
        min_length=1, max_length=128, description="Who recorded it (a rep or user id)."
    )
    topics: list[Term] = Field(default_factory=list, max_length=32)
    channels: list[Channel] = Field(default_factory=list, max_length=16)
    ts: datetime | None = Field(default=None, description="When it was said; default: now.")

    @field_validator("ts")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return _check_aware(v)


class StatedPreferencePublic(BaseModel):
    hcp_id: str
    ts: datetime
    recorded_by: str
    topics: list[str]
    channels: list[str]


class OutcomePublic(BaseModel):
    event_id: str
    ts: datetime
    type: str
    value: float
    source: str
    action_id: str | None = Field(
        default=None, description="The suggestion it concerns (null: the chosen action)."
    )


class HCPDetail(BaseModel):
    profile: HCPPublic
    recent_touches: list[TouchPublic]
    recent_outcomes: list[OutcomePublic]
    stated_preferences: list[StatedPreferencePublic] = Field(
        description="What the HCP said they want, oldest first (not behaviour: no touch)."
    )


class HCPUpsertResponse(BaseModel):
    hcp_id: str
    created: bool


class ImportResponse(BaseModel):
    imported: int
    format: Literal["parquet", "csv"]


# ------------------------------------------------------------------- models
class ModelInfo(BaseModel):
    model_version: str
    policy: str
    source: str
    loaded_at: datetime
    is_baseline: bool
    note: str
    following: str


class ReloadRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{}, {"uri": "models:/nba@champion"}]},
    )
    uri: str | None = Field(default=None, min_length=1, max_length=500)


class ReloadResponse(BaseModel):
    swapped: bool
    model_version: str
    message: str


# ------------------------------------------------------------- Personalizer
class PzFeatureAction(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1, max_length=256)
    features: list[dict[str, Any]] = Field(default_factory=list)


class PzRankRequest(BaseModel):
    """Azure AI Personalizer v1.0 ``RankRequest`` (same field names)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "contextFeatures": [{"hcp_id": "HCP-000123"}, {"requester": "portal"}],
                    "actions": [
                        {"id": "VEL-EFF-02@email", "features": [{"topic": "efficacy"}]},
                        {"id": "VEL-SAF-01@email", "features": [{"topic": "safety"}]},
                    ],
                    "excludedActions": [],
                    "eventId": "75269AD0-BFEE-4598-8196-C57383D38E10",
                    "deferActivation": False,
                }
            ]
        },
    )

    contextFeatures: list[dict[str, Any]] = Field(default_factory=list, max_length=64)
    actions: list[PzFeatureAction] = Field(min_length=1, max_length=50)
    excludedActions: list[str] = Field(default_factory=list, max_length=50)
    eventId: str | None = Field(default=None, min_length=1, max_length=256)
    deferActivation: bool = False


class PzRankedAction(BaseModel):
    id: str
    probability: float


class PzRankResponse(BaseModel):
    ranking: list[PzRankedAction]
    eventId: str
    rewardActionId: str | None


class PzRewardRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"value": 1.0}]})
    value: float = Field(allow_inf_nan=False, ge=-1e6, le=1e6)


# ------------------------------------------------------------------- health
class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    model_version: str
    store: str
    checks: dict[str, str]
