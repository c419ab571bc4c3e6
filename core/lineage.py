"""Lineage: the naming contract of the lineage graph and an OpenLineage emitter.

Every operation that moves data (a Debezium connector applied, a CRM import pass, the feature
job deployed; later a training-set build, a model registration, a promotion to a serving
stage) reports an OpenLineage run event: a job with its input and output datasets. The
feature API stores the events (``POST /api/v1/lineage``, the path Marquez uses) and derives
the graph ``input dataset -> job -> output dataset``.

Naming follows the OpenLineage naming spec where one exists, so other tools can join the
graph: PostgreSQL ``postgres://host:port`` + ``database.schema.table``; Kafka
``kafka://host:port`` + topic; S3 ``s3://bucket`` + prefix (no trailing slash). The
platform's own logical datasets — feature views, training sets, model versions, serving
stages — and every job live in the namespace ``streamfeat``; a logical dataset's name
carries its kind (``feature_view:user_activity``, ``model_version:churn/3``).

Delivery never breaks the operation it describes: an event the API does not take (down,
slow, 5xx, refused credentials) is logged as a warning and appended to a spool file under
the stack's home (``lineage/spool.jsonl``); the next emit from any process replays the
spool first, in order. An event the API rejects as invalid (other 4xx) is logged and
dropped: sending it again could never succeed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import (
    Dataset,
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.facet_v2 import (
    error_message_run,
    job_type_job,
    processing_engine_run,
)
from openlineage.client.serde import Serde
from openlineage.client.transport import Transport
from openlineage.client.transport.http import HttpConfig, HttpTransport
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.settings import StackSettings

log = logging.getLogger("streamfeat.lineage")

NAMESPACE = "streamfeat"
"""Namespace of every job and of the platform's logical datasets."""
PRODUCER = "urn:streamfeat:core.lineage"
ENDPOINT = "api/v1/lineage"
"""Where the feature API takes events (the OpenLineage HTTP transport's default path)."""


class Kind(StrEnum):
    """What a node of the lineage graph is; ``kind:label`` is how users name a node."""

    TABLE = "table"
    TOPIC = "topic"
    S3 = "s3"
    FEATURE_VIEW = "feature_view"
    TRAINING_SET = "training_set"
    MODEL_VERSION = "model_version"
    SERVING_STAGE = "serving_stage"
    JOB = "job"
    DATASET = "dataset"
    """Any dataset of a namespace this platform does not name itself."""


LOGICAL_KINDS = (Kind.FEATURE_VIEW, Kind.TRAINING_SET, Kind.MODEL_VERSION, Kind.SERVING_STAGE)


def classify(namespace: str, name: str, *, job: bool = False) -> tuple[Kind, str]:
    """The kind of a node and its short label (what follows ``kind:`` in a node reference).

    Jobs: label = name in ``streamfeat``, else ``namespace/name``. Tables: the name without
    its database (``public.customers``). Topics: the topic. S3: ``bucket/prefix``. Logical
    datasets: the name after ``<kind>:``. Anything else: ``namespace/name``.
    """
    if job:
        return Kind.JOB, name if namespace == NAMESPACE else f"{namespace}/{name}"
    scheme = namespace.split("://", 1)[0] if "://" in namespace else ""
    if scheme in ("postgres", "postgresql"):
        return Kind.TABLE, name.split(".", 1)[1] if name.count(".") >= 2 else name
    if scheme == "kafka":
        return Kind.TOPIC, name
    if scheme == "s3":
        return Kind.S3, f"{namespace.removeprefix('s3://')}/{name}".rstrip("/")
    if namespace == NAMESPACE and ":" in name:
        prefix, _, rest = name.partition(":")
        for kind in LOGICAL_KINDS:
            if prefix == kind.value:
                return kind, rest
    return Kind.DATASET, f"{namespace}/{name}"


# ---- datasets and jobs (the one place their names are spelled) ----


def postgres_table(settings: StackSettings, table: str) -> Dataset:
    """``table`` as ``schema.table`` (e.g. ``public.customers``)."""
    return Dataset(
        namespace=f"postgres://{settings.host}:{settings.ports.postgres}",
        name=f"{settings.postgres.database}.{table}",
    )


def kafka_topic(settings: StackSettings, topic: str) -> Dataset:
    return Dataset(namespace=f"kafka://{settings.kafka_bootstrap}", name=topic)


def s3_prefix(bucket: str, prefix: str) -> Dataset:
    """A prefix (folder) of a bucket; one node per prefix, not per object."""
    return Dataset(namespace=f"s3://{bucket}", name=prefix.strip("/"))


def local_file(path: str) -> Dataset:
    """A file on the local filesystem (OpenLineage naming: namespace ``file``, the absolute
    path), e.g. a training-set spine read from disk."""
    return Dataset(namespace="file", name=path)


def _logical(kind: Kind, name: str) -> Dataset:
    if not name or name != name.strip():
        raise ValueError(f"{kind.value} name {name!r} must be non-empty, without outer spaces")
    return Dataset(namespace=NAMESPACE, name=f"{kind.value}:{name}")


def feature_view(name: str) -> Dataset:
    return _logical(Kind.FEATURE_VIEW, name)


def training_set(name: str) -> Dataset:
    return _logical(Kind.TRAINING_SET, name)


def model_version(model: str, version: str | int) -> Dataset:
    return _logical(Kind.MODEL_VERSION, f"{model}/{version}")


def serving_stage(model: str, stage: str) -> Dataset:
    return _logical(Kind.SERVING_STAGE, f"{model}/{stage}")


def job(
    name: str, *, processing: str = "BATCH", integration: str = "STREAMFEAT", job_type: str = "JOB"
) -> Job:
    """A job of the platform; ``processing`` is BATCH, STREAMING or SERVICE (OpenLineage)."""
    facet = job_type_job.JobTypeJobFacet(
        processingType=processing, integration=integration, jobType=job_type
    )
    return Job(namespace=NAMESPACE, name=name, facets={"jobType": facet})


@dataclass(frozen=True)
class LineageSpec:
    """What one run reads and writes."""

    job: Job
    inputs: tuple[Dataset, ...]
    outputs: tuple[Dataset, ...]
    run_facets: dict[str, Any] = field(default_factory=dict)


def _spec(job_: Job, inputs: Sequence[Dataset], outputs: Sequence[Dataset]) -> LineageSpec:
    return LineageSpec(job_, tuple(inputs), tuple(outputs))


def debezium_spec(
    settings: StackSettings, *, connector: str, tables: Sequence[str], topic_prefix: str
) -> LineageSpec:
    """A Debezium PostgreSQL connector: each captured ``schema.table`` feeds the topic
    ``<topic.prefix>.<schema>.<table>`` (Debezium's default topic naming)."""
    return _spec(
        job(f"debezium.{connector}", processing="STREAMING", integration="DEBEZIUM"),
        [postgres_table(settings, t) for t in tables],
        [kafka_topic(settings, f"{topic_prefix}.{t}") for t in tables],
    )


def s3_import_spec(
    settings: StackSettings,
    *,
    job_name: str,
    prefix: str,
    topic: str,
    dlq_prefix: str | None = None,
) -> LineageSpec:
    """An import pass: objects under ``prefix`` of the lake bucket -> ``topic``; rows
    that fail validation -> ``dlq_prefix`` (only when the pass quarantined any)."""
    bucket = settings.s3.lake_bucket
    outputs = [kafka_topic(settings, topic)]
    if dlq_prefix is not None:
        outputs.append(s3_prefix(bucket, dlq_prefix))
    return _spec(job(job_name), [s3_prefix(bucket, prefix)], outputs)


def training_set_spec(
    *, name: str, feature_views: Sequence[str], sources: Sequence[Dataset] = ()
) -> LineageSpec:
    """A training-set build: feature views (and e.g. the offline table or a label table in
    ``sources``) -> the training set. Wired when batch/ builds training sets."""
    return _spec(
        job(f"training_set_build.{name}"),
        [*(feature_view(v) for v in feature_views), *sources],
        [training_set(name)],
    )


def model_registration_spec(
    *, model: str, version: str | int, training_sets: Sequence[str]
) -> LineageSpec:
    """A model version registered from training sets. Wired when serving/ registers models."""
    return _spec(
        job(f"model_registration.{model}"),
        [training_set(t) for t in training_sets],
        [model_version(model, version)],
    )


def serving_stage_spec(*, model: str, version: str | int, stage: str) -> LineageSpec:
    """A model version promoted to a serving stage (staging, canary, production)."""
    return _spec(
        job(f"model_promotion.{model}", processing="SERVICE"),
        [model_version(model, version)],
        [serving_stage(model, stage)],
    )


def engine_facet(name: str, version: str) -> dict[str, Any]:
    """Run facet naming the engine that runs the job (e.g. Flink 2.2.0)."""
    facet = processing_engine_run.ProcessingEngineRunFacet(version=version, name=name)
    return {"processing_engine": facet}


# ---- events ----


def run_event(
    spec: LineageSpec,
    state: RunState,
    *,
    run_id: str,
    at: datetime | None = None,
    error: BaseException | None = None,
) -> RunEvent:
    """One OpenLineage run event for ``spec`` (FAIL events carry the error message)."""
    facets = dict(spec.run_facets)
    if error is not None:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=f"{type(error).__name__}: {error}"[:2000], programmingLanguage="PYTHON"
        )
    return RunEvent(
        eventType=state,
        eventTime=(at or datetime.now(UTC)).isoformat(),
        run=Run(runId=run_id, facets=facets),
        job=spec.job,
        inputs=[InputDataset(namespace=d.namespace, name=d.name) for d in spec.inputs],
        outputs=[OutputDataset(namespace=d.namespace, name=d.name) for d in spec.outputs],
        producer=PRODUCER,
    )


class Spool:
    """Events not yet delivered, one JSON document a line, in emit order.

    Several processes may emit at once (the bridge, a deploy, a CLI call): appends and
    replays hold an exclusive lock on a sibling ``.lock`` file, and a replay rewrites the
    spool atomically (temp file + rename) with what is still undelivered.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, document: str) -> None:
        with self._locked(), open(self.path, "a") as f:
            f.write(document.replace("\n", " ") + "\n")

    def pending(self) -> list[str]:
        try:
            return [line for line in self.path.read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def replay(self, send: Callable[[str], Delivery]) -> int:
        """Send spooled events in order until one is not delivered (kept with all after
        it); rejected ones are dropped. Returns how many were delivered."""
        if not self.path.exists():
            return 0
        with self._locked():
            lines = self.pending()
            delivered, keep = 0, 0
            for i, line in enumerate(lines):
                outcome = send(line)
                if outcome is Delivery.RETRY:
                    keep = i
                    break
                delivered += outcome is Delivery.DELIVERED
                keep = i + 1
            rest = lines[keep:]
            if rest:
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text("".join(line + "\n" for line in rest))
                os.replace(tmp, self.path)
            else:
                self.path.unlink(missing_ok=True)
        if delivered:
            log.info("lineage: replayed %d spooled event(s)", delivered)
        return delivered


class Delivery(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    """Not taken now (unreachable, timeout, 5xx, 401/403/408/429): keep and send later."""
    REJECTED = "rejected"
    """The API refused the event itself (other 4xx): sending it again cannot succeed."""


_RETRY_STATUS = frozenset({401, 403, 408, 429})


def api_key_header(api_key: str | None) -> dict[str, str]:
    """The feature API's credential header (feature_api/auth.py reads ``X-API-Key``)."""
    return {"X-API-Key": api_key} if api_key else {}


class SpoolingTransport(Transport):
    """OpenLineage HTTP transport that never raises: what is not delivered is spooled, and
    every emit first replays the spool (through the same HTTP session)."""

    kind = "streamfeat-spooling-http"

    def __init__(self, http: HttpTransport, spool: Spool, api_key: str | None) -> None:
        self.http = http
        self.spool = spool
        self.last: Delivery | None = None
        """Outcome of the latest emit (the client's ``emit`` returns nothing)."""
        self._headers = {"Content-Type": "application/json", **api_key_header(api_key)}

    def _post(self, document: str) -> Delivery:
        import requests

        url = self.http.url.rstrip("/") + "/" + self.http.endpoint
        try:
            resp = self.http.session.post(
                url, data=document, headers=self._headers, timeout=self.http.timeout
            )
            resp.close()
        except requests.RequestException as exc:
            log.warning("lineage: %s unreachable (%s); event kept in %s", url, exc, self.spool.path)
            return Delivery.RETRY
        if resp.status_code < 300:
            return Delivery.DELIVERED
        if resp.status_code >= 500 or resp.status_code in _RETRY_STATUS:
            log.warning(
                "lineage: %s answered %d; event kept in %s (fix: check the feature API and "
                "STREAMFEAT_LINEAGE_API_KEY)",
                url,
                resp.status_code,
                self.spool.path,
            )
            return Delivery.RETRY
        log.warning(
            "lineage: %s rejected an event (%d: %s); dropped",
            url,
            resp.status_code,
            resp.text[:300],
        )
        return Delivery.REJECTED

    def emit(self, event: Any) -> Delivery:
        self.spool.replay(self._post)
        document = Serde.to_json(event)
        outcome = self._post(document)
        if outcome is Delivery.RETRY:
            self.spool.append(document)
        self.last = outcome
        return outcome


class LineageSettings(BaseSettings):
    """Where lineage events go (``STREAMFEAT_LINEAGE_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="STREAMFEAT_LINEAGE_", extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Off: events are neither sent nor spooled.")
    url: str | None = Field(
        None, description="Base URL of the API taking events; default: the stack's feature API."
    )
    api_key: SecretStr | None = Field(
        None,
        description="API key with the writer role (header X-API-Key). The CLI falls back to "
        "the development writer key outside production.",
    )
    timeout_ms: int = Field(
        2000, ge=1, description="Longest one delivery may take before the event is spooled."
    )


class LineageEmitter:
    """Emits run events through the OpenLineage client; never raises on delivery."""

    def __init__(
        self,
        *,
        url: str,
        spool: Path,
        api_key: str | None = None,
        timeout_s: float = 2.0,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self.spool = Spool(spool)
        http = HttpTransport(
            HttpConfig(
                url=url,
                endpoint=ENDPOINT,
                timeout=timeout_s,
                custom_headers=api_key_header(api_key),
                # no retries inside the call: the spool is the retry, and a deploy must not
                # wait seconds of backoff for a lineage server that is down
                retry={"total": 0, "connect": 0, "read": 0, "backoff_factor": 0},
            )
        )
        self.transport = SpoolingTransport(http, self.spool, api_key)
        self.client = OpenLineageClient(transport=self.transport)

    @classmethod
    def from_settings(
        cls, stack: StackSettings, lineage: LineageSettings | None = None
    ) -> LineageEmitter:
        cfg = lineage or LineageSettings()
        return cls(
            url=cfg.url or f"http://{stack.host}:{stack.ports.api}",
            spool=spool_path(stack),
            api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
            timeout_s=cfg.timeout_ms / 1000,
            enabled=cfg.enabled,
        )

    def emit(self, event: RunEvent) -> Delivery | None:
        """Deliver (or spool) one event; None when lineage is disabled. Never raises on
        delivery: a lineage outage must not fail the operation it describes."""
        if not self.enabled:
            return None
        self.transport.last = None
        try:
            self.client.emit(event)
        except Exception:  # the client's own processing (delivery errors are spooled)
            log.warning("lineage: could not emit %s", event.eventType, exc_info=True)
            return None
        return self.transport.last

    def start(self, spec: LineageSpec) -> LineageRun:
        """Report START now; the returned run reports the outcome."""
        run = LineageRun(self, spec, str(uuid.uuid4()))
        self.emit(run_event(spec, RunState.START, run_id=run.run_id))
        return run

    @contextlib.contextmanager
    def track(self, spec: LineageSpec) -> Iterator[LineageRun]:
        """START on entry; COMPLETE on a clean exit, FAIL (with the error) on an exception,
        which is re-raised. ``run.complete(...)`` inside the block ends the run early."""
        run = self.start(spec)
        try:
            yield run
        except BaseException as exc:
            if not run.ended:
                run.fail(exc)
            raise
        if not run.ended:
            run.complete()


@dataclass
class LineageRun:
    emitter: LineageEmitter
    spec: LineageSpec
    run_id: str
    ended: bool = False

    def _end(self, state: RunState, spec: LineageSpec | None, error: BaseException | None) -> None:
        if spec is not None:
            self.spec = spec
        self.ended = state in (RunState.COMPLETE, RunState.FAIL, RunState.ABORT)
        self.emitter.emit(run_event(self.spec, state, run_id=self.run_id, error=error))

    def running(self, spec: LineageSpec | None = None) -> None:
        """A streaming job is up (RUNNING); it has no natural completion."""
        self._end(RunState.RUNNING, spec, None)

    def complete(self, spec: LineageSpec | None = None) -> None:
        """COMPLETE, optionally with what the run turned out to write (``spec``)."""
        self._end(RunState.COMPLETE, spec, None)

    def fail(self, error: BaseException) -> None:
        self._end(RunState.FAIL, None, error)


def spool_path(stack: StackSettings) -> Path:
    return stack.home / "lineage" / "spool.jsonl"
