"""Ingestion benchmarks on the running stack, each read beside a raw baseline of the same run.

- clickstream producer: ``connectors.clickstream.produce`` (rate=None) vs a bare loop;
- CRM bridge: ``CrmBridge.import_object`` on one CSV vs the raw S3 GET of it (its Kafka
  produce baseline is ``baselines.kafka_produce``, run by the runner);
- Debezium: commit -> record on ``cdc.public.customers`` vs a produce -> consume round trip.

Nothing is asserted; a delivery that fails is a StackError. Scratch data only: topics
``_bench-*`` (emptied before and after), one object under :data:`S3_PREFIX` (deleted),
customers with ids in :data:`CDC_IDS` (inserted, updated, deleted: their change events do
reach the real CDC topic, tombstones included). The clickstream producer and the bridge run
unmodified; only their modules' producer / topic names are swapped while they run.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from unittest import mock

from core.domain import SEGMENTS, TIERS
from core.events import format_iso_ms
from core.settings import StackSettings
from core.topics import CDC_CUSTOMERS
from streamfeat.bench.scratch import failing, kafka_fail, paced, scratch_topic
from streamfeat.bench.stats import Measurement, summarize
from streamfeat.stack.base import StackContext
from streamfeat.stack.errors import StackError

CLICK_TOPIC, CLICK_PARTITIONS = "_bench-clickstream", 12  # as the clickstream topic
CRM_TOPIC, CRM_PARTITIONS = "_bench-crm", 3  # as crm.customers
CRM_PROGRESS_TOPIC = "_bench-crm-progress"
S3_PREFIX = "_bench/"  # not under crm/exports/: a running bridge never lists it
CDC_IDS = range(990_000_001, 990_000_021)
CDC_CONNECTOR = "streamfeat-postgres-cdc"
DISTINCT_CLICKS = 100_000  # click_records() costs ~0.1 ms/event here: more are cycled
T = TypeVar("T")
_INSERT = (
    "INSERT INTO customers (id, email, full_name, segment, tier, country, created_at, updated_at)"
    " SELECT g, 'bench' || g || '@example.invalid', 'Bench Scratch', 'consumer', 'bronze', 'NL',"
    " now(), now() FROM generate_series(%s, %s) g"
)
_UPDATE = "UPDATE customers SET updated_at = now(), tier = %s WHERE id = %s RETURNING xmin::text"
_COMMITS = (
    "SELECT x::bigint, extract(epoch FROM pg_xact_commit_timestamp(x::xid))::float8 * 1000"
    " FROM unnest(%s::text[]) x"
)
_WIPE = "DELETE FROM customers WHERE id BETWEEN %s AND %s"


def cycled(items: Sequence[T], n: int) -> list[T]:
    """``n`` items: ``items`` repeated in order (a prefix of it when ``n`` is smaller)."""
    if not items:
        raise ValueError("nothing to cycle")
    reps, rest = divmod(n, len(items))
    return list(items) * reps + list(items[:rest])


def crm_csv(rows: int, *, updated_ms: int) -> bytes:
    """A CRM export of ``rows`` rows (ids 1..rows, every 5th without updated_at), all valid:
    the bridge must send nothing to the (real) DLQ."""
    stamps = [format_iso_ms(updated_ms - k * 1_237) for k in range(997)]
    lines = [b"customer_id,email,segment,tier,updated_at"]
    for i in range(1, rows + 1):
        at = "" if i % 5 == 0 else stamps[i % 997]
        lines.append(f"{i},user{i}@example.com,{SEGMENTS[i % 3]},{TIERS[i % 4]},{at}".encode())
    return b"\n".join(lines) + b"\n"


def cdc_event(value: bytes | None, ids: range) -> tuple[str, int] | None:
    """(op, source.txId) of a Debezium change event of a row in ``ids``, else None."""
    if not value:  # tombstone
        return None
    event = json.loads(value)
    row = event.get("after") or event.get("before") or {}
    return (event["op"], int(event["source"]["txId"])) if row.get("id") in ids else None


def lag_rows(name: str, lags: Sequence[float], detail: str, for_: str | None = None) -> list[Any]:
    """p50 and p99 rows (ms) of one latency sample; the detail gains n/min/p90/max."""
    s = summarize(lags)
    text = f"{detail}; {s.describe('ms')}"
    return [Measurement(f"{name} p{p}", v, "ms", text, for_) for p, v in ((50, s.p50), (99, s.p99))]


def _cleanup(settings: StackSettings, *topics: tuple[str, int]) -> None:
    """Best effort: empty scratch topics (an error here must not hide the real one)."""
    for name, partitions in topics:
        with contextlib.suppress(StackError):
            scratch_topic(settings, name, partitions)


def _warm(settings: StackSettings, topic: str, p: Any = None) -> tuple[Any, float]:
    """A producer (``connectors.kafka_clients.producer``: acks=all, idempotent, linger 5 ms,
    lz4) that has had one record acknowledged, and the seconds that took."""
    from connectors.kafka_clients import producer

    t0 = time.perf_counter()
    p = p or producer(settings)
    with failing(settings, "kafka", f"first record to {topic}"):
        p.produce(topic, b"warm-up", partition=0)
        if p.flush(15):
            raise kafka_fail(settings, f"warm-up record to {topic} not acknowledged in 15 s")
    return p, time.perf_counter() - t0


def _bare_loop(settings: StackSettings, p: Any, records: Sequence[Any], deadline: float) -> float:
    """Seconds to produce every (key, value) to :data:`CLICK_TOPIC` with ``p`` and flush."""
    failed: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    t0 = time.perf_counter()
    produce, poll = p.produce, p.poll
    for n, (key, value) in enumerate(records, 1):
        while True:
            try:
                produce(CLICK_TOPIC, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                poll(0.01)
                if time.monotonic() > deadline:
                    raise kafka_fail(settings, f"queue full at the deadline after {n}") from None
        if n % 10_000 == 0:
            poll(0)
    left = p.flush(max(deadline - time.monotonic(), 0.1))
    if left or failed:
        raise kafka_fail(settings, f"bare loop: {left} undelivered, {failed[:1]} failed")
    return time.perf_counter() - t0


def clickstream_producer(
    settings: StackSettings, events: int = 300_000, *, rounds: int = 3, timeout_s: float = 120.0
) -> list[Measurement]:
    """events/s of ``connectors.clickstream.produce`` (rate=None) and of a bare loop: the same
    pre-generated ``click_records`` into :data:`CLICK_TOPIC`, alternated ``rounds`` times,
    best of each. Both producers are warm (``produce()`` gets its own through its module's
    ``producer`` name): a fresh one takes 0.1-0.5 s to its first ack here, which would
    swamp 50k events; that start-up is in the detail instead."""
    import connectors.clickstream as click
    from connectors.demo.loader import click_records

    deadline = time.monotonic() + timeout_s
    scratch_topic(settings, CLICK_TOPIC, CLICK_PARTITIONS)
    distinct = list(click_records(7, min(events, DISTINCT_CLICKS)))
    records = cycled(distinct, events)
    bare: list[float] = []
    platform: list[float] = []
    try:
        (p_bare, start_s), (p_click, _) = _warm(settings, CLICK_TOPIC), _warm(settings, CLICK_TOPIC)
        for _ in range(rounds):
            bare.append(_bare_loop(settings, p_bare, records, deadline))
            left = max(deadline - time.monotonic(), 1.0)
            with mock.patch.object(click, "producer", lambda _s: p_click):
                t0 = time.perf_counter()
                with failing(settings, "kafka", "clickstream.produce"):
                    stats = click.produce(
                        settings, records, topic=CLICK_TOPIC, duration_s=left, flush_timeout_s=left
                    )
                platform.append(time.perf_counter() - t0)
            if stats.delivered != events or stats.failed:
                got = f"{stats.delivered} of {events}: {stats.first_error}"
                raise kafka_fail(settings, f"clickstream.produce delivered {got}")
    finally:
        _cleanup(settings, (CLICK_TOPIC, CLICK_PARTITIONS))
    size = sum(len(v) for _, v in records) / events
    common = (
        f"{events} click_records ({len(distinct)} distinct, cycled), mean {size:.0f} B, "
        f"{CLICK_PARTITIONS} partitions, acks=all, idempotent, linger.ms=5, lz4, warm producer "
        f"(a fresh one took {start_s:.2f}s to its first ack); best of "
    )
    p, b = events / min(platform), events / min(bare)
    runs = ", ".join(f"{s:.3f}s" for s in platform)
    bare_runs = ", ".join(f"{s:.3f}s" for s in bare)
    name = "kafka produce, bare loop (clickstream records)"
    return [
        Measurement("clickstream producer", p, "events/s", f"{common}{runs}; {p / b:.0%} of bare"),
        Measurement(name, b, "events/s", common + bare_runs, "clickstream producer"),
    ]


def crm_bridge(
    settings: StackSettings, rows: int = 1_000_000, *, timeout_s: float = 150.0
) -> list[Measurement]:
    """rows/s and input MB/s of ``CrmBridge.import_object`` on a ``rows``-row CSV under
    :data:`S3_PREFIX`, into scratch topics; beside the raw S3 GET of the same object."""
    import connectors.crm.bridge as bridge_mod
    from connectors.crm.rows import check_rows, iter_rows
    from core.domain import CUSTOMER_SUITE
    from core.objectstore import s3_client
    from core.quality import GreatExpectations, repository_suite

    deadline = time.monotonic() + timeout_s
    scratch = ((CRM_TOPIC, CRM_PARTITIONS), (CRM_PROGRESS_TOPIC, 1))
    for name, partitions in scratch:
        scratch_topic(settings, name, partitions)
    export_ms = (int(time.time()) // 60) * 60_000
    body = crm_csv(rows, updated_ms=export_ms - 60_000)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(export_ms / 1000))
    key = f"{S3_PREFIX}crm-{uuid.uuid4().hex[:12]}/customers-{stamp}-0000.csv"
    bucket, mb, s3 = settings.s3.lake_bucket, len(body) / 1e6, s3_client(settings, timeout_s=60)
    head = list(iter_rows("csv", lines=iter(body.split(b"\n", 1001)[:-1])))
    ge = GreatExpectations(repository_suite(CUSTOMER_SUITE))
    head_rows = [c.row for c in check_rows(head, ge)]
    values = [
        bridge_mod.record_value(r, export_ts=export_ms, object_key=key, number=1)
        for r in head_rows
        if r
    ]
    try:
        with failing(settings, "s3", f"PUT/GET s3://{bucket}/{key}"):
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            head = s3.head_object(Bucket=bucket, Key=key)
            t0 = time.perf_counter()
            chunks = s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(1 << 20)
            got = sum(len(c) for c in chunks)
            get_s = time.perf_counter() - t0
        if got != len(body):
            raise StackError("s3", f"GET returned {got} of {len(body)} bytes")
        seconds = {}
        for great_expectations in (True, False):
            bridge = bridge_mod.CrmBridge(
                settings,
                log=lambda _line: None,
                topic=CRM_TOPIC,
                progress_topic=CRM_PROGRESS_TOPIC,
                great_expectations=great_expectations,
            )
            bridge.expectations  # noqa: B018 -- GE imported and its context made before the clock
            timer = threading.Timer(max(deadline - time.monotonic(), 1.0), bridge.stop.set)
            with failing(settings, "kafka", "CRM bridge"):
                _warm(settings, CRM_PROGRESS_TOPIC, bridge._producer)  # connected before the clock
                timer.start()
                t0 = time.perf_counter()
                result = bridge.import_object(key, head["ETag"].strip('"'), head["LastModified"])
                seconds[great_expectations] = time.perf_counter() - t0
                timer.cancel()
            if result.published != rows or result.quarantined:
                late = " (stopped at the deadline)" if bridge.stop.is_set() else ""
                done = f"published {result.published} of {rows}, quarantined {result.quarantined}"
                raise StackError("crm bridge", done + late)
    finally:
        with contextlib.suppress(Exception):
            s3.delete_object(Bucket=bucket, Key=key)
        _cleanup(settings, *scratch)
    bridge_s, rules_s = seconds[True], seconds[False]
    detail = (
        f"{rows} CSV rows, {mb:.1f} MB in {bridge_s:.2f}s: S3 stream, parse, Great Expectations "
        f"validation of each {bridge_mod.CHUNK_ROWS}-row chunk (result kept on S3), JSON "
        f"(~{sum(map(len, values)) / len(values):.0f} B values), produce (lz4, acks=all), flush "
        f"+ progress per chunk; to {CRM_TOPIC} ({CRM_PARTITIONS} parts)"
    )
    rules_detail = (
        f"the same file, the suite's compiled rules row by row instead of GE: {rules_s:.2f}s; "
        f"GE costs {bridge_s / rules_s - 1:+.0%}"
    )
    get_detail = f"{mb:.1f} MB read in 1 MiB chunks (boto3): {mb / get_s:.0f} MB/s"
    return [
        Measurement("CRM bridge", rows / bridge_s, "rows/s", detail),
        Measurement("CRM bridge input", mb / bridge_s, "MB/s", detail),
        Measurement(
            "CRM bridge, compiled rules instead of GE",
            rows / rules_s,
            "rows/s",
            rules_detail,
            "CRM bridge",
        ),
        Measurement("S3 GET of the CRM export (raw)", get_s, "s", get_detail, "CRM bridge"),
    ]


class _Receiver(threading.Thread):
    """Reads ``topic`` from its current end, stamping each record with its arrival wall time
    (ms). fetch.wait.max.ms only bounds an empty long poll: new data answers a fetch at once."""

    def __init__(self, settings: StackSettings, topic: str, partitions: int) -> None:
        from confluent_kafka import TopicPartition

        from connectors.kafka_clients import consumer

        super().__init__(daemon=True)
        self.got: list[tuple[float, Any]] = []
        self.done = threading.Event()
        group = f"_bench-lag-{uuid.uuid4().hex[:8]}"
        self.c = consumer(settings, group, **{"fetch.wait.max.ms": 100})
        with failing(settings, "kafka", f"offsets of {topic}"):
            ends = [
                self.c.get_watermark_offsets(TopicPartition(topic, p), 10)
                for p in range(partitions)
            ]
        self.c.assign([TopicPartition(topic, p, high) for p, (_, high) in enumerate(ends)])
        self.start()

    def run(self) -> None:
        while not self.done.is_set():
            msg = self.c.poll(0.05)
            if msg is not None and msg.error() is None:
                self.got.append((time.time() * 1000, msg))

    def wait(
        self, settings: StackSettings, service: str, done: Callable[[], bool], deadline: float
    ) -> None:
        while not done():
            if time.monotonic() > deadline:
                log = StackContext(settings).log_path(service)
                raise StackError(service, f"only {len(self.got)} records arrived in time", log=log)
            time.sleep(0.05)

    def close(self) -> None:
        self.done.set()
        self.join(5)
        self.c.close()


def debezium_lag(
    settings: StackSettings, *, rate: float = 20.0, seconds: float = 20.0, slack_s: float = 30.0
) -> list[Measurement]:
    """Commit -> record read from ``cdc.public.customers`` for ``rate * seconds`` UPDATEs of the
    scratch customers, one transaction each. Commit: ``pg_xact_commit_timestamp`` of the xid
    (µs). Arrival: the consumer's receive wall time, because the record timestamp is the
    CreateTime Connect's producer stamps at send() (Debezium sets none), not the broker's
    append; commit -> CreateTime goes in the detail."""
    import psycopg

    from connectors.cdc.apply import ConnectClient

    deadline = time.monotonic() + seconds + slack_s
    with failing(settings, "connect", f"status of {CDC_CONNECTOR}"):
        state = ConnectClient(settings).state(CDC_CONNECTOR)
    if not state.running:
        fix = "`streamfeat connectors apply`"
        raise StackError("connect", f"{CDC_CONNECTOR} is {state.connector} {state.tasks}", fix=fix)
    n, lo, hi, xids = int(rate * seconds), CDC_IDS[0], CDC_IDS[-1], []
    dsn = settings.postgres_dsn()  # autocommit: one transaction per statement
    with (
        failing(settings, "postgres", "CDC load"),
        psycopg.connect(dsn, autocommit=True, options="-c statement_timeout=5s") as pg,
    ):
        pg.execute(_WIPE, (lo, hi))  # leftovers of an interrupted run
        rx = _Receiver(settings, CDC_CUSTOMERS, 3)

        def seen() -> set[int]:
            return {e[1] for _, m in rx.got if (e := cdc_event(m.value(), CDC_IDS))}

        def update(i: int) -> None:
            row = pg.execute(_UPDATE, (TIERS[i % 4], lo + i % len(CDC_IDS))).fetchone()
            if row is None:
                raise StackError("postgres", f"scratch customer {lo + i % len(CDC_IDS)} vanished")
            xids.append(row[0])

        try:
            pg.execute(_INSERT, (lo, hi))
            rx.wait(settings, "connect", lambda: len(seen()) > 0, deadline)  # warm-up, untimed
            paced(n, rate, update)
            commits: dict[int, float] = dict(pg.execute(_COMMITS, (xids,)).fetchall())
            rx.wait(settings, "connect", lambda: set(commits) <= seen(), deadline)
        finally:
            rx.close()
            with contextlib.suppress(psycopg.Error):
                pg.execute(_WIPE, (lo, hi))
    recv, create, skew = [], [], 0.0
    for at, m in rx.got:
        event = cdc_event(m.value(), CDC_IDS)
        if event and event[0] == "u" and event[1] in commits:
            commit = commits[event[1]]
            recv.append(at - commit)
            create.append(m.timestamp()[1] - commit)
            skew = max(skew, abs(json.loads(m.value())["source"]["ts_us"] / 1000 - commit))
    c = summarize(create)
    detail = (
        f"{n} UPDATEs at {rate:g}/s for {seconds:g}s, one tx each, {len(CDC_IDS)} scratch rows; "
        f"commit = pg_xact_commit_timestamp (source.ts_us within {skew:.3f} ms); arrival = "
        f"consumer receive wall time; record CreateTime (Connect producer send()) = commit + "
        f"{c.p50:.1f} ms p50 / {c.p99:.1f} ms p99"
    )
    return lag_rows("debezium commit->topic lag", recv, detail)


def kafka_round_trip(
    settings: StackSettings, *, rate: float = 20.0, seconds: float = 20.0, slack_s: float = 30.0
) -> list[Measurement]:
    """produce -> consume latency of single small messages at ``rate``/s (send wall time to
    receive wall time), with the producer settings Connect's producer has (linger 5 ms)."""
    deadline = time.monotonic() + seconds + slack_s
    scratch_topic(settings, CLICK_TOPIC, CLICK_PARTITIONS)
    n, sent = int(rate * seconds), {}
    rx = _Receiver(settings, CLICK_TOPIC, 1)
    try:
        p, _ = _warm(settings, CLICK_TOPIC)
        rx.wait(settings, "kafka", lambda: len(rx.got) > 0, deadline)  # warm-up, untimed

        def send(i: int) -> None:
            sent[i] = time.time() * 1000
            p.produce(CLICK_TOPIC, b"%d" % i, partition=0)
            p.poll(0)

        with failing(settings, "kafka", "round trip"):
            paced(n, rate, send)
            p.flush(max(deadline - time.monotonic(), 0.1))
        rx.wait(settings, "kafka", lambda: len(rx.got) > n, deadline)
    finally:
        rx.close()
        _cleanup(settings, (CLICK_TOPIC, CLICK_PARTITIONS))
    lags = [at - sent[int(m.value())] for at, m in rx.got[1:]]
    detail = f"{n} x 1 partition at {rate:g}/s, same producer settings; send -> receive wall time"
    return lag_rows("kafka produce->consume", lags, detail, "debezium commit->topic lag")
