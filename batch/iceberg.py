"""The offline table as Apache Iceberg: commit the job's finished Parquet files with pyiceberg.

There is no iceberg-flink-runtime built for Flink 2.2, so the feature job writes Parquet with
Flink's filesystem sink (files appear only when a checkpoint completes) and this committer
adds the finished files to an Iceberg table — snapshots, schema and partition spec
(identity on ``event_date`` and ``entity``, the values the job repeats inside each file) —
catalogued in PostgreSQL (pyiceberg's SQL catalog). Committing is idempotent: files already
in the table are skipped, so running it twice, or after a crash, adds nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.offline import committed_files
from core.settings import StackSettings

NAMESPACE = "streamfeat"
TABLE = f"{NAMESPACE}.feature_rows"


def catalog(settings: StackSettings) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    pg = settings.postgres
    s3 = settings.s3
    return SqlCatalog(
        "streamfeat",
        uri=(
            f"postgresql+psycopg2://{pg.user}:{pg.password.get_secret_value()}"
            f"@{settings.host}:{settings.ports.postgres}/{pg.database}"
        ),
        warehouse=f"s3://{s3.lake_bucket}/iceberg",
        **{
            "s3.endpoint": settings.s3_endpoint,
            "s3.access-key-id": s3.access_key,
            "s3.secret-access-key": s3.secret_key.get_secret_value(),
            "s3.region": s3.region,
            "s3.force-virtual-addressing": "false",
        },
    )


def schema() -> Any:
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, MapType, NestedField, StringType

    return Schema(
        NestedField(1, "view", StringType()),
        NestedField(2, "entity_id", LongType()),
        NestedField(3, "grp", StringType()),
        NestedField(
            4, "features", MapType(10, StringType(), 11, StringType(), value_required=False)
        ),
        NestedField(5, "event_time", LongType()),
        NestedField(6, "version", StringType()),
        NestedField(7, "source", StringType()),
        NestedField(8, "event_date", StringType()),
        NestedField(9, "entity", StringType()),
    )


def table(settings: StackSettings) -> Any:
    """The Iceberg table, created on first use."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import IdentityTransform

    cat = catalog(settings)
    cat.create_namespace_if_not_exists(NAMESPACE)
    spec = PartitionSpec(
        PartitionField(
            source_id=8, field_id=1000, transform=IdentityTransform(), name="event_date"
        ),
        PartitionField(source_id=9, field_id=1001, transform=IdentityTransform(), name="entity"),
    )
    return cat.create_table_if_not_exists(TABLE, schema=schema(), partition_spec=spec)


@dataclass(frozen=True)
class CommitResult:
    added: int
    already: int
    snapshot_id: int | None
    skipped: tuple[str, ...] = ()
    """Files without the partition columns inside (written by an older job): not added,
    since Iceberg could not place them in a partition."""
    files: tuple[str, ...] = ()
    """The files added."""


def commit(settings: StackSettings, files: Sequence[str] | None = None) -> CommitResult:
    """Add every finished Parquet file not yet in the table, in one snapshot. ``files``:
    only these (as :func:`core.offline.committed_files` lists them), e.g. a listing taken
    once while the job keeps committing more."""
    tbl = table(settings)
    present = set()
    if tbl.current_snapshot() is not None:
        present = set(tbl.inspect.files().column("file_path").to_pylist())
    import pyarrow.parquet as pq

    from core.objectstore import arrow_fs

    filesystem = arrow_fs(settings)
    files = list(committed_files(settings) if files is None else files)
    new: list[str] = []
    skipped: list[str] = []
    for path in files:
        if f"s3://{path}" in present:
            continue
        names = pq.read_schema(path, filesystem=filesystem).names
        (new if {"event_date", "entity"} <= set(names) else skipped).append(path)
    if new:
        tbl.add_files([f"s3://{p}" for p in new])
    snapshot = tbl.current_snapshot()
    return CommitResult(
        len(new),
        len(files) - len(new) - len(skipped),
        snapshot.snapshot_id if snapshot else None,
        tuple(skipped),
        tuple(new),
    )
