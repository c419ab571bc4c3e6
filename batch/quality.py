"""Batch expectations on the offline table: each committed partition (event date, entity
type) validated by Great Expectations against ``core/suites/batch/offline_feature_rows.json``.

After each `streamfeat offline commit` the partitions that received files are validated
(`streamfeat offline validate` validates any or all again). Per partition the latest result
is kept on the lake bucket at
``dq-validations/suite=offline_feature_rows/date=<YYYY-MM-DD>/entity=<entity>.json`` (the
verdict, the failed critical expectations, the warnings, and GE's own result), and GE's Data
Docs (HTML) are published under ``dq-docs/`` on the same bucket. The training-set builder
refuses rows of a partition whose latest validation failed, unless forced
(:func:`refused_partitions`).

An expectation with ``severity: warning`` (the uniqueness of versions: a replay writes rows
again, which the point-in-time join tolerates) is reported but does not fail a partition.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.quality import SUITES_DIR, VALIDATIONS_PREFIX
from core.settings import StackSettings

SUITE = "offline_feature_rows"
SUITE_PATH = SUITES_DIR / "batch" / f"{SUITE}.json"
DOCS_PREFIX = "dq-docs"
"""Where Great Expectations' Data Docs site is published on the lake bucket."""
COLUMNS = ("view", "entity_id", "grp", "event_time", "version", "source", "entity")
"""What the suite reads of a row (the features map is not needed)."""


@dataclass(frozen=True)
class PartitionResult:
    """The latest validation of one offline partition."""

    date: str
    entity: str
    rows: int
    success: bool
    failed: list[str] = field(default_factory=list)
    """The critical expectations it failed, as ``type(column)``."""
    warnings: list[str] = field(default_factory=list)
    validated_at: str = ""
    snapshot_id: int | None = None

    @property
    def partition(self) -> str:
        return f"event_date={self.date}/entity={self.entity}"


def result_key(date: str, entity: str) -> str:
    return f"{VALIDATIONS_PREFIX}/suite={SUITE}/date={date}/entity={entity}.json"


def _label(config: Any) -> str:
    kwargs = config.kwargs
    column = kwargs.get("column") or ",".join(kwargs.get("column_list") or []) or "table"
    return f"{config.type}({column})"


class OfflineValidator:
    """Great Expectations in a file-backed project under the stack's home (``gx/``): the
    offline suite, one checkpoint that validates a partition and updates the Data Docs."""

    def __init__(self, settings: StackSettings) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.settings = settings
        self.root = Path(settings.home) / "gx"
        self.root.mkdir(parents=True, exist_ok=True)
        ctx = gx.get_context(mode="file", project_root_dir=str(self.root))
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        document = json.loads(SUITE_PATH.read_text())
        suite = gx.ExpectationSuite(**document)
        suite = ctx.suites.add_or_update(suite)
        source = ctx.data_sources.add_or_update_pandas("offline")
        asset = next((a for a in source.assets if a.name == "partition"), None)
        asset = asset or source.add_dataframe_asset("partition")
        batches = next((b for b in asset.batch_definitions if b.name == "whole"), None)
        batches = batches or asset.add_batch_definition_whole_dataframe("whole")
        definition = ctx.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=SUITE, data=batches, suite=suite)
        )
        self.checkpoint = ctx.checkpoints.add_or_update(
            gx.Checkpoint(
                name=SUITE,
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
                result_format={"result_format": "SUMMARY"},
            )
        )
        self.docs = self.root / "gx" / "uncommitted" / "data_docs" / "local_site"

    def validate(self, date: str, entity: str, frame: Any, snapshot_id: int | None) -> Any:
        """GE's verdict on one partition's rows, kept on S3; returns the summary."""
        day = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC)
        start = int(day.timestamp() * 1000)
        end = int((day + timedelta(days=1)).timestamp() * 1000)
        run = self.checkpoint.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters={"day_start_ms": start, "day_end_ms": end, "entity": [entity]},
        )
        (validation,) = run.run_results.values()
        failed: list[str] = []
        warnings: list[str] = []
        for outcome in validation.results:
            if outcome.success or outcome.expectation_config is None:
                continue
            critical = str(outcome.expectation_config.severity.value) == "critical"
            (failed if critical else warnings).append(_label(outcome.expectation_config))
        summary = PartitionResult(
            date,
            entity,
            len(frame),
            not failed,
            failed,
            warnings,
            datetime.now(UTC).isoformat(),
            snapshot_id,
        )
        body = {**asdict(summary), "great_expectations": validation.to_json_dict()}
        from core.objectstore import s3_client

        s3_client(self.settings).put_object(
            Bucket=self.settings.s3.lake_bucket,
            Key=result_key(date, entity),
            Body=json.dumps(body, default=str).encode(),
        )
        return summary

    def publish_docs(self, since: float) -> int:
        """Upload the Data Docs files written since ``since`` (epoch s) to ``dq-docs/``; the
        static assets once. Returns the files uploaded."""
        from core.objectstore import s3_client

        s3 = s3_client(self.settings)
        bucket = self.settings.s3.lake_bucket
        have = {
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=f"{DOCS_PREFIX}/static/"
            )
            for o in page.get("Contents", [])
        }
        sent = 0
        for path in sorted(self.docs.rglob("*")):
            if not path.is_file():
                continue
            key = f"{DOCS_PREFIX}/{path.relative_to(self.docs).as_posix()}"
            if key in have or (key.startswith(f"{DOCS_PREFIX}/static/") is False
                               and path.stat().st_mtime < since):  # fmt: skip
                continue
            kind = "text/html" if path.suffix == ".html" else None
            extra = {"ContentType": kind} if kind else {}
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), **extra)
            sent += 1
        return sent


def partitions_of(files: Iterable[str]) -> list[tuple[str, str]]:
    """(event date, entity type) of offline part files, from their Hive-style paths."""
    out = set()
    for path in files:
        parts = dict(p.split("=", 1) for p in path.split("/") if "=" in p)
        if "dt" in parts and "entity_type" in parts:
            out.add((parts["dt"], parts["entity_type"]))
    return sorted(out)


def validate_partitions(
    settings: StackSettings,
    partitions: Sequence[tuple[str, str]] | None = None,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> list[PartitionResult]:
    """Validate ``partitions`` (all of the table's when None) in the table's current
    snapshot; keep each result on S3 and publish the Data Docs."""
    import time

    from pyiceberg.expressions import And, EqualTo

    from batch.iceberg import table
    from core.offline import committed_files

    tbl = table(settings)
    snap = tbl.current_snapshot()
    if partitions is None:
        partitions = partitions_of(committed_files(settings))
    if snap is None or not partitions:
        return []
    validator = OfflineValidator(settings)
    started = time.time()
    out = []
    for date, entity in partitions:
        expr = And(EqualTo(term="event_date", value=date), EqualTo(term="entity", value=entity))
        rows = tbl.scan(
            row_filter=expr, selected_fields=COLUMNS, snapshot_id=snap.snapshot_id
        ).to_pandas()
        result = validator.validate(date, entity, rows, snap.snapshot_id)
        verdict = "passed" if result.success else f"FAILED {', '.join(result.failed)}"
        warned = f"; warnings: {', '.join(result.warnings)}" if result.warnings else ""
        progress(f"  {result.partition}: {result.rows:,} rows, {verdict}{warned}")
        out.append(result)
    sent = validator.publish_docs(started)
    progress(
        f"  results: s3://{settings.s3.lake_bucket}/{VALIDATIONS_PREFIX}/suite={SUITE}/; "
        f"Data Docs: s3://{settings.s3.lake_bucket}/{DOCS_PREFIX}/index.html ({sent} files sent)"
    )
    return out


def latest_results(
    settings: StackSettings, dates: Iterable[str], entities: Iterable[str]
) -> list[PartitionResult]:
    """The kept results of these partitions (those never validated are absent)."""
    from botocore.exceptions import ClientError

    from core.objectstore import s3_client

    s3 = s3_client(settings)
    out = []
    for date in sorted(set(dates)):
        for entity in sorted(set(entities)):
            try:
                body = s3.get_object(Bucket=settings.s3.lake_bucket, Key=result_key(date, entity))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    continue
                raise
            data = json.loads(body["Body"].read())
            data.pop("great_expectations", None)
            out.append(PartitionResult(**data))
    return out


def refused_partitions(
    settings: StackSettings, first_ms: int, last_ms: int, entities: Iterable[str]
) -> list[PartitionResult]:
    """The partitions a read of ``[first_ms, last_ms]`` would touch whose latest validation
    failed."""
    first = datetime.fromtimestamp(first_ms / 1000, UTC).date()
    last = datetime.fromtimestamp(last_ms / 1000, UTC).date()
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    return [r for r in latest_results(settings, days, entities) if not r.success]
