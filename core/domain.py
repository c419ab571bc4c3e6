"""The demo domain's closed vocabularies (e-commerce): shared by generators, validators,
the feature job and the API, so a value allowed in one place is allowed everywhere."""

from __future__ import annotations

from core.quality import repository_suite

SEGMENTS = ("consumer", "smb", "enterprise")
TIERS = ("bronze", "silver", "gold", "platinum")
ORDER_STATUSES = ("created", "paid", "shipped", "cancelled", "refunded")
CLICK_EVENT_TYPES = ("page_view", "search", "add_to_cart", "remove_from_cart", "purchase")
CUSTOMER_ATTRIBUTES = ("email", "segment", "tier")
"""Attributes both PostgreSQL (CDC) and the CRM export carry: the last-writer-wins set."""
CUSTOMER_SUITE = "crm_customers"
"""The suite (core/suites) that says what a valid customer row and attribute is."""


def attribute_problem(attribute: str, value: object) -> tuple[str, str] | None:
    """Why ``value`` is not a valid customer ``attribute`` — a (reason, detail) pair, the
    reason being the DLQ reason — or None when it is: the first expectation on that column
    of the customer suite (``core/suites/crm_customers.json``) it fails. The one rule set
    of the CRM bridge and the feature job (both sources of the last-writer-wins
    attributes)."""
    if attribute not in CUSTOMER_ATTRIBUTES:
        raise KeyError(f"{attribute!r} is not one of {CUSTOMER_ATTRIBUTES}")
    failure = repository_suite(CUSTOMER_SUITE).column_problem(attribute, value)
    return None if failure is None else (failure.reason, failure.detail)
