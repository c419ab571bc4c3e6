"""The demo domain's generators in one place (pure: no I/O, no wall clock, no global random).

Same :class:`~connectors.demo.config.DemoConfig` -> same values and bytes, on every run and
machine. Each generator draws from its own stream seeded by (seed, purpose), so e.g. the
clickstream does not change when ``customers`` does, and one user's events do not depend on
how many other users there are.

- :func:`customers`, :func:`orders`, :func:`order_updates`: the PostgreSQL side (entities.py)
- :func:`clickstream`: Kafka records in emit order, with malformed ones (clicks.py)
- :func:`crm_rows`, :func:`render_crm_export`, :func:`crm_object_key`: CRM exports (crm.py)
"""

from __future__ import annotations

from connectors.demo.clicks import MALFORMED_REASONS as CLICK_MALFORMED_REASONS
from connectors.demo.clicks import MAX_OUT_OF_ORDER_MS, ClickRecord, clickstream
from connectors.demo.crm import (
    CONFLICT_KINDS,
    CrmFormat,
    CrmRow,
    crm_object_key,
    crm_rows,
    render_crm_export,
)
from connectors.demo.crm import MALFORMED_REASONS as CRM_MALFORMED_REASONS
from connectors.demo.entities import Customer, Order, customers, order_updates, orders

__all__ = [
    "CLICK_MALFORMED_REASONS",
    "CONFLICT_KINDS",
    "CRM_MALFORMED_REASONS",
    "MAX_OUT_OF_ORDER_MS",
    "ClickRecord",
    "CrmFormat",
    "CrmRow",
    "Customer",
    "Order",
    "clickstream",
    "crm_object_key",
    "crm_rows",
    "customers",
    "order_updates",
    "orders",
    "render_crm_export",
]
