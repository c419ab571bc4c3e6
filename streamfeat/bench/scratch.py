"""What every benchmark shares: clients with short timeouts, scratch Kafka topics, errors
that name the failing service, and pacing. Scratch data is the benchmarks' own (names
starting with ``_bench``); nothing here touches the platform's topics or keys."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from connectors import kafka_clients
from core.settings import StackSettings
from streamfeat.stack.base import StackContext
from streamfeat.stack.errors import StackError

BENCH_TOPIC_CONFIG = {
    "retention.ms": "3600000",
    "segment.bytes": str(64 * 1024 * 1024),
    "segment.ms": "600000",
}
"""Scratch data: small segments, so emptied or expired records leave the disk (the active
segment is never deleted, and the broker's default one is 1 GiB)."""


def redis_client(settings: StackSettings) -> Any:
    import redis

    return redis.Redis.from_url(
        settings.redis_url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=0
    )


def kafka_admin(settings: StackSettings) -> Any:
    return kafka_clients.admin(settings, **{"socket.timeout.ms": 5000})


def kafka_fail(
    settings: StackSettings, problem: str, exc: BaseException | None = None
) -> StackError:
    cause = f": {exc}" if exc is not None else ""
    return StackError(
        "kafka",
        problem + cause,
        log=StackContext(settings).log_path("kafka"),
        fix="check `streamfeat status`; `streamfeat up kafka`",
    )


@contextlib.contextmanager
def failing(settings: StackSettings, service: str, what: str) -> Iterator[None]:
    """Any error inside becomes a StackError naming ``service``, its log and a fix."""
    try:
        yield
    except StackError:
        raise
    except Exception as exc:
        log, fix = StackContext(settings).log_path(service), f"`streamfeat status {service}`"
        raise StackError(service, f"{what}: {type(exc).__name__}: {exc}", log=log, fix=fix) from exc


def scratch_topic(settings: StackSettings, name: str, partitions: int) -> None:
    """Create ``name`` if missing (short retention, small segments), then empty it."""
    from confluent_kafka import OFFSET_END, KafkaException, TopicPartition
    from confluent_kafka.admin import NewTopic

    admin, deadline = kafka_admin(settings), time.monotonic() + 30
    with failing(settings, "kafka", f"creating {name}"):
        if name not in admin.list_topics(timeout=10).topics:
            new = NewTopic(name, partitions, 1, config=BENCH_TOPIC_CONFIG)
            for fut in admin.create_topics([new], operation_timeout=30).values():
                with contextlib.suppress(KafkaException):  # created concurrently: checked next
                    fut.result(timeout=30)
        while True:  # a just-created topic's metadata reaches the client a moment later
            have = len(admin.list_topics(topic=name, timeout=10).topics[name].partitions)
            if have or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    if have != partitions:
        raise kafka_fail(settings, f"scratch topic {name} has {have} partitions, not {partitions}")
    parts = [TopicPartition(name, p, OFFSET_END) for p in range(partitions)]
    while True:  # a new topic answers NOT_LEADER_FOR_PARTITION for a while, not "retriable"
        try:
            for fut in admin.delete_records(parts, request_timeout=10).values():
                fut.result(timeout=15)
            return
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise kafka_fail(settings, f"emptying {name} failed", exc) from exc
            time.sleep(0.2)


def produce_queued(p: Any, topic: str, value: bytes, key: bytes, on_delivery: Any) -> None:
    """``p.produce`` one record, serving delivery reports while the client's local queue
    is full (a bulk load outruns the broker)."""
    while True:
        try:
            p.produce(topic, value, key, on_delivery=on_delivery)
            return
        except BufferError:
            p.poll(0.05)


def paced(n: int, rate: float, call: Callable[[int], None]) -> None:
    """``call(i)`` for i in 0..n-1 at ``rate`` per second (open loop: never catches up late
    calls by bunching them — each waits for its own slot)."""
    t0 = time.monotonic()
    for i in range(n):
        time.sleep(max(t0 + i / rate - time.monotonic(), 0))
        call(i)
