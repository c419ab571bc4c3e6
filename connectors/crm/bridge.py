"""The S3 CRM bridge: export objects under ``crm/exports/`` become ``crm.customers`` records.

Each valid row is published keyed by customer_id with the event contract:
``event_time`` = the row's ``updated_at``, else the export's timestamp; ``source`` = s3_crm;
``source_seq`` = [export_ts, object_key, row]. Invalid rows go to the S3 DLQ with their
reason and (object key, row); the rest of the file still flows.

Progress is durable in the compacted ``crm.bridge.progress`` topic, keyed by object key:
after every chunk of rows the bridge flushes the producer, writes that chunk's DLQ entries,
then records ``next_row``. A restart resumes at the last recorded chunk, so no row is lost;
rows of a half-done chunk are sent again, which is harmless — their version is the same and
last-writer-wins downstream ignores an equal version. A file re-uploaded with another ETag
is imported again from row 1.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from connectors.crm.rows import (
    Checked,
    CrmRow,
    RawRow,
    UnreadableFile,
    check_rows,
    format_of,
    iter_rows,
)
from connectors.kafka_clients import consumer, producer
from core.dlq import DLQ_PREFIX, DlqEntry, dlq_object_key
from core.domain import CUSTOMER_SUITE
from core.events import Source
from core.objectstore import s3_client
from core.quality import GreatExpectations, load_suite, validation_key
from core.settings import StackSettings
from core.topics import CRM_CUSTOMERS, CRM_PROGRESS

if TYPE_CHECKING:
    from core.lineage import LineageEmitter, LineageSpec

EXPORT_PREFIX = "crm/exports/"
CHUNK_ROWS = 5_000
_KEY_TIME = re.compile(r"(\d{8}T\d{6}Z)")


@dataclass(frozen=True)
class Progress:
    object_key: str
    etag: str
    status: str  # in_progress | done
    next_row: int
    published: int
    quarantined: int
    export_ts: int


@dataclass
class FileResult:
    object_key: str
    published: int = 0
    quarantined: int = 0
    resumed_from: int = 1
    skipped: bool = False


def export_ts_of(key: str, last_modified: datetime) -> int:
    """The export's timestamp: ``...20260101T040000Z...`` in the key, else LastModified."""
    match = _KEY_TIME.search(key.rsplit("/", 1)[-1])
    if match:
        parsed = datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return int(parsed.timestamp() * 1000)
    return int(last_modified.timestamp() * 1000)


def record_value(row: CrmRow, *, export_ts: int, object_key: str, number: int) -> bytes:
    return json.dumps(
        {
            "customer_id": row.customer_id,
            "email": row.email,
            "segment": row.segment,
            "tier": row.tier,
            "updated_at": row.updated_at_ms,
            "event_time": row.updated_at_ms if row.updated_at_ms is not None else export_ts,
            "source": Source.S3_CRM.value,
            "source_seq": [export_ts, object_key, number],
        },
        separators=(",", ":"),
    ).encode()


class CrmBridge:
    def __init__(
        self,
        settings: StackSettings,
        *,
        chunk_rows: int = CHUNK_ROWS,
        log: Callable[[str], None] = print,
        topic: str = CRM_CUSTOMERS,
        progress_topic: str = CRM_PROGRESS,
        lineage: LineageEmitter | None = None,
        great_expectations: bool = True,
    ) -> None:
        self.settings = settings
        self.lineage = lineage
        """Reports each pass that imports files as one run (exports -> topic, DLQ)."""
        self.topic = topic
        self.progress_topic = progress_topic
        self.bucket = settings.s3.lake_bucket
        self.s3 = s3_client(settings)
        self.chunk_rows = chunk_rows
        self.log = log
        self.stop = threading.Event()
        self._producer = producer(settings)
        self._errors: list[str] = []
        self.suite = load_suite(CUSTOMER_SUITE, settings.quality_suites_dir)
        """What a good row is (core/suites/crm_customers.json): read now, so a broken suite
        stops the bridge before it imports anything (core.quality.SuiteError)."""
        self._ge: GreatExpectations | None = None
        self.great_expectations = great_expectations
        """Validate with Great Expectations (the default), else with the suite's compiled
        rules (connectors.crm.rows.check_rows): for the benchmark's comparison."""

    # ---- progress (compacted topic) ----

    def load_progress(self, timeout_s: float = 30.0) -> dict[str, Progress]:
        """Latest progress per object key: read the compacted topic to its end."""
        from confluent_kafka import TopicPartition

        c = consumer(self.settings, group="streamfeat-crm-bridge-progress-reader")
        try:
            low, high = c.get_watermark_offsets(
                TopicPartition(self.progress_topic, 0), timeout=timeout_s
            )
            state: dict[str, Progress] = {}
            if high <= low:
                return state
            c.assign([TopicPartition(self.progress_topic, 0, low)])
            deadline = time.monotonic() + timeout_s
            position = low
            while position < high:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"reading {self.progress_topic} stopped at {position}/{high}"
                    )
                msg = c.poll(0.5)
                if msg is None or msg.error():
                    continue
                position = msg.offset() + 1
                key = msg.key().decode()
                if msg.value() is None:
                    state.pop(key, None)
                else:
                    state[key] = Progress(**json.loads(msg.value()))
            return state
        finally:
            c.close()

    def _save_progress(self, progress: Progress) -> None:
        self._producer.produce(
            self.progress_topic,
            key=progress.object_key.encode(),
            value=json.dumps(asdict(progress)).encode(),
        )
        self._flush()

    def _flush(self) -> None:
        remaining = self._producer.flush(60)
        if remaining or self._errors:
            raise RuntimeError(
                f"kafka: {remaining} records undelivered"
                f"{'; ' + self._errors[0] if self._errors else ''}"
            )

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            self._errors.append(str(err))

    # ---- one pass ----

    def list_exports(self) -> Iterator[dict[str, Any]]:
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=EXPORT_PREFIX):
            yield from sorted(page.get("Contents", []), key=lambda o: o["Key"])

    def sync_once(self) -> list[FileResult]:
        """Import every new or changed export object once; returns what was done.

        A pass that imports anything is one lineage run (START at the first file); an idle
        pass reports nothing, so polling does not flood the lineage store."""
        done = self.load_progress()
        results: list[FileResult] = []
        run = None
        try:
            for obj in self.list_exports():
                if self.stop.is_set():
                    break
                key = obj["Key"]
                if key.endswith("/"):  # directory placeholders (filesystem-backed endpoints)
                    continue
                etag = str(obj.get("ETag") or f"{obj['Size']}-{obj['LastModified'].timestamp()}")
                etag = etag.strip('"')
                previous = done.get(key)
                if previous and previous.etag == etag and previous.status == "done":
                    continue
                start = previous.next_row if previous and previous.etag == etag else 1
                if run is None and self.lineage is not None:
                    run = self.lineage.start(self._lineage_spec(quarantined=False))
                results.append(self.import_object(key, etag, obj["LastModified"], start))
        except BaseException as exc:
            if run is not None:
                run.fail(exc)
            raise
        if run is not None:
            run.complete(self._lineage_spec(quarantined=any(r.quarantined for r in results)))
        return results

    def _lineage_spec(self, *, quarantined: bool) -> LineageSpec:
        from core.lineage import s3_import_spec  # not at the top: the client takes ~0.7 s

        return s3_import_spec(
            self.settings,
            job_name="crm_bridge",
            prefix=EXPORT_PREFIX,
            topic=self.topic,
            dlq_prefix=DLQ_PREFIX if quarantined else None,
        )

    def import_object(
        self, key: str, etag: str, last_modified: datetime, start_row: int = 1
    ) -> FileResult:
        export_ts = export_ts_of(key, last_modified)
        result = FileResult(key, resumed_from=start_row)
        fmt = format_of(key)
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        chunk_start = start_row
        pending_dlq: list[DlqEntry] = []
        data: bytes | None = None  # the whole object, when a format needs it in memory
        try:
            if fmt is None:
                data = body.read()
                raise UnreadableFile("unsupported file extension")
            if fmt == "parquet":
                data = body.read()
                rows = iter_rows(fmt, data=data)
            else:
                rows = iter_rows(fmt, lines=body.iter_lines(keepends=False))
            chunk: list[RawRow] = []
            for raw in rows:
                if raw.row < start_row:
                    continue
                if self.stop.is_set():
                    return result
                chunk.append(raw)
                if len(chunk) >= self.chunk_rows:
                    self._import_chunk(key, etag, export_ts, chunk, result)
                    chunk_start = raw.row + 1
                    chunk = []
            if chunk:
                self._check_chunk(key, etag, export_ts, chunk, result, pending_dlq)
        except UnreadableFile as exc:
            # a streamed (CSV/JSONL) body is partly consumed: fetch the original again
            original = (
                data
                if data is not None
                else (self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
            )
            unreadable = Checked(None, "unreadable_file", str(exc))
            pending_dlq.append(self._dlq(original, unreadable, key, 0, export_ts))
            result.quarantined += 1
        self._commit_chunk(key, etag, export_ts, chunk_start, 0, pending_dlq, result, "done")
        self.log(
            f"  {key}: {result.published} published, {result.quarantined} quarantined"
            + (f" (resumed at row {start_row})" if start_row > 1 else "")
        )
        return result

    def _import_chunk(
        self, key: str, etag: str, export_ts: int, chunk: list[RawRow], result: FileResult
    ) -> None:
        """Validate, publish and quarantine one full chunk, then record it as done."""
        entries: list[DlqEntry] = []
        self._check_chunk(key, etag, export_ts, chunk, result, entries)
        self._commit_chunk(
            key, etag, export_ts, chunk[0].row, chunk[-1].row + 1, entries, result, "in_progress"
        )

    def _check_chunk(
        self,
        key: str,
        etag: str,
        export_ts: int,
        chunk: list[RawRow],
        result: FileResult,
        pending_dlq: list[DlqEntry],
    ) -> None:
        """Great Expectations' verdict on the chunk (kept on S3, :func:`validation_key`);
        its good rows published, the others queued for the DLQ."""
        checked = check_rows(chunk, self.expectations, great_expectations=self.great_expectations)
        self._keep_validation(key, etag, export_ts, chunk, checked)
        for raw, verdict in zip(chunk, checked, strict=True):
            if verdict.row is None:
                pending_dlq.append(self._dlq(raw.original, verdict, key, raw.row, export_ts))
                result.quarantined += 1
                continue
            self._publish(verdict.row, key, export_ts, raw.row)
            result.published += 1

    @property
    def expectations(self) -> GreatExpectations:
        """Great Expectations on the customer suite, made at first use (its import ~3 s)."""
        if self._ge is None:
            self._ge = GreatExpectations(
                load_suite(CUSTOMER_SUITE, self.settings.quality_suites_dir)
            )
        return self._ge

    def _keep_validation(
        self, key: str, etag: str, export_ts: int, chunk: list[RawRow], checked: list[Checked]
    ) -> None:
        summary = {
            "suite": CUSTOMER_SUITE,
            "object_key": key,
            "etag": etag,
            "rows": [chunk[0].row, chunk[-1].row],
            "validated_at": datetime.now(UTC).isoformat(),
            "quarantined": sum(c.row is None for c in checked),
            "great_expectations": (
                self.expectations.last_result if self.great_expectations else None
            ),
        }
        self.s3.put_object(
            Bucket=self.bucket,
            Key=validation_key(CUSTOMER_SUITE, export_ts, f"{key}#{etag}#{chunk[0].row}"),
            Body=json.dumps(summary, default=str).encode(),
        )

    def _publish(self, row: CrmRow, key: str, export_ts: int, number: int) -> None:
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    key=str(row.customer_id).encode(),
                    value=record_value(row, export_ts=export_ts, object_key=key, number=number),
                    on_delivery=self._on_delivery,
                )
                break
            except BufferError:
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _dlq(
        self, original: bytes, verdict: Checked, key: str, row: int, export_ts: int
    ) -> DlqEntry:
        return DlqEntry(
            source=Source.S3_CRM.value,
            reason=verdict.reason,
            detail=verdict.detail,
            original=original,
            date_ms=export_ts,
            coordinates={"bucket": self.bucket, "object_key": key, "row": row},
            expectation=verdict.expectation,
        )

    def _commit_chunk(
        self,
        key: str,
        etag: str,
        export_ts: int,
        chunk_start: int,
        next_row: int,
        entries: list[DlqEntry],
        result: FileResult,
        status: str,
    ) -> None:
        """Flush rows, persist the chunk's DLQ entries, then record progress — in that order,
        so recorded progress never covers a row that is not durably somewhere."""
        self._flush()
        by_partition: dict[str, list[DlqEntry]] = {}
        for entry in entries:
            by_partition.setdefault(entry.partition(), []).append(entry)
        for partition, batch in by_partition.items():
            body = "\n".join(e.to_json() for e in batch) + "\n"
            self.s3.put_object(
                Bucket=self.bucket,
                Key=dlq_object_key(partition, f"{key}#{etag}#{chunk_start}"),
                Body=body.encode(),
            )
        self._save_progress(
            Progress(key, etag, status, next_row, result.published, result.quarantined, export_ts)
        )

    # ---- loop ----

    def run(self, *, interval_s: float, once: bool) -> None:
        """Sync now, then every ``interval_s`` until SIGTERM/SIGINT (or once)."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop.set())
        while not self.stop.is_set():
            started = time.monotonic()
            results = self.sync_once()
            self.log(f"bridge pass: {len(results)} file(s) in {time.monotonic() - started:.1f}s")
            if once:
                return
            self.stop.wait(interval_s)
