"""The version of a value and its total order (ARCHITECTURE.md, "Event time and the version").

``Version(event_time, source_priority, source_seq)``: the greatest wins, whatever the arrival
order. ``source_seq`` is a tuple whose shape is fixed per source:

- pg_cdc: ``(commit_lsn, lsn)`` — Debezium's ``source.sequence``; a missing commit LSN (the
  first transaction after the connector starts) counts as the event's own LSN.
- s3_crm: ``(export_ts, object_key, row)``.
- clickstream: ``(partition, offset)``.

Priorities are unique per source, so two versions with equal (event_time, priority) come from
one source and their seqs have the same shape: the order is total.

:meth:`Version.encode` gives a short string whose byte order equals this order. The online
store compares versions inside Redis (Lua) with plain string comparison, so the encoding is
the contract between writers and the store. Each number is written as one length character
then its hex digits ("b18c3..."), so a longer number sorts after a shorter one and equal
lengths compare digit by digit; the priority is two hex digits; a string part is its UTF-8
bytes then "\x01", which sorts below every character a key may hold (so a key that is a
prefix of another sorts first, as in tuple order). Parts are self-delimiting: no separator.
Short versions keep Redis hashes in their compact listpack encoding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.events import SOURCE_PRIORITY, Source

SeqPart = int | str
_LENGTHS = "0123456789abcdefg"  # hex length 1..16 of a non-negative int64
_END = "\x01"


def _num(n: int) -> str:
    if n < 0:
        raise ValueError(f"negative version part {n}")
    digits = format(n, "x")
    return _LENGTHS[len(digits)] + digits


@dataclass(frozen=True, order=True, slots=True)
class Version:
    event_time: int
    priority: int
    seq: tuple[SeqPart, ...]

    def encode(self) -> str:
        parts = [_num(self.event_time), f"{self.priority:02x}"]
        for part in self.seq:
            if isinstance(part, int):
                parts.append(_num(part))
            else:
                if any(ord(c) < 0x20 for c in part):
                    raise ValueError(f"control character in sequence part {part!r}")
                parts.append(part + _END)
        return "".join(parts)

    @property
    def source(self) -> Source:
        return next(s for s, p in SOURCE_PRIORITY.items() if p == self.priority)


def cdc_version(source_block: dict[str, Any]) -> Version:
    """Version of a Debezium PostgreSQL event from its ``source`` block."""
    raw = source_block.get("sequence")
    lsn = int(source_block["lsn"])
    commit_lsn = lsn
    if raw:
        commit, current = json.loads(raw)
        lsn = int(current) if current is not None else lsn
        commit_lsn = int(commit) if commit is not None else lsn
    return Version(int(source_block["ts_ms"]), SOURCE_PRIORITY[Source.PG_CDC], (commit_lsn, lsn))


def crm_version(event_time: int, export_ts: int, object_key: str, row: int) -> Version:
    return Version(event_time, SOURCE_PRIORITY[Source.S3_CRM], (export_ts, object_key, row))


def click_version(event_time: int, partition: int, offset: int) -> Version:
    return Version(event_time, SOURCE_PRIORITY[Source.CLICKSTREAM], (partition, offset))


def decode_event_time(encoded: str) -> int:
    """The event_time inside an encoded version."""
    length = _LENGTHS.index(encoded[0])
    return int(encoded[1 : 1 + length], 16)


def decode_priority(encoded: str) -> int:
    """The source priority inside an encoded version (which source won)."""
    start = 1 + _LENGTHS.index(encoded[0])
    return int(encoded[start : start + 2], 16)


@dataclass(frozen=True, slots=True)
class EncodedVersion:
    """A version already encoded (e.g. computed in Flink SQL with the same rules): all the
    online store needs is its text and event_time."""

    event_time: int
    text: str

    def encode(self) -> str:
        return self.text
