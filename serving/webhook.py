"""The outgoing webhook: every rep notification POSTed as JSON to ``NBA_WEBHOOK_URL``,
signed, retried with exponential backoff, once per notification.

The request
-----------
``POST`` with body the notification as ``GET /v1/reps/{rep_id}/notifications`` shows
it (compact JSON, keys sorted) and the headers

- ``X-NBA-Signature: sha256=<hex>``: HMAC-SHA256 of the raw body bytes under
  ``NBA_WEBHOOK_SECRET``;
- ``Idempotency-Key: <notification id>``: the same on every attempt; a receiver that
  has processed this key already answers 2xx and does nothing;
- ``X-NBA-Attempt: <n>``: 1 for the first attempt.

A receiver verifies the signature over the bytes it received, before parsing them::

    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(expected, request.headers["X-NBA-Signature"])

(:func:`verify` does exactly this.) Any 2xx answer is a delivery; anything else, or no
answer within ``webhook_timeout_s``, is a failed attempt, retried after
``webhook_backoff_s * 2**(attempt-1)`` until ``webhook_max_attempts`` (then the row is
marked given up). The state lives in the store (:mod:`serving.store_triggers`), so a
restarted service continues where it stopped, and every worker may run a deliverer:
a row is claimed by one of them at a time.

>>> sig = sign(b"0123456789abcdef", b'{"id":1}')
>>> verify(b"0123456789abcdef", b'{"id":1}', sig), verify(b"other-secret-000", b'{"id":1}', sig)
(True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import socket
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

from serving.schemas_triggers import NotificationPublic
from serving.store import EventStore
from serving.store_triggers import Notification, claim_delivery, finish_delivery

log = logging.getLogger("nba.serving.webhook")

SIGNATURE_HEADER = "X-NBA-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
ATTEMPT_HEADER = "X-NBA-Attempt"


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-NBA-Signature`` value of ``body``: ``sha256=`` + hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is :func:`sign` of ``body`` (constant-time comparison)."""
    return hmac.compare_digest(sign(secret, body), signature)


def payload(n: Notification) -> bytes:
    """The request body of a notification: compact JSON with sorted keys."""
    data = NotificationPublic.of(n).model_dump(mode="json")
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


class Deliverer:
    """Sends due webhook deliveries of one store.

    Parameters
    ----------
    store : EventStore
    url : str
    secret : bytes
    max_attempts : int
    backoff_s : float
        Delay before the second attempt; doubled after each failure.
    timeout_s : float
        Per request; a claim lasts ``timeout_s + 30`` seconds (then another
        deliverer may take the row over).
    worker : str, optional
        This deliverer's claim name (default: host, pid and a random suffix).
    """

    def __init__(
        self,
        store: EventStore,
        url: str,
        secret: bytes,
        max_attempts: int = 8,
        backoff_s: float = 5.0,
        timeout_s: float = 10.0,
        worker: str | None = None,
    ) -> None:
        self.store = store
        self.url = url
        self.secret = secret
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def _post(self, body: bytes, n: Notification, attempt: int) -> str | None:
        """One attempt; ``None`` on a 2xx answer, else what went wrong."""
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self.secret, body),
                IDEMPOTENCY_HEADER: str(n.id),
                ATTEMPT_HEADER: str(attempt),
                "User-Agent": "nba-webhook/1",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                status = int(resp.status)
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if 200 <= status < 300 else f"HTTP {status}"

    def run_once(self) -> int:
        """Attempt every delivery due now, one at a time; returns how many attempts."""
        n_attempts = 0
        while True:
            got = claim_delivery(self.store, self.worker, datetime.now(UTC), self.timeout_s + 30)
            if got is None:
                return n_attempts
            n, attempt = got.notification, got.attempt
            error = self._post(payload(n), n, attempt)
            n_attempts += 1
            retry_at = None
            if error is not None and attempt < self.max_attempts:
                delay = self.backoff_s * 2 ** (attempt - 1)
                retry_at = datetime.now(UTC) + timedelta(seconds=delay)
            if error is not None:
                log.warning(
                    "webhook attempt %d of notification %d failed (%s); %s",
                    attempt,
                    n.id,
                    error,
                    "retrying" if retry_at else "giving up",
                )
            finish_delivery(self.store, n.id, self.worker, error is None, error, retry_at)
