"""`streamfeat job ...`: deploy the feature job to the local Flink cluster and follow it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import PROJECT_ROOT, StackSettings
from flink_jobs.config import JobConfig, RegisteredView
from streamfeat.flink_client import FlinkClient
from streamfeat.stack.base import StackContext
from streamfeat.stack.errors import StackError

if TYPE_CHECKING:
    from core.lineage import LineageEmitter

FEATURE_JOB = PROJECT_ROOT / "flink_jobs" / "feature_job.py"


def job_config(settings: StackSettings, **overrides: object) -> JobConfig:
    """The job's configuration on this stack; the consumer group is the one the last
    deploy recorded (a replay starts a new one), unless overridden."""
    recorded = _state(StackContext(settings)).get("group_id")
    if recorded and "group_id" not in overrides:
        overrides = {**overrides, "group_id": recorded}
    if "function_jars" not in overrides:
        overrides = {**overrides, "function_jars": function_jars(settings)}
    suites = {k: v for k, v in gate_suites(settings).items() if k not in overrides}
    overrides = {**overrides, **suites}
    stack = {
        "bootstrap": settings.kafka_bootstrap,
        "redis_url": settings.redis_url,
        "lake_bucket": settings.s3.lake_bucket,
    }
    return JobConfig.model_validate({**stack, **overrides})


def gate_suites(settings: StackSettings) -> dict[str, dict[str, object]]:
    """The suites the job's gates will enforce (``settings.quality_suites_dir``, else the
    repository's), as JobConfig fields, checked now: a suite the stream cannot enforce stops
    the deploy before anything is submitted."""
    from core.quality import SuiteError, load_suite
    from flink_jobs.logic.records import (
        CDC_ORDERS_SUITE,
        CLICKSTREAM_SUITE,
        click_suite_of,
        order_suite_of,
    )

    directory = settings.quality_suites_dir
    out = {}
    for name, field, check in (
        (CLICKSTREAM_SUITE, "clickstream_suite", click_suite_of),
        (CDC_ORDERS_SUITE, "cdc_orders_suite", order_suite_of),
    ):
        try:
            suite = load_suite(name, directory)
            check(suite.document)
        except SuiteError as exc:
            raise StackError(
                "job",
                f"the {name} suite cannot be deployed, nothing was changed: {exc}",
                fix=f"edit {directory or 'core/suites'}/{name}.json (docs/data-quality.md lists "
                "what the stream enforces), then deploy again",
            ) from None
        out[field] = dict(suite.document)
    return out


def function_jars(settings: StackSettings) -> tuple[str, ...]:
    """The jars of the job's Java functions (flink_jobs/jvm), as `make install` built them."""
    folder = StackContext(settings).jvm_path("udf", service="feature job")
    return tuple(str(p) for p in sorted(folder.glob("*.jar")))


def registered_views(settings: StackSettings) -> tuple[RegisteredView, ...]:
    """The windowed views registered through the registry and not declared in
    core/features.py (the latest version of each, deprecated ones left out), with their
    entities: what `streamfeat job deploy` has the job compute beside the declared views."""
    from core.features import FEATURE_VIEWS
    from feature_api.errors import ApiError
    from feature_api.registry_store import Kind, RegistryStore

    try:
        records = RegistryStore(settings.postgres_dsn(), timeout_s=5).latest()
    except ApiError as exc:
        raise StackError(
            "job",
            f"cannot read the registered feature views: {exc}",
            log=StackContext(settings).log_dir / "postgres.log",
            fix="`streamfeat up` (the registry lives in PostgreSQL)",
        ) from None
    entities = {r.name: r.spec for r in records if r.kind is Kind.ENTITY}
    declared = {v.name for v in FEATURE_VIEWS}
    return tuple(
        RegisteredView(view=r.spec, entity=entities[r.spec.entity])
        for r in records
        if r.kind is Kind.FEATURE_VIEW
        and r.spec.aggregations is not None
        and r.name not in declared
        and r.deprecated_at is None
    )


_REPLAY_SUFFIX = re.compile(r"-r\d{8}T\d{6}$")


def replay_group(cfg: JobConfig, now: datetime | None = None) -> str:
    """A fresh consumer group for a replay: the configured group's name plus a UTC time,
    the suffix of an earlier replay replaced (``streamfeat-features-r20261126T040000``)."""
    base = _REPLAY_SUFFIX.sub("", cfg.group_id)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    return f"{base}-r{stamp}"


@dataclass(frozen=True)
class Deployed:
    job_id: str
    log: Path


def _state_file(ctx: StackContext) -> Path:
    return ctx.run_dir / "feature-job.json"


def _state(ctx: StackContext) -> dict[str, str]:
    try:
        state: dict[str, str] = json.loads(_state_file(ctx).read_text())
        return state
    except (OSError, ValueError):
        return {}


def _save_state(ctx: StackContext, **fields: str) -> None:
    path = _state_file(ctx)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**_state(ctx), **fields}))


def last_savepoint(settings: StackSettings) -> str | None:
    """Where the last `streamfeat job stop` / `job savepoint` put the job's state."""
    return _state(StackContext(settings)).get("savepoint")


def running_job(settings: StackSettings) -> str | None:
    ctx = StackContext(settings)
    job_id = _state(ctx).get("job_id")
    if not job_id:
        return None
    try:
        state = FlinkClient(ctx).job(job_id).get("state")
    except StackError:  # unknown to this JobManager (restarted since): not running
        return None
    return job_id if state in ("RUNNING", "CREATED", "INITIALIZING", "RESTARTING") else None


def check_lateness(cfg: JobConfig) -> None:
    """Refuse, before anything is submitted, allowed lateness the plan cannot have: views
    computed together (one OVER chain) with different values (flink_jobs.lateness)."""
    from flink_jobs import sql

    try:
        sql.click_classes(cfg)
        sql.orders_lateness_ms(cfg)
    except ValueError as exc:
        raise StackError(
            "job",
            f"allowed lateness: {exc}",
            fix="give the views of one chain the same allowed_lateness_ms in core/features.py",
        ) from None


def deploy(
    settings: StackSettings,
    cfg: JobConfig | None = None,
    lineage: LineageEmitter | None = None,
    *,
    from_savepoint: str | None = None,
    allow_non_restored_state: bool = False,
    replay: bool = False,
) -> Deployed:
    """Submit the feature job unless it already runs; wait until it is RUNNING.

    ``from_savepoint`` (a location, or ``"last"`` for the one `job stop` recorded): resume
    with its state — Kafka offsets, window/session/lag state — so nothing is counted twice
    or lost across the stop. The job graph's operator uids are generated from the plan
    (flink_jobs.feature_job): the same code restores exactly; a changed plan is refused by
    Flink unless ``allow_non_restored_state`` (then operators without a match start empty).

    ``replay``: start without state under a new consumer group (recorded, so later deploys
    keep it), reading every topic from its earliest retained record. This is the upgrade
    path for a changed SQL plan, whose window, session and lag state Flink cannot map onto
    the new operators: the clickstream keeps 7 days, the longest window, so the state of
    every window ending now is rebuilt exactly. Replayed writes carry the versions already
    stored, so Redis keeps its values (the version guard) and offline last-writer-wins is
    unchanged; values change again with the next new event of each entity.

    Lineage (its topics -> the job -> feature views, offline table, DLQ) is reported as a
    run: START before the submission, RUNNING once Flink runs it, FAIL if it does not;
    ``lineage`` defaults to the CLI's emitter (a lineage outage never fails the deploy)."""
    from streamfeat.cli_lineage import emitter
    from streamfeat.job_lineage import feature_job_spec

    ctx = StackContext(settings)
    cfg = cfg or job_config(settings)
    check_lateness(cfg)
    current = running_job(settings)
    if current:
        raise StackError(
            "job",
            f"the feature job already runs as {current}",
            fix="`streamfeat job cancel` first (or keep it)",
        )
    if replay:
        if from_savepoint:
            raise StackError(
                "job",
                "--replay and --from-savepoint contradict each other (a savepoint restores "
                "the offsets a replay starts before)",
                fix="choose one",
            )
        cfg = cfg.model_copy(update={"group_id": replay_group(cfg), "start_from_earliest": True})
    client = FlinkClient(ctx)
    if from_savepoint == "last":
        from_savepoint = last_savepoint(settings)
        if from_savepoint is None:
            raise StackError(
                "job", "no savepoint recorded", fix="`streamfeat job stop` takes one first"
            )
    run = (lineage or emitter(settings)).start(feature_job_spec(settings, cfg))
    try:
        sub = client.run_python(
            FEATURE_JOB,
            ["--config", cfg.model_dump_json()],
            name="feature-job",
            detached=True,
            savepoint=from_savepoint,
            allow_non_restored_state=allow_non_restored_state,
        )
        _save_state(ctx, job_id=sub.job_id, group_id=cfg.group_id)
        client.wait_state(sub.job_id, "RUNNING", timeout_s=120)
    except BaseException as exc:
        run.fail(exc)
        raise
    run.running()
    return Deployed(sub.job_id, sub.log)


def stop(settings: StackSettings) -> str:
    """Stop the running job with a savepoint and record its location (for
    ``deploy(from_savepoint="last")``); returns the location."""
    current = running_job(settings)
    if not current:
        raise StackError("job", "the feature job is not running", fix="streamfeat job deploy")
    ctx = StackContext(settings)
    client = FlinkClient(ctx)
    location = client.stop_with_savepoint(current)
    client.wait_terminal(current, timeout_s=60)
    _save_state(ctx, savepoint=location)
    return location


def savepoint(settings: StackSettings) -> str:
    """A savepoint of the running job, which keeps running; recorded like `stop`'s."""
    current = running_job(settings)
    if not current:
        raise StackError("job", "the feature job is not running", fix="streamfeat job deploy")
    ctx = StackContext(settings)
    location = FlinkClient(ctx).trigger_savepoint(current)
    _save_state(ctx, savepoint=location)
    return location


def cancel(settings: StackSettings) -> str | None:
    """End the running job without a savepoint (gracefully if it can:
    :meth:`FlinkClient.end`); returns its id, None if none ran."""
    current = running_job(settings)
    if current:
        FlinkClient(StackContext(settings)).end(current)
    return current
