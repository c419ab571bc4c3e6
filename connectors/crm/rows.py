"""Reading CRM export files and validating their rows against the declared schema.

Formats by extension: ``.csv`` (header ``customer_id,email,segment,tier,updated_at``),
``.jsonl``/``.json`` (one object per line) and ``.parquet``. Rows are numbered from 1 in
file order (the CSV header is not a row). A row that fails validation is returned with a
reason instead of raising: one bad row never stops the rest of the file. What a good row is
says the customer suite (core/suites/crm_customers.json), validated by Great Expectations
(:func:`check_rows`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.domain import CUSTOMER_ATTRIBUTES
from core.events import parse_iso_ms
from core.quality import GreatExpectations

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


@dataclass(frozen=True)
class Checked:
    """One row's verdict: the row to publish, or why it is quarantined (``expectation``:
    the customer suite's expectation it failed, None for a row that is not a record)."""

    row: CrmRow | None
    reason: str = ""
    detail: str = ""
    expectation: str | None = None


def _record(fields: dict[str, Any]) -> dict[str, Any]:
    """A row's values as the customer suite reads them: ``customer_id`` an int when the text
    is one (else null: the suite's not-null expectation names it), the attributes stripped
    text (an empty cell is null)."""
    text = str(fields["customer_id"]).strip()
    try:
        customer_id: int | None = int(text)
    except ValueError:
        customer_id = None
    record: dict[str, Any] = {"customer_id": customer_id}
    for a in CUSTOMER_ATTRIBUTES:
        value = str(fields[a] or "").strip()
        record[a] = value or None
    return record


def check_rows(
    raws: list[RawRow], ge: GreatExpectations, *, great_expectations: bool = True
) -> list[Checked]:
    """The verdict on each row of a chunk: rows that are records are validated together by
    Great Expectations against the customer suite (``ge.suite``); its row-level results
    decide what is quarantined, the first failed expectation (suite order) naming the
    reason. Then ``updated_at`` must parse. ``great_expectations=False``: the suite's
    compiled rules (core.quality.Suite.check, what the stream gate runs) decide instead, row
    by row -- the same verdicts (tests/unit/core/test_quality.py), for a comparison of cost."""
    out: list[Checked | None] = []
    records: list[dict[str, Any]] = []
    at: list[int] = []
    for raw in raws:
        if raw.fields is None:
            out.append(
                Checked(None, "unparsable_row", "the line is not a valid record of its format")
            )
            continue
        missing = [c for c in COLUMNS if c != "updated_at" and c not in raw.fields]
        if missing:
            out.append(Checked(None, "missing_field", f"missing {', '.join(missing)}"))
            continue
        at.append(len(out))
        out.append(None)
        records.append(_record(raw.fields))
    if great_expectations:
        failures = ge.validate(records).failed
    else:
        found = [ge.suite.check(r) for r in records]
        failures = [[] if f is None else [f.rule.label] for f in found]
    for i, record, failed in zip(at, records, failures, strict=True):
        raw = raws[i]
        assert raw.fields is not None
        if failed:
            rule = ge.rule(failed[0])
            mine = ge.suite.check(record)
            detail = mine.detail if mine is not None and mine.rule.label == failed[0] else failed[0]
            if rule.column == "customer_id" and record["customer_id"] is None:
                detail = f"{failed[0]}: customer_id {raw.fields['customer_id']!r} is not an integer"
            out[i] = Checked(None, rule.reason, detail, failed[0])
            continue
        out[i] = _with_time(record, raw.fields.get("updated_at"))
    return [c for c in out if c is not None]


def _with_time(record: dict[str, Any], updated: Any) -> Checked:
    updated_ms: int | None = None
    if updated not in (None, ""):
        try:
            updated_ms = int(updated) if isinstance(updated, int) else parse_iso_ms(str(updated))
        except ValueError as exc:
            return Checked(None, "invalid_updated_at", f"updated_at {updated!r}: {exc}")
    row = CrmRow(
        record["customer_id"], record["email"], record["segment"], record["tier"], updated_ms
    )
    return Checked(row)
