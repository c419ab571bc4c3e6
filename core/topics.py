"""The topic catalogue (core/topics.yaml) as validated objects.

Names, partitions, retention and cleanup policy are declared once; the local stack, the
tests and the Kubernetes manifests all read them from here.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

CATALOGUE_PATH = Path(__file__).with_name("topics.yaml")

CLICKSTREAM = "clickstream"
CDC_CUSTOMERS = "cdc.public.customers"
CDC_ORDERS = "cdc.public.orders"
CDC_HEARTBEAT = "__debezium-heartbeat.cdc"
CRM_CUSTOMERS = "crm.customers"
CRM_PROGRESS = "crm.bridge.progress"
CDC_TOPIC_PREFIX = "cdc"


class TopicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    partitions: int = Field(gt=0)
    replication: int = Field(gt=0)
    retention_ms: int = Field(description="-1 keeps forever (compacted topics).")
    cleanup_policy: Literal["delete", "compact", "compact,delete"]
    config: dict[str, str] = Field(default_factory=dict)
    description: str
    schema_name: str = Field(alias="schema")

    def kafka_config(self) -> dict[str, str]:
        """Topic-level configs as Kafka expects them (strings)."""
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            **self.config,
        }


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topics: tuple[TopicSpec, ...]

    def get(self, name: str) -> TopicSpec:
        for topic in self.topics:
            if topic.name == name:
                return topic
        raise KeyError(f"topic {name!r} is not in {CATALOGUE_PATH.name}")

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.topics]


def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    raw = yaml.safe_load(path.read_text())
    defaults = raw.get("defaults", {})
    topics = [{**defaults, **entry} for entry in raw["topics"]]
    names = [t["name"] for t in topics]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"{path}: topics declared twice: {sorted(duplicates)}")
    return Catalogue(topics=tuple(TopicSpec(**t) for t in topics))


@cache
def catalogue() -> Catalogue:
    return load_catalogue()
