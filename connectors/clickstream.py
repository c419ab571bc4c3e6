"""Clickstream producer: idempotent, acks=all, keyed by user_id, at a target rate.

Records are (key, value) byte pairs — valid events and, on purpose, malformed ones (the
feature job's data-quality gate sends those to the DLQ). Keying by user_id keeps one user's
events in one partition, so their order there is the order they were sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from connectors.kafka_clients import producer
from core.settings import StackSettings
from core.topics import CLICKSTREAM


@dataclass
class ProduceStats:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    first_error: str = ""

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.rate:,.0f} events/s  sent {self.sent:,}  delivered {self.delivered:,}  "
            f"failed {self.failed:,}  {self.seconds:.1f}s"
        )


def produce(
    settings: StackSettings,
    records: Iterable[tuple[bytes, bytes]],
    *,
    rate: float | None = None,
    duration_s: float | None = None,
    topic: str = CLICKSTREAM,
    progress: Callable[[ProduceStats], None] | None = None,
    progress_every_s: float = 1.0,
    flush_timeout_s: float = 60.0,
) -> ProduceStats:
    """Send ``records`` (stopping early after ``duration_s``), paced to ``rate`` per second
    when given; returns once every sent record is delivered or failed."""
    stats = ProduceStats()
    client = producer(settings)

    def on_delivery(err: object, _msg: object) -> None:
        if err is None:
            stats.delivered += 1
        else:
            stats.failed += 1
            stats.first_error = stats.first_error or str(err)

    next_report = stats.started + progress_every_s
    deadline = stats.started + duration_s if duration_s else None
    for key, value in records:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        if rate:
            due = stats.started + stats.sent / rate
            if due > now:
                time.sleep(min(due - now, 0.05))
        while True:
            try:
                client.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: serve callbacks and retry
                client.poll(0.05)
        stats.sent += 1
        client.poll(0)
        if progress is not None and time.monotonic() >= next_report:
            progress(stats)
            next_report += progress_every_s
    remaining = client.flush(flush_timeout_s)
    if remaining:
        stats.failed += remaining
        stats.first_error = stats.first_error or f"{remaining} not delivered in {flush_timeout_s}s"
    if progress is not None:
        progress(stats)
    return stats
