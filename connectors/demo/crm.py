"""CRM exports: one export's rows, their file formats and object keys (pure, no I/O).

A CRM row carries the attributes PostgreSQL also has (email, segment, tier). Against the
PostgreSQL customers, an export holds, per customer (rows sorted by customer id):

- a copy (no conflict): same values, ``updated_at`` up to 1 h before PG's, or none (~20 %);
- a conflict (``crm_conflict_fraction``): 1-2 attributes differ, with ``updated_at`` of kind
  ``before`` (1..59 s before PG's updated_at), ``after`` (1..59 s after), ``equal``
  (EXACTLY PG's, the tie that source priority decides) or ``none`` (no own timestamp: the
  export's time applies). Kinds are dealt round-robin, so from 4 conflicts on every kind
  occurs (``round(0.3 * n)`` >= 4 for n >= 12 customers at the default fraction);
- a malformed row (``crm_malformed_fraction``, only from non-conflict customers) with a
  ``reason`` named like the bridge's validator: invalid_customer_id (non-numeric),
  invalid_email (empty), invalid_tier (unknown), invalid_updated_at (unparsable).
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from typing import Literal

from connectors.demo.config import DemoConfig
from connectors.demo.entities import Customer
from connectors.demo.sampling import rng_for
from core.domain import CUSTOMER_ATTRIBUTES, SEGMENTS, TIERS
from core.events import format_iso_ms, ms_to_datetime

CrmFormat = Literal["csv", "jsonl", "parquet"]
COLUMNS = ("customer_id", "email", "segment", "tier", "updated_at")
CONFLICT_KINDS = ("before", "after", "equal", "none")
MALFORMED_REASONS = ("invalid_customer_id", "invalid_email", "invalid_tier", "invalid_updated_at")
EXPORT_PREFIX = "crm/exports"


@dataclass(frozen=True, slots=True)
class CrmRow:
    """One export row as written. ``str`` in ``customer_id``/``updated_at_ms`` occurs only in
    malformed rows and is written verbatim; ``updated_at_ms=None`` means no own timestamp."""

    customer_id: int | str
    email: str
    segment: str
    tier: str
    updated_at_ms: int | str | None
    reason: str | None = None

    @property
    def valid(self) -> bool:
        return self.reason is None

    def fields(self) -> dict[str, int | str | None]:
        """Column -> value as JSON Lines carries it (updated_at as ISO-8601 UTC text)."""
        at = self.updated_at_ms
        return {
            "customer_id": self.customer_id,
            "email": self.email,
            "segment": self.segment,
            "tier": self.tier,
            "updated_at": format_iso_ms(at) if isinstance(at, int) else at,
        }


def _conflict(rng: random.Random, customer: Customer, kind: str) -> CrmRow:
    values = {"email": customer.email, "segment": customer.segment, "tier": customer.tier}
    for attribute in rng.sample(CUSTOMER_ATTRIBUTES, rng.choice((1, 1, 2))):
        if attribute == "email":
            local, domain = customer.email.split("@")
            values["email"] = f"{local}+crm@{domain}"
        else:
            vocabulary = SEGMENTS if attribute == "segment" else TIERS
            values[attribute] = rng.choice([v for v in vocabulary if v != values[attribute]])
    pg = customer.updated_at_ms
    at = {
        "before": pg - rng.randint(1_000, 59_000),
        "after": pg + rng.randint(1_000, 59_000),
        "equal": pg,
        "none": None,
    }[kind]
    return CrmRow(customer.id, values["email"], values["segment"], values["tier"], at)


def _malformed(rng: random.Random, row: CrmRow, reason: str) -> CrmRow:
    cid, email, tier, at = row.customer_id, row.email, row.tier, row.updated_at_ms
    if reason == "invalid_customer_id":
        cid = rng.choice((f"C-{cid:05d}", f"{cid}x", "n/a"))
    elif reason == "invalid_email":
        email = ""
    elif reason == "invalid_tier":
        tier = rng.choice(("diamond", "vip", "unknown"))
    else:
        at = rng.choice(("31/02/2026 25:61", "yesterday", "2026-13-01T00:00:00Z"))
    return CrmRow(cid, email, row.segment, tier, at, reason)


def crm_rows(cfg: DemoConfig, customers: list[Customer], *, export_ms: int) -> list[CrmRow]:
    """One export's rows (one per customer, sorted by id); see the module docstring.

    Deterministic in (cfg.seed, export_ms, customers): another export time gives another
    draw. ``export_ms`` should be after every customer's updated_at (not enforced)."""
    rng = rng_for(cfg.seed, "crm", export_ms)
    ordered = sorted(customers, key=lambda c: c.id)
    n = len(ordered)
    conflict_ids = {c.id for c in rng.sample(ordered, round(cfg.crm_conflict_fraction * n))}
    kinds = [CONFLICT_KINDS[i % len(CONFLICT_KINDS)] for i in range(len(conflict_ids))]
    rng.shuffle(kinds)
    others = [c.id for c in ordered if c.id not in conflict_ids]
    n_bad = min(len(others), round(cfg.crm_malformed_fraction * n))
    bad_ids = sorted(rng.sample(others, n_bad))
    reasons = [MALFORMED_REASONS[i % len(MALFORMED_REASONS)] for i in range(n_bad)]
    rng.shuffle(reasons)
    bad = dict(zip(bad_ids, reasons, strict=True))
    rows = []
    for customer in ordered:
        if customer.id in conflict_ids:
            rows.append(_conflict(rng, customer, kinds.pop()))
            continue
        at = None if rng.random() < 0.2 else customer.updated_at_ms - rng.randint(0, 3_600_000)
        row = CrmRow(customer.id, customer.email, customer.segment, customer.tier, at)
        rows.append(_malformed(rng, row, bad[customer.id]) if customer.id in bad else row)
    return rows


def render_crm_export(rows: list[CrmRow], fmt: CrmFormat) -> bytes:
    """The export file's bytes. CSV: header ``customer_id,email,segment,tier,updated_at``,
    ``\\n`` line ends, empty updated_at for None. JSON Lines: one compact object per line,
    customer_id a number (a string when malformed), updated_at null for None. Parquet: all
    columns strings (updated_at null for None), so malformed values survive; its bytes are
    stable for a given pyarrow version (the writer's version is in the file footer)."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(["" if v is None else v for v in row.fields().values()])
        return buffer.getvalue().encode()
    if fmt == "jsonl":
        lines = (json.dumps(row.fields(), separators=(",", ":")) + "\n" for row in rows)
        return "".join(lines).encode()
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        records = [row.fields() for row in rows]
        columns = {
            c: pa.array([None if r[c] is None else str(r[c]) for r in records], pa.string())
            for c in COLUMNS
        }
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table(columns), sink, compression="snappy")
        return bytes(sink.getvalue().to_pybytes())
    raise ValueError(f"unknown CRM export format {fmt!r} (csv, jsonl, parquet)")


def crm_object_key(export_ms: int, fmt: CrmFormat, part: int = 0) -> str:
    """``crm/exports/dt=2026-01-01/customers-20260101T040000Z-0000.csv``. The key keeps whole
    seconds: two exports within one second share a key (the later overwrites)."""
    at = ms_to_datetime(export_ms)
    return f"{EXPORT_PREFIX}/dt={at:%Y-%m-%d}/customers-{at:%Y%m%dT%H%M%SZ}-{part:04d}.{fmt}"
