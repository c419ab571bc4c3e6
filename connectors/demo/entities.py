"""Customers and orders, the PostgreSQL side of the demo domain (pure, no I/O).

Invariants: customer ids are 1..cfg.customers; a customer's created_at <= updated_at, both
within the first day after ``start_ms``. Order ids are 1..N in (customer, created_at)
order; an order is created after its customer and ``updated_at >= created_at``.
Timestamps are epoch ms UTC.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any, Literal

from connectors.demo.config import DemoConfig
from connectors.demo.sampling import (
    PRODUCT_IDS,
    count_around,
    product_price_cents,
    rng_for,
)
from core.domain import ORDER_STATUSES, SEGMENTS, TIERS

DAY_MS = 86_400_000
FIRST_NAMES = ("Ada", "Ben", "Chloe", "David", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jonas")
LAST_NAMES = ("Meyer", "Dubois", "Rossi", "Novak", "Garcia", "Jansen", "Berg", "Kowalski")
COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "PL", "SE", "GB", "US")
DOMAINS = ("example.com", "example.org", "example.net")
SEGMENT_WEIGHTS = (70, 22, 8)
TIER_WEIGHTS = (50, 30, 15, 5)
INITIAL_STATUS_WEIGHTS = (20, 30, 35, 10, 5)  # in ORDER_STATUSES order
NEXT_STATUSES: dict[str, tuple[str, ...]] = {
    "created": ("paid", "paid", "paid", "cancelled"),
    "paid": ("shipped", "shipped", "shipped", "refunded", "cancelled"),
    "shipped": ("refunded",),
    "cancelled": (),
    "refunded": (),
}
"""Allowed status transitions (repeats weight the draw); cancelled/refunded are final."""
DELETE_SHARE = 0.05

ChangeKind = Literal["update", "delete"]


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    email: str
    full_name: str
    segment: str
    tier: str
    country: str
    created_at_ms: int
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    customer_id: int
    status: str
    amount_cents: int
    currency: str
    created_at_ms: int
    updated_at_ms: int


def customers(cfg: DemoConfig) -> list[Customer]:
    """Customers 1..cfg.customers. Every email contains the id, so emails are unique."""
    rng = rng_for(cfg.seed, "customers")
    out = []
    for cid in range(1, cfg.customers + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        domain = rng.choice(DOMAINS)
        local = f"user{cid}" if rng.random() < 0.6 else f"{first}.{last}{cid}".lower()
        created = cfg.start_ms + rng.randrange(DAY_MS)
        updated = created + rng.randrange(cfg.start_ms + DAY_MS - created)
        out.append(
            Customer(
                id=cid,
                email=f"{local}@{domain}",
                full_name=f"{first} {last}",
                segment=rng.choices(SEGMENTS, SEGMENT_WEIGHTS)[0],
                tier=rng.choices(TIERS, TIER_WEIGHTS)[0],
                country=rng.choice(COUNTRIES),
                created_at_ms=created,
                updated_at_ms=updated,
            )
        )
    return out


def _amount_cents(rng: random.Random) -> int:
    lines = count_around(rng, 2.0, minimum=1)
    return sum(
        product_price_cents(rng.choice(PRODUCT_IDS)) * rng.choice((1, 1, 1, 2, 3))
        for _ in range(lines)
    )


def orders(cfg: DemoConfig, customers: list[Customer]) -> list[Order]:
    """About ``orders_per_customer`` orders each (0 is possible), created 1 min .. 7 days
    after the customer; ``updated_at`` equals ``created_at`` for status ``created``."""
    rng = rng_for(cfg.seed, "orders")
    out: list[Order] = []
    for customer in customers:
        created_times = sorted(
            customer.created_at_ms + rng.randint(60_000, 7 * DAY_MS)
            for _ in range(count_around(rng, cfg.orders_per_customer))
        )
        for created in created_times:
            status = rng.choices(ORDER_STATUSES, INITIAL_STATUS_WEIGHTS)[0]
            updated = created if status == "created" else created + rng.randint(1_000, DAY_MS)
            out.append(
                Order(
                    id=len(out) + 1,
                    customer_id=customer.id,
                    status=status,
                    amount_cents=_amount_cents(rng),
                    currency="EUR",
                    created_at_ms=created,
                    updated_at_ms=updated,
                )
            )
    return out


def order_updates(
    cfg: DemoConfig, orders: list[Order], n: int, start_ms: int
) -> list[tuple[ChangeKind, dict[str, Any]]]:
    """Up to ``n`` changes to apply in list order: ``("update", row)`` moves an order along
    :data:`NEXT_STATUSES`; ``("delete", row)`` (about 5 %) removes one. ``row`` is the whole
    order after the change (for a delete: as it was), as ``dataclasses.asdict`` of
    :class:`Order`.

    Edge cases: ``orders`` must be the current database state (statuses are tracked from
    it); change times start at ``start_ms`` and increase strictly, but never go below an
    order's own ``updated_at_ms + 1``. Fewer than ``n`` changes are returned only when no
    order is left to change. The rng depends on (seed, start_ms) only, so a smaller ``n``
    gives a prefix of a larger one.
    """
    rng = rng_for(cfg.seed, "order_updates", start_ms)
    live = {o.id: o for o in orders}
    changes: list[tuple[ChangeKind, dict[str, Any]]] = []
    t = start_ms
    while len(changes) < n and live:
        movable = [oid for oid, o in live.items() if NEXT_STATUSES[o.status]]
        if movable and rng.random() >= DELETE_SHARE:
            order = live[rng.choice(movable)]
            t = max(t, order.updated_at_ms + 1)
            order = dataclasses.replace(
                order, status=rng.choice(NEXT_STATUSES[order.status]), updated_at_ms=t
            )
            live[order.id] = order
            changes.append(("update", dataclasses.asdict(order)))
        else:
            order = live.pop(rng.choice(sorted(live)))
            changes.append(("delete", dataclasses.asdict(order)))
        t += rng.randint(50, 2_000)
    return changes
