"""The offline store contract: feature rows as Parquet on S3, by event date and entity type.

Layout: ``s3://<lake>/offline/feature_rows/dt=YYYY-MM-DD/entity_type=<entity>/part-*.parquet``,
written by the feature job's filesystem sink and committed with Flink checkpoints (in-progress
parts are hidden, names starting with '.' or '_'; readers never see half a file).

One row per online write: the view, the entity, the group the write covered (a window such
as ``1h``, or an attribute for last-writer-wins views), the values as a map of long feature
names to strings (a NULL value is a versioned delete), ``event_time`` and the encoded
``version`` (core/version.py), whose string order is the version order. So the offline
last-writer-wins result — per (view, entity, group) the row with the greatest version — is
exactly what the online store keeps, and point-in-time joins can pick, per entity, the
greatest version whose event_time is at or before the label time.
"""

from __future__ import annotations

import re
from typing import Any

from core.settings import StackSettings

OFFLINE_PREFIX = "offline/feature_rows"
COLUMNS = (
    "view",
    "entity_id",
    "grp",
    "features",
    "event_time",
    "version",
    "source",
    "event_date",
    "entity",
)
"""Columns inside each file; ``event_date``/``entity`` repeat the partition values."""
PARTITIONS = ("dt", "entity_type")


def offline_path(bucket: str) -> str:
    return f"{bucket}/{OFFLINE_PREFIX}"


PART_FILE = re.compile(
    r"part-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-\d+-\d+(\.\w+)?"
)
"""A part file Flink's FileSink committed: ``part-<uuid>-<subtask>-<counter>[.ext]``. The S3
recoverable writer also leaves short-lived objects beside it while a part is in flight
(``...-<counter>-<uuid>``, ``...-stub``); they vanish at the commit and are never rows."""


def committed_files(settings: StackSettings) -> list[str]:
    """Paths (``bucket/key``) of the committed part files, sorted. In-progress parts are
    hidden ('.'/'_' prefix), the S3 writer's transient objects do not match
    :data:`PART_FILE`, and filesystem-backed endpoints also list directory placeholders:
    none is returned."""
    from pyarrow import fs as pafs

    from core.objectstore import arrow_fs

    infos = arrow_fs(settings).get_file_info(
        pafs.FileSelector(
            offline_path(settings.s3.lake_bucket), recursive=True, allow_not_found=True
        )
    )
    return sorted(
        info.path
        for info in infos
        if info.type == pafs.FileType.File and info.size and PART_FILE.fullmatch(info.base_name)
    )


def read_rows(settings: StackSettings, **equals: Any) -> Any:
    """The committed rows (a pyarrow Table), optionally filtered by column equality."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from core.objectstore import arrow_fs

    files = committed_files(settings)
    if not files:
        return pa.table({c: [] for c in (*COLUMNS, *PARTITIONS)})
    dataset = ds.dataset(
        files,
        filesystem=arrow_fs(settings),
        format="parquet",
        partitioning=ds.partitioning(flavor="hive"),
        partition_base_dir=offline_path(settings.s3.lake_bucket),
    )
    expr = None
    for column, value in equals.items():
        clause = ds.field(column) == value
        expr = clause if expr is None else expr & clause
    return dataset.to_table(filter=expr)


def latest(rows: list[dict[str, Any]]) -> dict[tuple[str, int, str], dict[str, Any]]:
    """Offline last-writer-wins: per (view, entity_id, grp) the row with the greatest version
    (independent of row order)."""
    best: dict[tuple[str, int, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["view"], row["entity_id"], row["grp"])
        if key not in best or row["version"] > best[key]["version"]:
            best[key] = row
    return best
