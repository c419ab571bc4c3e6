"""Apply the topic catalogue to a Kafka cluster and report drift.

``apply`` is idempotent: it creates missing topics, raises partition counts that are below
the declaration (Kafka cannot lower them: that is reported as drift, never "fixed" by
deleting data) and sets topic configs that differ. ``check`` changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.kafka_clients import admin
from core.settings import StackSettings
from core.topics import Catalogue, TopicSpec

TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Drift:
    topic: str
    what: str  # missing | partitions | config:<key> | replication
    declared: str
    actual: str

    def line(self) -> str:
        return f"{self.topic}: {self.what} declared {self.declared}, actual {self.actual}"


def check_topics(settings: StackSettings, catalogue: Catalogue) -> list[Drift]:
    """Every difference between the catalogue and the cluster."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    client = admin(settings)
    meta = client.list_topics(timeout=TIMEOUT_S).topics
    drifts: list[Drift] = []
    present = [t for t in catalogue.topics if t.name in meta]
    for spec in catalogue.topics:
        if spec.name not in meta:
            drifts.append(Drift(spec.name, "missing", "present", "absent"))
            continue
        partitions = meta[spec.name].partitions
        if len(partitions) != spec.partitions:
            drifts.append(
                Drift(spec.name, "partitions", str(spec.partitions), str(len(partitions)))
            )
        replicas = min((len(p.replicas) for p in partitions.values()), default=0)
        if replicas != spec.replication:
            drifts.append(Drift(spec.name, "replication", str(spec.replication), str(replicas)))
    if present:
        futures = client.describe_configs(
            [ConfigResource(ResourceType.TOPIC, t.name) for t in present]
        )
        for resource, fut in futures.items():
            actual = {k: v.value for k, v in fut.result(timeout=TIMEOUT_S).items()}
            spec = catalogue.get(resource.name)
            for key, value in spec.kafka_config().items():
                if actual.get(key) != value:
                    drifts.append(Drift(spec.name, f"config:{key}", value, str(actual.get(key))))
    return drifts


def apply_topics(settings: StackSettings, catalogue: Catalogue) -> list[str]:
    """Bring the cluster to the catalogue; returns what was changed (empty when in sync)."""
    from confluent_kafka.admin import (
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewPartitions,
        NewTopic,
        ResourceType,
    )

    client = admin(settings)
    changes: list[str] = []
    drifts = check_topics(settings, catalogue)
    missing = [catalogue.get(d.topic) for d in drifts if d.what == "missing"]
    if missing:
        futures = client.create_topics(
            [
                NewTopic(t.name, t.partitions, t.replication, config=t.kafka_config())
                for t in missing
            ]
        )
        for name, fut in futures.items():
            _result(fut, f"create {name}")
            changes.append(f"created {name}")
    grow = [d for d in drifts if d.what == "partitions" and int(d.actual) < int(d.declared)]
    if grow:
        futures = client.create_partitions([NewPartitions(d.topic, int(d.declared)) for d in grow])
        for name, fut in futures.items():
            _result(fut, f"add partitions to {name}")
            changes.append(f"partitions of {name} raised")
    by_topic: dict[str, list[str]] = {}
    for d in drifts:
        if d.what.startswith("config:"):
            by_topic.setdefault(d.topic, []).append(d.what.removeprefix("config:"))
    if by_topic:
        resources = []
        for name, keys in by_topic.items():
            spec: TopicSpec = catalogue.get(name)
            cfg = spec.kafka_config()
            resources.append(
                ConfigResource(
                    ResourceType.TOPIC,
                    name,
                    incremental_configs=[
                        ConfigEntry(k, cfg[k], incremental_operation=AlterConfigOpType.SET)
                        for k in keys
                    ],
                )
            )
        for resource, fut in client.incremental_alter_configs(resources).items():
            _result(fut, f"alter configs of {resource.name}")
            changes.append(f"configs of {resource.name} set: {', '.join(by_topic[resource.name])}")
    return changes


def _result(fut: Any, what: str) -> None:
    try:
        fut.result(timeout=TIMEOUT_S)
    except Exception as exc:
        if "TOPIC_ALREADY_EXISTS" in str(exc):
            return
        raise RuntimeError(f"kafka: {what} failed: {exc}") from exc
