"""The feature-job benchmark's Flink side (see feature_job.py): the blackhole baseline on
the same topic, task start times, sink counts and per-vertex busy time from the REST API.

REST vertex metrics come through the JobManager's metric fetcher, so they lag by up to
``metrics.fetcher.update-interval`` (10 s by default): they verify counts and attribute
time after the fact; the clock of the throughput figure is Redis (feature_job.py).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from core.settings import StackSettings
from flink_jobs.config import JobConfig
from streamfeat.bench.baselines import BLACKHOLE_JOB, processed_records
from streamfeat.bench.feature_job_data import OFFLINE_SINK, ONLINE_SINK, vertex_role
from streamfeat.bench.stats import Measurement
from streamfeat.flink_client import FlinkClient
from streamfeat.stack.errors import StackError

Job = dict[str, Any]
MIB = 2**20
METASPACE_NEEDED = 64 * MIB
"""TaskManager metaspace the benchmark's two jobs may take for good: on this stack a
cancelled PyFlink job's classes are not unloaded (measured Nov 2026: +46 MiB for the first
feature job on a fresh TaskManager, +30 MiB per later run of this benchmark), and a metaspace
OutOfMemoryError kills the TaskManager with every job on it."""
_USED, _MAX = "Status.JVM.Memory.Metaspace.Used", "Status.JVM.Memory.Metaspace.Max"


def metaspace(client: FlinkClient) -> tuple[int, int]:
    """(used, max) JVM metaspace bytes of the TaskManager with the least room left."""
    found: list[tuple[int, int]] = []
    for tm in client._get("/taskmanagers").get("taskmanagers") or []:  # type: ignore[attr-defined]
        got: Any = client._get(f"/taskmanagers/{tm['id']}/metrics?get={_USED},{_MAX}")
        values = {m["id"]: int(float(m["value"])) for m in got}
        found.append((values.get(_USED, 0), values.get(_MAX, 0)))
    return min(found, key=lambda f: f[1] - f[0], default=(0, 0))


def check_room(client: FlinkClient) -> str:
    """Refuse to deploy when a free slot or TaskManager metaspace is missing; else a note of
    the metaspace in use."""
    if int(client._get("/overview").get("slots-available", 0)) < 1:  # type: ignore[call-overload]
        raise StackError("flink-taskmanager", "no free task slot for the benchmark's jobs")
    used, top = metaspace(client)
    if top and top - used < METASPACE_NEEDED:
        raise StackError(
            "flink-taskmanager",
            f"JVM metaspace {used / MIB:.0f} of {top / MIB:.0f} MiB in use; the benchmark's jobs "
            f"keep ~{METASPACE_NEEDED / MIB:.0f} MiB more and a metaspace OutOfMemoryError kills "
            "the TaskManager and every job on it",
            fix="when the running jobs can take a restart (they resume from their checkpoints): "
            "`streamfeat down flink-taskmanager && streamfeat up flink-taskmanager`; or raise "
            "taskmanager.memory.jvm-metaspace.size",
        )
    return f"TaskManager metaspace {used / MIB:.0f} of {top / MIB:.0f} MiB"


def running_since_ms(client: FlinkClient, job_id: str) -> int:
    """When the first of the job's subtasks switched to RUNNING (JobManager clock, ms): a
    source reads from then on, so a rate timed from the last one (at parallelism > 1 a
    subtask can start seconds after the others) would leave out work already done."""
    starts = []
    for v in client.job(job_id).get("vertices") or []:  # type: ignore[attr-defined]
        times: Job = client._get(f"/jobs/{job_id}/vertices/{v['id']}/subtasktimes")
        for sub in times.get("subtasks") or []:
            if (t := int(sub["timestamps"].get("RUNNING", 0))) > 0:
                starts.append(t)
    if not starts:
        raise StackError(f"job {job_id}", "REST reports no RUNNING time for its subtasks")
    return min(starts)


def _run_to_finish(
    client: FlinkClient, script: Path, args: list[str], name: str, deadline: float
) -> tuple[Job, float]:
    """Run a bounded job to its end (ended by FlinkClient.end on timeout); its REST answer
    and the seconds from its first task RUNNING to FINISHED."""
    left = max(deadline - time.monotonic(), 1.0)
    sub = client.run_python(script, args, name=name, timeout_s=left)
    try:
        state = client.wait_terminal(sub.job_id, max(deadline - time.monotonic(), 1.0))
    except StackError:
        with contextlib.suppress(StackError, OSError):
            client.end(sub.job_id)
        raise
    job: Job = client.job(sub.job_id)
    if state != "FINISHED":
        raise StackError(f"job {name}", f"ended {state}", log=sub.log)
    return job, (int(job["end-time"]) - running_since_ms(client, sub.job_id)) / 1000


BLACKHOLE_READS = 1_000_000
"""Records the blackhole baseline reads at least: the topic is read as many times as that
takes (bench_blackhole.py ``--repeat``). Read once, 60,000 demo records took 0.7-1.2 s
from RUNNING to FINISHED, mostly its sources' start-up: 51-82k rows/s, where reading them 16
times gave 309-437k rows/s — the sustained rate the job is compared with."""


def _read_repeatedly(
    settings: StackSettings, client: FlinkClient, topic: str, rows: int, extra: list[str],
    name: str, deadline: float,
) -> tuple[Job, float, int]:  # fmt: skip
    """flink_jobs/bench_blackhole.py over ``topic`` read ``repeat`` times
    (:data:`BLACKHOLE_READS`), to its end: its REST answer, the seconds from its tasks
    RUNNING to FINISHED and ``repeat``; the count it read is checked against
    ``rows * repeat``."""
    repeat = max(1, -(-BLACKHOLE_READS // rows))
    args = ["--bootstrap", settings.kafka_bootstrap, "--topic", topic, "--rows", str(rows)]
    args += ["--repeat", str(repeat), *extra]
    job, seconds = _run_to_finish(client, BLACKHOLE_JOB, args, name, deadline)
    counted, note = processed_records(job)
    if counted != rows * repeat:
        raise StackError(f"job {name}", f"read {counted} of {rows * repeat} ({note})")
    return job, seconds, repeat


def blackhole(
    settings: StackSettings, client: FlinkClient, topic: str, rows: int, deadline: float
) -> tuple[float, str]:
    """Sustained rows/s of Flink SQL Kafka JSON -> blackhole over ``topic``
    (:func:`_read_repeatedly`) and a detail line."""
    job, seconds, repeat = _read_repeatedly(
        settings, client, topic, rows, [], "bench-job-blackhole", deadline
    )
    detail = (
        f"{rows:,} records read {repeat} times by {repeat} sources ({rows * repeat:,}) in "
        f"{seconds:.2f}s from its first task RUNNING to FINISHED "
        f"({int(job['duration']) / 1000:.2f}s JobManager duration): JSON decode, no Python"
    )
    return rows * repeat / seconds, detail


GATE_ROWS = (
    ("raw", "clicks read as raw bytes, no parse"),
    ("json_value", "clicks gate, former design (JSON_VALUE per field, bounds in SQL)"),
    ("strict", "clicks gate, strict Java parse (the job's)"),
)


def gate_rates(
    settings: StackSettings, client: FlinkClient, topic: str, rows: int, jars: tuple[str, ...],
    deadline: float,
) -> list[Measurement]:  # fmt: skip
    """The clickstream gate alone (bench_blackhole.py ``--gate``) on ``topic``, read as often
    as the blackhole baseline: raw bytes, the former JSON_VALUE gate and the job's strict
    Java parse, rows/s each, and what a parse costs per click over reading the bytes."""
    rates: dict[str, float] = {}
    out = []
    for gate, label in GATE_ROWS:
        extra = ["--gate", gate, "--jars", ";".join(jars)]
        _, seconds, repeat = _read_repeatedly(
            settings, client, topic, rows, extra, f"bench-gate-{gate}", deadline
        )
        rates[gate] = rows * repeat / seconds
        detail = (
            f"{rows:,} records read {repeat} times ({rows * repeat:,}) in {seconds:.2f}s from "
            "its first task RUNNING to FINISHED; raw Kafka bytes -> gate columns -> blackhole"
        )
        out.append(Measurement(label, rates[gate], "rows/s", detail, _gate_baseline(gate)))
    for gate in ("json_value", "strict"):
        cost = max(1e6 / rates[gate] - 1e6 / rates["raw"], 0.0)
        out.append(
            Measurement(
                f"parse cost per click, {'former' if gate == 'json_value' else 'strict Java'}",
                cost,
                "µs",
                "1/gate rate - 1/raw-bytes rate, same run and records",
            )
        )
    return out


def _gate_baseline(gate: str) -> str | None:
    return None if gate == "strict" else "clicks gate, strict Java parse (the job's)"


def roles(client: FlinkClient, job_id: str) -> dict[str, str]:
    """Vertex id -> short label (feature_job_data.vertex_role) from the job's plan."""
    nodes = client._get(f"/jobs/{job_id}/plan")["plan"]["nodes"]  # type: ignore[index]
    text = {n["id"]: n["description"] for n in nodes}
    return {
        n["id"]: vertex_role(n["description"], [text[i["id"]] for i in n.get("inputs", [])])
        for n in nodes
    }


def sink_counts(job: Job, labels: dict[str, str]) -> dict[str, int]:
    """read-records of the online sink and the feature rows' offline writer (-1: absent)."""
    got = {labels[v["id"]]: int(v["metrics"].get("read-records", 0)) for v in job["vertices"]}
    return {name: got.get(name, -1) for name in (ONLINE_SINK, OFFLINE_SINK)}


def settled(
    client: FlinkClient, job_id: str, labels: dict[str, str], want: int, deadline: float
) -> Job:
    """The job's REST answer once both sinks report ``want`` rows, or after 25 s (metrics
    lag), whichever is first."""
    end = min(deadline, time.monotonic() + 25)
    while True:
        job: Job = client.job(job_id)
        if min(sink_counts(job, labels).values()) >= want or time.monotonic() > end:
            return job
        time.sleep(1)


def vertex_rows(job: Job, labels: dict[str, str], run_ms: float) -> list[Measurement]:
    """Busy share of each vertex over the run, per subtask (cumulative busy ms summed over
    its subtasks / (run ms * parallelism): before the run the job had nothing to do, after
    it only checkpoints), busiest first; vertices busy and backpressured under 0.5% of the
    run are left out."""
    rows = []
    for v in job["vertices"]:
        m = v["metrics"]
        span = run_ms * max(int(v.get("parallelism", 1)), 1)
        busy = float(m.get("accumulated-busy-time", 0)) / span * 100
        bp = float(m.get("accumulated-backpressured-time", 0)) / span * 100
        if busy + bp < 0.5:
            continue
        detail = (
            f"backpressured {bp:.0f}%; records in {int(m.get('read-records', 0)):,}, out "
            f"{int(m.get('write-records', 0)):,}; vertex '{v['name']}'"
        )
        rows.append(Measurement(f"job vertex busy: {labels[v['id']]}", busy, "% busy", detail))
    return sorted(rows, key=lambda m: -m.value)


def sql_plan_rate(
    client: FlinkClient, script: Path, cfg: JobConfig, events: int, rows: int, deadline: float
) -> Measurement:
    """The feature job's own SQL plan with its online writes sent to a blackhole instead of
    the Redis sink, bounded to the topics' current end: events/s from its first task
    RUNNING to FINISHED, start-up included (nothing of it is observable before it ends).
    Beside the job's own start-up-included rate, the gap is what the online writes cost."""
    args = ["--config", cfg.model_dump_json()]
    job, seconds = _run_to_finish(client, script, args, "bench-job-sql-only", deadline)
    online = sink_counts(job, roles(client, str(job["jid"])))[ONLINE_SINK]
    if online < rows:  # more: at the end of input the flush events' own rows are emitted too
        raise StackError("job bench-job-sql-only", f"wrote {online} of {rows} feature rows")
    return Measurement(
        "feature job SQL plan alone (online writes -> blackhole)",
        events / seconds,
        "events/s",
        f"the same job, same topic and events, bounded run: {rows:,} feature rows to a "
        f"blackhole instead of Redis (offline Parquet and DLQ as usual) in {seconds:.2f}s from "
        "its first task RUNNING to FINISHED, start-up and a final 1 s checkpoint included "
        "(compare with the job's rate start-up included)",
        "feature job clicks throughput",
    )
