"""Run a benchmark suite in order and write the report (``latest.md`` + ``latest.json``).

Suites: ``baselines`` (the raw parts), ``ingestion`` (producer, CRM bridge, Debezium lag,
each with its own same-run baseline), ``job`` (the feature job deployed on scratch topics:
throughput vs a Flink SQL blackhole on the same topic, customer_profile freshness vs a
Kafka round trip, Redis bytes per entity vs a plain hash), ``api`` (feature API latency at
fixed rates, open loop from a separate process, beside a hello-JSON route of the same server
and raw redis-py HGETALL) and ``all`` (all four; the bridge then shares the baselines' Kafka
produce figure instead of measuring its own).

The machine is shared and noisy: the report records when it ran, how many CPUs the run
could use and the load average at start and end (as measurement rows too, so they travel
with the figures), and every platform figure is read beside baselines of the same run.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from core.settings import StackSettings
from streamfeat.bench import api, baselines, feature_job, feature_job_state, ingestion
from streamfeat.bench.stats import Measurement, format_value, render_table, to_json

Progress = Callable[[str], None]
Step = tuple[str, Callable[[], list[Measurement]]]
SUITES = ("baselines", "ingestion", "job", "api", "all", "state", "serving")
"""``state`` (~40 min) is not part of ``all``."""

HOST_AT_START = "host load average at start"
HOST_AT_END = "host load average at end"
_SNAPSHOT = re.compile(
    r"1/5/15 min (?P<l1>[\d.]+) / (?P<l5>[\d.]+) / (?P<l15>[\d.]+); "
    r"nproc (?P<nproc>\d+); at (?P<at>\S+)"
)


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does; ``quick`` trades precision for time."""

    redis_calls: int
    kafka_messages: int
    flink_rows: int
    click_events: int
    bridge_rows: int
    cdc_seconds: float
    job_events: int
    """Demo click events through the feature job: enough that its start-up (5-12 s from its
    first task RUNNING to its first output; more at a higher parallelism) is a small part of
    a run timed with it included, at the 10-20k events/s it reaches on 2 CPUs."""
    job_crm_burst: int
    job_fresh_seconds: float
    state_events: int = 10_000_000
    state_marks: tuple[int, ...] = (1_000_000,)
    """The state suite reports state per user at each mark and at ``state_events``."""
    state_users: int = 100_000
    cdc_rate: float = 20.0
    api_rates: tuple[float, ...] = (25, 100, 250, 500)
    """Requests/s of each feature API run (issue 5's goal is stated at 500/s)."""
    api_seconds: float = 10.0
    serving_rates: tuple[float, ...] = (50, 200, 400)


FULL = Sizes(
    redis_calls=5000,
    kafka_messages=1_000_000,
    flink_rows=4_000_000,
    click_events=300_000,
    bridge_rows=1_000_000,
    cdc_seconds=20,
    job_events=600_000,
    job_crm_burst=5_000,
    job_fresh_seconds=15,
)
QUICK = Sizes(
    redis_calls=2000,
    kafka_messages=200_000,
    flink_rows=500_000,
    click_events=50_000,
    bridge_rows=200_000,
    cdc_seconds=8,
    job_events=10_000,
    job_crm_burst=1_500,
    job_fresh_seconds=6,
    api_rates=(25, 100, 500),
    api_seconds=3.0,
    state_events=200_000,
    state_marks=(100_000,),
    state_users=10_000,
)


@dataclass(frozen=True)
class HostSnapshot:
    """When, on how many CPUs, under what load (1/5/15-minute averages)."""

    at: datetime
    nproc: int
    loadavg: tuple[float, float, float]

    @classmethod
    def capture(cls) -> HostSnapshot:
        try:
            nproc = len(os.sched_getaffinity(0))  # what `nproc` prints
        except AttributeError:  # not on Linux
            nproc = os.cpu_count() or 1
        return cls(datetime.now(UTC), nproc, os.getloadavg())

    def describe(self) -> str:
        l1, l5, l15 = self.loadavg
        return (
            f"1/5/15 min {l1:.2f} / {l5:.2f} / {l15:.2f}; nproc {self.nproc}; "
            f"at {self.at.isoformat(timespec='seconds')}"
        )

    def as_measurement(self, name: str) -> Measurement:
        return Measurement(name, self.loadavg[0], "load", self.describe())

    @classmethod
    def from_measurement(cls, m: Measurement) -> HostSnapshot | None:
        """The snapshot a row made by :meth:`as_measurement` carries; None if it is not one."""
        match = _SNAPSHOT.fullmatch(m.detail)
        if match is None:
            return None
        at = datetime.fromisoformat(match["at"])
        if at.tzinfo is None:
            return None
        load = (float(match["l1"]), float(match["l5"]), float(match["l15"]))
        return cls(at.astimezone(UTC), int(match["nproc"]), load)


def _baseline_steps(settings: StackSettings, sizes: Sizes) -> list[Step]:
    """Redis PING, Redis HGETALL, Kafka produce, Kafka consume (of what was produced), Flink
    SQL Kafka->blackhole."""
    return [
        (
            f"redis PING x{sizes.redis_calls}",
            lambda: baselines.redis_round_trip(settings, n=sizes.redis_calls),
        ),
        (
            f"redis HGETALL x{sizes.redis_calls}",
            lambda: baselines.redis_hgetall(settings, n=sizes.redis_calls),
        ),
        (
            f"kafka produce {sizes.kafka_messages:,} msgs",
            lambda: baselines.kafka_produce(settings, messages=sizes.kafka_messages),
        ),
        (
            "kafka consume",
            lambda: baselines.kafka_consume(settings, expected=sizes.kafka_messages),
        ),
        (
            f"flink SQL blackhole {sizes.flink_rows:,} rows",
            lambda: baselines.flink_sql_blackhole(settings, rows=sizes.flink_rows),
        ),
    ]


def _ingestion_steps(settings: StackSettings, sizes: Sizes, *, with_baselines: bool) -> list[Step]:
    """Clickstream producer (+ bare loop), CRM bridge (+ S3 GET; + Kafka produce of as many
    records unless the baselines ran), Debezium lag, Kafka round trip at the same rate."""
    rate, secs = sizes.cdc_rate, sizes.cdc_seconds
    steps: list[Step] = [
        (
            f"clickstream producer vs bare loop, {sizes.click_events:,} events",
            lambda: ingestion.clickstream_producer(settings, events=sizes.click_events),
        ),
        (
            f"CRM bridge {sizes.bridge_rows:,} CSV rows + S3 GET",
            lambda: ingestion.crm_bridge(settings, rows=sizes.bridge_rows),
        ),
    ]
    if not with_baselines:
        steps.append(
            (
                f"kafka produce {sizes.bridge_rows:,} msgs (CRM bridge baseline)",
                lambda: baselines.kafka_produce(settings, messages=sizes.bridge_rows),
            )
        )
    steps += [
        (
            f"debezium lag, {rate:g} updates/s for {secs:g}s",
            lambda: ingestion.debezium_lag(settings, rate=rate, seconds=secs),
        ),
        (
            f"kafka produce->consume round trip, {rate:g}/s for {secs:g}s",
            lambda: ingestion.kafka_round_trip(settings, rate=rate, seconds=secs),
        ),
    ]
    return steps


def _job_steps(
    settings: StackSettings,
    sizes: Sizes,
    progress: Progress,
    parallelism: int = 1,
    state_backend: str = "rocksdb",
) -> list[Step]:
    """The feature job's own copy on scratch topics: throughput vs blackhole, profile
    freshness vs Kafka round trip, Redis bytes per entity (one step: one deployment)."""
    return [
        (
            f"feature job: {sizes.job_events:,} demo clicks, CRM burst {sizes.job_crm_burst:,} "
            f"+ freshness {sizes.job_fresh_seconds:g}s, Redis bytes",
            lambda: feature_job.feature_job_bench(
                settings,
                events=sizes.job_events,
                crm_burst=sizes.job_crm_burst,
                fresh_seconds=sizes.job_fresh_seconds,
                progress=progress,
                parallelism=parallelism,
                state_backend=state_backend,
            ),
        )
    ]


def _state_steps(
    settings: StackSettings, sizes: Sizes, progress: Progress, backends: tuple[str, ...]
) -> list[Step]:
    """The feature job's keyed state and heap per state backend on one large input."""
    unknown = set(backends) - set(feature_job_state.BACKENDS)
    if unknown or not backends:
        raise ValueError(f"state backends must be among {feature_job_state.BACKENDS}")
    return [
        (
            f"feature job state: {sizes.state_events:,} clicks of {sizes.state_users:,} users, "
            f"backends {' and '.join(backends)}",
            lambda: feature_job_state.state_bench(
                settings,
                events=sizes.state_events,
                users=sizes.state_users,
                marks=sizes.state_marks,
                backends=backends,
                progress=progress,
            ),
        )
    ]


def _api_steps(settings: StackSettings, sizes: Sizes, progress: Progress) -> list[Step]:
    """The feature API on a scratch port: hello JSON, 1 entity, batch of 100, per rate."""
    rates = "/".join(f"{r:g}" for r in sizes.api_rates)
    return [
        (
            f"feature API latency at {rates} req/s, {sizes.api_seconds:g}s each",
            lambda: api.api_latency(
                settings,
                rates=sizes.api_rates,
                seconds=sizes.api_seconds,
                redis_calls=sizes.redis_calls,
                progress=progress,
            ),
        )
    ]


def _serving_steps(settings: StackSettings, sizes: Sizes, progress: Progress) -> list[Step]:
    """Prediction latency beside the feature lookup and the predictor's own hello route."""
    from streamfeat.bench import serving

    return [
        (
            f"prediction latency at {'/'.join(f'{r:g}' for r in sizes.serving_rates)} req/s, "
            f"{sizes.api_seconds:g}s each",
            lambda: serving.serving_latency(
                settings, rates=sizes.serving_rates, seconds=sizes.api_seconds, progress=progress
            ),
        )
    ]


def run_suite(
    settings: StackSettings,
    suite: str = "all",
    *,
    quick: bool = False,
    progress: Progress = print,
    job_parallelism: int = 1,
    job_state_backend: str = "rocksdb",
    state_size: tuple[int, int] = (0, 0),
    state_backends: tuple[str, ...] = feature_job_state.BACKENDS,
) -> list[Measurement]:
    """Measure ``suite`` (one of :data:`SUITES`) on the running stack, step by step; raises
    StackError on failure. The first and last rows are host snapshots. ``state_size``:
    (events, users) of the state suite, each 0 for the suite's own."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
    sizes = QUICK if quick else FULL
    events, users = state_size
    if events or users:
        events, users = events or sizes.state_events, users or sizes.state_users
        marks = tuple(m for m in sizes.state_marks if m < events) or (events // 2,)
        sizes = replace(sizes, state_events=events, state_users=users, state_marks=marks)
    steps = _baseline_steps(settings, sizes) if suite in ("baselines", "all") else []
    if suite in ("ingestion", "all"):
        steps += _ingestion_steps(settings, sizes, with_baselines=suite == "all")
    if suite in ("job", "all"):
        steps += _job_steps(settings, sizes, progress, job_parallelism, job_state_backend)
    if suite in ("api", "all"):
        steps += _api_steps(settings, sizes, progress)
    if suite == "state":
        steps += _state_steps(settings, sizes, progress, state_backends)
    if suite == "serving":
        steps += _serving_steps(settings, sizes, progress)
    start = HostSnapshot.capture()
    progress(
        f"bench {suite} ({'quick' if quick else 'full'}) on {start.nproc} CPUs, "
        f"load {start.loadavg[0]:.2f} / {start.loadavg[1]:.2f} / {start.loadavg[2]:.2f}"
    )
    out = [start.as_measurement(HOST_AT_START)]
    t_run = time.monotonic()
    for i, (label, step) in enumerate(steps, 1):
        progress(f"[{i}/{len(steps)}] {label} ...")
        t0 = time.monotonic()
        got = step()
        took = time.monotonic() - t0
        summary = ", ".join(f"{m.name} {format_value(m.value)} {m.unit}" for m in got)
        progress(f"      {summary}  ({took:.1f}s)")
        out.extend(got)
    out.append(HostSnapshot.capture().as_measurement(HOST_AT_END))
    progress(f"{suite} done in {time.monotonic() - t_run:.1f}s")
    return out


def run_baselines(
    settings: StackSettings, *, quick: bool = False, progress: Progress = print
) -> list[Measurement]:
    """The ``baselines`` suite (kept for callers of the first harness)."""
    return run_suite(settings, "baselines", quick=quick, progress=progress)


def code_commit(cwd: Path | None = None) -> str:
    """The checkout's commit (short hash), ``+dirty`` when tracked files differ from it;
    ``unknown`` outside a git checkout."""
    where = cwd or Path(__file__).resolve().parent

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=where, capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short=10", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def write_report(measurements: Sequence[Measurement], out_dir: Path) -> Path:
    """Write ``latest.md`` and ``latest.json`` under ``out_dir``; returns the .md path.

    The header's date, nproc and load come from the run's start snapshot row when present
    (else from now, marked as such).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    start = end = None
    for m in measurements:
        if m.name == HOST_AT_START:
            start = HostSnapshot.from_measurement(m)
        elif m.name == HOST_AT_END:
            end = HostSnapshot.from_measurement(m)
    written = HostSnapshot.capture()
    ref = start or written

    def load(s: HostSnapshot | None) -> str:
        return "not recorded" if s is None else " / ".join(f"{x:.2f}" for x in s.loadavg)

    when = ref.at.isoformat(timespec="seconds")
    commit = code_commit()
    lines = [
        "# streamfeat benchmark report",
        "",
        f"- date (UTC): {when}" + ("" if start else " (report time; run start not recorded)"),
        f"- commit: {commit}",
        f"- nproc: {ref.nproc}",
        f"- load average at start (1/5/15 min): {load(start)}",
        f"- load average at end (1/5/15 min): {load(end)}",
        f"- host: {platform.node()}, Python {platform.python_version()}",
        "",
        "Shared, noisy machine: read each platform figure beside the baselines of the same "
        "report, never against another run. Percentiles are nearest-rank; MB = 10^6 bytes.",
        "",
        render_table(measurements),
    ]
    md = out_dir / "latest.md"
    md.write_text("\n".join(lines))
    meta = {
        "date": when,
        "written": written.at.isoformat(timespec="seconds"),
        "commit": commit,
        "nproc": ref.nproc,
        "loadavg_start": list(start.loadavg) if start else None,
        "loadavg_end": list(end.loadavg) if end else None,
        "host": platform.node(),
        "python": platform.python_version(),
    }
    (out_dir / "latest.json").write_text(to_json(measurements, meta))
    return md
