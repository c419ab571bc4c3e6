"""What the fault tests share: the feature job on scratch topics and a scratch bucket, a
paced stream of demo clicks, and the checks of its results against the pure rules."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

import orjson
import psutil

from connectors.demo.loader import click_records
from connectors.kafka_clients import producer
from core.features import USER_ACTIVITY
from core.online import RedisOnlineStore
from core.settings import StackSettings
from core.windows import combine, tiles_of
from flink_jobs import sql
from flink_jobs.config import JobConfig
from streamfeat.bench.feature_job_data import (
    USER_BASE,
    ScratchClicks,
    flush_records,
    scratch_clicks,
)
from streamfeat.bench.feature_job_freshness import drop_bucket, make_bucket
from streamfeat.bench.feature_job_redis import delete_scratch_keys
from streamfeat.bench.scratch import scratch_topic
from streamfeat.flink_client import FlinkClient
from streamfeat.job import job_config
from streamfeat.stack.supervisor import Supervisor

TM = "flink-taskmanager"


@dataclass(frozen=True)
class Scratch:
    """Scratch topics (name -> (topic, partitions)) and bucket of one fault test."""

    topics: dict[str, tuple[str, int]]
    bucket: str

    @property
    def clicks_topic(self) -> str:
        return self.topics["clickstream"][0]

    def create(self, s: StackSettings) -> None:
        """Empty topics, no scratch keys in Redis, an empty bucket."""
        for topic, partitions in self.topics.values():
            scratch_topic(s, topic, partitions)
        delete_scratch_keys(s)
        make_bucket(s, self.bucket)

    def drop(self, s: StackSettings) -> None:
        delete_scratch_keys(s)
        drop_bucket(s, self.bucket)
        for topic, partitions in self.topics.values():
            scratch_topic(s, topic, partitions)

    def job_config(self, s: StackSettings, **update: Any) -> JobConfig:
        return job_config(
            s,
            **{f"{name}_topic": topic for name, (topic, _) in self.topics.items()},
            lake_bucket=self.bucket,
            **update,
        )


def demo_stream(
    cfg: JobConfig, *, seed: int, n: int, start_ms: int, partitions: int
) -> tuple[JobConfig, ScratchClicks, list[tuple[int, bytes, bytes]]]:
    """``n`` demo clicks from ``start_ms`` that are all valid and on time for ``cfg``, the
    flush events that close every session after them, and ``cfg`` allowing every one of
    them ahead of its produce time (the demo clicks start hours ago and, at large sizes, run
    more than a day)."""
    strictest = min(c.lateness_ms for c in sql.click_classes(cfg))
    clicks = scratch_clicks(
        click_records(seed, n, start_ms=start_ms),
        user_base=USER_BASE,
        bound_ms=strictest,
        gap_ms=cfg.session_gap_ms,
    )
    flush = flush_records(
        partitions,
        after_ms=clicks.max_time,
        gap_ms=cfg.session_gap_ms,
        bound_ms=max(c.lateness_ms for c in sql.click_classes(cfg)),
    )
    now_ms = int(time.time() * 1000)
    latest = max(orjson.loads(value)["event_time"] for _, _, value in flush)
    ahead = max(13 * 3_600_000, latest - now_ms + 3_600_000)
    assert ahead <= 30 * 86_400_000, f"demo clicks span {ahead} ms ahead: past the 30 d bound"
    return cfg.model_copy(update={"max_event_time_ahead_ms": ahead}), clicks, flush


def produce_paced(
    s: StackSettings,
    topic: str,
    records: list[tuple[bytes, bytes | None]],
    rate: float,
    sent: list[int],
    done: list[str],
    stop: threading.Event | None = None,
) -> None:
    """Every record at ``rate`` per second (open loop), in order, counting them in
    ``sent[0]``, or those before ``stop`` is set; ``done`` gets 'ok' or the error (a
    thread's target)."""
    p, failed = producer(s), []
    try:
        t0 = time.monotonic()
        for i, (key, value) in enumerate(records):
            if stop is not None and stop.is_set():
                break
            time.sleep(max(t0 + i / rate - time.monotonic(), 0))
            while True:
                try:
                    p.produce(topic, value, key, on_delivery=lambda e, _m: e and failed.append(e))
                    break
                except BufferError:
                    p.poll(0.01)
            p.poll(0)
            sent[0] = i + 1
        left = p.flush(60)
        done.append("ok" if not left and not failed else f"{left} undelivered, {failed[:1]}")
    except Exception as exc:  # reported by the test, never lost in a thread
        done.append(repr(exc))


def first(clicks: ScratchClicks, n: int) -> ScratchClicks:
    """The first ``n`` of ``clicks`` (what a stopped producer sent)."""
    records = clicks.records[:n]
    last: dict[int, int] = {}
    for key, value in records:
        user, t = int(key), orjson.loads(value)["event_time"]
        last[user] = max(last.get(user, t), t)
    return replace(clicks, records=records, last_time=last)


def produce_flush(s: StackSettings, topic: str, flush: list[tuple[int, bytes, bytes]]) -> None:
    p = producer(s)
    for partition, key, value in flush:
        p.produce(topic, value, key, partition=partition)
    assert p.flush(30) == 0


def checkpointed_since(client: FlinkClient, job_id: str, since_ms: float) -> bool:
    """Whether a checkpoint of the job completed after ``since_ms`` (epoch ms)."""
    got: Any = client._get(f"/jobs/{job_id}/checkpoints")
    latest = (got.get("latest") or {}).get("completed") or {}
    return float(latest.get("latest_ack_timestamp") or 0) > since_ms


def events_by_user(clicks: ScratchClicks) -> dict[int, list[dict[str, Any]]]:
    events: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for key, value in clicks.records:
        events[int(key)].append(orjson.loads(value))
    return events


def assert_activity_exact(s: StackSettings, clicks: ScratchClicks) -> None:
    """Every user's online ``user_activity`` (as of just after the last click) equals the
    features the pure rules compute from that user's events."""
    events = events_by_user(clicks)
    aggs = USER_ACTIVITY.aggregations
    assert aggs is not None
    users = sorted(clicks.last_time)
    as_of = clicks.max_time + 1
    online = RedisOnlineStore.from_url(s.redis_url).read(USER_ACTIVITY, users, now_ms=as_of)
    wrong = {}
    for user, row in zip(users, online, strict=True):
        want = combine(aggs, tiles_of(aggs, events[user]), as_of, open_head=True)
        got = {name: row.get(name) for name in want}
        if got != want:
            wrong[user] = (got, want)
    assert not wrong, f"{len(wrong)} users differ, e.g. {next(iter(wrong.items()))}"


def taskmanager(sup: Supervisor) -> psutil.Process:
    tm = sup.table.alive(TM)
    assert tm is not None, "no TaskManager running"
    return tm


def python_workers(tm: psutil.Process) -> list[psutil.Process]:
    """The TaskManager's child processes: Python workers of process mode (none in thread
    mode, the job's default)."""
    return tm.children(recursive=True)
