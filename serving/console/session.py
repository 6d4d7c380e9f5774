"""The console's session: a signed, timed cookie holding the key digest and the
CSRF token.

>>> from serving.settings import Settings
>>> codec = SessionCodec("x" * 32, max_age_s=60)
>>> s = Session.fresh()
>>> codec.load(codec.dump(s)) == s
True
>>> codec.load("tampered") is None
True
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, replace

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "nba_console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Session:
    """What the cookie carries.

    Attributes
    ----------
    digest : str or None
        SHA-256 digest of the API key logged in with; None before login.
    csrf : str
        Token every form of this session must post back.
    """

    digest: str | None
    csrf: str

    @classmethod
    def fresh(cls, digest: str | None = None) -> Session:
        """A new session with a new CSRF token (login rotates it)."""
        return cls(digest=digest, csrf=secrets.token_urlsafe(24))

    def logged_in(self, digest: str) -> Session:
        return replace(Session.fresh(), digest=digest)

    def csrf_ok(self, presented: str | None) -> bool:
        """Constant-time check of a posted token."""
        return bool(presented) and hmac.compare_digest(self.csrf, str(presented))


class SessionCodec:
    """Signs and checks session cookies (itsdangerous, salted, timed)."""

    def __init__(self, secret: str, max_age_s: float) -> None:
        self._s = URLSafeTimedSerializer(secret, salt="nba-console-session")
        self.max_age_s = max_age_s

    def dump(self, session: Session) -> str:
        return str(self._s.dumps({"d": session.digest, "c": session.csrf}))

    def load(self, cookie: str | None) -> Session | None:
        """The session of a cookie, or None when missing, forged or expired."""
        if not cookie:
            return None
        try:
            data = self._s.loads(cookie, max_age=int(self.max_age_s))
        except BadSignature:  # SignatureExpired is a BadSignature
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        digest = data.get("d")
        return Session(digest=digest if isinstance(digest, str) else None, csrf=data["c"])
