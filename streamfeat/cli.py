"""`streamfeat`: run the platform's local stack and (as they land) its pipeline steps.

Every failure ends with one line on stderr — what failed, where its log is, how to fix it —
and exit code 1. Nothing waits without a deadline.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from core.settings import StackSettings, load_settings
from streamfeat import cli_batch, cli_dlq, cli_ingest, cli_lineage, cli_models, cli_registry
from streamfeat.console import fail_with, out, short
from streamfeat.stack.errors import StackError
from streamfeat.stack.services import default_services
from streamfeat.stack.supervisor import ServiceStatus, Supervisor

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="streamfeat: streaming-first ML feature platform on Apache Flink.",
)
app.add_typer(cli_ingest.topics_app, name="topics")
app.add_typer(cli_ingest.connectors_app, name="connectors")
app.add_typer(cli_ingest.bridge_app, name="bridge")
app.command("clickstream")(cli_ingest.clickstream)
app.command("seed")(cli_ingest.seed)
app.command("render")(cli_ingest.render_manifests)
app.add_typer(cli_ingest.job_app, name="job")
app.command("features")(cli_ingest.features)
app.add_typer(cli_ingest.offline_app, name="offline")
app.command("apply")(cli_registry.apply)
app.add_typer(cli_lineage.lineage_app, name="lineage")
app.add_typer(cli_models.models_app, name="model")
app.add_typer(cli_dlq.dlq_app, name="dlq")
app.add_typer(cli_batch.training_set_app, name="training-set")

Services = Annotated[list[str] | None, typer.Argument(help="Services (default: all).")]


def _supervisor(settings: StackSettings | None = None) -> Supervisor:
    return Supervisor(settings or load_settings(), default_services())


@app.command()
def up(services: Services = None) -> None:
    """Start the stack (or SERVICES) and wait until healthy; running services are kept."""
    sup = _supervisor()
    out.print(f"streamfeat up — data and logs under {sup.ctx.home}")
    t0 = time.monotonic()
    try:
        sup.up(services, progress=out.print)
    except StackError as exc:
        fail_with(exc)
    out.print(f"stack healthy in {time.monotonic() - t0:.1f}s")
    _print_status(sup.status(services))


@app.command()
def down(services: Services = None) -> None:
    """Stop what `up` started (data is kept)."""
    sup = _supervisor()
    try:
        sup.down(services, progress=out.print)
    except StackError as exc:
        fail_with(exc)
    out.print("stack stopped; data kept under " + str(sup.ctx.home))


@app.command()
def status(services: Services = None) -> None:
    """Show each service: state, pid, ports, URL and log file. Exit 1 unless all healthy."""
    try:
        rows = _supervisor().status(services)
    except StackError as exc:
        fail_with(exc)
        return
    _print_status(rows)
    if not services and all(r.state == "healthy" for r in rows):
        _print_job()
    if any(r.state != "healthy" for r in rows):
        raise typer.Exit(1)


def _print_job() -> None:
    """The feature job's line and its gates' counts, when it runs (best effort)."""
    from streamfeat.cli_ingest import job_summary
    from streamfeat.job import running_job

    settings = load_settings()
    try:
        job_id = running_job(settings)
        lines = job_summary(settings, job_id) if job_id else ["  feature job: not running"]
    except StackError:
        return
    for line in lines:
        out.print(line, highlight=False)


@app.command()
def logs(
    service: Annotated[str, typer.Argument(help="Service name, e.g. kafka.")],
    lines: Annotated[int, typer.Option("-n", "--lines", help="Lines to show.")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing.")] = False,
) -> None:
    """Print the end of a service's log (its path is shown by `status`)."""
    sup = _supervisor()
    try:
        sup.select([service])
    except StackError as exc:
        fail_with(exc)
    path = sup.ctx.log_path(service)
    if not path.exists():
        fail_with(StackError(service, f"no log yet at {path}", fix=f"streamfeat up {service}"))
    _print_tail(path, lines)
    if follow:
        _follow(path)


@app.command("check-wiring")
def check_wiring(
    records: Annotated[int, typer.Option(help="Records to send through the job.")] = 100,
) -> None:
    """Run a small job on the cluster: Kafka topic in, Parquet on S3 out; verify the rows."""
    from streamfeat.wiring import check_wiring as run_check

    settings = load_settings()
    out.print(f"producing {records} records, submitting flink_jobs/wiring_check.py ...")
    try:
        result = run_check(settings, records)
    except StackError as exc:
        fail_with(exc)
        return
    ok = result.rows_read_back == result.produced
    out.print(
        f"job {result.job_id} {result.state} in {result.seconds:.1f}s; "
        f"{result.rows_read_back}/{result.produced} rows read back from {result.output} "
        f"(submit log: {short(str(result.log))})"
    )
    if not ok:
        fail_with(
            StackError(
                "check-wiring",
                "rows read back differ from rows produced",
                log=result.log,
                fix="read the TaskManager log",
            )
        )


@app.command()
def bench(
    quick: Annotated[bool, typer.Option(help="Smaller sizes (figures less stable).")] = False,
    suite: Annotated[
        str,
        typer.Option(
            help="baselines | ingestion | job | api | all | state (ingestion: producer, "
            "bridge, CDC; job: the feature job on scratch topics; api: feature API latency; "
            "state: the job's state and heap per state backend on 10M clicks, ~40 min, not "
            "in all)."
        ),
    ] = "all",
    job_parallelism: Annotated[
        int, typer.Option(min=1, help="Parallelism of the feature job under test (suite job).")
    ] = 1,
    job_state_backend: Annotated[
        str,
        typer.Option(help="State backend of the job under test (suite job): rocksdb | hashmap."),
    ] = "rocksdb",
    state_events: Annotated[
        int, typer.Option(min=0, help="Clicks of the state suite (0: 10M, quick 200k).")
    ] = 0,
    state_users: Annotated[
        int, typer.Option(min=0, help="Users of the state suite (0: 100k, quick 10k).")
    ] = 0,
    state_backends: Annotated[
        str, typer.Option(help="State backends the state suite compares, in order.")
    ] = "hashmap,rocksdb",
) -> None:
    """Measure on the running stack; print the table, write .local/bench/latest.{md,json}."""
    from streamfeat.bench.runner import SUITES, run_suite, write_report

    if suite not in SUITES:
        raise typer.BadParameter(
            f"{suite!r} is not one of {', '.join(SUITES)}", param_hint="--suite"
        )
    settings = load_settings()
    try:
        measurements = run_suite(
            settings,
            suite,
            quick=quick,
            progress=out.print,
            job_parallelism=job_parallelism,
            job_state_backend=job_state_backend,
            state_size=(state_events, state_users),
            state_backends=tuple(b.strip() for b in state_backends.split(",") if b.strip()),
        )
    except StackError as exc:
        fail_with(exc)
    report = write_report(measurements, settings.home.parent / "bench")
    sys.stdout.write(report.read_text())
    out.print(f"report: {short(str(report))} (+ latest.json)")


def _print_status(rows: list[ServiceStatus]) -> None:
    table = Table(show_lines=False, header_style="bold")
    for col in ("service", "state", "pid", "ports", "url", "log"):
        table.add_column(col, overflow="fold")
    colors = {"healthy": "green", "unhealthy": "yellow", "stopped": "red", "exited": "red"}
    for row in rows:
        state = f"[{colors[row.state]}]{row.state}[/]"
        if row.detail and row.state != "stopped":
            state += f" ({row.detail})"
        table.add_row(
            row.name,
            state,
            str(row.pid or "-"),
            ",".join(str(p) for p in row.ports.values()) or "-",
            row.url,
            short(row.log),
        )
    out.print(table)


def _print_tail(path: Path, lines: int) -> None:
    from streamfeat.stack.process import tail

    sys.stdout.write(tail(path, lines) + "\n")


def _follow(path: Path) -> None:
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        try:
            while True:
                chunk = fh.read()
                if chunk:
                    sys.stdout.write(chunk.decode(errors="replace"))
                    sys.stdout.flush()
                else:
                    time.sleep(0.5)
        except KeyboardInterrupt:
            return


def main() -> None:
    app()


if __name__ == "__main__":
    main()
