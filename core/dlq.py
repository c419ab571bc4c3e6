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

    def to_json(self) -> str:
        return json.dumps(
            {
                "source": self.source,
                "reason": self.reason,
                "detail": self.detail,
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


def decode_original(entry_json: str) -> bytes:
    return base64.b64decode(json.loads(entry_json)["original_b64"])
