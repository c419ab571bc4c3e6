"""The clickstream: browsing sessions of users 1..cfg.click_users, as Kafka records in
EMIT order (pure, no I/O).

A valid record's value is compact JSON (keys in this order)::

    {"event_id": "<uuid4>", "user_id": 17, "event_type": "add_to_cart",
     "page": "/product/123", "event_time": 1767229200000,
     "properties": {"product_id": 123, "price_cents": 2499, "quantity": 1}}

keyed by ``str(user_id).encode()``. Invariants of one user's valid events sorted by
event_time: consecutive events of a session are 5 s .. 10 min apart; consecutive sessions
are MORE than ``session_gap_ms`` apart (never exactly: the gap is always gap + >= 1 ms).

Emit order is arrival order. Most events arrive at their event_time; an out-of-order one
arrives just after the same user's next event (at most :data:`MAX_OUT_OF_ORDER_MS` after its
own event_time); a late one arrives 65 min .. 6 h after it. Ties in arrival are broken by
(event_time, user_id, per-user sequence), so the order is total and reproducible.
Malformed records (``valid=False``, ``reason`` one of :data:`MALFORMED_REASONS`) are
interleaved at random positions; their times are near their neighbours'.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from connectors.demo.config import MAX_EVENT_GAP_MS, MIN_EVENT_GAP_MS, DemoConfig
from connectors.demo.sampling import (
    CATEGORIES,
    PRODUCT_IDS,
    SEARCH_TERMS,
    count_around,
    product_price_cents,
    rng_for,
    skewed_int,
    uuid_from,
)
from core.events import format_iso_ms

DAY_MS = 86_400_000
MALFORMED_REASONS = ("invalid_json", "missing_user_id", "bad_event_time", "unknown_event_type")
UNKNOWN_EVENT_TYPES = ("wishlist_add", "hover", "PageView")
OUT_OF_ORDER_GAP_MS = (5_000, 8_000)
"""Gap between an out-of-order event and the next one of its session."""
MAX_OUT_OF_ORDER_MS = 10_000
"""Bound on (arrival - event_time) of an out-of-order event: gap <= 8 s plus <= 2 s."""
LATE_DELAY_MS = (65 * 60_000, 6 * 3_600_000)
MAX_SESSION_PAUSE_MS = 12 * 3_600_000
"""Largest extra pause between two sessions, on top of ``session_gap_ms``."""
CONVERSION_RATE = 0.35
"""Chance that a session with a non-empty cart ends in /checkout + purchase."""


@dataclass(frozen=True, slots=True)
class ClickRecord:
    key: bytes
    value: bytes
    valid: bool
    reason: str | None


def dumps(obj: Any) -> bytes:
    """Compact, ASCII-only JSON: the byte form of every clickstream value."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


Step = tuple[str, str, dict[str, Any]]  # (event_type, page, properties)


def _browse(rng: random.Random, n: int) -> list[Step]:
    """``n`` browsing steps; add_to_cart only right after a product view, remove_from_cart
    only with a non-empty cart; a converting session ends with /checkout and a purchase."""
    steps: list[Step] = []
    cart: dict[int, int] = {}
    viewed: int | None = None
    for _ in range(n):
        actions, weights = ["product", "search", "other"], [50, 25, 15]
        if viewed is not None:
            actions += ["add"]
            weights += [30]
        if cart:
            actions += ["cart", "remove"]
            weights += [8, 5]
        action = rng.choices(actions, weights)[0]
        if action == "product":
            viewed = rng.choice(PRODUCT_IDS)
            steps.append(("page_view", f"/product/{viewed}", {"product_id": viewed}))
            continue
        if action == "add" and viewed is not None:
            qty = rng.choice((1, 1, 1, 2))
            cart[viewed] = cart.get(viewed, 0) + qty
            price = product_price_cents(viewed)
            props: dict[str, Any] = {"product_id": viewed, "price_cents": price, "quantity": qty}
            steps.append(("add_to_cart", f"/product/{viewed}", props))
        elif action == "search":
            query = rng.choice(SEARCH_TERMS)
            props = {"query": query, "results": rng.randint(0, 48)}
            steps.append(("search", f"/search?q={quote_plus(query)}", props))
        elif action == "other":
            page = rng.choice(("/", f"/category/{rng.choice(CATEGORIES)}"))
            steps.append(("page_view", page, {}))
        elif action == "cart":
            steps.append(("page_view", "/cart", {"items": sum(cart.values())}))
        else:  # remove
            product = rng.choice(sorted(cart))
            steps.append(("remove_from_cart", "/cart", {"product_id": product}))
            del cart[product]
        viewed = None
    if cart and rng.random() < CONVERSION_RATE:
        items = sum(cart.values())
        total = sum(product_price_cents(p) * q for p, q in cart.items())
        steps.append(("page_view", "/checkout", {"items": items}))
        products = sorted(cart)
        summary: dict[str, Any] = {"items": items, "total_cents": total, "product_ids": products}
        steps.append(("purchase", "/checkout", summary))
    return steps


# (arrival_ms, event_time, user_id, sequence, event)
_Planned = tuple[int, int, int, int, dict[str, Any]]


def _user_events(cfg: DemoConfig, user_id: int) -> list[_Planned]:
    """One user's events with their arrival times; independent of every other user."""
    rng = rng_for(cfg.seed, "clicks", user_id)
    planned: list[_Planned] = []
    t = cfg.start_ms + rng.randrange(DAY_MS)
    for session in range(count_around(rng, cfg.sessions_per_user, minimum=1)):
        if session:
            t += cfg.session_gap_ms + rng.randint(1, MAX_SESSION_PAUSE_MS)
        steps = _browse(rng, count_around(rng, cfg.events_per_session, minimum=1))
        times, out_of_order = [t], [False] * len(steps)
        for i in range(1, len(steps)):
            allowed = i < 2 or not out_of_order[i - 2]  # never two in a row
            out_of_order[i - 1] = allowed and rng.random() < cfg.out_of_order_fraction
            if out_of_order[i - 1]:
                t += rng.randint(*OUT_OF_ORDER_GAP_MS)
            else:
                t += skewed_int(rng, MIN_EVENT_GAP_MS, MAX_EVENT_GAP_MS)
            times.append(t)
        for i, (event_type, page, properties) in enumerate(steps):
            if out_of_order[i]:
                arrival = times[i + 1] + rng.randint(1, 2_000)
            elif rng.random() < cfg.late_fraction:
                arrival = times[i] + rng.randint(*LATE_DELAY_MS)
            else:
                arrival = times[i]
            event = {
                "event_id": uuid_from(rng),
                "user_id": user_id,
                "event_type": event_type,
                "page": page,
                "event_time": times[i],
                "properties": properties,
            }
            planned.append((arrival, times[i], user_id, len(planned), event))
    return planned


def _malformed(rng: random.Random, reason: str, user_id: int, t: int) -> ClickRecord:
    event: dict[str, Any] = {
        "event_id": uuid_from(rng),
        "user_id": user_id,
        "event_type": "page_view",
        "page": "/",
        "event_time": t,
        "properties": {},
    }
    key = str(user_id).encode()
    if reason == "invalid_json":  # any proper prefix of a JSON object is invalid JSON
        raw = dumps(event)
        return ClickRecord(key, raw[: rng.randrange(1, len(raw))], False, reason)
    if reason == "missing_user_id":
        del event["user_id"]
        key = b""
    elif reason == "bad_event_time":
        event["event_time"] = rng.choice((format_iso_ms(t), str(t), None))
    elif reason == "unknown_event_type":
        event["event_type"] = rng.choice(UNKNOWN_EVENT_TYPES)
    else:
        raise ValueError(f"unknown malformed reason {reason!r}")
    return ClickRecord(key, dumps(event), False, reason)


def clickstream(cfg: DemoConfig) -> list[ClickRecord]:
    """Every clickstream record in emit order (see the module docstring for invariants).

    The malformed share is exact up to rounding: ``round(f * valid / (1 - f))`` records,
    reasons spread evenly over :data:`MALFORMED_REASONS` (all four appear from 4 on).
    """
    planned = [p for user in range(1, cfg.click_users + 1) for p in _user_events(cfg, user)]
    planned.sort(key=lambda p: p[:4])
    rng = rng_for(cfg.seed, "clicks-malformed")
    f = cfg.malformed_fraction
    n_bad = round(f * len(planned) / (1 - f)) if planned else 0
    total = len(planned) + n_bad
    bad_positions = set(rng.sample(range(total), n_bad))
    reasons = [MALFORMED_REASONS[i % len(MALFORMED_REASONS)] for i in range(n_bad)]
    rng.shuffle(reasons)
    out: list[ClickRecord] = []
    valid = iter(planned)
    last_time = cfg.start_ms
    for position in range(total):
        if position in bad_positions:
            user_id = rng.randint(1, cfg.click_users)
            out.append(_malformed(rng, reasons.pop(), user_id, last_time))
            continue
        _, last_time, user_id, _, event = next(valid)
        out.append(ClickRecord(str(user_id).encode(), dumps(event), True, None))
    return out
