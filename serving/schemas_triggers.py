"""Public schemas of the rep's notification feed (``/v1/reps/{rep_id}/notifications``),
with the examples the OpenAPI document shows."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from serving.store_triggers import Notification

_EXAMPLE: dict[str, JsonValue] = {
    "id": 17,
    "rep_id": "REP-0042",
    "hcp_id": "HCP-000123",
    "trigger": "visit-request",
    "event": "visit_request",
    "event_ts": "2026-01-05T08:15:00Z",
    "due_by": "2026-01-06T08:15:00Z",
    "channel": "rep_visit",
    "content_id": "VEL-EFF-01",
    "action_id": "VEL-EFF-01@rep_visit",
    "priority": 1,
    "created_at": "2026-01-05T08:15:01Z",
    "read_at": None,
    "day_event_id": None,
}


class NotificationPublic(BaseModel):
    """A trigger's suggestion for the rep who owns the HCP, due by ``due_by``."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    id: int = Field(description="Also the webhook's Idempotency-Key.")
    rep_id: str
    hcp_id: str
    trigger: str = Field(description="The trigger's name in the trigger file.")
    event: str = Field(description="What the HCP did (docs/triggers.md).")
    event_ts: datetime
    due_by: datetime = Field(description="Event time + the trigger's within_hours.")
    channel: str
    content_id: str
    action_id: str
    priority: int = Field(description="1 is the most urgent.")
    created_at: datetime
    read_at: datetime | None = Field(default=None, description="When the rep acknowledged it.")
    day_event_id: str | None = Field(
        default=None,
        description="The day-list decision that carries it, once it is on the rep's list.",
    )

    @classmethod
    def of(cls, n: Notification) -> NotificationPublic:
        return cls(
            id=n.id,
            rep_id=n.rep_id,
            hcp_id=n.hcp_id,
            trigger=n.trigger,
            event=n.event,
            event_ts=n.event_ts,
            due_by=n.due_by,
            channel=n.channel,
            content_id=n.content_id,
            action_id=n.action_id,
            priority=n.priority,
            created_at=n.created_at,
            read_at=n.read_at,
            day_event_id=n.day_event_id,
        )


class NotificationFeed(BaseModel):
    """The rep's notifications, newest first."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"rep_id": "REP-0042", "notifications": [_EXAMPLE]}]}
    )

    rep_id: str
    notifications: list[NotificationPublic]


class AckResponse(BaseModel):
    """The acknowledged notification; ``already_read`` when it was acknowledged before."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "notification": {**_EXAMPLE, "read_at": "2026-01-05T09:02:00Z"},
                    "already_read": False,
                }
            ]
        }
    )

    notification: NotificationPublic
    already_read: bool
