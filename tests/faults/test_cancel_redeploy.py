"""The feature job cancelled the hard way and deployed again, many times over, while clicks
flow: the TaskManager lives through all of it.

Flink's own cancel (REST ``PATCH /jobs/<id>?mode=cancel``: the UI's button, an operator's
``flink cancel``, and what a failover does to the tasks it restarts) interrupts every task
where it stands. With the job's Python function in process mode that could end the
TaskManager (Beam's bundle released twice, docs/operations.md); the job runs it in thread
mode. Each round here deploys the job as a replay (a new consumer group, every topic from
its earliest record: the path for a stateless redeploy), waits until it has processed
records and completed a checkpoint, and cancels it while the producer keeps sending. After
every cancel the same TaskManager process is alive and registered, with no Python worker
process; the last deploy runs to the end and every user's features equal the pure rules'.

``STREAMFEAT_FAULT_CANCELS`` rounds (2 here; `make faults` runs 20); per-round deploy
times and the TaskManager's metaspace go to .local/faults/cancel-redeploy.json.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from typing import Any

import pytest

from core.settings import PROJECT_ROOT, StackSettings
from streamfeat.bench.feature_job import unfinished
from streamfeat.bench.scratch import redis_client
from streamfeat.flink_client import TERMINAL_STATES, FlinkClient
from streamfeat.job import FEATURE_JOB
from streamfeat.stack.base import StackContext
from streamfeat.stack.supervisor import Supervisor
from tests.faults.stream import (
    Scratch,
    assert_activity_exact,
    checkpointed_since,
    demo_stream,
    first,
    produce_flush,
    produce_paced,
    python_workers,
    taskmanager,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.stack

CANCELS = int(os.environ.get("STREAMFEAT_FAULT_CANCELS", "2"))
RATE = 300.0
"""Clicks per second, from before the first deploy until the last cancel."""
ROUND_S = 90
"""Clicks generated per round: far more than a round takes (~25 s), so the stream cannot
run out before the last cancel, which stops it."""
SCRATCH = Scratch(
    {
        "clickstream": ("_cancels-clicks", 12),
        "crm": ("_cancels-crm", 3),
        "cdc_customers": ("_cancels-cdc", 3),
        "cdc_orders": ("_cancels-orders", 3),
    },
    "streamfeat-cancels",
)
RESULTS = PROJECT_ROOT / ".local" / "faults"


def _registered(client: FlinkClient) -> list[str]:
    got: Any = client._get("/taskmanagers")
    return sorted(tm["id"] for tm in got["taskmanagers"])


def _metaspace_mib(client: FlinkClient, tm_id: str) -> float:
    got: Any = client._get(f"/taskmanagers/{tm_id}/metrics?get=Status.JVM.Memory.Metaspace.Used")
    return round(float(got[0]["value"]) / 2**20, 1)


def test_job_cancelled_and_redeployed_again_and_again_keeps_its_taskmanager(
    supervisor: Supervisor, stack_settings: StackSettings
) -> None:
    s = stack_settings
    client = FlinkClient(StackContext(s))
    SCRATCH.create(s)
    cfg = SCRATCH.job_config(s, checkpoint_interval_ms=2000, start_from_earliest=True)
    start_ms = (int(time.time()) // 60) * 60_000 - 6 * 3_600_000
    cfg, clicks, flush = demo_stream(
        cfg,
        seed=17,
        n=int((CANCELS + 1) * ROUND_S * RATE),
        start_ms=start_ms,
        partitions=SCRATCH.topics["clickstream"][1],
    )
    tm = taskmanager(supervisor)
    registered = _registered(client)
    assert len(registered) == 1, registered
    sent, done, stop = [0], [], threading.Event()
    producing = threading.Thread(
        target=produce_paced,
        args=(s, SCRATCH.clicks_topic, list(clicks.records), RATE, sent, done, stop),
        daemon=True,
    )
    producing.start()
    rounds: list[dict[str, Any]] = []
    job_id = ""
    try:
        for n in range(CANCELS + 1):
            t0, t0_ms = time.monotonic(), time.time() * 1000
            group = f"_cancels-{uuid.uuid4().hex[:8]}"  # a replay: every record again
            job_id = client.run_python(
                FEATURE_JOB,
                ["--config", cfg.model_copy(update={"group_id": group}).model_dump_json()],
                name="cancels-feature-job",
                detached=True,
            ).job_id
            client.wait_state(job_id, "RUNNING", timeout_s=180)
            deployed_s = time.monotonic() - t0
            if n == CANCELS:
                break  # the last one runs to the end of the stream
            wait_for(
                "a checkpoint of the running job",
                lambda since=t0_ms, j=job_id: checkpointed_since(client, j, since),
                120,
            )
            produced = sent[0]
            assert produced < len(clicks.records), "the stream ended before the cancel"
            client.cancel(job_id)
            state = client.wait_terminal(job_id, timeout_s=120)
            assert state == "CANCELED", state
            assert tm.is_running(), f"the TaskManager died on cancel {n + 1}"
            assert _registered(client) == registered, "the TaskManager is not the same one"
            assert not python_workers(tm), "the TaskManager runs Python worker processes"
            rounds.append(
                {
                    "deploy_to_running_s": round(deployed_s, 1),
                    "clicks_produced_before_cancel": produced,
                    "metaspace_mib": _metaspace_mib(client, registered[0]),
                }
            )
        stop.set()  # the stream ends after the last cancel
        producing.join(timeout=120)
        assert done == ["ok"], done
        clicks = first(clicks, sent[0])
        produce_flush(s, SCRATCH.clicks_topic, flush)
        r = redis_client(s)
        wait_for("every user's final state", lambda: not unfinished(r, clicks.last_time), 600)
        assert_activity_exact(s, clicks)
        assert client.restarts(job_id) == 0, client.exceptions(job_id)
        assert tm.is_running() and _registered(client) == registered
        RESULTS.mkdir(parents=True, exist_ok=True)
        result = {
            "cancels": CANCELS,
            "clicks": clicks.events,
            "users": len(clicks.last_time),
            "rounds": rounds,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (RESULTS / "cancel-redeploy.json").write_text(json.dumps(result, indent=2))
        print(f"\ncancel-redeploy: {json.dumps(result)}")
    finally:
        if job_id and client.job(job_id).get("state") not in TERMINAL_STATES:
            client.end(job_id)
        SCRATCH.drop(s)
