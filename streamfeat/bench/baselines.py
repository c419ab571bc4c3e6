"""Baseline figures of the raw parts, measured on the running local stack.

Each function measures one raw part the platform is built on (Redis round trips, Kafka
produce/consume, a Flink SQL job without Python) and returns :class:`Measurement` rows whose
``baseline_for`` names the platform figure they bound. Every wait has a deadline; every
failure is a :class:`StackError` naming the service, its log and the fix.

Scratch data: the Kafka topic :data:`BENCH_TOPIC` (emptied with DeleteRecords before each
fill, so "from the beginning" means "this run's records") and a Redis key under
:data:`REDIS_SCRATCH_PREFIX`, deleted after use and set to expire anyway.
"""

from __future__ import annotations

import contextlib
import logging
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from core.settings import PROJECT_ROOT, StackSettings
from streamfeat.bench.scratch import (
    BENCH_TOPIC_CONFIG,
    kafka_admin,
    kafka_fail,
    redis_client,
)
from streamfeat.bench.stats import Measurement, summarize
from streamfeat.flink_client import FlinkClient
from streamfeat.stack.base import StackContext
from streamfeat.stack.errors import StackError

BENCH_TOPIC = "_bench-baseline"
BENCH_PARTITIONS = 12
"""As many partitions as the clickstream topic (ARCHITECTURE.md)."""
REDIS_SCRATCH_PREFIX = "_bench:"
T = TypeVar("T")
BLACKHOLE_JOB = PROJECT_ROOT / "flink_jobs" / "bench_blackhole.py"
EVENT_TYPES = (b"view", b"click", b"add_to_cart", b"purchase")

_QUIET = logging.getLogger("streamfeat.bench.kafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


# ---- Redis ----


@contextlib.contextmanager
def _redis_errors(settings: StackSettings, what: str) -> Iterator[None]:
    import redis

    try:
        yield
    except redis.RedisError as exc:
        raise StackError(
            "redis",
            f"{what} failed: {type(exc).__name__}: {exc}",
            log=StackContext(settings).log_path("redis"),
            fix="check `streamfeat status`; `streamfeat up redis`",
        ) from exc


def _timed_loop(call: Callable[[], object], n: int, deadline: float, what: str) -> list[float]:
    """``n`` sequential calls, each timed in microseconds; a StackError past ``deadline``."""
    clock = time.perf_counter_ns
    samples = [0.0] * n
    for i in range(n):
        t0 = clock()
        call()
        samples[i] = (clock() - t0) / 1000.0
        if i % 512 == 0 and time.monotonic() > deadline:
            raise StackError(
                "redis", f"{what}: only {i} of {n} calls before the deadline", fix="retry"
            )
    return samples


def redis_round_trip(
    settings: StackSettings, n: int = 5000, *, warmup: int = 500, timeout_s: float = 60.0
) -> list[Measurement]:
    """Sequential PING latency on one connection: p50 and p99 in microseconds."""
    deadline = time.monotonic() + timeout_s
    client = redis_client(settings)
    try:
        with _redis_errors(settings, "PING benchmark"):
            _timed_loop(client.ping, warmup, deadline, "PING warm-up")
            summary = summarize(_timed_loop(client.ping, n, deadline, "PING"))
    finally:
        client.close()
    detail = f"redis-py, 1 connection, sequential; {summary.describe('µs')}"
    target = "online store: floor of any Redis round trip"
    return [
        Measurement("redis PING p50", summary.p50, "µs", detail, target),
        Measurement("redis PING p99", summary.p99, "µs", detail, target),
    ]


def redis_hgetall(
    settings: StackSettings,
    n: int = 5000,
    fields: int = 20,
    *,
    warmup: int = 500,
    timeout_s: float = 60.0,
) -> list[Measurement]:
    """HGETALL of one ``fields``-field hash (short names, small values): p50/p99 in µs.

    The shape of one entity's feature-view hash; its Redis encoding (listpack expected) is
    reported in the detail. The key is deleted afterwards and expires in 10 minutes anyway.
    """
    deadline = time.monotonic() + timeout_s
    key = f"{REDIS_SCRATCH_PREFIX}hgetall:{uuid.uuid4().hex[:12]}"
    mapping = {f"f{i:02d}": f"{i * 37 % 1000}.{i:02d}" for i in range(fields)}
    client = redis_client(settings)
    try:
        with _redis_errors(settings, "HGETALL benchmark"):
            try:
                client.hset(key, mapping=mapping)
                client.expire(key, 600)
                encoding = client.object("encoding", key)
                size = client.memory_usage(key)
                got = client.hgetall(key)
                if len(got) != fields:
                    raise StackError("redis", f"HGETALL returned {len(got)} fields, wrote {fields}")
                _timed_loop(lambda: client.hgetall(key), warmup, deadline, "HGETALL warm-up")
                summary = summarize(
                    _timed_loop(lambda: client.hgetall(key), n, deadline, "HGETALL")
                )
            finally:
                client.delete(key)
    finally:
        client.close()
    enc = encoding.decode() if isinstance(encoding, bytes) else str(encoding)
    detail = f"{fields} fields, encoding {enc}, {size} B (MEMORY USAGE); {summary.describe('µs')}"
    target = "feature API online read of one entity view"
    return [
        Measurement("redis HGETALL p50", summary.p50, "µs", detail, target),
        Measurement("redis HGETALL p99", summary.p99, "µs", detail, target),
    ]


# ---- Kafka ----


def _ensure_topic(settings: StackSettings, admin: Any, timeout_s: float = 30.0) -> None:
    """Create :data:`BENCH_TOPIC` if missing; refuse one with another partition count.

    ``admin`` must stay referenced by the caller while futures are awaited: a collected
    AdminClient leaves its futures unresolved.
    """
    from confluent_kafka.admin import NewTopic

    meta = _retrying(settings, "listing topics", lambda: admin.list_topics(timeout=10), 10.0)
    topic = meta.topics.get(BENCH_TOPIC)
    if topic is None:
        new = NewTopic(BENCH_TOPIC, BENCH_PARTITIONS, 1, config=BENCH_TOPIC_CONFIG)
        for fut in admin.create_topics([new], operation_timeout=timeout_s).values():
            try:
                fut.result(timeout=timeout_s)
            except Exception as exc:  # created concurrently is fine
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise kafka_fail(settings, f"creating topic {BENCH_TOPIC} failed", exc) from exc
    elif len(topic.partitions) != BENCH_PARTITIONS:
        raise StackError(
            "kafka",
            f"scratch topic {BENCH_TOPIC} has {len(topic.partitions)} partitions, "
            f"expected {BENCH_PARTITIONS}",
            fix=f"delete the scratch topic {BENCH_TOPIC}; the next run recreates it",
        )


def _retrying(settings: StackSettings, what: str, call: Callable[[], T], timeout_s: float) -> T:
    """``call()``, retried while Kafka answers with a retriable error, until the deadline.

    A topic created a moment ago is listed with leaders before its partitions accept
    requests (NOT_LEADER_FOR_PARTITION for a while).
    """
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            retriable = bool(getattr(err, "retriable", lambda: False)())
            if not retriable or time.monotonic() > deadline:
                raise kafka_fail(settings, f"{what} failed", exc) from exc
            time.sleep(0.2)
        except TimeoutError as exc:  # a future not resolved in time
            raise kafka_fail(settings, f"{what} timed out") from exc


def _truncate(settings: StackSettings, admin: Any, timeout_s: float = 30.0) -> None:
    """DeleteRecords up to the end of every partition: the topic reads as empty after."""
    from confluent_kafka import OFFSET_END, TopicPartition

    def once() -> None:
        parts = [TopicPartition(BENCH_TOPIC, p, OFFSET_END) for p in range(BENCH_PARTITIONS)]
        futures = admin.delete_records(parts, request_timeout=10, operation_timeout=10)
        for fut in futures.values():
            fut.result(timeout=15)

    _retrying(settings, f"emptying {BENCH_TOPIC}", once, timeout_s)


def _records_in_topic(settings: StackSettings, admin: Any, timeout_s: float = 30.0) -> int:
    """Readable records (latest minus earliest offset, summed over partitions)."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    def offsets(spec: Any) -> dict[int, int]:
        request = {TopicPartition(BENCH_TOPIC, p): spec for p in range(BENCH_PARTITIONS)}
        futures = admin.list_offsets(request, request_timeout=10)
        return {tp.partition: f.result(timeout=15).offset for tp, f in futures.items()}

    def once() -> int:
        low, high = offsets(OffsetSpec.earliest()), offsets(OffsetSpec.latest())
        return sum(high[p] - low[p] for p in range(BENCH_PARTITIONS))

    return _retrying(settings, f"reading offsets of {BENCH_TOPIC}", once, timeout_s)


def make_record(i: int, size: int) -> tuple[bytes, bytes]:
    """Key and JSON value of the i-th scratch event, padded to exactly ``size`` bytes.

    ``{"user_id": int, "event_type": str, "event_time": epoch ms, "v": int, "pad": "x..."}``;
    the key is the user id, as the clickstream is keyed.
    """
    user = i % 100_000
    head = b'{"user_id":%d,"event_type":"%s","event_time":%d,"v":%d,"pad":"' % (
        user,
        EVENT_TYPES[i % len(EVENT_TYPES)],
        1_780_000_000_000 + i,
        i,
    )
    pad = max(size - len(head) - 2, 0)
    return b"%d" % user, head + b"x" * pad + b'"}'


def _producer(settings: StackSettings, timeout_s: float = 10.0) -> Any:
    """An idempotent producer, connected and holding the topic's metadata already."""
    from confluent_kafka import KafkaException, Producer

    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "delivery.report.only.error": True,
            "logger": _QUIET,
        }
    )
    try:
        producer.list_topics(topic=BENCH_TOPIC, timeout=timeout_s)
    except KafkaException as exc:
        raise kafka_fail(settings, "producer could not reach the broker", exc) from exc
    return producer


def _produce_all(
    settings: StackSettings,
    producer: Any,
    records: Iterable[tuple[bytes, bytes]],
    deadline: float,
) -> int:
    """Produce every record (backing off while the local queue is full), flush, count."""
    failed: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:  # called for failures only
        if err is not None:
            failed.append(str(err))

    sent = 0
    produce, poll = producer.produce, producer.poll
    for key, value in records:
        while True:
            try:
                produce(BENCH_TOPIC, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                poll(0.01)
                if time.monotonic() > deadline:
                    raise kafka_fail(
                        settings, f"producer queue still full at the deadline after {sent}"
                    ) from None
        sent += 1
        if sent % 10_000 == 0:
            poll(0)
    remaining = producer.flush(max(deadline - time.monotonic(), 0.1))
    if remaining:
        raise kafka_fail(settings, f"{remaining} of {sent} records undelivered at the deadline")
    if failed:
        raise kafka_fail(settings, f"{len(failed)} deliveries failed, first: {failed[0]}")
    return sent


def fill_topic(
    settings: StackSettings, rows: int, size: int = 200, timeout_s: float = 120.0
) -> None:
    """Make :data:`BENCH_TOPIC` hold exactly ``rows`` scratch records (untimed).

    Keeps what is there when it is at most ``rows`` and tops it up; otherwise empties the
    topic first. Used by the Flink baseline so it does not depend on the produce benchmark.
    """
    deadline = time.monotonic() + timeout_s
    admin = kafka_admin(settings)
    _ensure_topic(settings, admin)
    have = _records_in_topic(settings, admin)
    if have > rows:
        _truncate(settings, admin)
        have = 0
    if have < rows:
        producer = _producer(settings)
        _produce_all(
            settings, producer, (make_record(i, size) for i in range(have, rows)), deadline
        )
    have = _records_in_topic(settings, admin)
    if have != rows:
        raise kafka_fail(settings, f"{BENCH_TOPIC} holds {have} records, wanted {rows}")


def kafka_produce(
    settings: StackSettings,
    messages: int = 200_000,
    size: int = 200,
    *,
    timeout_s: float = 120.0,
) -> list[Measurement]:
    """Produce ``messages`` JSON records of ``size`` B into an emptied :data:`BENCH_TOPIC`.

    acks=all, idempotent, linger.ms=5, no compression, keyed by user id. Timed from the first
    produce() to the end of flush() (every record acknowledged); values are built before the
    clock starts, and the producer is connected before it, so neither JSON formatting nor
    the connection is measured. MB are 10^6 bytes of values.
    """
    deadline = time.monotonic() + timeout_s
    admin = kafka_admin(settings)
    _ensure_topic(settings, admin)
    _truncate(settings, admin)
    records = [make_record(i, size) for i in range(messages)]
    producer = _producer(settings)
    t0 = time.perf_counter()
    sent = _produce_all(settings, producer, records, deadline)
    seconds = time.perf_counter() - t0
    del records
    from confluent_kafka import libversion

    detail = (
        f"{sent} x {size} B in {seconds:.2f}s, {BENCH_PARTITIONS} partitions, acks=all, "
        f"idempotent, linger.ms=5, librdkafka {libversion()[0]}"
    )
    target = "ingestion producers (clickstream, CRM bridge)"
    return [
        Measurement("kafka produce", sent / seconds, "msgs/s", detail, target),
        Measurement("kafka produce MB/s", sent * size / seconds / 1e6, "MB/s", detail, target),
    ]


def kafka_consume(
    settings: StackSettings, *, expected: int | None = None, timeout_s: float = 60.0
) -> list[Measurement]:
    """Consume :data:`BENCH_TOPIC` from the beginning with a fresh consumer group id.

    Partitions are assigned explicitly at their beginning, as Flink's Kafka source does (it
    never joins a consumer group), so no rebalance is timed. The clock runs from assign()
    to the last record, so librdkafka's prefetch is part of it. ``fetch.queue.backoff.ms``
    is lowered from librdkafka's 1 s (see the config). Reads until the records
    present at start (``expected``, else the watermarks) are in; a StackError at the
    deadline.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    admin = kafka_admin(settings)
    target_count = _records_in_topic(settings, admin) if expected is None else expected
    if target_count <= 0:
        raise StackError("kafka", f"{BENCH_TOPIC} is empty", fix="run the produce benchmark first")
    group = f"_bench-consume-{uuid.uuid4().hex[:12]}"
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            # librdkafka >= 2.4 postpones a partition's next fetch by 1 s once its prefetch
            # queue is full; with a Python loop draining it that stalls reads ~8x.
            "fetch.queue.backoff.ms": 10,
            "logger": _QUIET,
        }
    )
    deadline = time.monotonic() + timeout_s
    got = 0
    try:
        consumer.list_topics(topic=BENCH_TOPIC, timeout=10)  # connect before the clock
        t0 = time.perf_counter()
        consumer.assign(
            [TopicPartition(BENCH_TOPIC, p, OFFSET_BEGINNING) for p in range(BENCH_PARTITIONS)]
        )
        while got < target_count:
            if time.monotonic() > deadline:
                raise kafka_fail(
                    settings, f"consumed {got} of {target_count} records in {timeout_s:.0f}s"
                )
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                err = msg.error()
                if err is None:
                    got += 1
                elif err.fatal() or not err.retriable():
                    raise kafka_fail(settings, "consumer failed", KafkaException(err))
        seconds = time.perf_counter() - t0
    except KafkaException as exc:
        raise kafka_fail(settings, "consumer failed", exc) from exc
    finally:
        consumer.close()
    detail = (
        f"{got} records in {seconds:.2f}s from assign() at the beginning of "
        f"{BENCH_PARTITIONS} partitions, fresh group id, consume() batches of 10k, "
        f"fetch.queue.backoff.ms=10 (librdkafka default 1000 is ~8x slower here)"
    )
    if got != target_count:
        raise kafka_fail(settings, f"read {got} records, expected {target_count}")
    return [
        Measurement(
            "kafka consume (Python client)",
            got / seconds,
            "msgs/s",
            detail,
            "Python consumers (bridges, replay/DLQ tools)",
        )
    ]


# ---- Flink ----


def flink_sql_blackhole(
    settings: StackSettings, rows: int = 1_000_000, *, timeout_s: float = 180.0
) -> list[Measurement]:
    """Flink SQL only (Kafka JSON -> blackhole, STREAMING, bounded) on the cluster.

    Fills :data:`BENCH_TOPIC` with exactly ``rows`` records, submits
    ``flink_jobs/bench_blackhole.py`` detached and waits for it. rows/s divides by the job
    duration the JobManager reports (from job creation to FINISHED: scheduling, deployment,
    source start-up included); the wall time also covers client-side submission (PyFlink
    client start, plan compilation). The records the job processed, from the REST API's
    vertex counters, are checked against ``rows`` and shown in the detail.
    """
    deadline = time.monotonic() + timeout_s
    fill_topic(settings, rows, timeout_s=max(deadline - time.monotonic(), 1.0))
    client = FlinkClient(StackContext(settings))
    t0_wall = time.time()
    sub = client.run_python(
        BLACKHOLE_JOB,
        ["--bootstrap", settings.kafka_bootstrap, "--topic", BENCH_TOPIC, "--rows", str(rows)],
        name="bench-blackhole",
        detached=True,
        timeout_s=max(deadline - time.monotonic(), 1.0),
    )
    submitted_s = time.time() - t0_wall
    try:
        state = client.wait_terminal(sub.job_id, max(deadline - time.monotonic(), 1.0))
    except StackError:
        _cancel_job(settings, sub.job_id)  # do not leave it holding a slot
        raise
    job = client.job(sub.job_id)
    if state != "FINISHED":
        raise StackError(
            "job bench-blackhole",
            f"ended {state}: {client.exceptions(sub.job_id)}",
            log=StackContext(settings).log_path("flink-taskmanager"),
            fix="read the TaskManager log and the submit log " + str(sub.log),
        )
    duration_ms = int(job.get("duration", 0))  # type: ignore[call-overload]
    end_ms = int(job.get("end-time", 0))  # type: ignore[call-overload]
    if duration_ms <= 0 or end_ms <= 0:
        raise StackError("job bench-blackhole", f"REST reports no duration: {job}")
    wall_s = end_ms / 1000 - t0_wall
    counted, vertex_note = processed_records(job)
    if counted != rows:
        raise StackError(
            "job bench-blackhole",
            f"processed {counted} records, the topic held {rows} ({vertex_note})",
            log=sub.log,
            fix="read the TaskManager log",
        )
    seconds = duration_ms / 1000
    detail = (
        f"{rows} rows; job {seconds:.2f}s (JobManager), {vertex_note}; "
        f"submit {submitted_s:.1f}s; job {sub.job_id[:8]}"
    )
    target = "feature job throughput (SQL operators, Python UDFs)"
    return [
        Measurement("flink SQL kafka->blackhole", rows / seconds, "rows/s", detail, target),
        Measurement(
            "flink SQL job wall time",
            wall_s,
            "s",
            f"submission to FINISHED for {rows} rows (PyFlink client, plan, schedule, run)",
            "feature job deploy + catch-up time",
        ),
    ]


def _cancel_job(settings: StackSettings, job_id: str) -> None:
    """Best effort REST cancel (FlinkClient has none); the caller raises its own error."""
    url = f"{settings.flink_rest_url}/jobs/{job_id}?mode=cancel"
    with contextlib.suppress(OSError):
        urllib.request.urlopen(urllib.request.Request(url, method="PATCH"), timeout=5).close()


def processed_records(job: dict[str, object]) -> tuple[int, str]:
    """Records a finished job processed, from the ``/jobs/<id>`` vertex counters.

    A chained Kafka-source-to-sink vertex reports the source's records as 'read-records';
    were the operators not chained, the source vertex would report them as
    'write-records' and the sink vertex as 'read-records'. The largest count any vertex
    reports is what flowed through; each vertex's figures go in the note.
    """
    vertices = job.get("vertices")
    if not isinstance(vertices, list) or not vertices:
        return 0, "no vertices in the REST answer"
    best = 0
    notes = []
    for v in vertices:
        metrics = v.get("metrics", {})
        read = int(metrics.get("read-records", 0))
        write = int(metrics.get("write-records", 0))
        best = max(best, read, write)
        notes.append(
            f"vertex '{v.get('name', '?')}' p={v.get('parallelism')} "
            f"read-records={read} write-records={write} "
            f"busy={float(metrics.get('accumulated-busy-time', 0)) / 1000:.2f}s "
            f"idle={float(metrics.get('accumulated-idle-time', 0)) / 1000:.2f}s"
        )
    return best, "; ".join(notes)
