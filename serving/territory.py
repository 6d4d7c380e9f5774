"""What a rep's key may see: the HCPs its reps own today, and those reps' routes.

A key with a ``rep:<rep_id>`` scope (and no ``admin``) is territorial
(:attr:`serving.auth.Principal.territorial`). Every HCP-specific route calls
:func:`check_hcp` (or :func:`check_event` for routes that name a decision) and every
rep route :func:`check_rep`; a territorial key gets 403 naming the HCP or rep
outside its territory. Other keys pass unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from serving.auth import Principal
from serving.errors import ApiError
from serving.store import EventStore
from serving.store_reps import owner_on


def _forbidden(who: Principal, what: str) -> ApiError:
    reps = ", ".join(sorted(who.rep_ids))
    return ApiError(403, "outside_territory", f"key '{who.name}' (rep {reps}) may not see {what}")


def check_rep(who: Principal, rep_id: str) -> None:
    """403 when a rep's key asks about another rep."""
    if who.territorial and rep_id not in who.rep_ids:
        raise _forbidden(who, f"rep {rep_id!r}")


def check_hcp(store: EventStore, who: Principal, hcp_id: str) -> None:
    """403 when a rep's key asks about an HCP its reps do not own today (UTC)."""
    if not who.territorial:
        return
    owner = owner_on(store, hcp_id, datetime.now(UTC).date())
    if owner is None or owner not in who.rep_ids:
        raise _forbidden(who, f"HCP {hcp_id!r}: it is outside the territory")


def check_hcps(store: EventStore, who: Principal, hcp_ids: Iterable[str]) -> None:
    """:func:`check_hcp` for each HCP; the first one outside is named."""
    if who.territorial:
        for h in hcp_ids:
            check_hcp(store, who, h)


def check_event(store: EventStore, who: Principal, event_id: str) -> None:
    """403 when a rep's key names a decision about an HCP outside its territory (an
    unknown event passes: the route answers 404)."""
    if not who.territorial:
        return
    row = (
        store._conn()
        .execute("SELECT hcp_id FROM decisions WHERE event_id=?", (event_id,))
        .fetchone()
    )
    if row is not None:
        check_hcp(store, who, str(row[0]))


def forbid_territorial(who: Principal, route: str) -> None:
    """403 for a rep's key on a route that is not about its territory (bulk imports,
    Personalizer-compatible routes)."""
    if who.territorial:
        raise ApiError(
            403, "outside_territory", f"key '{who.name}' is a rep's key; {route} is not for it"
        )
