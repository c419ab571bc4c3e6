"""Reading CRM export files and validating their rows against the declared schema.

Formats by extension: ``.csv`` (header ``customer_id,email,segment,tier,updated_at``),
``.jsonl``/``.json`` (one object per line) and ``.parquet``. Rows are numbered from 1 in
file order (the CSV header is not a row). A row that fails validation is returned with a
reason instead of raising: one bad row never stops the rest of the file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.domain import CUSTOMER_ATTRIBUTES, attribute_problem
from core.events import parse_iso_ms

COLUMNS = ("customer_id", "email", "segment", "tier", "updated_at")
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


class UnreadableFile(Exception):
    """The object as a whole cannot be read (wrong header, not Parquet, bad encoding)."""


@dataclass(frozen=True)
class RawRow:
    row: int
    original: bytes
    fields: dict[str, Any] | None  # None: the row itself could not be parsed


@dataclass(frozen=True)
class CrmRow:
    customer_id: int
    email: str
    segment: str
    tier: str
    updated_at_ms: int | None


def format_of(key: str) -> str | None:
    for ext, fmt in FORMATS.items():
        if key.lower().endswith(ext):
            return fmt
    return None


def iter_rows(
    fmt: str, lines: Iterator[bytes] | None = None, data: bytes | None = None
) -> Iterator[RawRow]:
    """Rows of one file: CSV/JSONL stream from ``lines``; Parquet needs the whole ``data``."""
    if fmt == "csv":
        assert lines is not None
        yield from _csv_rows(lines)
    elif fmt == "jsonl":
        assert lines is not None
        yield from _jsonl_rows(lines)
    elif fmt == "parquet":
        assert data is not None
        yield from _parquet_rows(data)
    else:
        raise UnreadableFile(f"unsupported format {fmt!r}")


def _csv_rows(lines: Iterator[bytes]) -> Iterator[RawRow]:
    header_line = next(lines, None)
    if header_line is None:
        return
    header = next(csv.reader([header_line.decode("utf-8-sig")]))
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise UnreadableFile(f"CSV header lacks {', '.join(missing)} (has {', '.join(header)})")
    for number, line in enumerate(lines, start=1):
        try:
            values = next(csv.reader([line.decode("utf-8")]))
        except (UnicodeDecodeError, csv.Error, StopIteration):
            yield RawRow(number, line, None)
            continue
        if len(values) != len(header):
            yield RawRow(number, line, None)
            continue
        yield RawRow(number, line, dict(zip(header, values, strict=True)))


def _jsonl_rows(lines: Iterator[bytes]) -> Iterator[RawRow]:
    for number, line in enumerate(lines, start=1):
        try:
            value = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            yield RawRow(number, line, None)
            continue
        yield RawRow(number, line, value if isinstance(value, dict) else None)


def _parquet_rows(data: bytes) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:
        raise UnreadableFile(f"not a readable Parquet file: {exc}") from exc
    number = 0
    for batch in table.to_batches(max_chunksize=10_000):
        for record in batch.to_pylist():
            number += 1
            original = json.dumps(record, default=str, sort_keys=True).encode()
            yield RawRow(number, original, record)


def validate(raw: RawRow) -> tuple[CrmRow | None, str, str]:
    """(row, "", "") when valid, else (None, reason, detail). Reasons are stable names."""
    if raw.fields is None:
        return None, "unparsable_row", "the line is not a valid record of its format"
    f = raw.fields
    missing = [c for c in COLUMNS if c != "updated_at" and c not in f]
    if missing:
        return None, "missing_field", f"missing {', '.join(missing)}"
    try:
        customer_id = int(str(f["customer_id"]).strip())
        if customer_id <= 0:
            raise ValueError
    except ValueError:
        detail = f"customer_id {f['customer_id']!r} is not a positive int"
        return None, "invalid_customer_id", detail
    values = {a: str(f[a] or "").strip() for a in CUSTOMER_ATTRIBUTES}
    for attribute, value in values.items():
        problem = attribute_problem(attribute, value)
        if problem:
            return None, *problem
    email, segment, tier = (values[a] for a in ("email", "segment", "tier"))
    updated = f.get("updated_at")
    updated_ms: int | None = None
    if updated not in (None, ""):
        try:
            updated_ms = int(updated) if isinstance(updated, int) else parse_iso_ms(str(updated))
        except ValueError as exc:
            return None, "invalid_updated_at", f"updated_at {updated!r}: {exc}"
    return CrmRow(customer_id, email, segment, tier, updated_ms), "", ""
