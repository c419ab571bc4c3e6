"""The version of a value and its total order (ARCHITECTURE.md, "Event time and the version").

``Version(event_time, source_priority, source_seq)``: the greatest wins, whatever the arrival
order. ``source_seq`` is a tuple whose shape is fixed per source:

- pg_cdc: ``(commit_lsn, lsn)`` — Debezium's ``source.sequence``; a missing commit LSN (the
  first transaction after the connector starts) counts as the event's own LSN.
- s3_crm: ``(export_ts, object_key, row)``.
- clickstream: ``(partition, offset)``.

Priorities are unique per source, so two versions with equal (event_time, priority) come from
one source and their seqs have the same shape: the order is total.

:meth:`Version.encode` gives a string whose byte order equals this order. The online store
compares versions inside Redis (Lua) with plain string comparison, so the encoding is the
contract between writers and the store: fixed-width numbers, object keys hex-encoded and
terminated by '.', which sorts below every hex digit (a key that is a prefix of another
sorts first, as in tuple order).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.events import SOURCE_PRIORITY, Source

SeqPart = int | str
_WIDTH = 20  # digits: fits any non-negative int64 (LSNs, offsets, epoch ms)


@dataclass(frozen=True, order=True, slots=True)
class Version:
    event_time: int
    priority: int
    seq: tuple[SeqPart, ...]

    def encode(self) -> str:
        parts = [f"{self.event_time:0{_WIDTH}d}", f"{self.priority:03d}"]
        for part in self.seq:
            if isinstance(part, int):
                if part < 0:
                    raise ValueError(f"negative sequence part {part}")
                parts.append(f"{part:0{_WIDTH}d}")
            else:
                parts.append(part.encode().hex() + ".")
        return "|".join(parts)

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


def decode_priority(encoded: str) -> int:
    """The source priority inside an encoded version (which source won)."""
    return int(encoded.split("|", 2)[1])
