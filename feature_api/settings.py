"""Settings of the feature API: one validated object, read from ``STREAMFEAT_API_*`` once.

Only what is the API's own lives here; where the stack listens (Redis host/port, the API's
own port, PostgreSQL) comes from :class:`core.settings.StackSettings`, so no endpoint is
declared twice. The one exception is ``environment``: it is read from the same
``STREAMFEAT_ENVIRONMENT`` as the stack's, so one switch turns production on everywhere.

Credentials (API keys, the JWT secret) have development defaults so the local stack works
out of the box; like :class:`core.settings.StackSettings`, the settings refuse them in
production (:func:`refuse_dev_credentials`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]


class Role(StrEnum):
    """Who may do what; ordered ``admin > writer > reader`` (a higher role may do all a lower
    one may): reader retrieves, writer registers, admin deprecates."""

    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.READER: 0, Role.WRITER: 1, Role.ADMIN: 2}

DEV_API_KEYS: dict[str, Role] = {
    "dev-reader-key": Role.READER,
    "dev-writer-key": Role.WRITER,
    "dev-admin-key": Role.ADMIN,
}
"""Well-known keys of the local stack (every developer knows them: refused in production)."""
DEV_JWT_SECRET = "streamfeat-development-jwt-secret-not-for-production"
MIN_JWT_SECRET_BYTES = 32
"""RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (32 bytes)."""


def dev_key(role: Role) -> str:
    """The development key for ``role`` (clients on the local stack send it)."""
    return next(key for key, r in DEV_API_KEYS.items() if r is role)


class ApiSettings(BaseSettings):
    """Limits, timeouts and credentials of the feature API (``STREAMFEAT_API_<FIELD>``)."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMFEAT_API_",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        hide_input_in_errors=True,  # errors must not echo keys or secrets
    )

    environment: Environment = Field(
        "development",
        validation_alias="STREAMFEAT_ENVIRONMENT",
        description="Read from STREAMFEAT_ENVIRONMENT (the stack's own switch): development "
        "credentials are refused in production.",
    )
    max_batch: int = Field(
        100,
        ge=1,
        description="Most entity ids one batch request may ask for; more is refused with 413 "
        "(split the batch) rather than holding a Redis connection for long.",
    )
    redis_timeout_ms: int = Field(
        100,
        ge=1,
        description="Connect and read timeout of every Redis call, and the longest wait for a "
        "free pooled connection. Past it the request fails fast with 503 (no retries): a "
        "feature lookup that is late is as useless to a model as a missing one.",
    )
    redis_max_connections: int = Field(
        64,
        ge=1,
        description="Size of the shared Redis connection pool (created once at startup). Keep "
        "it above the server's worker threads (anyio's default is 40).",
    )
    api_keys: dict[str, Role] = Field(
        default_factory=lambda: dict(DEV_API_KEYS),
        repr=False,
        description="API keys (header X-API-Key) and the role each grants, as JSON, e.g. "
        '{"k3y...": "writer"}. The defaults are the well-known development keys.',
    )
    jwt_secret: SecretStr = Field(
        SecretStr(DEV_JWT_SECRET),
        description="HS256 secret of bearer JWTs (claim `role` or `roles`, `exp` required); "
        f"at least {MIN_JWT_SECRET_BYTES} bytes.",
    )
    registry_refresh_s: float = Field(
        5.0,
        gt=0,
        description="How often the registry snapshot used by retrieval is re-read from "
        "PostgreSQL in the background (retrieval itself never waits for PostgreSQL).",
    )
    registry_timeout_s: float = Field(
        3.0,
        gt=0,
        description="Connect and statement timeout of each registry (PostgreSQL) operation; "
        "past it a registration call answers 503.",
    )

    @property
    def redis_timeout_s(self) -> float:
        return self.redis_timeout_ms / 1000

    @model_validator(mode="after")
    def _no_dev_credentials_in_production(self) -> ApiSettings:
        refuse_dev_credentials(self, self.environment)
        if len(self.jwt_secret.get_secret_value().encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(
                f"STREAMFEAT_API_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes"
            )
        return self


def refuse_dev_credentials(settings: ApiSettings, environment: Environment) -> None:
    """Raise unless ``settings`` are fit for ``environment``: in production no development
    key and no development JWT secret (the API is then reachable only with real secrets).

    Called by the settings themselves and again by ``create_app`` with the stack's
    environment, so neither switch alone can let a development credential through.
    """
    if environment != "production":
        return
    weak = []
    if set(settings.api_keys) & set(DEV_API_KEYS):
        weak.append("STREAMFEAT_API_API_KEYS (holds a development key)")
    if settings.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
        weak.append("STREAMFEAT_API_JWT_SECRET")
    if weak:
        raise ValueError(
            "development default credentials refused in production: "
            + ", ".join(weak)
            + "; set real ones in the environment"
        )
