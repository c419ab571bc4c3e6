"""The demo domain's knobs: one validated, immutable object.

Every generated value derives from these fields only (never the wall clock or the global
``random``), so equal configs give byte-identical output. Fractions are probabilities per
record, so small configs may contain none of a rare kind.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_START_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z."""

MIN_EVENT_GAP_MS = 5_000
"""Smallest gap between two consecutive events of one session."""
MAX_EVENT_GAP_MS = 10 * 60 * 1000
"""Largest gap between two consecutive events of one session."""


class DemoConfig(BaseModel):
    """How much demo data to generate, and how dirty it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(42, description="Seed of every random stream; same seed, same bytes.")
    start_ms: int = Field(
        DEFAULT_START_MS,
        ge=0,
        description="Epoch ms UTC every timestamp derives from (default 2026-01-01T00:00Z).",
    )
    customers: int = Field(200, ge=0, description="Customers, with ids 1..customers.")
    orders_per_customer: float = Field(3.0, ge=0, description="Mean orders per customer.")
    click_users: int = Field(
        200, ge=0, description="Clickstream users; their ids are customer ids 1..click_users."
    )
    sessions_per_user: float = Field(
        3.0, ge=1, description="Mean sessions per user (every user has at least one)."
    )
    events_per_session: float = Field(
        8.0,
        ge=1,
        description="Mean browsing events per session (at least one); a converting session "
        "appends a /checkout page_view and a purchase on top.",
    )
    session_gap_ms: int = Field(
        30 * 60 * 1000,
        gt=MAX_EVENT_GAP_MS,
        description="Inactivity gap: consecutive sessions of a user are separated by MORE "
        "than this; events inside a session by 5 s .. 10 min, so never exactly the gap.",
    )
    out_of_order_fraction: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Chance per event to be emitted right after the same user's next event "
        "(their gap is then 5..8 s): out of order by at most 10 s of event time. A session's "
        "last event and one right after such an event are never picked, so slightly fewer.",
    )
    late_fraction: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Share of events emitted 65 min .. 6 h after their event time, i.e. after "
        "events more than an hour newer.",
    )
    malformed_fraction: float = Field(
        0.01,
        ge=0,
        lt=1,
        description="Share of clickstream records that are not valid events (broken JSON, "
        "missing user_id, event_time of the wrong type, unknown event_type).",
    )
    crm_conflict_fraction: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Share of customers whose CRM email/segment/tier differs from "
        "PostgreSQL, stamped seconds before, seconds after or exactly at the PG updated_at.",
    )
    crm_malformed_fraction: float = Field(
        0.02,
        ge=0,
        le=1,
        description="Share of CRM rows that are broken (non-numeric customer_id, empty email, "
        "unknown tier, unparsable timestamp); taken from rows without a conflict.",
    )

    @model_validator(mode="after")
    def _click_users_are_customers(self) -> DemoConfig:
        if self.click_users > self.customers:
            raise ValueError(
                f"click_users ({self.click_users}) must not exceed customers "
                f"({self.customers}): clickstream users are customer ids"
            )
        return self
