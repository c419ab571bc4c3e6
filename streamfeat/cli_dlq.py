"""`streamfeat dlq ...`: review the dead-letter queue on S3 (connectors/dlq_review.py)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from connectors.dlq_review import Filters
from core.dlq import shown_bytes
from core.settings import StackSettings, load_settings
from streamfeat.console import fail, out

dlq_app = typer.Typer(
    no_args_is_help=True,
    help="Dead-letter queue on S3: counts, entries, replay after a fix, purge.",
)

Date = Annotated[str | None, typer.Option(help="Day of the entries (YYYY-MM-DD).")]
Source = Annotated[str | None, typer.Option(help="Source: clickstream, orders, crm, ...")]
Reason = Annotated[str | None, typer.Option(help="Reason (the failed expectation), e.g. late.")]


def _filters(date: str | None, source: str | None, reason: str | None) -> Filters:
    return Filters(date, source, reason)


def _s3_error(exc: Exception) -> None:
    settings = load_settings()
    fail(
        "dlq",
        f"S3 endpoint {settings.s3_endpoint}: {exc}",
        fix="is the stack up? `streamfeat status s3`",
    )


def _payload(raw: bytes | None) -> str:
    shown = shown_bytes(raw)
    return "(none)" if shown is None else shown


@dlq_app.command("ls")
def ls(date: Date = None, source: Source = None, reason: Reason = None) -> None:
    """Entries per day, source, reason and failed expectation."""
    from connectors.dlq_review import counts

    settings = load_settings()
    try:
        got = counts(settings, _filters(date, source, reason))
    except Exception as exc:
        _s3_error(exc)
        return
    table = Table(title=f"dead-letter queue (s3://{settings.s3.lake_bucket}/dlq/)")
    for column in ("date", "source", "reason", "expectation", "entries"):
        table.add_column(column)
    for (day, src, why, expectation), n in sorted(got.items()):
        table.add_row(day, src, why, expectation, f"{n:,}")
    out.print(table)
    out.print(f"{sum(got.values()):,} entries")
    _running_counts(settings)


def _running_counts(settings: StackSettings) -> None:
    """The running job's gate counts (Flink metrics since its start), if one runs."""
    from streamfeat.cli_ingest import quality_lines
    from streamfeat.flink_client import FlinkClient
    from streamfeat.job import running_job
    from streamfeat.stack.base import StackContext
    from streamfeat.stack.errors import StackError

    try:
        job_id = running_job(settings)
        if job_id is None:
            return
        lines = quality_lines(FlinkClient(StackContext(settings)).quality_counts(job_id))
    except StackError:
        return  # Flink not up: the DLQ on S3 is still reviewable
    if lines:
        out.print("the running job's gates since its start (Flink metrics):")
        for line in lines:
            out.print(line, highlight=False)


@dlq_app.command("show")
def show(
    date: Date = None,
    source: Source = None,
    reason: Reason = None,
    limit: Annotated[int, typer.Option(min=1, help="Entries to show at most.")] = 20,
) -> None:
    """Entries with their detail, coordinates and original bytes (text, else base64)."""
    from connectors.dlq_review import entries, replayed
    from core.objectstore import s3_client

    settings = load_settings()
    client = s3_client(settings)
    try:
        for i, e in enumerate(entries(settings, _filters(date, source, reason), client)):
            if i >= limit:
                out.print(f"... (--limit {limit})")
                break
            done = replayed(settings, e, client)
            out.print(f"[bold]{e.entry_id}[/] {e.date} {e.source} {e.reason}", highlight=False)
            out.print(f"  detail: {e.detail}", highlight=False, markup=False)
            if e.expectation is not None:
                out.print(f"  expectation: {e.expectation}", highlight=False, markup=False)
            if e.original_key_b64 is not None:
                out.print(f"  key: {_payload(e.original_key)}", highlight=False, markup=False)
            out.print(f"  value: {_payload(e.original)}", highlight=False, markup=False)
            if done is not None:
                out.print(f"  replayed at {done['replayed_at']} to {done['to']}", highlight=False)
    except Exception as exc:
        _s3_error(exc)


@dlq_app.command("replay")
def replay(
    date: Date = None,
    source: Source = None,
    reason: Reason = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Entries to replay at most.")] = None,
    force: Annotated[bool, typer.Option(help="Resend entries replayed before.")] = False,
) -> None:
    """Send the chosen entries' original bytes back to their topics (after a fix), each
    recorded as replayed; an entry replayed before is refused unless --force."""
    from connectors import dlq_review

    settings = load_settings()
    try:
        got = dlq_review.replay(
            settings,
            _filters(date, source, reason),
            limit=limit,
            force=force,
        )
    except Exception as exc:
        _s3_error(exc)
        return
    for e, partition, offset in got.sent:
        out.print(f"replayed {e.entry_id} -> {e.coordinates['topic']}/{partition}/{offset}")
    for e, why in got.refused:
        out.print(f"not replayed {e.entry_id}: {why}", highlight=False)
    out.print(f"{len(got.sent)} replayed, {len(got.refused)} not")
    if got.refused and not got.sent:
        raise typer.Exit(1)


@dlq_app.command("purge")
def purge(
    before: Annotated[str, typer.Option(help="Delete the days before this one (YYYY-MM-DD).")],
    source: Source = None,
    reason: Reason = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really delete.")] = False,
) -> None:
    """Delete DLQ objects of the days before --before (their replay records stay)."""
    from connectors import dlq_review

    if not yes:
        fail("dlq", "purge deletes entries for good", fix="add --yes")
    settings = load_settings()
    try:
        n = dlq_review.purge(settings, _filters(None, source, reason), before=before)
    except Exception as exc:
        _s3_error(exc)
        return
    out.print(f"{n} DLQ object(s) before {before} deleted")
