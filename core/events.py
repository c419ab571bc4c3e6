"""The event contract every source keeps (ARCHITECTURE.md, "Event time and the version").

Every record that can change a feature carries ``event_time`` (epoch ms UTC), ``source``
(one of :data:`SOURCE_PRIORITY`) and ``source_seq`` (sortable within the source). The
version of a value is ``(event_time, source_priority, source_seq)``; the greatest wins.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum


class Source(StrEnum):
    PG_CDC = "pg_cdc"
    S3_CRM = "s3_crm"
    CLICKSTREAM = "clickstream"


SOURCE_PRIORITY: dict[Source, int] = {
    Source.PG_CDC: 20,  # the transactional database outranks a CRM export on equal time
    Source.S3_CRM: 10,
    Source.CLICKSTREAM: 0,
}
"""Higher wins when two sources carry the same event_time for one attribute."""


EVENT_TIME_FLOOR_MS = 946_684_800_000
"""2000-01-01T00:00:00Z: an event dated before it is implausible (a zero, a unit mistake
such as seconds for milliseconds, a default date), whatever its source."""


def plausible_event_time(
    event_time: int, ingest_ms: int, *, floor_ms: int = EVENT_TIME_FLOOR_MS, ahead_ms: int
) -> bool:
    """Whether an event time may be believed: not before ``floor_ms`` and at most
    ``ahead_ms`` ahead of the time the event was ingested (its Kafka record timestamp). An
    implausible one must never reach a watermark: one event from a client with a wrong
    clock would otherwise make every later event late."""
    return floor_ms <= event_time <= ingest_ms + ahead_ms


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime_to_ms(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: event times must be timezone-aware")
    return (value - _EPOCH) // timedelta(milliseconds=1)  # exact (floor); float would round


def parse_iso_ms(text: str) -> int:
    """ISO-8601 with an offset or 'Z' -> epoch ms; a naive timestamp is an error."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return datetime_to_ms(value)


def format_iso_ms(ms: int) -> str:
    """Epoch ms -> '2026-01-01T00:00:05.123Z'."""
    return ms_to_datetime(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
