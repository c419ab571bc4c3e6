"""`streamfeat job ...`: deploy the feature job to the local Flink cluster and follow it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import PROJECT_ROOT, StackSettings
from flink_jobs.config import JobConfig
from streamfeat.flink_client import FlinkClient
from streamfeat.stack.base import StackContext
from streamfeat.stack.errors import StackError

if TYPE_CHECKING:
    from core.lineage import LineageEmitter

FEATURE_JOB = PROJECT_ROOT / "flink_jobs" / "feature_job.py"


def job_config(settings: StackSettings, **overrides: object) -> JobConfig:
    return JobConfig(
        bootstrap=settings.kafka_bootstrap,
        redis_url=settings.redis_url,
        lake_bucket=settings.s3.lake_bucket,
        **overrides,
    )  # type: ignore[arg-type]


@dataclass(frozen=True)
class Deployed:
    job_id: str
    log: Path


def _state_file(ctx: StackContext) -> Path:
    return ctx.run_dir / "feature-job.json"


def running_job(settings: StackSettings) -> str | None:
    ctx = StackContext(settings)
    try:
        job_id = str(json.loads(_state_file(ctx).read_text())["job_id"])
    except (OSError, ValueError, KeyError):
        return None
    try:
        state = FlinkClient(ctx).job(job_id).get("state")
    except StackError:  # unknown to this JobManager (restarted since): not running
        return None
    return job_id if state in ("RUNNING", "CREATED", "INITIALIZING", "RESTARTING") else None


def deploy(
    settings: StackSettings, cfg: JobConfig | None = None, lineage: LineageEmitter | None = None
) -> Deployed:
    """Submit the feature job unless it already runs; wait until it is RUNNING.

    Lineage (its topics -> the job -> feature views, offline table, DLQ) is reported as a
    run: START before the submission, RUNNING once Flink runs it, FAIL if it does not;
    ``lineage`` defaults to the CLI's emitter (a lineage outage never fails the deploy)."""
    from streamfeat.cli_lineage import emitter
    from streamfeat.job_lineage import feature_job_spec

    ctx = StackContext(settings)
    current = running_job(settings)
    if current:
        raise StackError(
            "job",
            f"the feature job already runs as {current}",
            fix="`streamfeat job cancel` first (or keep it)",
        )
    cfg = cfg or job_config(settings)
    client = FlinkClient(ctx)
    run = (lineage or emitter(settings)).start(feature_job_spec(settings, cfg))
    try:
        sub = client.run_python(
            FEATURE_JOB, ["--config", cfg.model_dump_json()], name="feature-job", detached=True
        )
        _state_file(ctx).parent.mkdir(parents=True, exist_ok=True)
        _state_file(ctx).write_text(json.dumps({"job_id": sub.job_id}))
        client.wait_state(sub.job_id, "RUNNING", timeout_s=120)
    except BaseException as exc:
        run.fail(exc)
        raise
    run.running()
    return Deployed(sub.job_id, sub.log)


def cancel(settings: StackSettings) -> str | None:
    current = running_job(settings)
    if current:
        client = FlinkClient(StackContext(settings))
        client.cancel(current)
        client.wait_terminal(current, timeout_s=60)
    return current
