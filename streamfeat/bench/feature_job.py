"""The feature job on the cluster, beside raw baselines of the same run.

One benchmark deploys its OWN copy of ``flink_jobs/feature_job.py`` (the running feature job
is left alone) on scratch topics, a scratch bucket and scratch entities, and always cancels
it at the end:

1. throughput: N demo click events are produced first (malformed and late ones dropped, user
   ids moved into the scratch range, then one flush event per partition so every watermark
   passes every event and closes every session); the job reads them from the earliest
   offset. Timed from its first task RUNNING until Redis holds every user's final state (the
   lags', sessions' and each window group's version at the user's last event): start-up
   (Python workers booting, 5-12 s to the first output) included, so a conservative
   sustained rate over a run of ~40 s (600,000 events); the rate from the first row in Redis
   is in the detail, an
   overstatement (rows already in flight between the operators then). Baseline:
   ``flink_jobs/bench_blackhole.py`` (Flink SQL Kafka -> blackhole) on the same topic, read
   repeatedly so its start-up does not dominate (feature_job_flink.BLACKHOLE_READS), timed
   from its first task RUNNING to FINISHED. Per-vertex busy / backpressured time comes from the
   REST API (cumulative counters, read once the sink counts are complete);
2. customer_profile freshness: feature_job_freshness.py;
3. Redis bytes per entity: feature_job_redis.py.

Before deploying, it checks for a free slot and TaskManager metaspace (feature_job_flink.py:
a metaspace OutOfMemoryError would kill the TaskManager under the real feature job).

Scratch data: topics :data:`CLICK_TOPIC` (12 partitions), :data:`CRM_TOPIC`,
:data:`CDC_TOPIC`, :data:`ORDERS_TOPIC` (created if missing, 1 h retention, emptied before
and after), the bucket
:data:`BUCKET` (the job's offline path is fixed under its lake bucket, so a scratch bucket
keeps the real offline table and DLQ clean; emptied and removed after),
Redis keys of entities in ``feature_job_data.SCRATCH_IDS`` (deleted before and after), the
job's consumer group (deleted after). Nothing is asserted; failures are StackErrors.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from core.features import USER_ACTIVITY, USER_LAGS, USER_SESSIONS
from core.online import ROW_EVENT_TIME, entity_key
from core.settings import StackSettings
from flink_jobs import sql
from flink_jobs.config import JobConfig
from streamfeat.bench import feature_job_flink as flink
from streamfeat.bench import feature_job_freshness as fresh
from streamfeat.bench.feature_job_data import (
    USER_BASE,
    ScratchClicks,
    flush_records,
    scratch_clicks,
    spread,
)
from streamfeat.bench.feature_job_redis import delete_scratch_keys, redis_bytes, tile_bytes
from streamfeat.bench.scratch import failing, produce_queued, redis_client, scratch_topic
from streamfeat.bench.stats import Measurement
from streamfeat.flink_client import TERMINAL_STATES, FlinkClient
from streamfeat.job import FEATURE_JOB, job_config
from streamfeat.stack.base import StackContext
from streamfeat.stack.errors import StackError

CLICK_TOPIC, CRM_TOPIC, CDC_TOPIC = "_bench-job-clicks", "_bench-job-crm", "_bench-job-cdc"
ORDERS_TOPIC = "_bench-job-orders"
TOPICS = ((CLICK_TOPIC, 12), (CRM_TOPIC, 3), (CDC_TOPIC, 3), (ORDERS_TOPIC, 3))
"""Scratch topics and partitions, as clickstream / crm.customers / cdc.public.customers /
cdc.public.orders (left empty: the job's order branch idles)."""
BUCKET = "streamfeat-bench-job"
SEED = 11
POLL_S = 0.2
Progress = Callable[[str], None]


def _produce(settings: StackSettings, clicks: ScratchClicks, cfg: JobConfig) -> int:
    """Every scratch click, then one flush event per partition (after a flush, so each is
    the last record of its partition). Returns how many records the topic holds."""
    from connectors.kafka_clients import producer

    p, failed = producer(settings), []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    flush = flush_records(
        TOPICS[0][1],
        after_ms=clicks.max_time,
        gap_ms=cfg.session_gap_ms,
        bound_ms=max(c.lateness_ms for c in sql.click_classes(cfg)),  # every watermark passes
    )
    with failing(settings, "kafka", f"producing to {CLICK_TOPIC}"):
        for key, value in clicks.records:
            produce_queued(p, CLICK_TOPIC, value, key, on_delivery)
        left = p.flush(60)
        for partition, key, value in flush:
            p.produce(CLICK_TOPIC, value, key, partition=partition, on_delivery=on_delivery)
        left += p.flush(30)
    if left or failed:
        raise StackError("kafka", f"{left} undelivered, {len(failed)} failed: {failed[:1]}")
    return clicks.events + len(flush)


def unfinished(r: Any, last_time: dict[int, int], users: list[int] | None = None) -> list[int]:
    """Users (of ``users``, default all of ``last_time``) whose activity, lags or sessions do
    not yet stand at their last event (``last_time``: user -> event time of their last
    click)."""
    users = list(last_time) if users is None else users
    views = (USER_ACTIVITY, USER_LAGS, USER_SESSIONS)
    pipe = r.pipeline(transaction=False)
    for u in users:
        for v in views:
            pipe.hget(entity_key(v, u), ROW_EVENT_TIME)
    got = pipe.execute()
    n = len(views)
    return [
        u
        for i, u in enumerate(users)
        if any(int(t or 0) != last_time[u] for t in got[n * i : n * i + n])
    ]


def _wait_done(
    settings: StackSettings, client: FlinkClient, job_id: str, clicks: ScratchClicks, end: float
) -> tuple[float, float]:
    """Wall ms when Redis first held the first user's lag row, and when it held every
    user's final state: the users of the latest events are polled every POLL_S, all users
    once those are in (the time taken is the end of that full check)."""
    r, everyone = redis_client(settings), list(clicks.last_time)
    first_user = int(clicks.records[0][0])
    sample = list(dict.fromkeys(int(k) for k, _ in clicks.records[-64:]))
    first_ms = next_state = 0.0
    with failing(settings, "redis", "reading the scratch users' features"):
        while True:
            if time.monotonic() > end:
                n = len(unfinished(r, clicks.last_time, everyone))
                raise StackError(
                    f"job {job_id}",
                    f"{n} of {len(everyone)} users not final at the deadline",
                    log=StackContext(settings).log_path("flink-taskmanager"),
                )
            if time.monotonic() > next_state:
                state = str(client.job(job_id).get("state"))
                if state != "RUNNING":
                    raise StackError(f"job {job_id}", f"is {state}: {client.exceptions(job_id)}")
                next_state = time.monotonic() + 2
            if not first_ms and r.exists(entity_key(USER_LAGS, first_user)):
                first_ms = time.time() * 1000
            if first_ms and not unfinished(r, clicks.last_time, sample):
                sample = unfinished(r, clicks.last_time, everyone)[:256]
                if not sample:
                    return first_ms, time.time() * 1000
            time.sleep(POLL_S)


def _throughput_rows(
    clicks: ScratchClicks,
    counts: dict[str, int],
    times: tuple[float, float, float],
    blackhole: tuple[float, str],
    generated: int,
    parallelism: int = 1,
    state_backend: str = "rocksdb",
) -> list[Measurement]:
    running_ms, first_ms, done_ms = times
    run_s, after_first_s = (done_ms - running_ms) / 1000, (done_ms - first_ms) / 1000
    rate, (bh_rate, bh_detail) = clicks.events / run_s, blackhole
    want = clicks.expected_rows()
    online, offline = counts.values()
    detail = (
        f"{clicks.events:,} valid events ({generated:,} demo click_records less "
        f"{clicks.malformed} malformed and {clicks.late} late; {len(clicks.last_time):,} users), "
        f"parallelism {parallelism}, state backend {state_backend}: {run_s:.2f}s from its "
        f"first task RUNNING to every user's "
        f"final state in Redis (polled every {POLL_S}s); first row in Redis after "
        f"{(first_ms - running_ms) / 1000:.2f}s, {clicks.events / after_first_s:,.0f} events/s "
        "from then (an overstatement: rows were in flight between operators); feature "
        f"rows: online sink {online:,}, offline writer {offline:,}, expected at least {want:,} "
        f"({clicks.events:,} lag rows + {clicks.sessions:,} sessions + {clicks.minute_tiles:,} "
        "minute tiles); goal >= 50k events/s"
    )
    return [
        Measurement("feature job clicks -> Redis + offline", rate, "events/s", detail),
        Measurement(
            "feature job online writes",
            online / run_s,
            "rows/s",
            "feature rows and tile updates reaching the online sink (one version-guarded Lua "
            "script per hash and batch) over the same time",
        ),
        Measurement(
            "feature job / blackhole",
            rate / bh_rate * 100,
            "%",
            "job events/s (start-up included) over sustained blackhole rows/s, same topic and "
            "records; goal >= 40%",
        ),
        Measurement(
            "flink SQL kafka->blackhole, same topic",
            bh_rate,
            "rows/s",
            bh_detail,
            "feature job clicks throughput",
        ),
    ]


def gate_share(gate_rate: float, raw_rate: float, job_rate: float) -> Measurement:
    """What the clickstream gate (parse + the suite's expectations) costs per event, as a
    share of the whole job's time per event; all three rates from the same run and topic."""
    gate_us = max(1e6 / gate_rate - 1e6 / raw_rate, 0.0)
    job_us = 1e6 / job_rate
    detail = (
        f"the gate alone {gate_us:.2f} us per event (the gated read {1e6 / gate_rate:.2f} us less "
        f"the raw read {1e6 / raw_rate:.2f} us) over the job's {job_us:.1f} us per event; "
        "the job with the gate off would do the rest: goal <= 15 %"
    )
    return Measurement("clickstream gate's share of the job", gate_us / job_us * 100, "%", detail)


def _clean(
    settings: StackSettings, client: FlinkClient, job_id: str | None, group: str, say: Progress
) -> None:
    """Cancel the job, then remove every scratch object; each part best effort, reported."""
    if job_id:
        try:
            if client.job(job_id).get("state") not in TERMINAL_STATES:
                client.end(job_id)
        except (StackError, OSError) as exc:
            say(f"! cancelling {job_id} failed: {exc}; cancel it in the Flink UI")
        # a cancelled job leaves an empty checkpoint directory skeleton: removed if empty
        for sub in ("shared", "taskowned", ""):
            with contextlib.suppress(OSError):
                (client.layout.checkpoints / job_id / sub).rmdir()
    for name, partitions in TOPICS:
        with contextlib.suppress(StackError):
            scratch_topic(settings, name, partitions)
    from connectors.kafka_clients import admin

    kafka = admin(settings)  # referenced while its futures resolve
    groups = [group, group + "-sql"]  # the job's, and its SQL-plan baseline's
    for name, fut in kafka.delete_consumer_groups(groups, request_timeout=10).items():
        try:
            fut.result(timeout=15)
        except Exception as exc:  # committed offsets of a scratch group: harmless
            if "GROUP_ID_NOT_FOUND" not in str(exc):
                say(f"! consumer group {name} not deleted: {exc}")
    keys = delete_scratch_keys(settings)
    deleted, left = fresh.drop_bucket(settings, BUCKET)
    warn = f"; ! {left} objects left in s3://{BUCKET}" if left else ""
    say(f"cleanup: {keys:,} scratch keys and {deleted} scratch objects deleted{warn}")


def feature_job_bench(
    settings: StackSettings,
    *,
    events: int,
    crm_burst: int,
    fresh_seconds: float,
    progress: Progress = print,
    timeout_s: float = 900.0,
    parallelism: int = 1,
    state_backend: str = "rocksdb",
) -> list[Measurement]:
    """Throughput vs blackhole, profile freshness vs Kafka, Redis bytes (see the module)."""
    from connectors.demo.loader import click_records

    t0 = deadline = time.monotonic()
    deadline += timeout_s

    def say(line: str) -> None:
        progress(f"      [{time.monotonic() - t0:5.1f}s] {line}")

    client, group = FlinkClient(StackContext(settings)), f"_bench-job-{uuid.uuid4().hex[:10]}"
    scratch: dict[str, object] = {"clickstream_topic": CLICK_TOPIC, "crm_topic": CRM_TOPIC}
    scratch["group_id"] = group
    scratch |= {"cdc_customers_topic": CDC_TOPIC, "cdc_orders_topic": ORDERS_TOPIC}
    scratch |= {"lake_bucket": BUCKET, "parallelism": parallelism, "state_backend": state_backend}
    # the demo clicks span a day from 12 h ago (so no user's hash expires by event time
    # during the run): half of them are dated ahead of their produce time, which the job
    # allows here, and only here, up to 13 h
    scratch["max_event_time_ahead_ms"] = 13 * 3_600_000
    cfg = JobConfig.model_validate({**job_config(settings).model_dump(), **scratch})
    say(flink.check_room(client) + " before; generating demo clicks ...")
    start_ms = (int(time.time()) // 60) * 60_000 - 12 * 3_600_000  # TTLs count from event time
    raw = click_records(SEED, events, start_ms=start_ms)
    strictest = min(c.lateness_ms for c in sql.click_classes(cfg))  # on time for every view
    clicks = scratch_clicks(raw, user_base=USER_BASE, bound_ms=strictest, gap_ms=cfg.session_gap_ms)
    job_id: str | None = None
    try:
        for name, partitions in TOPICS:
            scratch_topic(settings, name, partitions)
        delete_scratch_keys(settings)
        fresh.make_bucket(settings, BUCKET)
        rows = _produce(settings, clicks, cfg)
        say(f"{clicks.events:,} click events (+{rows - clicks.events} flush) in {CLICK_TOPIC}")
        blackhole = flink.blackhole(settings, client, CLICK_TOPIC, rows, deadline)
        say(f"blackhole {blackhole[0]:,.0f} rows/s; the clickstream gate alone, 3 designs ...")
        gates = flink.gate_rates(settings, client, CLICK_TOPIC, rows, cfg.function_jars, deadline)
        strict = next(m for m in gates if m.name == dict(flink.GATE_ROWS)["strict"])
        say(f"gate {strict.value:,.0f} rows/s; deploying the feature job ...")
        left = max(deadline - time.monotonic(), 1.0)
        job_id = client.run_python(
            FEATURE_JOB,
            ["--config", cfg.model_dump_json()],
            name="bench-feature-job",
            timeout_s=left,
        ).job_id
        client.wait_state(job_id, "RUNNING", timeout_s=max(deadline - time.monotonic(), 1.0))
        say(f"job {job_id[:8]} RUNNING; waiting for every user's final state ...")
        first_ms, done_ms = _wait_done(settings, client, job_id, clicks, deadline)
        running_ms = flink.running_since_ms(client, job_id)
        labels = flink.roles(client, job_id)
        job = flink.settled(client, job_id, labels, clicks.expected_rows(), deadline)
        counts = flink.sink_counts(job, labels)
        times = (running_ms, first_ms, done_ms)
        out = _throughput_rows(clicks, counts, times, blackhole, events, parallelism, state_backend)
        out += gates
        raw_read = next(m for m in gates if m.name == dict(flink.GATE_ROWS)["raw"])
        out.append(gate_share(strict.value, raw_read.value, out[0].value))
        out += flink.vertex_rows(job, labels, done_ms - running_ms)
        say(f"{out[0].value:,.0f} events/s; CRM burst + freshness on {CRM_TOPIC} ...")
        profile_ids, rows_2 = fresh.profile_path(
            settings,
            CRM_TOPIC,
            burst=crm_burst,
            seconds=fresh_seconds,
            deadline=deadline,
            say=say,
        )
        users = sorted(clicks.last_time)
        out += rows_2
        out += redis_bytes(settings, spread(users, 200), spread(profile_ids, 200))
        out += tile_bytes(settings, int(time.time() * 1000))
        client.end(job_id)  # its slots go to the baseline run (at parallelism 2, 2 + 2 of 4)
        say("the job's SQL plan alone (online writes to a blackhole), bounded, same topic ...")
        plain = {"group_id": group + "-sql", "online_writes": False, "stop_at_latest": True}
        # a bounded run ends only after a checkpoint commits its files: at the job's 10 s
        # interval that wait alone was most of the run
        plain["checkpoint_interval_ms"] = 1000
        sql_cfg = cfg.model_copy(update=plain)
        want = clicks.expected_rows()
        sql_only = flink.sql_plan_rate(client, FEATURE_JOB, sql_cfg, clicks.events, want, deadline)
        out.insert(3, sql_only)
        return out
    finally:
        _clean(settings, client, job_id, group, say)
        with contextlib.suppress(StackError):
            used, top = flink.metaspace(client)
            say(f"TaskManager metaspace now {used / flink.MIB:.0f} of {top / flink.MIB:.0f} MiB")
