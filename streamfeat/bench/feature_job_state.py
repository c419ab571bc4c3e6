"""The feature job's keyed state and heap on a large input, per state backend.

For each backend (``hashmap``: state objects on the TaskManager's heap, full snapshots;
``rocksdb``: serialized on local disk within managed memory, incremental checkpoints) the
job's own copy, configured as deployed (checkpoints every 10 s), reads the same scratch topic
from its start: N valid clicks of a fixed population of users, event times spread evenly
over the last day (in order on every partition, so nothing is late). Every second the
benchmark reads the TaskManager's heap and managed memory in use and the latest completed
checkpoint; the events a checkpoint covers are the offsets the job's consumer groups
committed with it (the Kafka source commits at a completed checkpoint, whose barrier has
passed every operator, so its state holds those events).

Figures, per backend: events/s from the first task RUNNING to the checkpoint that covers
every event (start-up and up to one checkpoint interval included: a conservative rate), and
at each mark (e.g. 1M and 10M events) the first checkpoint covering it: its full state size
per user seen by then, what it uploaded and how long it took, and the heap's peak until
then. The second figure is the point: per-user state must not grow with the events.

Caveat stated in every detail: the online tiles' aggregation state expires by processing
time (JobConfig.tile_state_grace_ms): a replay of a day in minutes keeps every tile of the
day, which a job at the live rate would have dropped.

Scratch data: topic :data:`TOPIC` (12 partitions, emptied before and after), the bucket
feature_job.BUCKET, Redis keys of scratch users, the job's consumer groups; all removed
after. Failures are StackErrors; nothing is asserted.
"""

from __future__ import annotations

import bisect
import contextlib
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.settings import StackSettings
from flink_jobs import sql
from flink_jobs.config import JobConfig
from streamfeat.bench import feature_job_flink as flink
from streamfeat.bench import feature_job_freshness as fresh
from streamfeat.bench.feature_job import BUCKET, CDC_TOPIC, CRM_TOPIC, ORDERS_TOPIC, TOPICS
from streamfeat.bench.feature_job_data import USER_BASE
from streamfeat.bench.feature_job_redis import delete_scratch_keys
from streamfeat.bench.scratch import failing, produce_queued, scratch_topic
from streamfeat.bench.stats import Measurement
from streamfeat.flink_client import TERMINAL_STATES, FlinkClient
from streamfeat.job import FEATURE_JOB, job_config
from streamfeat.stack.base import StackContext
from streamfeat.stack.errors import StackError

TOPIC, PARTITIONS = "_bench-state-clicks", 12
BACKENDS = ("hashmap", "rocksdb")
DAY_MS = 86_400_000
HEAP_USED, HEAP_MAX = "Status.JVM.Memory.Heap.Used", "Status.JVM.Memory.Heap.Max"
MANAGED_USED = "Status.Flink.Memory.Managed.Used"
MIB = 1 << 20
SAMPLE_S = 1.0
HEAP_FULL, HEAP_FULL_S = 0.95, 60.0
"""A heap this full at every sample for this long: the backend is GC-bound (a heap state
backend past its heap crawls long before it fails); the run ends there as failed."""
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Population:
    """What was produced: ``first_seen[i]`` is the index of the first event of the i-th
    distinct user (ascending), so the users in the first n events are a bisection."""

    events: int
    first_seen: list[int]

    def users_in(self, n: int) -> int:
        return bisect.bisect_left(self.first_seen, n)


def click_stream(events: int, users: int, *, end_ms: int, seed: int) -> Any:
    """(key, value, user) of ``events`` valid clicks of ``users`` users (ids after
    USER_BASE), uniformly at random, event times evenly spaced over the day before
    ``end_ms``. A generator: 10M events never sit in memory at once."""
    import orjson

    rng, start = random.Random(seed), end_ms - DAY_MS
    kinds = ("page_view", "page_view", "page_view", "search", "add_to_cart", "purchase")
    for i in range(events):
        user = USER_BASE + 1 + rng.randrange(users)
        kind = kinds[rng.randrange(len(kinds))]
        value = orjson.dumps(
            {
                "event_id": f"state-{seed}-{i}",
                "user_id": user,
                "event_type": kind,
                "page": f"/p/{i % 997}",
                "event_time": start + i * DAY_MS // events,
                "properties": {},
            }
        )
        yield b"%d" % user, value, user


def produce(settings: StackSettings, events: int, users: int, say: Progress) -> Population:
    """Every click into :data:`TOPIC` (emptied first), with progress every million."""
    from connectors.kafka_clients import producer

    scratch_topic(settings, TOPIC, PARTITIONS)
    p, failed, seen = producer(settings, **{"linger.ms": 50}), [], set[int]()
    first_seen: list[int] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    end_ms = (int(time.time()) // 60) * 60_000
    with failing(settings, "kafka", f"producing to {TOPIC}"):
        for i, (key, value, user) in enumerate(click_stream(events, users, end_ms=end_ms, seed=7)):
            if user not in seen:
                seen.add(user)
                first_seen.append(i)
            produce_queued(p, TOPIC, value, key, on_delivery)
            if (i + 1) % 1_000_000 == 0:
                say(f"{i + 1:,} clicks produced")
        left = p.flush(120)
    if left or failed:
        raise StackError("kafka", f"{left} undelivered, {len(failed)} failed: {failed[:1]}")
    return Population(events, first_seen)


def covered(settings: StackSettings, groups: Sequence[str], starts: Sequence[int]) -> int:
    """Events of :data:`TOPIC` every one of ``groups`` has committed (``starts``: each
    partition's first offset): the least over the job's click sources."""
    from confluent_kafka import TopicPartition

    from connectors.kafka_clients import consumer

    least = None
    for group in groups:
        c = consumer(settings, group=group)
        try:
            done = c.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10)
        finally:
            c.close()
        n = sum(max(tp.offset - s, 0) for tp, s in zip(done, starts, strict=True))
        least = n if least is None else min(least, n)
    return least or 0


@dataclass
class Run:
    """Samples of one backend's run."""

    backend: str
    marks: list[int]
    at_mark: dict[int, dict[str, Any]] = field(default_factory=dict)
    heap_peak: int = 0
    heap_max: int = 0
    managed_peak: int = 0
    done_ms: float = 0.0
    covered: int = 0
    full_since: float | None = None
    failed: str = ""
    """Why the job left RUNNING before the last mark (a backend that cannot hold the state
    is a result, not an error of the benchmark)."""


def _sample(client: FlinkClient, run: Run) -> None:
    full = False
    for values in client.taskmanager_metrics(HEAP_USED, HEAP_MAX, MANAGED_USED).values():
        used, top = values.get(HEAP_USED, 0), values.get(HEAP_MAX, 0)
        run.heap_peak = max(run.heap_peak, used)
        run.heap_max = max(run.heap_max, top)
        run.managed_peak = max(run.managed_peak, values.get(MANAGED_USED, 0))
        full = full or (top > 0 and used >= HEAP_FULL * top)
    now = time.monotonic()
    run.full_since = (run.full_since or now) if full else None
    if run.full_since is not None and now - run.full_since >= HEAP_FULL_S:
        run.failed = (
            f"heap >= {HEAP_FULL:.0%} full at every sample for {HEAP_FULL_S:g} s (GC-bound; "
            "stopped there)"
        )


def watch(
    settings: StackSettings,
    client: FlinkClient,
    job_id: str,
    run: Run,
    groups: Sequence[str],
    starts: Sequence[int],
    deadline: float,
    say: Progress,
) -> None:
    """Sample until a checkpoint covers the last mark or the job leaves RUNNING."""
    seen_id, last_said = None, 0.0
    while run.marks[-1] not in run.at_mark:
        if time.monotonic() > deadline:
            raise StackError(
                f"job {job_id}",
                f"no checkpoint covered {run.marks[-1]:,} events by the deadline",
                log=StackContext(settings).log_path("flink-taskmanager"),
            )
        state = str(client.job(job_id).get("state"))
        if state != "RUNNING" or client.restarts(job_id):
            run.failed = f"{state}, {client.restarts(job_id)} restarts: {client.exceptions(job_id)}"
            say(f"{run.backend}: the job failed after {run.covered:,} events: {run.failed}")
            return
        _sample(client, run)
        if run.failed:
            say(f"{run.backend}: after {run.covered:,} events in a checkpoint: {run.failed}")
            return
        cp = client.latest_checkpoint(job_id)
        if cp is not None and cp.get("id") != seen_id:
            seen_id = cp.get("id")
            n = run.covered = covered(settings, groups, starts)
            for mark in run.marks:
                if n >= mark and mark not in run.at_mark:
                    run.at_mark[mark] = {**cp, "covered": n, "heap_peak": run.heap_peak}
                    run.done_ms = float(cp.get("latest_ack_timestamp") or time.time() * 1000)
            if time.monotonic() - last_said > 30:
                say(
                    f"{run.backend}: checkpoint {seen_id} covers {n:,} events, state "
                    f"{int(cp.get('state_size') or 0) / MIB:,.0f} MiB, heap peak "
                    f"{run.heap_peak / MIB:,.0f} MiB"
                )
                last_said = time.monotonic()
        time.sleep(SAMPLE_S)


def rows(run: Run, population: Population, running_ms: float, cfg: JobConfig) -> list[Measurement]:
    """The run's figures (see the module)."""
    took_s = (run.done_ms - running_ms) / 1000
    caveat = (
        "online tiles' state expires by processing time (tile_state_grace_ms "
        f"{cfg.tile_state_grace_ms // 60_000} min): this replay of a day keeps every tile of it"
    )
    out = (
        []
        if run.failed
        else [
            Measurement(
                f"state bench {run.backend}: job throughput",
                population.events / took_s,
                "events/s",
                f"{population.events:,} clicks, {population.users_in(population.events):,} users, "
                f"checkpoints every {cfg.checkpoint_interval_ms // 1000} s, parallelism "
                f"{cfg.parallelism}: {took_s:.1f} s from the first task RUNNING to the checkpoint "
                "covering every event (start-up and up to one interval included)",
            )
        ]
    )
    for mark in (m for m in run.marks if m in run.at_mark):
        cp = run.at_mark[mark]
        users = population.users_in(int(cp["covered"]))
        size = int(cp.get("state_size") or 0)
        out.append(
            Measurement(
                f"state bench {run.backend}: state per user after {mark:,} events",
                size / max(users, 1),
                "B",
                f"checkpoint {cp['id']} covering {cp['covered']:,} events of {users:,} users: "
                f"full state {size / MIB:,.1f} MiB, uploaded "
                f"{int(cp.get('checkpointed_size') or 0) / MIB:,.1f} MiB in "
                f"{int(cp.get('end_to_end_duration') or 0):,} ms; TaskManager heap peak until "
                f"then {int(cp['heap_peak']) / MIB:,.0f} of {run.heap_max / MIB:,.0f} MiB; "
                f"{caveat}",
            )
        )
    if run.failed:
        out.append(
            Measurement(
                f"state bench {run.backend}: events in its last checkpoint before it failed",
                run.covered,
                "events",
                f"{run.failed}; {caveat}",
            )
        )
    out.append(
        Measurement(
            f"state bench {run.backend}: TaskManager heap peak",
            run.heap_peak / MIB,
            "MiB",
            f"of {run.heap_max / MIB:,.0f} MiB (sampled every {SAMPLE_S:g} s, garbage "
            f"included); managed memory in use at most {run.managed_peak / MIB:,.0f} MiB",
        )
    )
    return out


def _clean(settings: StackSettings, client: FlinkClient, job_id: str | None, say: Progress) -> None:
    if job_id:
        try:
            if client.job(job_id).get("state") not in TERMINAL_STATES:
                client.end(job_id)
        except (StackError, OSError) as exc:
            say(f"! cancelling {job_id} failed: {exc}; cancel it in the Flink UI")
    keys = delete_scratch_keys(settings)
    deleted, left = fresh.drop_bucket(settings, BUCKET)
    say(f"cleanup: {keys:,} scratch keys, {deleted} scratch objects deleted ({left} left)")


def _groups(cfg: JobConfig) -> list[str]:
    return [cfg.group_id + c.suffix for c in sql.click_classes(cfg)]


def state_bench(
    settings: StackSettings,
    *,
    events: int,
    users: int,
    marks: Sequence[int],
    backends: Sequence[str] = BACKENDS,
    progress: Progress = print,
    timeout_s: float = 3600.0,
) -> list[Measurement]:
    """Each backend in turn on the same topic (see the module)."""
    from connectors.kafka_clients import admin, consumer

    t0 = time.monotonic()

    def say(line: str) -> None:
        progress(f"      [{time.monotonic() - t0:6.1f}s] {line}")

    client, out = FlinkClient(StackContext(settings)), []
    say(flink.check_room(client) + f" before; producing {events:,} clicks of {users:,} users ...")
    population = produce(settings, events, users, say)
    c = consumer(settings, group=f"_bench-state-{uuid.uuid4().hex[:6]}")
    try:
        from confluent_kafka import TopicPartition

        starts = [
            c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[0]
            for p in range(PARTITIONS)
        ]
    finally:
        c.close()
    groups: list[str] = []
    for name, partitions in TOPICS[1:]:  # the other sources, empty: their branches idle
        scratch_topic(settings, name, partitions)
    try:
        for backend in backends:
            deadline = time.monotonic() + timeout_s
            delete_scratch_keys(settings)
            fresh.drop_bucket(settings, BUCKET)
            fresh.make_bucket(settings, BUCKET)
            cfg = job_config(
                settings,
                clickstream_topic=TOPIC,
                crm_topic=CRM_TOPIC,
                cdc_customers_topic=CDC_TOPIC,
                cdc_orders_topic=ORDERS_TOPIC,
                group_id=f"_bench-state-{backend}-{uuid.uuid4().hex[:8]}",
                lake_bucket=BUCKET,
                state_backend=backend,
            )
            mine = _groups(cfg)
            groups += mine
            job_id = None
            try:
                job_id = client.run_python(
                    FEATURE_JOB,
                    ["--config", cfg.model_dump_json()],
                    name=f"bench-state-{backend}",
                    timeout_s=600,
                ).job_id
                client.wait_state(job_id, "RUNNING", timeout_s=600)
                say(f"{backend}: job {job_id[:8]} RUNNING; sampling until a checkpoint has all")
                run = Run(backend, sorted(set(marks) | {events}))
                watch(settings, client, job_id, run, mine, starts, deadline, say)
                got = rows(run, population, flink.running_since_ms(client, job_id), cfg)
                say(f"{backend}: {got[0].name} {got[0].value:,.0f} {got[0].unit}")
                out += got
            finally:
                _clean(settings, client, job_id, say)
    finally:
        with contextlib.suppress(StackError):
            scratch_topic(settings, TOPIC, PARTITIONS)
        kafka = admin(settings)
        for name, fut in kafka.delete_consumer_groups(groups, request_timeout=10).items():
            try:
                fut.result(timeout=15)
            except Exception as exc:  # committed offsets of a scratch group: harmless
                if "GROUP_ID_NOT_FOUND" not in str(exc):
                    say(f"! consumer group {name} not deleted: {exc}")
    return out
