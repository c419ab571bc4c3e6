"""The feature job on the cluster, beside raw baselines of the same run.

One benchmark deploys its OWN copy of ``flink_jobs/feature_job.py`` (the running feature job
is left alone) on scratch topics, a scratch bucket and scratch entities, and always cancels
it at the end:

1. throughput: N demo click events are produced first (malformed and late ones dropped, user
   ids moved into the scratch range, then one flush event per partition so every watermark
   passes every event and closes every session); the job reads them from the earliest
   offset. Timed from all its tasks RUNNING until Redis holds every user's final state (the
   lags', sessions' and each window group's version at the user's last event). Baseline:
   ``flink_jobs/bench_blackhole.py`` (Flink SQL Kafka -> blackhole) on the same topic,
   timed from its tasks RUNNING to FINISHED. Per-vertex busy / backpressured time comes from
   the REST API (cumulative counters, read once the sink counts are complete);
2. customer_profile freshness and 3. Redis bytes per entity: feature_job_freshness.py.

Scratch data: topics :data:`CLICK_TOPIC` (12 partitions), :data:`CRM_TOPIC`,
:data:`CDC_TOPIC` (created if missing, 1 h retention, emptied before and after), the bucket
:data:`BUCKET` (offline rows and DLQ files of this job only; emptied and removed after),
Redis keys of entities in ``feature_job_data.SCRATCH_IDS`` (deleted before and after), the
job's consumer group (deleted after). Nothing is asserted; failures are StackErrors.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from core.features import FEATURE_VIEWS, USER_ACTIVITY, USER_LAGS, USER_SESSIONS
from core.online import ROW_EVENT_TIME, entity_key
from core.settings import StackSettings
from core.version import decode_event_time
from flink_jobs.config import JobConfig
from streamfeat.bench import feature_job_freshness as fresh
from streamfeat.bench.baselines import BLACKHOLE_JOB, _redis, processed_records
from streamfeat.bench.feature_job_data import (
    USER_BASE,
    ScratchClicks,
    flush_records,
    in_scratch,
    scratch_clicks,
    vertex_role,
)
from streamfeat.bench.ingestion import _failing, _scratch_topic
from streamfeat.bench.stats import Measurement
from streamfeat.flink_client import FlinkClient
from streamfeat.job import FEATURE_JOB, job_config
from streamfeat.stack.base import StackContext
from streamfeat.stack.errors import StackError

CLICK_TOPIC, CLICK_PARTITIONS = "_bench-job-clicks", 12
CRM_TOPIC, CDC_TOPIC, PROFILE_PARTITIONS = "_bench-job-crm", "_bench-job-cdc", 3
BUCKET = "streamfeat-bench-job"
SEED = 11
POLL_S = 0.2
GROUP_FIELDS = [f"{g}@" for g, _ in USER_ACTIVITY.groups]  # core/online.py: '<group>@'
Progress = Callable[[str], None]


def _produce(settings: StackSettings, clicks: ScratchClicks, cfg: JobConfig) -> int:
    """Every scratch click, then one flush event per partition (after a flush, so they are
    the last record of each partition). Returns how many records the topic holds."""
    from connectors.kafka_clients import producer

    p, failed = producer(settings), []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    flush = flush_records(
        CLICK_PARTITIONS,
        after_ms=clicks.max_time,
        gap_ms=cfg.session_gap_ms,
        bound_ms=cfg.max_out_of_orderness_ms,
    )
    with _failing(settings, "kafka", f"producing to {CLICK_TOPIC}"):
        for key, value in clicks.records:
            while True:
                try:
                    p.produce(CLICK_TOPIC, value, key, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.01)
        left = p.flush(60)
        for partition, key, value in flush:
            p.produce(CLICK_TOPIC, value, key, partition=partition, on_delivery=on_delivery)
        left += p.flush(30)
    if left or failed:
        raise StackError("kafka", f"{left} undelivered, {len(failed)} failed: {failed[:1]}")
    return clicks.events + len(flush)


def _running_since_ms(client: FlinkClient, job_id: str) -> int:
    """When the last of the job's subtasks switched to RUNNING (JobManager clock, ms)."""
    latest = 0
    for v in client.job(job_id).get("vertices") or []:  # type: ignore[attr-defined]
        times = client._get(f"/jobs/{job_id}/vertices/{v['id']}/subtasktimes")
        for sub in times.get("subtasks") or []:  # type: ignore[attr-defined]
            latest = max(latest, int(sub["timestamps"].get("RUNNING", 0)))
    if latest <= 0:
        raise StackError(f"job {job_id}", "REST reports no RUNNING time for its subtasks")
    return latest


def blackhole(
    settings: StackSettings, client: FlinkClient, rows: int, deadline: float
) -> tuple[float, str]:
    """rows/s of Flink SQL Kafka -> blackhole over :data:`CLICK_TOPIC` (tasks RUNNING to
    FINISHED) and a detail line; the count it read is checked against ``rows``."""
    args = ["--bootstrap", settings.kafka_bootstrap, "--topic", CLICK_TOPIC, "--rows", str(rows)]
    left = max(deadline - time.monotonic(), 1.0)
    sub = client.run_python(BLACKHOLE_JOB, args, name="bench-job-blackhole", timeout_s=left)
    try:
        state = client.wait_terminal(sub.job_id, max(deadline - time.monotonic(), 1.0))
    except StackError:
        with contextlib.suppress(StackError, OSError):
            client.cancel(sub.job_id)
        raise
    job = client.job(sub.job_id)
    if state != "FINISHED":
        raise StackError("job bench-job-blackhole", f"ended {state}", log=sub.log)
    counted, note = processed_records(job)
    if counted != rows:
        raise StackError("job bench-job-blackhole", f"read {counted} of {rows} ({note})")
    seconds = (int(job["end-time"]) - _running_since_ms(client, sub.job_id)) / 1000  # type: ignore[call-overload]
    jm = int(job["duration"]) / 1000  # type: ignore[call-overload]
    detail = f"{rows} records in {seconds:.2f}s tasks RUNNING->FINISHED ({jm:.2f}s JobManager)"
    return rows / seconds, detail


def _unfinished(r: Any, clicks: ScratchClicks, users: list[int]) -> list[int]:
    """Users whose lags, sessions or any window group do not yet stand at their last event."""
    pipe = r.pipeline(transaction=False)
    for u in users:
        pipe.hget(entity_key(USER_LAGS, u), ROW_EVENT_TIME)
        pipe.hget(entity_key(USER_SESSIONS, u), ROW_EVENT_TIME)
        pipe.hmget(entity_key(USER_ACTIVITY, u), GROUP_FIELDS)
    got = pipe.execute()
    left = []
    for i, u in enumerate(users):
        lag, ses, groups = got[3 * i : 3 * i + 3]
        want = clicks.last_time[u]
        times = [int(lag or 0), int(ses or 0)]
        times += [decode_event_time(g.decode()) if g else 0 for g in groups]
        if any(t != want for t in times):
            left.append(u)
    return left


def _wait_done(
    settings: StackSettings,
    client: FlinkClient,
    job_id: str,
    clicks: ScratchClicks,
    deadline: float,
) -> tuple[float, float]:
    """Wall ms when Redis first held the first user's lag row and when it held every user's
    final state. Polls the users of the latest events every POLL_S, all users once those
    are in (the time taken is the end of that full check)."""
    r, everyone = _redis(settings), list(clicks.last_time)
    first_user = int(clicks.records[0][0])
    sample = list(dict.fromkeys(int(k) for k, _ in clicks.records[-64:]))
    first_ms, next_state = 0.0, 0.0
    with _failing(settings, "redis", "reading the scratch users' features"):
        while True:
            if time.monotonic() > deadline:
                n = len(_unfinished(r, clicks, everyone))
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
            if first_ms and not _unfinished(r, clicks, sample):
                sample = _unfinished(r, clicks, everyone)[:256]
                if not sample:
                    return first_ms, time.time() * 1000
            time.sleep(POLL_S)


def _sink_counts(
    client: FlinkClient, job_id: str, roles: dict[str, str], want: int, deadline: float
) -> dict[str, Any]:
    """The job's REST answer once the online and offline sinks report ``want`` rows (REST
    metrics lag up to metrics.fetcher.update-interval, 10 s by default), else the last one."""
    sinks = {
        vid for vid, role in roles.items() if role.startswith(("online_", "offline writer (f"))
    }
    end = min(deadline, time.monotonic() + 25)
    while True:
        job = client.job(job_id)
        got = [
            int(v["metrics"].get("read-records", 0))
            for v in job["vertices"]  # type: ignore[attr-defined]
            if v["id"] in sinks
        ]
        if (got and min(got) >= want) or time.monotonic() > end:
            return job
        time.sleep(1)


def vertex_rows(job: dict[str, Any], roles: dict[str, str], run_ms: float) -> list[Measurement]:
    """Busy share of each vertex over the run (cumulative counters / run time), busiest
    first; vertices busy and backpressured under 0.5% are left out."""
    rows = []
    for v in job["vertices"]:
        m = v["metrics"]
        busy, bp = (
            float(m.get(k, 0)) / run_ms * 100
            for k in ("accumulated-busy-time", "accumulated-backpressured-time")
        )
        if busy + bp < 0.5:
            continue
        detail = (
            f"backpressured {bp:.0f}%; records in {int(m.get('read-records', 0)):,}, out "
            f"{int(m.get('write-records', 0)):,}; vertex '{v['name']}'"
        )
        rows.append(Measurement(f"job vertex busy: {roles[v['id']]}", busy, "% busy", detail))
    return sorted(rows, key=lambda m: -m.value)


def _roles(client: FlinkClient, job_id: str) -> dict[str, str]:
    nodes = client._get(f"/jobs/{job_id}/plan")["plan"]["nodes"]  # type: ignore[index]
    text = {n["id"]: n["description"] for n in nodes}
    return {
        n["id"]: vertex_role(n["description"], [text[i["id"]] for i in n.get("inputs", [])])
        for n in nodes
    }


def _throughput_rows(
    clicks: ScratchClicks,
    job: dict[str, Any],
    roles: dict[str, str],
    times: tuple[float, ...],
    bh_rate: float,
    bh_detail: str,
    generated: int,
) -> list[Measurement]:
    running_ms, first_ms, done_ms = times
    run_s, rate = (done_ms - running_ms) / 1000, 0.0
    rate = clicks.events / run_s
    want = clicks.expected_rows()
    sinks = {roles[v["id"]]: int(v["metrics"].get("read-records", 0)) for v in job["vertices"]}
    online, offline = (
        sinks.get("online_writes sink (write_row results)", -1),
        sinks.get("offline writer (feature rows)", -1),
    )
    detail = (
        f"{clicks.events:,} valid events ({generated:,} demo click_records, {clicks.malformed} "
        f"malformed + {clicks.late} late dropped; {len(clicks.last_time):,} users), parallelism 1; "
        f"{run_s:.2f}s from all tasks RUNNING to every user's final state in Redis (polled every "
        f"{POLL_S}s); first row in Redis after {(first_ms - running_ms) / 1000:.2f}s, from then "
        f"{clicks.events / ((done_ms - first_ms) / 1000):,.0f} events/s; feature rows: online "
        f"sink {online:,}, offline writer {offline:,}, expected {want:,} (4 per event + "
        f"{clicks.sessions:,} sessions); goal >= 50k events/s"
    )
    ratio = rate / bh_rate * 100
    return [
        Measurement("feature job clicks -> Redis + offline", rate, "events/s", detail),
        Measurement(
            "feature job online writes",
            want / run_s,
            "rows/s",
            "version-guarded Lua upserts (one per feature row) over the same run",
        ),
        Measurement(
            "feature job / blackhole",
            ratio,
            "%",
            "events/s of the job over rows/s of the blackhole on the same topic; goal >= 40%",
        ),
        Measurement(
            "flink SQL kafka->blackhole, same topic",
            bh_rate,
            "rows/s",
            bh_detail,
            "feature job clicks throughput",
        ),
    ]


def _clean(
    settings: StackSettings, client: FlinkClient, job_id: str | None, group: str, progress: Progress
) -> None:
    """Cancel the job, then remove every scratch object; each part best effort, reported."""
    if job_id:
        try:
            client.cancel(job_id)
            client.wait_terminal(job_id, 60)
        except (StackError, OSError) as exc:
            progress(f"      ! cancel of {job_id} failed: {exc}; cancel it in the Flink UI")
    for name, partitions in (
        (CLICK_TOPIC, CLICK_PARTITIONS),
        (CRM_TOPIC, PROFILE_PARTITIONS),
        (CDC_TOPIC, PROFILE_PARTITIONS),
    ):
        with contextlib.suppress(StackError):
            _scratch_topic(settings, name, partitions)
    from connectors.kafka_clients import admin

    with contextlib.suppress(Exception):
        for fut in admin(settings).delete_consumer_groups([group], request_timeout=10).values():
            fut.result(timeout=15)
    deleted = delete_scratch_keys(settings)
    objects = fresh.drop_bucket(settings, BUCKET)
    progress(f"      cleanup: job cancelled, {deleted} scratch keys and {objects} objects deleted")


def delete_scratch_keys(settings: StackSettings) -> int:
    """Delete every feature-view hash of a scratch entity (SCAN per view, id range checked)."""
    r, n = _redis(settings), 0
    with _failing(settings, "redis", "deleting scratch keys"):
        for view in FEATURE_VIEWS:
            keys = [
                k
                for k in r.scan_iter(match=entity_key(view, "5*"), count=1000)
                if in_scratch(k, view)
            ]
            for i in range(0, len(keys), 1000):
                n += r.delete(*keys[i : i + 1000])
    return n


def feature_job_bench(
    settings: StackSettings,
    *,
    events: int,
    crm_burst: int,
    fresh_seconds: float,
    progress: Progress = print,
    timeout_s: float = 300.0,
) -> list[Measurement]:
    """Throughput vs blackhole, profile freshness vs Kafka, Redis bytes (see the module)."""
    from connectors.demo.loader import click_records

    deadline = time.monotonic() + timeout_s
    ctx, group = StackContext(settings), f"_bench-job-{uuid.uuid4().hex[:10]}"
    client = FlinkClient(ctx)
    cfg = JobConfig.model_validate(
        {
            **job_config(settings).model_dump(),
            "clickstream_topic": CLICK_TOPIC,
            "crm_topic": CRM_TOPIC,
            "cdc_customers_topic": CDC_TOPIC,
            "group_id": group,
            "lake_bucket": BUCKET,
        }
    )
    free = int(client._get("/overview").get("slots-available", 0))  # type: ignore[call-overload]
    if free < 1:
        raise StackError(
            "flink-taskmanager",
            "no free task slot for the benchmark's job",
            fix="cancel a finished experiment or raise taskmanager.numberOfTaskSlots",
        )
    start_ms = (int(time.time()) // 60) * 60_000 - 12 * 3_600_000  # keys expire from event time
    clicks = scratch_clicks(
        click_records(SEED, events, start_ms=start_ms),
        user_base=USER_BASE,
        bound_ms=cfg.max_out_of_orderness_ms,
        gap_ms=cfg.session_gap_ms,
    )
    job_id: str | None = None
    try:
        for name, partitions in (
            (CLICK_TOPIC, CLICK_PARTITIONS),
            (CRM_TOPIC, PROFILE_PARTITIONS),
            (CDC_TOPIC, PROFILE_PARTITIONS),
        ):
            _scratch_topic(settings, name, partitions)
        delete_scratch_keys(settings)
        fresh.make_bucket(settings, BUCKET)
        rows = _produce(settings, clicks, cfg)
        progress(
            f"      {clicks.events:,} valid click events (+{rows - clicks.events} flush) in "
            f"{CLICK_TOPIC}; blackhole baseline ..."
        )
        bh_rate, bh_detail = blackhole(settings, client, rows, deadline)
        progress(f"      blackhole {bh_rate:,.0f} rows/s; deploying the feature job ...")
        sub = client.run_python(
            FEATURE_JOB,
            ["--config", cfg.model_dump_json()],
            name="bench-feature-job",
            timeout_s=max(deadline - time.monotonic(), 1.0),
        )
        job_id = sub.job_id
        client.wait_state(job_id, "RUNNING", timeout_s=max(deadline - time.monotonic(), 1.0))
        progress(f"      job {job_id[:8]} RUNNING; waiting for every user's final state ...")
        first_ms, done_ms = _wait_done(settings, client, job_id, clicks, deadline)
        running_ms = _running_since_ms(client, job_id)
        roles = _roles(client, job_id)
        job = _sink_counts(client, job_id, roles, clicks.expected_rows(), deadline)
        out = _throughput_rows(
            clicks, job, roles, (running_ms, first_ms, done_ms), bh_rate, bh_detail, events
        )
        out += vertex_rows(job, roles, done_ms - running_ms)
        progress(f"      {out[0].value:,.0f} events/s; CRM burst + freshness on {CRM_TOPIC} ...")
        profile_ids, fresh_rows = fresh.profile_path(
            settings,
            CRM_TOPIC,
            burst=crm_burst,
            seconds=fresh_seconds,
            deadline=deadline,
            progress=progress,
        )
        out += fresh_rows
        users = sorted(clicks.last_time)
        out += fresh.redis_bytes(
            settings,
            users[:: max(len(users) // 200, 1)],
            profile_ids[:: max(len(profile_ids) // 200, 1)],
        )
        return out
    finally:
        _clean(settings, client, job_id, group, progress)
