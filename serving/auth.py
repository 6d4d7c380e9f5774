"""API keys with scopes.

A request presents its key in ``Authorization: Bearer <key>``, ``X-API-Key``, or
(for the Personalizer-compatible routes) ``Ocp-Apim-Subscription-Key``. The key
is hashed with SHA-256 and looked up among the configured digests; the clear key
is never stored or logged. ``admin`` holds every scope.

A rep's key has the scope ``rep:<rep_id>`` (one or more): it may decide and
report (as ``decide`` and ``report`` keys do), but only about the HCPs of its
reps' territories and only on those reps' routes (:meth:`Principal.rep_ids`;
the routes check the territory, :mod:`serving.territory`). A key that also
holds ``admin`` is not limited.

>>> from serving.settings import Settings, hash_key
>>> s = Settings(api_keys=[{"name": "rep-app", "sha256": hash_key("k-1"), "scopes": ["decide"]}])
>>> Authenticator(s).identify("k-1").name
'rep-app'
>>> Authenticator(s).identify("nope") is None
True
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from serving.errors import ApiError
from serving.settings import ApiKey, Settings, hash_key

KEY_HEADERS: tuple[str, ...] = ("x-api-key", "ocp-apim-subscription-key")
REP_PREFIX = "rep:"
#: scopes a ``rep:<rep_id>`` key holds, limited to its territory
REP_IMPLIED: frozenset[str] = frozenset({"decide", "report"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's configured name and its scopes."""

    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        if scope in self.scopes or "admin" in self.scopes:
            return True
        # a rep's key decides and reports within its territory (checked by the routes)
        return scope in REP_IMPLIED and bool(self.rep_ids)

    @property
    def rep_ids(self) -> frozenset[str]:
        """The reps whose key this is (scopes ``rep:<rep_id>``); empty for other keys.

        >>> sorted(Principal("r", frozenset({"rep:R1", "decide"})).rep_ids)
        ['R1']
        """
        return frozenset(s[len(REP_PREFIX) :] for s in self.scopes if s.startswith(REP_PREFIX))

    @property
    def territorial(self) -> bool:
        """True when the key sees only its reps' territories (a rep key without admin)."""
        return bool(self.rep_ids) and "admin" not in self.scopes


ANONYMOUS_ADMIN = Principal("auth-disabled", frozenset({"decide", "report", "admin"}))


#: at most this many distinct valid keys are remembered per process (see
#: :meth:`Authenticator.identify`); keys beyond it are hashed on every request
SEEN_KEYS = 256


class Authenticator:
    """Maps presented keys to principals; constant-time digest comparison.

    The principal of each configured key is built once. A key that was found
    valid is remembered in this process's memory (at most :data:`SEEN_KEYS`
    of them; never written anywhere), so that its next requests skip the
    SHA-256 and the scan of the digests: the remembered key is compared with the
    presented one in constant time. Unknown keys are never remembered.
    """

    def __init__(self, settings: Settings) -> None:
        self.disabled = settings.auth_disabled
        self._keys: tuple[ApiKey, ...] = settings.api_keys
        self._principals: tuple[tuple[str, Principal], ...] = tuple(
            (k.sha256, Principal(k.name, frozenset(k.scopes))) for k in self._keys
        )
        self._seen: dict[str, tuple[str, Principal]] = {}

    def identify(self, key: str) -> Principal | None:
        seen = self._seen.get(key)
        if seen is not None and hmac.compare_digest(seen[0].encode(), key.encode()):
            return seen[1]
        principal = self.identify_digest(hash_key(key))
        if principal is not None and len(self._seen) < SEEN_KEYS:
            self._seen[key] = (key, principal)
        return principal

    def identify_digest(self, digest: str) -> Principal | None:
        """The principal of a key known by its SHA-256 digest (the console's session
        keeps the digest, never the key), or None when no configured key has it."""
        found: Principal | None = None
        for sha256, principal in self._principals:  # every digest, whichever matches
            if hmac.compare_digest(sha256, digest):
                found = principal
        return found

    def check(
        self, headers: dict[str, str] | None, authorization: str | None, scope: str | None
    ) -> Principal:
        """The principal for a request, or 401/403 as an :class:`ApiError`.

        ``scope=None`` accepts any valid key.
        """
        if self.disabled:
            return ANONYMOUS_ADMIN
        key = None
        if authorization:
            kind, _, value = authorization.partition(" ")
            if kind.lower() == "bearer" and value.strip():
                key = value.strip()
        if key is None and headers:
            for h in KEY_HEADERS:
                if headers.get(h):
                    key = headers[h]
                    break
        if not key:
            raise ApiError(401, "unauthenticated", "missing API key (Authorization: Bearer <key>)")
        principal = self.identify(key)
        if principal is None:
            raise ApiError(401, "unauthenticated", "unknown API key")
        if scope is not None and not principal.allows(scope):
            raise ApiError(
                403, "forbidden", f"key '{principal.name}' lacks the '{scope}' scope for this route"
            )
        return principal


def pseudonym(value: str) -> str:
    """A short stable pseudonym for logs, so HCP ids never appear in clear.

    >>> pseudonym("hcp-123") == pseudonym("hcp-123") != pseudonym("hcp-124")
    True
    """
    return "h:" + hashlib.sha256(b"nba-log:" + value.encode("utf-8")).hexdigest()[:10]
