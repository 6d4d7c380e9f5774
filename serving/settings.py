"""Service settings: one :class:`Settings` class, every field also read from the
environment with the prefix ``NBA_`` (``NBA_STORE_PATH``, ``NBA_API_KEYS``, ...).

API keys are never configured in clear: ``NBA_API_KEYS`` is a JSON list of
``{"name": ..., "sha256": <hex digest of the key>, "scopes": [...]}``. The
settings refuse to start with auth enabled and no keys, with a malformed
digest, or with the digest of a well-known default secret ("changethis", ...).

>>> s = Settings(auth_disabled=True)
>>> s.model_uri
'models:/nba@champion'
>>> Settings(api_keys=[{"name": "x", "sha256": hash_key("changethis"), "scopes": ["decide"]}])
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings
...
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from nba.paths import data_dir

SCOPES: tuple[str, ...] = ("decide", "report", "admin")
#: besides these, ``rep:<rep_id>``: a rep's key (decide and report, within that rep's
#: territory only; serving/auth.py)
Scope = Annotated[
    str,
    Field(
        pattern=r"^(decide|report|admin|rep:[^\s/@]{1,128})$",
        description="decide, report, admin, or rep:<rep_id> (a rep's key, see serving/auth.py)",
    ),
]

#: secrets nobody should deploy with; their digests are refused
DEFAULT_SECRETS: tuple[str, ...] = (
    "changethis",
    "changeme",
    "secret",
    "password",
    "admin",
    "test",
    "apikey",
    "api-key",
    "nba",
    "",
)


#: shortest console session secret accepted with auth on
CONSOLE_SECRET_MIN = 32


def hash_key(key: str) -> str:
    """The SHA-256 hex digest under which an API key is stored.

    >>> hash_key("abc")[:12]
    'ba7816bf8f01'
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


_DEFAULT_DIGESTS = frozenset(hash_key(s) for s in DEFAULT_SECRETS)


class ApiKey(BaseModel):
    """One API key as configured: a name for logs, its digest, its scopes."""

    name: str = Field(min_length=1, max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: tuple[Scope, ...] = Field(min_length=1)

    @field_validator("sha256")
    @classmethod
    def _not_default(cls, v: str) -> str:
        if v in _DEFAULT_DIGESTS:
            raise ValueError("is the digest of a well-known default secret; choose a real key")
        return v


class Settings(BaseSettings):
    """Every setting of the decision service (environment prefix ``NBA_``)."""

    model_config = SettingsConfigDict(env_prefix="NBA_", extra="ignore", frozen=True)

    # -------------------------------------------------------------- storage
    store_path: Path = Field(
        default_factory=lambda: data_dir() / "events.db",
        description="SQLite event store (WAL mode) shared by all workers.",
    )
    store_url: str | None = Field(
        default=None,
        description="PostgreSQL event store, postgresql://user@host:port/db (psycopg 3), "
        "shared by several service replicas; when set it replaces NBA_STORE_PATH "
        "(docs/deploy.md, 'The event store on PostgreSQL').",
    )
    store_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = Field(
        default="FULL",
        description="SQLite synchronous mode: FULL fsyncs every commit (survives power "
        "loss); NORMAL survives a killed process but may lose the last commits on an OS "
        "crash.",
    )
    group_commit: bool = Field(
        default=True,
        description="Commit decisions (and outcomes) of concurrent requests in one transaction "
        "(one fsync); each request is still answered only after what it sent is committed.",
    )
    fast_routes: bool = Field(
        default=True,
        description="Serve POST /v1/decisions and POST /v1/events/{event_id}/outcomes below "
        "FastAPI's routing and dependency solving (serving/api/fast.py), same contract; "
        "false: through FastAPI like every other route.",
    )
    catalog_path: Path | None = Field(default=None, description="Catalog TOML; default: packaged.")
    rules_path: Path | None = Field(
        default=None,
        description="Contact-policy rules file; default: packaged. It seeds the store's "
        "first rules version; afterwards the store's version is in force (serving/rules.py).",
    )
    rules_check_ms: float = Field(
        default=500.0,
        ge=0,
        description="How often (at most) each worker checks the store for a new contact "
        "rules version, in milliseconds; 0 checks on every request.",
    )
    reward_path: Path | None = Field(
        default=None, description="Reward definition; default: packaged."
    )
    value_path: Path | None = Field(
        default=None,
        description="Business value definition (outcome values, channel costs) the KPIs, "
        "the holdout lift and `nba report` use; default: packaged nba/data/value.toml.",
    )
    features_path: Path | None = Field(
        default=None,
        description="HCP features config (specialties, markets, declared attributes); "
        "default: packaged nba/data/hcp_features.toml.",
    )
    journeys_path: Path | None = Field(
        default=None,
        description="Journeys file (docs/journeys.md); seeds the store's first journeys "
        "version. Default: none, and no journeys until one is applied (PUT /v1/journeys).",
    )
    triggers_path: Path | None = Field(
        default=None,
        description="Event-triggered journeys (docs/triggers.md); default: packaged "
        "nba/data/triggers.toml with the packaged catalog, none with another catalog.",
    )

    # -------------------------------------------------------------- webhook
    webhook_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="POST every rep notification here as JSON (signed, retried); "
        "default: no webhook.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key of the webhook signature (header X-NBA-Signature); "
        "required with webhook_url.",
    )
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_backoff_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Delay before the 2nd attempt; doubled after each failure.",
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    webhook_poll_s: float = Field(
        default=1.0, gt=0, le=60, description="How often the deliverer looks for due rows."
    )

    # ---------------------------------------------------------------- model
    model_uri: str = Field(
        default="models:/nba@champion",
        description="MLflow model URI (alias or version) or a local model path.",
    )
    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI, e.g. an MLflow tracking server http://host:port "
        "(docs/deploy.md); default: MLFLOW_TRACKING_URI, else the embedded SQLite store "
        "in the data directory.",
    )
    model_poll_seconds: float = Field(
        default=30.0, ge=0, description="How often to follow the alias; 0 switches the check off."
    )
    canary_requests: int = Field(default=8, ge=1, le=1000)
    holdout_policy: Literal["uniform", "campaign", "no_contact"] = Field(
        default="uniform",
        description="What HCPs of the rules' global holdout get: the uniform baseline, the "
        "push campaign (what the company would do without nba), or no contact at all (the "
        "request is recorded for the holdout lift and answered with no suggestion).",
    )
    policy_seed: int = Field(
        default=0, ge=0, description="Seed of the sampling (with the event id)."
    )

    # ----------------------------------------------------------------- auth
    auth_disabled: bool = False
    api_keys: tuple[ApiKey, ...] = ()

    # -------------------------------------------------------------- console
    console_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs the web console's session cookies (``/console``), at "
        "least 32 characters. With auth on and no secret the console is off; with auth off "
        "a random key is drawn per process (sessions then last until a restart and do not "
        "cross workers).",
    )
    console_session_hours: float = Field(
        default=8.0, ge=0.05, le=24 * 30, description="How long a console login lasts (hours)."
    )

    # --------------------------------------------------------------- limits
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    max_upload_bytes: int = Field(default=64_000_000, ge=1024)
    max_batch: int = Field(default=10_000, ge=1, le=100_000)
    max_outcome_batch: int = Field(
        default=1_000,
        ge=1,
        le=100_000,
        description="Most outcomes in one `POST /v1/outcomes:batch` request (422 beyond).",
    )
    history_days: int = Field(default=90, ge=1)
    gc_freeze: bool = Field(
        default=True,
        description="Once a worker has opened its services (model, catalog, store), move "
        "every object it holds out of the garbage collector's generations "
        "(`gc.freeze`), so that a full collection walks only what requests made: a "
        "batch of decisions spent about a sixth of its CPU in collections without it.",
    )

    # ------------------------------------------------------------ simulation
    allow_client_time: bool = Field(
        default=False,
        description="Accept a decision request's `as_of` as its decision time instead of "
        "the service's clock (simulation and replay, e.g. `nba simulate --via`); off in "
        "production.",
    )

    # ------------------------------------------------------------- benchmark
    bench_routes: bool = Field(
        default=False, description="Expose the hidden no-op route used by bench/serve.py."
    )

    @field_validator("store_url")
    @classmethod
    def _store_url_is_postgresql(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from serving.store import StoreError
        from serving.store_postgres import check_url

        try:
            return check_url(value.strip())
        except StoreError as exc:  # the message names NBA_STORE_URL, never the password
            raise ValueError(str(exc)) from None

    @property
    def store_location(self) -> Path | str:
        """Where the event store is: ``store_url`` when set, else ``store_path``."""
        return self.store_url if self.store_url else self.store_path

    @property
    def store_location_text(self) -> str:
        """:attr:`store_location` for messages (a URL without its password)."""
        if self.store_url:
            from serving.store_postgres import redact

            return redact(self.store_url)
        return str(self.store_path)

    @model_validator(mode="after")
    def _auth_configured(self) -> Settings:
        if not self.auth_disabled and not self.api_keys:
            raise ValueError(
                "no API keys configured: set NBA_API_KEYS (JSON list of "
                '{"name", "sha256", "scopes"}) or switch auth off explicitly with '
                "NBA_AUTH_DISABLED=true"
            )
        if self.webhook_url and (
            self.webhook_secret is None or len(self.webhook_secret.get_secret_value()) < 16
        ):
            raise ValueError(
                "webhook_url is set but webhook_secret is missing or shorter than 16 "
                "characters: set NBA_WEBHOOK_SECRET so receivers can verify the signature"
            )
        if self.console_secret is not None and not self.auth_disabled:
            secret = self.console_secret.get_secret_value()
            if secret.strip().lower() in DEFAULT_SECRETS or len(secret) < CONSOLE_SECRET_MIN:
                raise ValueError(
                    "console_secret (NBA_CONSOLE_SECRET) is a well-known default or shorter "
                    f"than {CONSOLE_SECRET_MIN} characters; choose a long random secret"
                )
        names = [k.name for k in self.api_keys]
        if len(set(names)) != len(names):
            raise ValueError("api_keys: two keys share a name")
        digests = [k.sha256 for k in self.api_keys]
        if len(set(digests)) != len(digests):
            raise ValueError("api_keys: the same key is configured twice")
        return self

    def key_table(self) -> dict[str, ApiKey]:
        """Configured keys by digest."""
        return {k.sha256: k for k in self.api_keys}
