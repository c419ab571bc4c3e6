"""Load the demo domain into the running platform: PostgreSQL rows, CRM exports on S3, and
clickstream records for the producer.

Cross-source conflicts must be real on the wire: CDC's event time is the *commit* time
(Debezium ``source.ts_ms``), not the ``updated_at`` column. So the CRM export is generated
after the database is seeded, around each customer's actual commit time (read with
``pg_xact_commit_timestamp``; the stack runs PostgreSQL with ``track_commit_timestamp=on``):
some CRM values are seconds older, some newer, some carry exactly the commit millisecond.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator

from connectors.demo.config import DemoConfig
from connectors.demo.crm import CrmFormat
from connectors.demo.generator import (
    clickstream,
    crm_object_key,
    crm_rows,
    customers,
    render_crm_export,
)
from connectors.demo.migrate import apply_migrations
from connectors.demo.seed import seed_postgres
from core.objectstore import s3_client
from core.settings import StackSettings

EVENTS_PER_USER = 28  # about sessions_per_user * (events_per_session + conversions)
CRM_FORMATS: tuple[CrmFormat, ...] = ("csv", "jsonl", "parquet")


def click_records(
    seed: int, count: int, *, start_ms: int | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """``count`` clickstream records (key, value) in emit order, deterministic for
    (seed, count, start_ms). ``start_ms`` defaults to one day before now, so the events'
    times are recent (online features expire by event time)."""
    if start_ms is None:
        start_ms = (int(time.time()) // 60) * 60_000 - 86_400_000
    users = max(1, math.ceil(count / EVENTS_PER_USER))
    while True:
        cfg = DemoConfig(seed=seed, start_ms=start_ms, customers=users, click_users=users)
        records = clickstream(cfg)
        if len(records) >= count:
            break
        users *= 2  # too few events: a bigger population (still deterministic)
    for record in records[:count]:
        yield record.key, record.value


def commit_times_ms(dsn: str) -> dict[int, int]:
    """customer id -> commit time (ms) of the row version currently stored."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id, floor(extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000)::bigint"
            " FROM customers"
        ).fetchall()
    return {int(i): int(ms) for i, ms in rows if ms is not None}


def seed_all(settings: StackSettings, seed: int, n_customers: int) -> list[str]:
    """Migrate + seed PostgreSQL, then drop one CRM export (CSV, JSONL and Parquet parts)."""
    dsn = settings.postgres_dsn()
    cfg = DemoConfig(seed=seed, customers=n_customers, click_users=n_customers)
    applied = apply_migrations(dsn)
    counts = seed_postgres(dsn, cfg)
    lines = [
        f"postgres: migrations applied {applied or 'none (up to date)'}; inserted "
        f"{counts['customers']} customers, {counts['orders']} orders"
    ]
    commits = commit_times_ms(dsn)
    people = [
        dataclasses.replace(c, updated_at_ms=commits.get(c.id, c.updated_at_ms))
        for c in customers(cfg)
    ]
    export_ms = (max(c.updated_at_ms for c in people) // 60_000 + 2) * 60_000
    rows = crm_rows(cfg, people, export_ms=export_ms)
    client = s3_client(settings)
    part_size = math.ceil(len(rows) / len(CRM_FORMATS))
    for part, fmt in enumerate(CRM_FORMATS):
        chunk = rows[part * part_size : (part + 1) * part_size]
        key = crm_object_key(export_ms, fmt, part)
        client.put_object(
            Bucket=settings.s3.lake_bucket, Key=key, Body=render_crm_export(chunk, fmt)
        )
        lines.append(f"s3: s3://{settings.s3.lake_bucket}/{key} ({len(chunk)} rows)")
    return lines
