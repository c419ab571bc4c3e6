"""The feature-job benchmark's profile path and online-store size (see feature_job.py).

- profile path: a burst of CRM records (crm.customers shape) as fast as the producer goes,
  timed from the first produce() to the last value readable in Redis: the path's end-to-end
  maximum. Then freshness at half that rate for a few seconds: each record's produce()
  wall time -> the moment a poller first reads its (unique) email back from Redis. Baseline:
  Kafka produce -> consume of single messages at the same rate (ingestion.kafka_round_trip).
Also the scratch bucket of the job's offline rows and DLQ files (make_bucket, drop_bucket).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from core.features import CUSTOMER_PROFILE
from core.objectstore import s3_client
from core.online import entity_key
from core.settings import StackSettings
from streamfeat.bench.feature_job_data import PROFILE_BASE, crm_record
from streamfeat.bench.ingestion import kafka_round_trip, lag_rows
from streamfeat.bench.scratch import failing, paced, redis_client
from streamfeat.bench.stats import Measurement
from streamfeat.stack.errors import StackError

EMAIL = CUSTOMER_PROFILE.feature("email").short
MIN_RATE, MAX_RATE = 50.0, 2000.0
"""Freshness rate bounds: below, too few samples; above, the paced Python producer and the
poller (one HGET per pending record per cycle) would disturb what they measure."""
POLL_S = 0.01
"""Pause between two poller cycles: the resolution of a freshness sample, and what keeps
the poller from taking a core from the job on a small box."""
Progress = Callable[[str], None]


class _Watcher(threading.Thread):
    """Polls Redis for pending (entity -> (sent wall ms, email)) until each email is read
    back; records sent -> seen in ms. One pipelined HGET per pending entity per cycle."""

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(daemon=True)
        self.r, self.lock, self.stop = redis_client(settings), threading.Lock(), threading.Event()
        self.pending: dict[int, tuple[float, str]] = {}
        self.lags: list[float] = []
        self.seen_at: list[float] = []
        self.cycles, self.error = 0, ""
        self.start()

    def expect(self, entity: int, sent_ms: float, email: str) -> None:
        with self.lock:
            self.pending[entity] = (sent_ms, email)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                with self.lock:
                    items = list(self.pending.items())
                if not items:
                    time.sleep(POLL_S)
                    continue
                pipe = self.r.pipeline(transaction=False)
                for entity, _ in items:
                    pipe.hget(entity_key(CUSTOMER_PROFILE, entity), EMAIL)
                got = pipe.execute()
                now = time.time() * 1000
                self.cycles += 1
                with self.lock:
                    for (entity, (sent, email)), value in zip(items, got, strict=True):
                        if value is not None and value.decode() == email:
                            self.lags.append(now - sent)
                            self.seen_at.append(now)
                            del self.pending[entity]
                time.sleep(POLL_S)
        except Exception as exc:  # reported by wait()
            self.error = f"{type(exc).__name__}: {exc}"

    def wait(self, what: str, deadline: float) -> None:
        while True:
            with self.lock:
                left = len(self.pending)
            if not left:
                return
            if self.error or time.monotonic() > deadline:
                raise StackError("redis", f"{what}: {left} values never readable {self.error}")
            time.sleep(0.01)

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        self.r.close()


def _missing(r: Any, records: Sequence[tuple[bytes, bytes, str]]) -> list[int]:
    """Indexes of burst records whose email is not (yet) the one stored."""
    pipe = r.pipeline(transaction=False)
    for i in range(len(records)):
        pipe.hget(entity_key(CUSTOMER_PROFILE, PROFILE_BASE + i), EMAIL)
    got = pipe.execute()
    return [i for i, v in enumerate(got) if v is None or v.decode() != records[i][2]]


def _producer(settings: StackSettings, topic: str) -> Any:
    """connectors.kafka_clients.producer (linger 5 ms, lz4, acks=all), metadata fetched."""
    from connectors.kafka_clients import producer

    p = producer(settings)
    with failing(settings, "kafka", f"metadata of {topic}"):
        p.list_topics(topic=topic, timeout=10)
    return p


def profile_path(
    settings: StackSettings,
    topic: str,
    *,
    burst: int,
    seconds: float,
    deadline: float,
    say: Progress,
) -> tuple[list[int], list[Measurement]]:
    """Max rate (burst) and freshness at about half of it; returns the entities written."""
    token, now = uuid.uuid4().hex[:6], int(time.time() * 1000)
    records = [crm_record(PROFILE_BASE + i, i, now_ms=now, token=token) for i in range(burst)]
    watcher, p = _Watcher(settings), _producer(settings, topic)
    try:
        t0 = time.time() * 1000
        for key, value, _email in records:
            p.produce(topic, value, key)
            p.poll(0)
        if p.flush(30):
            raise StackError("kafka", f"CRM burst to {topic} not acknowledged in 30 s")
        # the tail first (read last), then every record: one full check, more if needed
        tail = list(range(max(burst - 30, 0), burst))
        while tail:
            for i in tail:
                watcher.expect(PROFILE_BASE + i, t0, records[i][2])
            watcher.wait("CRM burst", deadline)
            tail = _missing(watcher.r, records)
        max_rate = burst / ((max(watcher.seen_at) - t0) / 1000)
        rate = min(max(round(max_rate / 2, -1), MIN_RATE), MAX_RATE)
        say(f"profile path max {max_rate:,.0f} records/s; freshness at {rate:g}/s ...")
        watcher.lags.clear()
        n, base = int(rate * seconds), PROFILE_BASE + burst

        def send(i: int) -> None:
            sent = time.time() * 1000
            key, value, email = crm_record(base + i, burst + i, now_ms=int(sent), token=token)
            watcher.expect(base + i, sent, email)
            p.produce(topic, value, key)
            p.poll(0)

        with failing(settings, "kafka", f"paced CRM records to {topic}"):
            paced(n, rate, send)
            p.flush(10)
        watcher.wait("CRM freshness", deadline)
        lags, cycles = list(watcher.lags), watcher.cycles
    finally:
        watcher.close()
    note = "capped" if rate == MAX_RATE else "floored" if rate == MIN_RATE else "half the max"
    burst_detail = (
        f"{burst} CRM records (3 attributes each, distinct customers) produced at full speed: "
        f"first produce() -> last value readable in Redis"
    )
    detail = (
        f"{n} records at {rate:g}/s ({note}) for {seconds:g}s, event_time = now, distinct "
        f"customers; produce() wall time -> email read back (poller: {cycles} pipelined HGET "
        f"cycles, {POLL_S * 1000:g} ms apart); goal p99 <= 1000 ms"
    )
    base_rows = [
        dataclasses.replace(
            m,
            name=m.name.replace("kafka produce->consume", f"kafka produce->consume at {rate:g}/s"),
            baseline_for="customer_profile freshness",
        )
        for m in kafka_round_trip(settings, rate=rate, seconds=seconds)
    ]
    rows = [
        Measurement("profile path max (CRM burst)", max_rate, "records/s", burst_detail),
        *lag_rows("customer_profile freshness", lags, detail),
        *base_rows,
    ]
    return list(range(PROFILE_BASE, base + n)), rows


def make_bucket(settings: StackSettings, bucket: str) -> None:
    s3 = s3_client(settings)
    with failing(settings, "s3", f"creating bucket {bucket}"):
        if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=bucket)


def drop_bucket(settings: StackSettings, bucket: str) -> tuple[int, int]:
    """Delete every object of ``bucket`` (deepest keys first: a filesystem-backed endpoint
    keeps directory placeholders that must be empty to go), unfinished multipart uploads,
    then the bucket; best effort. Returns (objects deleted, objects left)."""
    s3, deleted, left = s3_client(settings), 0, 0
    for _ in range(3):
        try:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        except Exception:  # no such bucket: nothing to do
            return deleted, 0
        left = len(keys)
        for key in sorted(keys, key=lambda k: (-k.rstrip("/").count("/"), k)):
            with contextlib.suppress(Exception):
                s3.delete_object(Bucket=bucket, Key=key)
                deleted, left = deleted + 1, left - 1
        if not left:
            break
    with contextlib.suppress(Exception):
        for up in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
    with contextlib.suppress(Exception):
        s3.delete_bucket(Bucket=bucket)
    return deleted, left
