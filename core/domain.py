"""The demo domain's closed vocabularies (e-commerce): shared by generators, validators,
the feature job and the API, so a value allowed in one place is allowed everywhere."""

from __future__ import annotations

SEGMENTS = ("consumer", "smb", "enterprise")
TIERS = ("bronze", "silver", "gold", "platinum")
ORDER_STATUSES = ("created", "paid", "shipped", "cancelled", "refunded")
CLICK_EVENT_TYPES = ("page_view", "search", "add_to_cart", "remove_from_cart", "purchase")
CUSTOMER_ATTRIBUTES = ("email", "segment", "tier")
"""Attributes both PostgreSQL (CDC) and the CRM export carry: the last-writer-wins set."""


def attribute_problem(attribute: str, value: str) -> tuple[str, str] | None:
    """Why ``value`` is not a valid customer ``attribute`` — a (reason, detail) pair, the
    reason being the DLQ reason — or None when it is. The one rule set of the CRM bridge and
    the feature job (both sources of the last-writer-wins attributes)."""
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    if attribute == "email":
        if "@" not in value or value.startswith("@") or value.endswith("@"):
            return "invalid_email", f"email {shown}"
    elif attribute == "segment":
        if value not in SEGMENTS:
            return "invalid_segment", f"segment {shown} not in {SEGMENTS}"
    elif attribute == "tier":
        if value not in TIERS:
            return "invalid_tier", f"tier {shown} not in {TIERS}"
    else:
        raise KeyError(f"{attribute!r} is not one of {CUSTOMER_ATTRIBUTES}")
    return None
