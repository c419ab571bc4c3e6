"""Ingestion commands: topics, CDC connectors, demo seed, clickstream producer, CRM bridge."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from core.settings import StackSettings, load_settings
from core.topics import catalogue
from streamfeat.console import fail, fail_with, out, short
from streamfeat.stack.errors import StackError

topics_app = typer.Typer(no_args_is_help=True, help="The topic catalogue (core/topics.yaml).")
connectors_app = typer.Typer(no_args_is_help=True, help="Kafka Connect connectors (CDC).")
bridge_app = typer.Typer(no_args_is_help=True, help="The S3 CRM bridge.")


@topics_app.command("apply")
def topics_apply() -> None:
    """Create missing topics and fix drifted settings (idempotent)."""
    from connectors.kafka_topics import apply_topics

    try:
        changes = apply_topics(load_settings(), catalogue())
    except Exception as exc:
        fail("topics", str(exc), fix="is Kafka up? `streamfeat status kafka`")
    for line in changes or ["topics: in sync with core/topics.yaml"]:
        out.print(f"  {line}")


@topics_app.command("check")
def topics_check() -> None:
    """Report drift between core/topics.yaml and the cluster; exit 1 on any."""
    from connectors.kafka_topics import check_topics

    try:
        drifts = check_topics(load_settings(), catalogue())
    except Exception as exc:
        fail("topics", str(exc), fix="is Kafka up? `streamfeat status kafka`")
    for drift in drifts:
        out.print(f"  drift: {drift.line()}")
    if drifts:
        fail("topics", f"{len(drifts)} difference(s)", fix="streamfeat topics apply")
    out.print(f"  {len(catalogue().topics)} topics match core/topics.yaml")


@connectors_app.command("apply")
def connectors_apply() -> None:
    """Create or update every connector under connectors/cdc/ and wait until RUNNING."""
    from connectors.cdc.apply import apply_connectors
    from streamfeat.cli_lineage import emitter

    settings = load_settings()
    try:
        states = apply_connectors(settings, progress=out.print, lineage=emitter(settings))
    except Exception as exc:
        fail(
            "connect",
            str(exc),
            log=settings.home / "logs" / "connect.log",
            fix="read the Connect log; is PostgreSQL up and seeded (`streamfeat seed`)?",
        )
    for state in states:
        out.print(f"  {state.name}: {state.connector}, tasks {', '.join(state.tasks)}")


@connectors_app.command("status")
def connectors_status() -> None:
    """Show each connector's state and its tasks; exit 1 unless all RUNNING."""
    from connectors.cdc.apply import ConnectClient, connector_files, load_connector, local_values

    settings = load_settings()
    client = ConnectClient(settings)
    bad = 0
    for path in connector_files():
        name = load_connector(path, local_values(settings))["name"]
        try:
            state = client.state(name)
        except Exception as exc:
            out.print(f"  {name}: not registered ({exc})")
            bad += 1
            continue
        out.print(f"  {name}: {state.connector}, tasks {', '.join(state.tasks) or 'none'}")
        bad += 0 if state.running else 1
    if bad:
        raise typer.Exit(1)


@bridge_app.command("run")
def bridge_run(
    once: Annotated[bool, typer.Option(help="One pass, then exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between passes.")] = 4 * 3600,
    chunk_rows: Annotated[int, typer.Option(help="Rows per durable progress step.")] = 5000,
) -> None:
    """Import new/changed CRM exports from S3 into crm.customers (DLQ for bad rows)."""
    from connectors.crm.bridge import CrmBridge
    from core.quality import SuiteError
    from streamfeat.cli_lineage import emitter

    settings = load_settings()
    try:
        CrmBridge(settings, chunk_rows=chunk_rows, log=out.print, lineage=emitter(settings)).run(
            interval_s=interval, once=once
        )
    except SuiteError as exc:
        where = settings.quality_suites_dir or "core/suites"
        fail("bridge", str(exc), fix=f"edit {where}/crm_customers.json (docs/data-quality.md)")
    except Exception as exc:
        fail("bridge", str(exc), fix="is the stack up (`streamfeat status`)?")


def clickstream(
    rate: Annotated[
        float, typer.Option(help="Events per second (0 = as fast as possible).")
    ] = 1000.0,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    count: Annotated[
        int | None, typer.Option(help="Events to send (default rate*duration).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Generator seed (same seed, same events).")] = 42,
) -> None:
    """Produce demo clickstream events to the clickstream topic with live progress."""
    from connectors.clickstream import ProduceStats, produce
    from connectors.demo.loader import click_records

    if count is None and duration is None:
        count = 10_000
    total = count if count is not None else int(rate * (duration or 0)) or 10_000
    settings = load_settings()

    tty = sys.stdout.isatty()

    def show(stats: ProduceStats) -> None:
        sys.stdout.write(("\r  " if tty else "  ") + stats.line() + ("    " if tty else "\n"))
        sys.stdout.flush()

    out.print(
        f"clickstream: {total:,} events (seed {seed}) at "
        f"{'max' if not rate else f'{rate:,.0f}/s'} -> topic clickstream"
    )
    try:
        stats = produce(
            settings,
            click_records(seed, total),
            rate=rate or None,
            duration_s=duration,
            progress=show,
        )
    except Exception as exc:
        fail("clickstream", str(exc), fix="is Kafka up? `streamfeat status kafka`")
    if tty:
        sys.stdout.write("\n")
    if stats.failed:
        fail("clickstream", f"{stats.failed} events not delivered: {stats.first_error}")


def seed(
    seed_value: Annotated[int, typer.Option("--seed", help="Generator seed.")] = 42,
    customers: Annotated[int, typer.Option(help="Customers to create.")] = 200,
) -> None:
    """Seed PostgreSQL (migrations + customers + orders) and drop CRM exports on S3."""
    from connectors.demo.loader import seed_all

    settings = load_settings()
    try:
        summary = seed_all(settings, seed_value, customers)
    except Exception as exc:
        fail("seed", str(exc), fix="is the stack up (`streamfeat status`)?")
    for line in summary:
        out.print(f"  {line}")


def render_manifests() -> None:
    """Regenerate deploy/k8s/ (Strimzi KafkaTopic/KafkaConnector) from the declarations."""
    from streamfeat.k8s import render

    changed = render(catalogue())
    for path in changed:
        out.print(f"  wrote {short(str(path))}")
    if not changed:
        out.print("  deploy/k8s is up to date")


job_app = typer.Typer(no_args_is_help=True, help="The feature job on the Flink cluster.")


@job_app.command("deploy")
def job_deploy(
    from_savepoint: Annotated[
        str | None,
        typer.Option(help="Resume from this savepoint (a location, or 'last' from `job stop`)."),
    ] = None,
    allow_non_restored_state: Annotated[
        bool,
        typer.Option(
            help="Start although operators of the savepoint have no match (their state is dropped)."
        ),
    ] = False,
    replay: Annotated[
        bool,
        typer.Option(
            help="Start without state under a new consumer group, from the earliest retained "
            "records (7 days of clicks): the upgrade path for a changed SQL plan."
        ),
    ] = False,
    parallelism: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Parallelism of every operator (default 1; the clickstream has 12 partitions). "
            "With --from-savepoint: a rescale.",
        ),
    ] = None,
) -> None:
    """Submit flink_jobs/feature_job.py (one job graph) and wait until it runs: the views
    declared in core/features.py, and the windowed views registered through the registry."""
    from streamfeat.job import deploy, job_config, registered_views

    settings = load_settings()
    try:
        registered = registered_views(settings)
        if registered:
            names = ", ".join(r.view.name for r in registered)
            out.print(f"  registered windowed views computed too: {names}")
        overrides: dict[str, object] = {"registered_views": registered}
        if parallelism:
            overrides["parallelism"] = parallelism
        deployed = deploy(
            settings,
            job_config(settings, **overrides),
            from_savepoint=from_savepoint,
            allow_non_restored_state=allow_non_restored_state,
            replay=replay,
        )
    except StackError as exc:
        fail_with(exc)
    out.print(
        f"  feature job {deployed.job_id} RUNNING "
        f"({settings.flink_rest_url}/#/job/running/{deployed.job_id}); "
        f"submit log: {short(str(deployed.log))}"
    )


@job_app.command("status")
def job_status() -> None:
    """Show the feature job's state, its restarts since the deploy and the last failure's
    cause (Flink's exception history); exit 1 unless it runs."""
    from streamfeat.job import running_job

    settings = load_settings()
    job_id = running_job(settings)
    if job_id is None:
        fail("job", "the feature job is not running", fix="streamfeat job deploy")
    try:
        lines = job_summary(settings, job_id)
    except StackError as exc:
        fail_with(exc)
    for line in lines:
        out.print(line, highlight=False)


def job_summary(settings: StackSettings, job_id: str) -> list[str]:
    """The running job's restarts since its deploy, the last failure's cause, and its gates'
    counts (`job status`, `status`)."""
    from streamfeat.flink_client import FlinkClient
    from streamfeat.stack.base import StackContext

    client = FlinkClient(StackContext(settings))
    restarts = client.restarts(job_id)
    cause = client.exceptions(job_id) if restarts else ""
    plural = "" if restarts == 1 else "s"
    lines = [f"  feature job {job_id} RUNNING, {restarts} restart{plural} since deploy"]
    if cause:
        lines.append(f"  last failure: {cause}")
    return lines + quality_lines(client.quality_counts(job_id))


def quality_lines(verdicts: dict[tuple[str, str], int]) -> list[str]:
    """The gates' counts since the job started, one line per source: good, then each
    reason (docs/data-quality.md)."""
    lines = []
    for source in sorted({s for s, _ in verdicts}):
        mine = {v: n for (s, v), n in verdicts.items() if s == source}
        good = mine.pop("good", 0)
        bad = ", ".join(f"{v} {n:,}" for v, n in sorted(mine.items(), key=lambda x: -x[1]))
        lines.append(
            f"  {source}: {good:,} good, {sum(mine.values()):,} to the DLQ"
            + (f" ({bad})" if bad else "")
        )
    return lines


@job_app.command("stop")
def job_stop() -> None:
    """Stop the feature job with a savepoint (resume: `job deploy --from-savepoint last`)."""
    from streamfeat.job import stop

    try:
        location = stop(load_settings())
    except StackError as exc:
        fail_with(exc)
    out.print(f"  stopped; savepoint {location}")
    out.print("  resume with: streamfeat job deploy --from-savepoint last")


@job_app.command("savepoint")
def job_savepoint() -> None:
    """Take a savepoint of the running feature job (it keeps running)."""
    from streamfeat.job import savepoint

    try:
        location = savepoint(load_settings())
    except StackError as exc:
        fail_with(exc)
    out.print(f"  savepoint {location}")


@job_app.command("cancel")
def job_cancel() -> None:
    """Cancel the running feature job (its Kafka offsets stay committed)."""
    from streamfeat.job import cancel

    job_id = cancel(load_settings())
    out.print(f"  cancelled {job_id}" if job_id else "  no feature job running")


def features(
    entity: Annotated[list[int] | None, typer.Argument(help="Customer ids.")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for features to appear.")] = 0,
    api: Annotated[bool, typer.Option(help="Read through the Feature Store API instead.")] = False,
) -> None:
    """Print online feature vectors from Redis (default: a few customers)."""
    import time

    from core.features import FEATURE_VIEWS
    from core.online import RedisOnlineStore

    settings = load_settings()
    store = RedisOnlineStore.from_url(settings.redis_url, socket_timeout=2)
    ids = entity or [1, 2, 3]
    deadline = time.monotonic() + wait
    while not any(any(store.read(v, ids)) for v in FEATURE_VIEWS):
        if time.monotonic() >= deadline:
            fail(
                "features",
                f"no features in Redis for {ids}" + (f" after {wait:.0f}s" if wait else ""),
                fix="is the feature job running (`streamfeat job status`)?",
            )
        time.sleep(0.5)
    if api:
        _print_via_api(ids)
        return
    for view in FEATURE_VIEWS:
        for entity_id, row in zip(ids, store.read(view, ids), strict=True):
            shown = {k: v for k, v in row.items() if "@" not in k and k != "_v"}
            if shown:
                out.print(f"  {view.name}[{entity_id}]: {shown}")


offline_app = typer.Typer(no_args_is_help=True, help="The offline table (Iceberg on S3).")


@offline_app.command("commit")
def offline_commit(
    every: Annotated[
        float | None,
        typer.Option(
            help="Keep committing, every this many seconds (a sidecar of the job; Ctrl-C "
            "stops it). A failed round is reported and retried at the next one."
        ),
    ] = None,
    validate: Annotated[
        bool, typer.Option(help="Validate the partitions that received files.")
    ] = True,
) -> None:
    """Add the job's finished Parquet files to the Iceberg table (idempotent), then validate
    the partitions that received files (Great Expectations; docs/data-quality.md)."""
    import time

    from batch.iceberg import TABLE, commit
    from batch.quality import partitions_of

    settings = load_settings()
    while True:
        try:
            result = commit(settings)
        except Exception as exc:
            if every is None:
                fail(
                    "offline",
                    f"Iceberg commit failed: {exc}",
                    fix="is the stack up (`streamfeat status`)?",
                )
            out.print(f"  ! Iceberg commit failed: {exc}; next try in {every:g}s")
        else:
            skipped = (
                f"; {len(result.skipped)} skipped (no partition columns inside)"
                if result.skipped
                else ""
            )
            out.print(
                f"  {TABLE}: {result.added} file(s) added, {result.already} already in, "
                f"snapshot {result.snapshot_id}{skipped}"
            )
            if result.added and validate:
                _validate(settings, partitions_of(result.files), strict=every is None)
        if every is None:
            return
        time.sleep(every)


def _validate(
    settings: StackSettings, partitions: list[tuple[str, str]] | None, *, strict: bool
) -> None:
    from batch.quality import validate_partitions

    try:
        results = validate_partitions(settings, partitions, progress=out.print)
    except Exception as exc:
        if strict:
            fail(
                "offline",
                f"data-quality validation failed to run: {exc}",
                log=settings.home / "gx",
                fix="is the stack up (`streamfeat status`)? then `streamfeat offline validate`",
            )
        out.print(f"  ! data-quality validation failed to run: {exc}")
        return
    bad = [r for r in results if not r.success]
    if bad:
        out.print(
            f"  ! {len(bad)} partition(s) failed their expectations: the training-set builder "
            "refuses them (docs/data-quality.md)"
        )


@offline_app.command("validate")
def offline_validate(
    date: Annotated[str | None, typer.Option(help="Only this event date (YYYY-MM-DD).")] = None,
    entity: Annotated[str | None, typer.Option(help="Only this entity type.")] = None,
) -> None:
    """Validate committed offline partitions with Great Expectations (the suite
    core/suites/batch/offline_feature_rows.json); keep the results and the Data Docs on S3."""
    from batch.quality import partitions_of
    from core.offline import committed_files

    settings = load_settings()
    try:
        partitions = [
            (d, e)
            for d, e in partitions_of(committed_files(settings))
            if date in (None, d) and entity in (None, e)
        ]
    except Exception as exc:
        fail("offline", f"cannot list the offline table: {exc}", fix="streamfeat status s3")
    if not partitions:
        fail("offline", "no committed partition matches", fix="streamfeat offline commit")
    _validate(settings, partitions, strict=True)


def _print_via_api(ids: list[int]) -> None:
    import httpx

    from core.features import FEATURE_VIEWS

    settings = load_settings()
    base = f"http://{settings.host}:{settings.ports.api}"
    from feature_api.settings import Role
    from streamfeat.cli_registry import api_headers

    with httpx.Client(base_url=base, timeout=5, headers=api_headers(Role.READER)) as client:
        for view in FEATURE_VIEWS:
            try:
                resp = client.post(f"/v1/features/{view.name}:batch", json={"entity_ids": ids})
            except httpx.HTTPError as exc:
                fail("api", f"{base} unreachable: {exc}", fix="streamfeat up api")
            if resp.status_code != 200:
                fail("api", f"{view.name}: HTTP {resp.status_code} {resp.text[:200]}")
            for result in resp.json()["results"]:
                present = {
                    name: f["value"]
                    for name, f in result["features"].items()
                    if f["status"] == "PRESENT"
                }
                if present:
                    out.print(f"  GET {view.name}[{result['entity_id']}] via API: {present}")
