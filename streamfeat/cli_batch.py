"""`streamfeat training-set build`: a point-in-time training set from the offline table.

Wires batch/training_set.py to the stack's settings and to the CLI's lineage emitter (the
build reports START then COMPLETE or FAIL), prints where the result is and how complete each
feature column came out. Every failure is one line: what failed and how to fix it, exit 1.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from core.settings import load_settings
from streamfeat.console import fail, fail_with, out
from streamfeat.stack.errors import StackError

training_set_app = typer.Typer(
    no_args_is_help=True, help="Point-in-time training sets from the offline table."
)


@training_set_app.command("build")
def build(
    name: Annotated[str, typer.Option(help="Training-set name (path and lineage name).")],
    spine: Annotated[
        str,
        typer.Option(
            help="Parquet (file or folder) or .csv with entity ids and timestamps (epoch ms "
            "or timestamp), local or s3://bucket/key on the stack's S3 endpoint."
        ),
    ],
    features: Annotated[
        list[str],
        typer.Option(
            "--features",
            "-f",
            help="VIEW (all its features) or VIEW:FEATURE; repeat or comma-separate.",
        ),
    ],
    entity_column: Annotated[str, typer.Option(help="Spine column of entity ids.")] = "entity_id",
    timestamp_column: Annotated[
        str, typer.Option(help="Spine column of the label times.")
    ] = "timestamp",
    label_column: Annotated[
        str | None, typer.Option(help="Spine column holding the label (checked, kept).")
    ] = None,
    snapshot_id: Annotated[
        int | None,
        typer.Option(help="Iceberg snapshot to read (a manifest's, to rebuild); default: current."),
    ] = None,
    allow_failed_partitions: Annotated[
        bool,
        typer.Option(
            help="Read offline partitions whose data-quality validation failed (refused by "
            "default; docs/data-quality.md)."
        ),
    ] = False,
) -> None:
    """Join the spine point-in-time with the requested features; write Parquet + manifest
    under s3://<lake>/training-sets/NAME/<run-id>/."""
    from batch.point_in_time import TrainingSetError
    from batch.training_set import build as run_build
    from core.features import FEATURE_VIEWS
    from streamfeat.cli_lineage import emitter
    from streamfeat.job import registered_views

    settings = load_settings()
    try:
        registered = [r.feature_view() for r in registered_views(settings)]
    except StackError as exc:
        fail_with(exc)
    try:
        result = run_build(
            settings,
            name=name,
            spine=spine,
            features=features,
            entity_column=entity_column,
            timestamp_column=timestamp_column,
            label_column=label_column,
            snapshot_id=snapshot_id,
            emitter=emitter(settings),
            progress=out.print,
            views=(*FEATURE_VIEWS, *registered),
            allow_failed_partitions=allow_failed_partitions,
        )
    except TrainingSetError as exc:
        fail("training-set", str(exc))
    except Exception as exc:  # a service: S3, PostgreSQL (Iceberg catalog)
        fail(
            "training-set",
            f"{type(exc).__name__}: {exc}",
            fix="is the stack up (`streamfeat status`)? S3 and PostgreSQL hold the offline table",
        )
    manifest = result.manifest
    table = Table(title=f"training set {name}: {manifest['rows']} rows", header_style="bold")
    for column in ("column", "dtype", "non-null", "expired"):
        table.add_column(column)
    for col in manifest["columns"]:
        table.add_row(col["name"], col["dtype"], str(col["non_null"]), str(col["expired"]))
    out.print(table)
    out.print(f"data:     {result.uri}")
    out.print(f"manifest: {result.manifest_uri}")
    out.print(
        f"run {result.run_id}, Iceberg snapshot {manifest['offline']['snapshot_id']}, "
        f"{result.seconds:.1f}s"
    )
