"""The rep's notification feed: ``GET /v1/reps/{rep_id}/notifications`` and
``POST /v1/reps/{rep_id}/notifications/{notification_id}:ack``.

Notifications are written by triggers (docs/triggers.md) when an HCP's event is
stored. A rep's key (scope ``rep:<rep_id>``) reads and acknowledges only its own
(403 otherwise).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from serving import schemas_triggers as st
from serving.api.deps import AnyKey, ReportKey, ServicesDep
from serving.api.routes.reps import ERRORS, RepId, _rep
from serving.errors import ApiError, invalid
from serving.store_triggers import ack, notifications

router = APIRouter(prefix="/v1", tags=["reps"])


@router.get(
    "/reps/{rep_id}/notifications",
    response_model=st.NotificationFeed,
    responses=ERRORS,
    summary="The rep's notifications from triggers, newest first",
)
def feed(
    rep_id: RepId,
    svc: ServicesDep,
    who: AnyKey,
    since: Annotated[
        datetime | None, Query(description="Only notifications created at or after (ISO time).")
    ] = None,
    unread: Annotated[
        bool | None, Query(description="true: only unread; false: only acknowledged.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> st.NotificationFeed:
    """Each notification names the HCP, what it did (``event``, ``event_ts``), the
    trigger, the suggestion (channel, content, priority) and when it is due."""
    rep = _rep(svc, who, rep_id)
    if since is not None and since.tzinfo is None:
        raise invalid("since: give a time zone (e.g. 2026-01-05T08:00:00Z)")
    got = notifications(svc.store, rep.rep_id, since, unread, limit)
    return st.NotificationFeed(
        rep_id=rep.rep_id, notifications=[st.NotificationPublic.of(n) for n in got]
    )


@router.post(
    "/reps/{rep_id}/notifications/{notification_id}:ack",
    response_model=st.AckResponse,
    responses=ERRORS,
    summary="Acknowledge (mark read) one of the rep's notifications",
)
def acknowledge(
    rep_id: RepId,
    notification_id: Annotated[int, Path(ge=1)],
    svc: ServicesDep,
    who: ReportKey,
) -> st.AckResponse:
    """Idempotent: acknowledging again keeps the first ``read_at`` and says
    ``already_read``. 404 when the rep has no such notification."""
    rep = _rep(svc, who, rep_id)
    got = ack(svc.store, rep.rep_id, notification_id, datetime.now(UTC))
    if got is None:
        raise ApiError(
            404,
            "unknown_notification",
            f"rep {rep_id!r} has no notification {notification_id}",
        )
    n, already = got
    return st.AckResponse(notification=st.NotificationPublic.of(n), already_read=already)
