"""The demo domain's closed vocabularies (e-commerce): shared by generators, validators,
the feature job and the API, so a value allowed in one place is allowed everywhere."""

from __future__ import annotations

SEGMENTS = ("consumer", "smb", "enterprise")
TIERS = ("bronze", "silver", "gold", "platinum")
ORDER_STATUSES = ("created", "paid", "shipped", "cancelled", "refunded")
CLICK_EVENT_TYPES = ("page_view", "search", "add_to_cart", "remove_from_cart", "purchase")
CUSTOMER_ATTRIBUTES = ("email", "segment", "tier")
"""Attributes both PostgreSQL (CDC) and the CRM export carry: the last-writer-wins set."""
