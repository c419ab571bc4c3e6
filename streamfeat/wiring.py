"""`streamfeat check-wiring`: prove Kafka -> Flink cluster -> Parquet on S3 works end to end.

Produces a known set of records to a scratch topic, runs flink_jobs/wiring_check.py on the
cluster (Kafka connector in, S3 filesystem plugin + Parquet format out) and reads the Parquet
back with pyarrow. Operators run it after changing the cluster's jars or S3 settings.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from connectors.kafka_clients import admin, producer
from core.objectstore import arrow_fs
from core.settings import PROJECT_ROOT, StackSettings
from streamfeat.flink_client import FlinkClient
from streamfeat.stack.base import StackContext
from streamfeat.stack.errors import StackError

WIRING_TOPIC = "_streamfeat-wiring-check"
WIRING_JOB = PROJECT_ROOT / "flink_jobs" / "wiring_check.py"


@dataclass(frozen=True)
class WiringResult:
    job_id: str
    state: str
    produced: int
    rows_read_back: int
    output: str
    seconds: float
    log: Path


def produce_records(settings: StackSettings, topic: str, count: int, run: str) -> None:
    from confluent_kafka.admin import NewTopic

    client = admin(settings)
    if topic not in client.list_topics(timeout=10).topics:
        for fut in client.create_topics([NewTopic(topic, 3, 1)]).values():
            try:
                fut.result(timeout=30)
            except Exception as exc:  # created concurrently is fine
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    sender = producer(settings)
    for i in range(count):
        sender.produce(
            topic, key=run.encode(), value=json.dumps({"k": run, "v": i, "ts": i}).encode()
        )
    if sender.flush(30) != 0:
        raise StackError("kafka", f"could not deliver {count} records to {topic} in 30s")


def check_wiring(
    settings: StackSettings, count: int = 100, timeout_s: float = 300.0
) -> WiringResult:
    ctx = StackContext(settings)
    run = uuid.uuid4().hex[:12]
    t0 = time.monotonic()
    produce_records(settings, WIRING_TOPIC, count, run)
    output = f"{settings.s3.lake_bucket}/_wiring-check/{run}"
    client = FlinkClient(ctx)
    sub = client.run_python(
        WIRING_JOB,
        [
            "--bootstrap",
            settings.kafka_bootstrap,
            "--topic",
            WIRING_TOPIC,
            "--output",
            f"s3://{output}",
        ],
        name="wiring-check",
        detached=True,
        timeout_s=timeout_s,
    )
    state = client.wait_terminal(sub.job_id, timeout_s)
    if state != "FINISHED":
        raise StackError(
            "job wiring-check",
            f"ended {state}: {client.exceptions(sub.job_id)}",
            log=ctx.log_path("flink-taskmanager"),
            fix="read the TaskManager log",
        )
    import pyarrow.dataset as ds

    table = ds.dataset(output, filesystem=arrow_fs(settings), format="parquet").to_table(
        filter=ds.field("k") == run
    )
    return WiringResult(
        sub.job_id, state, count, table.num_rows, f"s3://{output}", time.monotonic() - t0, sub.log
    )
