"""The feature-job benchmark's profile path and online-store size (see feature_job.py).

- profile path: a burst of CRM records (crm.customers shape) as fast as the producer goes,
  timed from the first produce() to the last value readable in Redis: the path's end-to-end
  maximum. Then freshness at half that rate for a few seconds: each record's produce()
  wall time -> the moment a poller first reads its (unique) email back from Redis. Baseline:
  Kafka produce -> consume of single messages at the same rate (ingestion.kafka_round_trip).
- Redis bytes per entity: MEMORY USAGE of sampled hashes of each view the job wrote, and of a
  scratch copy padded to 20 features shaped like the view's; baseline: a plain 20-field hash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from core.features import CUSTOMER_PROFILE, USER_ACTIVITY, USER_LAGS, USER_SESSIONS, FeatureView
from core.objectstore import s3_client
from core.online import entity_key
from core.settings import StackSettings
from streamfeat.bench.baselines import REDIS_SCRATCH_PREFIX, _redis
from streamfeat.bench.feature_job_data import PROFILE_BASE, crm_record, padded
from streamfeat.bench.ingestion import _failing, _paced, kafka_round_trip, lag_rows
from streamfeat.bench.stats import Measurement
from streamfeat.stack.errors import StackError

EMAIL = CUSTOMER_PROFILE.feature("email").short
MIN_RATE, MAX_RATE = 50.0, 2000.0
"""Freshness rate bounds: below, too few samples; above, the paced Python producer and the
poller (one HGET per pending record per cycle) would disturb what they measure."""
TARGET_FEATURES = 20
Progress = Callable[[str], None]


class _Watcher(threading.Thread):
    """Polls Redis for pending (entity -> (sent wall ms, email)) until each email is read
    back; records sent -> seen in ms. One pipelined HGET per pending entity per cycle."""

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(daemon=True)
        self.r, self.lock, self.stop = _redis(settings), threading.Lock(), threading.Event()
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
                    time.sleep(0.001)
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
    with _failing(settings, "kafka", f"metadata of {topic}"):
        p.list_topics(topic=topic, timeout=10)
    return p


def profile_path(
    settings: StackSettings,
    topic: str,
    *,
    burst: int,
    seconds: float,
    deadline: float,
    progress: Progress,
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
        progress(f"      profile path max {max_rate:,.0f} records/s; freshness at {rate:g}/s ...")
        watcher.lags.clear()
        n, base = int(rate * seconds), PROFILE_BASE + burst

        def send(i: int) -> None:
            sent = time.time() * 1000
            key, value, email = crm_record(base + i, burst + i, now_ms=int(sent), token=token)
            watcher.expect(base + i, sent, email)
            p.produce(topic, value, key)
            p.poll(0)

        with _failing(settings, "kafka", f"paced CRM records to {topic}"):
            _paced(n, rate, send)
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
        f"cycles); goal p99 <= 1000 ms"
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


def _usage(r: Any, key: str) -> tuple[int, str, int]:
    enc = r.object("encoding", key)
    return int(r.memory_usage(key, samples=0)), enc.decode() if enc else "?", int(r.hlen(key))


def _copy_usage(r: Any, like: str, fields: dict[bytes, bytes]) -> int:
    """MEMORY USAGE of ``fields`` written in one HSET under a scratch key as long as ``like``."""
    key = (REDIS_SCRATCH_PREFIX + uuid.uuid4().hex * 2)[: len(like)]
    try:
        r.hset(key, mapping=fields)
        r.expire(key, 600)
        return int(r.memory_usage(key, samples=0))
    finally:
        r.delete(key)


def _view_rows(r: Any, view: FeatureView, ids: Sequence[int]) -> list[Measurement]:
    keys = [entity_key(view, i) for i in ids]
    sizes = [(_usage(r, k), k) for k in keys if r.exists(k)]
    if not sizes:
        return []
    usage = sorted(s[0][0] for s in sizes)
    median = statistics.median_low(usage)
    key = next(k for (u, _, _), k in sizes if u == median)
    raw = {k.decode(): v.decode() for k, v in r.hgetall(key).items()}
    encodings = sorted({e for (_, e, _), _ in sizes})
    fields = statistics.median_low(h for (_, _, h), _ in sizes)
    n = len(view.features)
    copy = _copy_usage(r, key, {k.encode(): v.encode() for k, v in raw.items()})
    wide = padded(raw, view, TARGET_FEATURES)
    wide_usage = (
        _copy_usage(r, key, {k.encode(): v.encode() for k, v in wide.items()}) if wide else copy
    )
    extra = "+ its '@' version field" if view.version_scope == "attribute" else "values only"
    detail = (
        f"median of {len(sizes)} sampled entities (min {usage[0]}, max {usage[-1]}); {n} features, "
        f"{fields} fields (HLEN); encoding {', '.join(encodings)}; {median / n:.0f} B/feature; "
        f"the median hash rewritten in one HSET: {copy} B"
    )
    wide_detail = (
        f"that copy padded to {TARGET_FEATURES} features, each added one shaped like an existing "
        f"feature ({extra}): {(wide_usage - copy) / max(TARGET_FEATURES - n, 1):.1f} B per added "
        f"feature; goal <= 150 B"
    )
    return [
        Measurement(f"redis bytes/entity {view.name}", median, "B", detail),
        Measurement(
            f"redis bytes/entity {view.name} at {TARGET_FEATURES} features",
            wide_usage,
            "B",
            wide_detail,
        ),
    ]


def redis_bytes(
    settings: StackSettings, users: Sequence[int], customers: Sequence[int]
) -> list[Measurement]:
    """Bytes per entity per view (median of the samples), the 20-feature extrapolation, and
    the plain 20-field hash baseline (the shape baselines.redis_hgetall reads)."""
    r = _redis(settings)
    out: list[Measurement] = []
    with _failing(settings, "redis", "MEMORY USAGE of the scratch entities"):
        for view, ids in (
            (USER_ACTIVITY, users),
            (USER_SESSIONS, users),
            (USER_LAGS, users),
            (CUSTOMER_PROFILE, customers),
        ):
            out += _view_rows(r, view, ids)
        like = entity_key(USER_ACTIVITY, users[0])
        plain = {f"f{i:02d}".encode(): f"{i * 37 % 1000}.{i:02d}".encode() for i in range(20)}
        size = _copy_usage(r, like, plain)
    out.append(
        Measurement(
            "redis bytes, plain 20-field hash",
            size,
            "B",
            f"f00..f19 = small decimals (as baselines.redis_hgetall), key of {len(like)} "
            "chars, no version fields",
            "redis bytes/entity per view",
        )
    )
    r.close()
    return out


def make_bucket(settings: StackSettings, bucket: str) -> None:
    s3 = s3_client(settings)
    with _failing(settings, "s3", f"creating bucket {bucket}"):
        if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=bucket)


def drop_bucket(settings: StackSettings, bucket: str) -> int:
    """Delete every object (and unfinished multipart upload) of ``bucket``, then the bucket;
    best effort. Returns the objects deleted."""
    s3, n = s3_client(settings), 0
    with contextlib.suppress(Exception):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
                n += 1
        uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        for up in uploads:
            s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
        s3.delete_bucket(Bucket=bucket)
    return n
