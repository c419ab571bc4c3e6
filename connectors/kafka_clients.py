"""Kafka clients for the connectors, configured once (idempotent producers, quiet logs).

librdkafka's informational chatter goes to the ``streamfeat.kafka`` logger (warnings and
errors still show); producers are idempotent with acks=all so a retry never duplicates or
reorders within a partition.
"""

from __future__ import annotations

import logging
from typing import Any

from core.settings import StackSettings

LOG = logging.getLogger("streamfeat.kafka")


def admin(settings: StackSettings) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "logger": LOG})


def producer(settings: StackSettings, **overrides: Any) -> Any:
    from confluent_kafka import Producer

    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        "logger": LOG,
    }
    conf.update(overrides)
    return Producer(conf)


def consumer(settings: StackSettings, group: str, **overrides: Any) -> Any:
    from confluent_kafka import Consumer

    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "logger": LOG,
    }
    conf.update(overrides)
    return Consumer(conf)
