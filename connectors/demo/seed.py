"""Writing the demo domain into PostgreSQL (the source Debezium captures).

``seed_postgres`` is idempotent: rows are staged with COPY into temporary tables, then
``INSERT ... SELECT ... ON CONFLICT (id) DO NOTHING``, all in one transaction; a second run
inserts nothing and changes nothing (an existing row is never overwritten, even when it
differs from the generated one). Timestamps go in as timezone-aware datetimes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg

from connectors.demo.config import DemoConfig
from connectors.demo.entities import ChangeKind, customers, orders
from connectors.demo.migrate import apply_migrations
from core.events import ms_to_datetime

CUSTOMER_COLUMNS = (
    "id", "email", "full_name", "segment", "tier", "country", "created_at", "updated_at"
)  # fmt: skip
ORDER_COLUMNS = (
    "id", "customer_id", "status", "amount_cents", "currency", "created_at", "updated_at"
)  # fmt: skip


def _rows(items: Iterable[object], columns: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
    """Table rows of dataclass items: ``<name>_at`` columns come from ``<name>_at_ms``."""
    for item in items:
        yield tuple(
            ms_to_datetime(getattr(item, f"{c}_ms")) if c.endswith("_at") else getattr(item, c)
            for c in columns
        )


def seed_postgres(dsn: str, cfg: DemoConfig) -> dict[str, int]:
    """Migrate, then insert the generated customers and orders that are not there yet.

    Returns rows actually inserted: ``{"customers": n, "orders": m}`` (0 and 0 on a rerun).
    """
    apply_migrations(dsn)
    people = customers(cfg)
    tables: dict[str, tuple[tuple[str, ...], Sequence[object]]] = {
        "customers": (CUSTOMER_COLUMNS, people),
        "orders": (ORDER_COLUMNS, orders(cfg, people)),
    }
    counts: dict[str, int] = {}
    with psycopg.connect(dsn) as conn, conn.transaction():
        for table, (columns, items) in tables.items():  # customers first: orders refer to them
            names = ", ".join(columns)
            conn.execute(f"CREATE TEMP TABLE stage_{table} (LIKE public.{table}) ON COMMIT DROP")
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY stage_{table} ({names}) FROM STDIN") as copy,
            ):
                for row in _rows(items, columns):
                    copy.write_row(row)
            cur = conn.execute(
                f"INSERT INTO public.{table} ({names}) SELECT {names} FROM stage_{table} "
                "ORDER BY id ON CONFLICT (id) DO NOTHING"
            )
            counts[table] = cur.rowcount
    return counts


def apply_changes(dsn: str, changes: Iterable[tuple[ChangeKind, dict[str, Any]]]) -> dict[str, int]:
    """Apply ``order_updates`` output in order, each change its own transaction (so each
    gets its own commit timestamp and LSN in the CDC stream).

    An update sets ``status`` and ``updated_at`` of the row's ``id``; a delete removes it.
    A change whose order no longer exists affects nothing and is not an error. Returns the
    rows affected per kind, e.g. ``{"update": 95, "delete": 5}``.
    """
    affected = {"update": 0, "delete": 0}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for kind, row in changes:
            if kind == "update":
                cur = conn.execute(
                    "UPDATE public.orders SET status = %s, updated_at = %s WHERE id = %s",
                    (row["status"], ms_to_datetime(row["updated_at_ms"]), row["id"]),
                )
            elif kind == "delete":
                cur = conn.execute("DELETE FROM public.orders WHERE id = %s", (row["id"],))
            else:
                raise ValueError(f"unknown change kind {kind!r} (update, delete)")
            affected[kind] += cur.rowcount
    return affected
