"""Reviewing the dead-letter queue on S3: list, show, replay after a fix, purge.

Entries are read from the committed DLQ objects (core/dlq.py: the job's and the bridge's),
filtered by date, source and reason. ``replay`` sends each chosen Kafka entry's original key
and value bytes, exactly as they arrived, back to its original topic, and records it under
``dlq-replays/`` (when, where to, the new offset): a second replay of the same entry is
refused unless forced. A rejected record never reached the stores, so sending it again once
the job or its producer is fixed counts it once; sending it twice would count it twice (a
replayed click gets a new offset, hence a new version). Entries the bridge filed (rows of
CRM files) are not Kafka records: fix the file and drop it on S3 again.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from core.dlq import DLQ_PREFIX, StoredEntry, parse_lines, partition_of, replay_key
from core.objectstore import s3_client
from core.settings import StackSettings


@dataclass(frozen=True)
class Filters:
    date: str | None = None
    source: str | None = None
    reason: str | None = None

    def prefix(self) -> str:
        """The narrowest S3 prefix the filters allow (the partition order: date, source,
        reason)."""
        out = f"{DLQ_PREFIX}/"
        for name in ("date", "source", "reason"):
            value = getattr(self, name)
            if value is None:
                break
            out += f"{name}={value}/"
        return out

    def accept(self, where: dict[str, str]) -> bool:
        return all(getattr(self, k) in (None, where[k]) for k in ("date", "source", "reason"))


def objects(settings: StackSettings, filters: Filters, client: Any = None) -> Iterator[str]:
    """Committed DLQ object keys matching ``filters``."""
    client = client or s3_client(settings)
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=settings.s3.lake_bucket, Prefix=filters.prefix()
    )
    for page in pages:
        for obj in page.get("Contents", []):
            where = partition_of(obj["Key"])
            if where is not None and filters.accept(where):
                yield obj["Key"]


def entries(settings: StackSettings, filters: Filters, client: Any = None) -> Iterator[StoredEntry]:
    client = client or s3_client(settings)
    for key in objects(settings, filters, client):
        body = client.get_object(Bucket=settings.s3.lake_bucket, Key=key)["Body"].read()
        yield from parse_lines(key, body)


def replayed(
    settings: StackSettings, entry: StoredEntry, client: Any = None
) -> dict[str, Any] | None:
    """The record of this entry's last replay, if any (``client``: an S3 client to reuse)."""
    client = client or s3_client(settings)
    try:
        body = client.get_object(Bucket=settings.s3.lake_bucket, Key=replay_key(entry.entry_id))
    except client.exceptions.NoSuchKey:
        return None
    return dict(json.loads(body["Body"].read()))


def counts(settings: StackSettings, filters: Filters) -> Counter[tuple[str, str, str, str]]:
    """Entries per (date, source, reason, expectation) (``-`` for no expectation)."""
    return Counter(
        (e.date, e.source, e.reason, e.expectation or "-") for e in entries(settings, filters)
    )


@dataclass(frozen=True)
class ReplayResult:
    sent: list[tuple[StoredEntry, int, int]]
    """(entry, partition, offset) of each record sent again."""
    refused: list[tuple[StoredEntry, str]]
    """(entry, why) of each entry not sent."""


def replay(
    settings: StackSettings,
    filters: Filters,
    *,
    limit: int | None = None,
    force: bool = False,
    ids: Collection[str] | None = None,
) -> ReplayResult:
    """Send the chosen Kafka entries back to their topics (module docstring); ``ids``: only
    the entries with these ids (StoredEntry.entry_id) among those the filters select."""
    from connectors.kafka_clients import producer

    client = s3_client(settings)
    chosen = [e for e in entries(settings, filters, client) if ids is None or e.entry_id in ids]
    chosen = chosen if limit is None else chosen[:limit]
    refused: list[tuple[StoredEntry, str]] = []
    todo: list[StoredEntry] = []
    seen: set[str] = set()
    for e in chosen:
        if not e.kafka:
            refused.append((e, "not a Kafka record (a CRM row): fix its file and drop it again"))
        elif e.entry_id in seen:
            refused.append((e, "the same record is in the selection twice"))
        elif not force and (done := replayed(settings, e, client)) is not None:
            refused.append((e, f"already replayed at {done['replayed_at']} (--force to resend)"))
        else:
            seen.add(e.entry_id)
            todo.append(e)
    delivered: dict[int, tuple[int, int]] = {}
    errors: dict[int, str] = {}

    def report(i: int) -> Any:
        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                errors[i] = str(err)
            else:
                delivered[i] = (msg.partition(), msg.offset())

        return on_delivery

    p = producer(settings)
    for i, e in enumerate(todo):
        p.produce(
            e.coordinates["topic"],
            key=e.original_key,
            value=e.original,
            on_delivery=report(i),
        )
    left = p.flush(30)
    sent = []
    for i, e in enumerate(todo):
        if i not in delivered:
            refused.append((e, errors.get(i, "not delivered within 30 s" if left else "?")))
            continue
        partition, offset = delivered[i]
        ledger = {
            "entry": e.entry_id,
            "replayed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "to": {"topic": e.coordinates["topic"], "partition": partition, "offset": offset},
            "dlq_object": e.object_key,
            "reason": e.reason,
        }
        client.put_object(
            Bucket=settings.s3.lake_bucket,
            Key=replay_key(e.entry_id),
            Body=json.dumps(ledger).encode(),
        )
        sent.append((e, partition, offset))
    return ReplayResult(sent, refused)


def purge(settings: StackSettings, filters: Filters, *, before: str) -> int:
    """Delete the DLQ objects of days before ``before`` (YYYY-MM-DD) matching ``filters``;
    how many objects went."""
    client = s3_client(settings)
    doomed = [
        key
        for key in objects(settings, filters, client)
        if (where := partition_of(key)) is not None and where["date"] < before
    ]
    for key in doomed:  # one by one: s3proxy stalls on multi-object deletes (docs/stack.md)
        client.delete_object(Bucket=settings.s3.lake_bucket, Key=key)
    return len(doomed)
