"""The dead-letter queue layout on S3 (ARCHITECTURE.md, "Dead-letter queue").

Bad or late records go under ``dlq/date=YYYY-MM-DD/source=<source>/reason=<reason>/`` in the
lake bucket, as JSON Lines objects. Each entry keeps the original bytes (base64), the reason
(the failed expectation), a human detail, and the coordinates of the record: Kafka
(topic, partition, offset) or S3 (object key, row). Object names are deterministic for a
given batch of coordinates, so a re-import rewrites the same object instead of duplicating.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from core.events import ms_to_datetime

DLQ_PREFIX = "dlq"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_segment(text: str) -> str:
    """A value usable as one path segment (reasons, sources)."""
    return _SAFE.sub("_", text).strip("_") or "unknown"


@dataclass(frozen=True)
class DlqEntry:
    source: str
    reason: str
    detail: str
    original: bytes
    date_ms: int
    """Which day's partition: the record's event time if known, else when it was seen."""
    coordinates: dict[str, Any] = field(default_factory=dict)
    expectation: str | None = None
    """The source suite's expectation the record failed (core.quality.Rule.label); None
    when it failed before any (unreadable) or a rule of the pipeline's own (lateness)."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "source": self.source,
                "reason": self.reason,
                "detail": self.detail,
                "expectation": self.expectation,
                "coordinates": self.coordinates,
                "original_b64": base64.b64encode(self.original).decode(),
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    def partition(self) -> str:
        day = ms_to_datetime(self.date_ms).strftime("%Y-%m-%d")
        return (
            f"{DLQ_PREFIX}/date={day}/source={safe_segment(self.source)}"
            f"/reason={safe_segment(self.reason)}"
        )


def dlq_object_key(partition: str, batch_id: str) -> str:
    """Deterministic object name inside a partition for one batch (e.g. one source file)."""
    digest = hashlib.sha256(batch_id.encode()).hexdigest()[:16]
    return f"{partition}/{digest}.jsonl"


def shown_bytes(raw: bytes | None) -> str | None:
    """Original bytes for a reviewer: the text when they are UTF-8, else ``base64:...``."""
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode()


def decode_original(entry_json: str) -> bytes:
    return base64.b64decode(json.loads(entry_json)["original_b64"])


# ---- review: reading what the job and the bridge filed ----

REPLAYS_PREFIX = "dlq-replays"
"""One object per replayed entry (``<id digest>.json``): a second replay is refused."""


@dataclass(frozen=True)
class StoredEntry:
    """A DLQ entry as stored: its partition (from the object's path), its object and line,
    and its fields. The job's entries carry the Kafka key too (``original_key_b64``); the
    bridge's carry S3 coordinates (bucket, object_key, row)."""

    date: str
    source: str
    reason: str
    object_key: str
    line: int
    detail: str
    coordinates: dict[str, Any]
    original_b64: str | None
    original_key_b64: str | None
    expectation: str | None = None

    @property
    def kafka(self) -> bool:
        return "topic" in self.coordinates and "offset" in self.coordinates

    @property
    def entry_id(self) -> str:
        """Where the record came from: ``topic/partition/offset`` or ``s3://bucket/key#row``
        (the same record filed twice has one id)."""
        c = self.coordinates
        if self.kafka:
            return f"{c['topic']}/{c.get('partition')}/{c['offset']}"
        return f"s3://{c.get('bucket')}/{c.get('object_key')}#{c.get('row')}"

    @property
    def original(self) -> bytes | None:
        return None if self.original_b64 is None else base64.b64decode(self.original_b64)

    @property
    def original_key(self) -> bytes | None:
        return None if self.original_key_b64 is None else base64.b64decode(self.original_key_b64)


def replay_key(entry_id: str) -> str:
    return f"{REPLAYS_PREFIX}/{hashlib.sha256(entry_id.encode()).hexdigest()[:32]}.json"


def partition_of(object_key: str) -> dict[str, str] | None:
    """``{date, source, reason}`` of a committed DLQ object; None for anything else (the
    job's in-progress files are hidden: ``.``/``_`` names; Flink's S3 filesystem leaves
    directory markers)."""
    parts = object_key.split("/")
    if len(parts) != 5 or parts[0] != DLQ_PREFIX or parts[4][:1] in ("", ".", "_"):
        return None  # another layout, a directory marker (``.../``) or a file in progress
    fields = dict(p.split("=", 1) for p in parts[1:4] if "=" in p)
    return fields if set(fields) == {"date", "source", "reason"} else None


def parse_lines(object_key: str, body: bytes) -> list[StoredEntry]:
    """The entries of one committed DLQ object (JSON Lines); a line that is not an entry is
    kept as one whose detail says so (nothing filed is hidden from review)."""
    where = partition_of(object_key)
    if where is None:
        return []
    out = []
    for i, raw in enumerate(body.splitlines()):
        if not raw.strip():
            continue
        try:
            e = json.loads(raw)
            if not isinstance(e, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            e = {"detail": f"unreadable DLQ line: {exc}", "original_b64": None}
        coordinates = e.get("coordinates")
        out.append(
            StoredEntry(
                date=where["date"],
                source=where["source"],
                reason=where["reason"],
                object_key=object_key,
                line=i,
                detail=str(e.get("detail", "")),
                coordinates=coordinates if isinstance(coordinates, dict) else {},
                original_b64=e.get("original_b64"),
                original_key_b64=e.get("original_key_b64"),
                expectation=e.get("expectation") if isinstance(e.get("expectation"), str) else None,
            )
        )
    return out
