"""Settings of the feature API: one validated object, read from ``STREAMFEAT_API_*`` once.

Only what is the API's own lives here; where the stack listens (Redis host/port, the API's
own port) comes from :class:`core.settings.StackSettings`, so no endpoint is declared twice.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    """Limits and timeouts of the feature API (``STREAMFEAT_API_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="STREAMFEAT_API_", extra="forbid", frozen=True)

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

    @property
    def redis_timeout_s(self) -> float:
        return self.redis_timeout_ms / 1000
