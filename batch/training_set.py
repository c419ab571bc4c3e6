"""Training-set builds: a spine joined point-in-time against the offline Iceberg table.

One build reads the spine (Parquet or CSV, a local path or ``s3://bucket/key`` on the stack's
S3 endpoint), scans one Iceberg snapshot of ``streamfeat.feature_rows`` for the requested
views, joins them (batch/point_in_time.py) and writes, under the lake bucket::

    training-sets/<name>/<run-id>/data.parquet    spine columns + <view>__<feature> columns
    training-sets/<name>/<run-id>/manifest.json   features, spine, rows, Iceberg snapshot read

The manifest is written last: a run folder without one is an unfinished build. With the
snapshot id it names, the same spine and features give the same rows again (``snapshot_id``).
The run id is the OpenLineage run id of the build, which reports START then COMPLETE or FAIL
(inputs: the feature views, the offline table's S3 prefix, the spine; outputs: the training
set and its S3 prefix). Names and features are checked before the run starts: a typo is not
a run.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batch.point_in_time import (
    ROW_COLUMNS,
    JoinStats,
    Requested,
    TrainingSetError,
    join,
    parse_features,
    spine_keys,
)
from batch.quality import DOCS_PREFIX, refused_partitions
from core import lineage
from core.features import FEATURE_VIEWS, FeatureView
from core.offline import OFFLINE_PREFIX
from core.settings import StackSettings

if TYPE_CHECKING:
    from core.lineage import LineageEmitter, LineageRun

PREFIX = "training-sets"
DATA_FILE = "data.parquet"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_IN_FILTER_MAX = 1000
"""Up to this many distinct spine entities are pushed into the Iceberg scan as an IN filter
(file pruning by column stats); more are filtered after reading."""


@dataclass(frozen=True)
class BuildResult:
    name: str
    run_id: str
    uri: str
    """The data file, ``s3://bucket/training-sets/<name>/<run-id>/data.parquet``."""
    manifest_uri: str
    manifest: dict[str, Any]
    seconds: float


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise TrainingSetError(
            f"training-set name {name!r} is not usable as a path and lineage name (fix: "
            "letters, digits, '_', '.', '-', starting with a letter or digit, <= 128 chars)"
        )


def run_prefix(name: str, run_id: str) -> str:
    return f"{PREFIX}/{name}/{run_id}"


def run_uri(settings: StackSettings, name: str, run_id: str) -> str:
    """``s3://<lake>/training-sets/<name>/<run-id>``: where one build's files are."""
    return f"s3://{settings.s3.lake_bucket}/{run_prefix(name, run_id)}"


# ---- the spine ---------------------------------------------------------------------------


def _locate(settings: StackSettings, source: str) -> tuple[Any, str]:
    """(pyarrow filesystem or None for local, path) of a spine source."""
    if source.startswith("s3://"):
        from core.objectstore import arrow_fs

        return arrow_fs(settings), source.removeprefix("s3://")
    return None, str(Path(source).expanduser().resolve())


def spine_dataset(settings: StackSettings, source: str) -> lineage.Dataset:
    """The spine as a lineage dataset (S3 object or local file, OpenLineage naming)."""
    fs, path = _locate(settings, source)
    if fs is not None:
        bucket, _, key = path.partition("/")
        return lineage.s3_prefix(bucket, key)
    return lineage.local_file(path)


def read_spine(settings: StackSettings, source: str) -> pa.Table:
    """A Parquet file/folder, or a CSV file (``.csv``), local or on the S3 endpoint."""
    import pyarrow.dataset as ds

    fs, path = _locate(settings, source)
    fmt = "csv" if path.lower().endswith(".csv") else "parquet"
    try:
        return ds.dataset(path, format=fmt, filesystem=fs).to_table()
    except FileNotFoundError as exc:
        raise TrainingSetError(
            f"spine {source} not found (fix: a local Parquet/CSV path, or s3://bucket/key on "
            f"the stack's S3 endpoint {settings.s3_endpoint})"
        ) from exc
    except (pa.ArrowInvalid, OSError) as exc:
        raise TrainingSetError(
            f"spine {source} could not be read as {fmt}: {exc} (fix: Parquet, or CSV with a "
            "header row and a .csv suffix)"
        ) from exc


# ---- the offline table -------------------------------------------------------------------


@dataclass(frozen=True)
class OfflineRead:
    rows: pa.Table
    snapshot_id: int
    table: str
    row_filter: str
    first_ms: int = 0
    """The earliest event time read (the spine's first instant less the longest TTL)."""


def read_offline(
    settings: StackSettings,
    requested: Sequence[Requested],
    *,
    entities: np.ndarray,
    first_ms: int,
    last_ms: int,
    snapshot_id: int | None = None,
) -> OfflineRead:
    """The rows of the requested views that can decide a value for a spine in
    ``[first_ms, last_ms]``, from one Iceberg snapshot (the current one unless given).

    Rows after ``last_ms`` cannot be candidates. Rows before ``first_ms - ttl`` (the longest
    TTL asked) are skipped too: a version begins with its event time (core/version.py), so
    such a row could only win expired — NULL, as if it were absent."""
    from pyiceberg.exceptions import NoSuchTableError
    from pyiceberg.expressions import And, GreaterThanOrEqual, In, LessThanOrEqual

    from batch.iceberg import TABLE, catalog

    fix = (
        "deploy the feature job (`streamfeat job deploy`) and commit its Parquet files to "
        "Iceberg (`streamfeat offline commit`)"
    )
    try:
        tbl = catalog(settings).load_table(TABLE)
    except NoSuchTableError as exc:
        raise TrainingSetError(f"offline table {TABLE} does not exist yet (fix: {fix})") from exc
    snap = tbl.snapshot_by_id(snapshot_id) if snapshot_id is not None else tbl.current_snapshot()
    if snap is None:
        if snapshot_id is not None:
            known = ", ".join(str(s.snapshot_id) for s in tbl.snapshots()[-5:]) or "none"
            raise TrainingSetError(
                f"offline table {TABLE} has no snapshot {snapshot_id} (latest: {known})"
            )
        raise TrainingSetError(f"offline table {TABLE} is empty: no snapshot (fix: {fix})")
    views = sorted({r.view.name for r in requested})
    lo = first_ms - max(r.view.ttl_s for r in requested) * 1000
    expr: Any = And(
        In(term="view", literals=views),
        And(
            GreaterThanOrEqual(term="event_time", value=lo),
            LessThanOrEqual(term="event_time", value=last_ms),
        ),
    )
    unique = np.unique(entities)
    if len(unique) <= _IN_FILTER_MAX:
        expr = And(expr, In(term="entity_id", literals=[int(e) for e in unique]))
    rows = tbl.scan(
        row_filter=expr, selected_fields=ROW_COLUMNS, snapshot_id=snap.snapshot_id
    ).to_arrow()
    if len(unique) > _IN_FILTER_MAX:
        rows = rows.filter(pc.is_in(rows["entity_id"], value_set=pa.array(unique)))
    described = f"view in {views}, {lo} <= event_time <= {last_ms}, entity_id in spine"
    return OfflineRead(rows, snap.snapshot_id, TABLE, described, lo)


# ---- output ------------------------------------------------------------------------------


def _write(settings: StackSettings, prefix: str, data: pa.Table, manifest: dict[str, Any]) -> None:
    import pyarrow.parquet as pq

    from core.objectstore import arrow_fs

    fs = arrow_fs(settings)
    base = f"{settings.s3.lake_bucket}/{prefix}"
    pq.write_table(data, f"{base}/{DATA_FILE}", filesystem=fs)
    with fs.open_output_stream(f"{base}/{MANIFEST_FILE}") as f:  # last: marks the build done
        f.write(json.dumps(manifest, indent=2).encode())


def read_manifest(settings: StackSettings, name: str, run_id: str | None = None) -> dict[str, Any]:
    """The manifest of run ``run_id`` of training set ``name``; without a run id, the
    latest finished build (greatest ``created_at``)."""
    from pyarrow import fs as pafs

    from core.objectstore import arrow_fs

    fs = arrow_fs(settings)
    bucket = settings.s3.lake_bucket
    if run_id is not None:
        paths = [f"{bucket}/{run_prefix(name, run_id)}/{MANIFEST_FILE}"]
    else:
        infos = fs.get_file_info(
            pafs.FileSelector(f"{bucket}/{PREFIX}/{name}", recursive=True, allow_not_found=True)
        )
        paths = [
            i.path for i in infos if i.type == pafs.FileType.File and i.base_name == MANIFEST_FILE
        ]
    manifests = []
    for path in paths:
        try:
            with fs.open_input_stream(path) as f:
                manifests.append(json.loads(f.read()))
        except FileNotFoundError:
            continue
    if not manifests:
        raise TrainingSetError(
            f"no finished build of training set {name!r}"
            + (f" with run id {run_id}" if run_id else "")
            + f" under s3://{bucket}/{PREFIX}/{name} (fix: `streamfeat training-set build`)"
        )
    return max(manifests, key=lambda m: m["created_at"])


# ---- the build ---------------------------------------------------------------------------


def build_spec(
    settings: StackSettings, *, name: str, requested: Sequence[Requested], spine: str
) -> lineage.LineageSpec:
    """Feature views + the offline table's prefix + the spine -> the training set (+ its
    S3 prefix)."""
    bucket = settings.s3.lake_bucket
    spec = lineage.training_set_spec(
        name=name,
        feature_views=list(dict.fromkeys(r.view.name for r in requested)),
        sources=[lineage.s3_prefix(bucket, OFFLINE_PREFIX), spine_dataset(settings, spine)],
    )
    return replace(spec, outputs=(*spec.outputs, lineage.s3_prefix(bucket, f"{PREFIX}/{name}")))


@contextlib.contextmanager
def _tracked(emitter: LineageEmitter | None, spec: lineage.LineageSpec) -> Iterator[str]:
    if emitter is None:
        yield str(uuid.uuid4())
        return
    run: LineageRun
    with emitter.track(spec) as run:
        yield run.run_id


def build(
    settings: StackSettings,
    *,
    name: str,
    spine: str,
    features: Sequence[str],
    entity_column: str = "entity_id",
    timestamp_column: str = "timestamp",
    label_column: str | None = None,
    snapshot_id: int | None = None,
    emitter: LineageEmitter | None = None,
    progress: Callable[[str], None] = lambda _: None,
    views: Sequence[FeatureView] = FEATURE_VIEWS,
    allow_failed_partitions: bool = False,
) -> BuildResult:
    """Build training set ``name`` (module docstring); raises :class:`TrainingSetError` with
    what failed and how to fix it. ``views``: those ``features`` may name (the declared
    ones, and registered ones the job computes). A partition of the offline table the read
    touches whose latest Great Expectations validation failed (batch/quality.py) is refused
    unless ``allow_failed_partitions`` (then reported through ``progress``)."""
    check_name(name)
    requested = parse_features(features, views)
    spec = build_spec(settings, name=name, requested=requested, spine=spine)
    t0 = time.monotonic()
    with _tracked(emitter, spec) as run_id:
        spine_table = read_spine(settings, spine)
        if label_column is not None and label_column not in spine_table.column_names:
            raise TrainingSetError(
                f"spine has no label column {label_column!r} (columns: "
                f"{', '.join(spine_table.column_names)})"
            )
        if spine_table.num_rows == 0:
            raise TrainingSetError(f"spine {spine} has no rows")
        entities, ts = spine_keys(
            spine_table, entity_column=entity_column, timestamp_column=timestamp_column
        )
        progress(f"spine: {spine_table.num_rows} rows from {spine}")
        offline = read_offline(
            settings,
            requested,
            entities=entities,
            first_ms=int(ts.min()),
            last_ms=int(ts.max()),
            snapshot_id=snapshot_id,
        )
        progress(
            f"offline: {offline.rows.num_rows} rows of {offline.table} "
            f"snapshot {offline.snapshot_id}"
        )
        refused = refused_partitions(
            settings,
            offline.first_ms,
            int(ts.max()),
            sorted({r.view.entity.name for r in requested}),
        )
        if refused and not allow_failed_partitions:
            listed = "; ".join(f"{r.partition}: {', '.join(r.failed)}" for r in refused)
            raise TrainingSetError(
                f"{len(refused)} offline partition(s) this set reads failed their data-quality "
                f"validation ({listed}) (fix: see the Data Docs at s3://"
                f"{settings.s3.lake_bucket}/{DOCS_PREFIX}/index.html; repair and "
                "`streamfeat offline validate`, or build with --allow-failed-partitions)"
            )
        for r in refused:
            progress(f"  ! reading {r.partition} although it failed {', '.join(r.failed)}")
        counts = pc.value_counts(offline.rows["view"]).to_pylist() if offline.rows.num_rows else []
        per_view = {c["values"]: c["counts"] for c in counts}
        if not per_view:
            raise TrainingSetError(
                f"no offline rows of {', '.join(sorted({r.view.name for r in requested}))} "
                f"for the spine's entities at or before its last timestamp {int(ts.max())} in "
                f"snapshot {offline.snapshot_id} (fix: check the spine's entity ids and times, "
                "and that the feature job's files are committed: `streamfeat offline commit`)"
            )
        for view_name in dict.fromkeys(r.view.name for r in requested):
            if not per_view.get(view_name):
                progress(f"  ! no offline rows of {view_name} for this spine: its columns are NULL")
        stats = JoinStats()
        data = join(
            spine_table,
            offline.rows,
            requested,
            entity_column=entity_column,
            timestamp_column=timestamp_column,
            stats=stats,
        )
        manifest = _manifest(
            settings,
            name=name,
            run_id=run_id,
            spine=spine,
            spine_rows=spine_table.num_rows,
            columns=(entity_column, timestamp_column, label_column),
            requested=requested,
            data=data,
            offline=offline,
            stats=stats,
        )
        prefix = run_prefix(name, run_id)
        _write(settings, prefix, data, manifest)
    return BuildResult(
        name,
        run_id,
        manifest["data"],
        f"{run_uri(settings, name, run_id)}/{MANIFEST_FILE}",
        manifest,
        time.monotonic() - t0,
    )


def _manifest(
    settings: StackSettings,
    *,
    name: str,
    run_id: str,
    spine: str,
    spine_rows: int,
    columns: tuple[str, str, str | None],
    requested: Sequence[Requested],
    data: pa.Table,
    offline: OfflineRead,
    stats: JoinStats,
) -> dict[str, Any]:
    entity_column, timestamp_column, label_column = columns
    return {
        "format": MANIFEST_FORMAT,
        "name": name,
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(),
        "data": f"{run_uri(settings, name, run_id)}/{DATA_FILE}",
        "rows": data.num_rows,
        "spine": {
            "source": spine,
            "rows": spine_rows,
            "entity_column": entity_column,
            "timestamp_column": timestamp_column,
            "label_column": label_column,
        },
        "features": [r.ref for r in requested],
        "columns": [
            {
                "name": r.column,
                "view": r.view.name,
                "feature": r.feature.name,
                "dtype": r.feature.dtype,
                "ttl_s": r.view.ttl_s,
                "non_null": data.num_rows - data.column(r.column).null_count,
                "expired": stats.expired.get(r.column, 0),
            }
            for r in requested
        ],
        "offline": {
            "table": offline.table,
            "snapshot_id": offline.snapshot_id,
            "rows_read": offline.rows.num_rows,
            "unordered_rows_ignored": stats.unordered,
            "row_filter": offline.row_filter,
        },
        "point_in_time": (
            "per spine row and feature: among the offline rows of its view, entity and slot "
            "with event_time <= the spine timestamp, the greatest version; NULL when none, "
            "when it lacks the feature, or when timestamp - event_time >= the view's TTL"
        ),
    }
