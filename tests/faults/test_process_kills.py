"""Process faults on the real stack: the TaskManager or Redis SIGKILLed mid-stream, again
and again.

The feature job runs on scratch topics and a scratch bucket (its own copy: the platform's
topics, offline table and keys are left alone) while demo clicks are produced at a fixed
rate. A process is killed several times, each after new feature rows appeared and a
checkpoint covered them:

- the TaskManager ``STREAMFEAT_FAULT_KILLS`` times (2 here, 3 in `make faults`): `up` stops
  the Python workers the dead TaskManager left behind and starts a new one, and the job
  restores from its checkpoint;
- in another run the Kafka broker and Redis, in turn, twice each, down for :data:`DOWN_S`
  each time (5 s, and ``STREAMFEAT_FAULT_REDIS_DOWN_S``: 10 s here, 30 s in `make faults`): `up`
  restarts them from their files; while Redis is down the
  feature API must answer 503 at once. The job's sources and the test's
  producer wait for the broker; Redis restarts from its append-only file (fsynced before
  each reply, so nothing it acknowledged is lost) and the job's online sink resends what
  Redis did not answer; the job never restarts.

About 1 record in 100 is poison, broken in every way the gate knows (tests/faults/poison.py).
Then every user's online features must equal those computed from the valid events by the
pure rules, the offline table must hold every event's row once, and the DLQ every poison
record once, under its reason, with its bytes as sent: nothing lost, nothing twice.

Sizes: ``STREAMFEAT_FAULT_CLICKS`` demo clicks (70,000 over 60 s here; `make faults` runs 1M with
the default 10 s checkpoints); recovery times go to .local/faults/ for docs/reliability.md.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import psutil
import pyarrow as pa
import pytest

from batch.point_in_time import join, parse_features
from core.features import USER_ACTIVITY, USER_LAGS
from core.objectstore import s3_client
from core.offline import read_rows
from core.online import RedisOnlineStore, entity_key
from core.settings import PROJECT_ROOT, StackSettings
from streamfeat.bench.feature_job import unfinished
from streamfeat.bench.feature_job_data import USER_BASE
from streamfeat.bench.scratch import redis_client
from streamfeat.flink_client import TERMINAL_STATES, FlinkClient
from streamfeat.job import FEATURE_JOB
from streamfeat.stack.base import StackContext
from streamfeat.stack.supervisor import Supervisor
from tests.faults.poison import poison
from tests.faults.stream import (
    TM,
    Scratch,
    assert_activity_exact,
    checkpointed_since,
    demo_stream,
    events_by_user,
    produce_flush,
    produce_paced,
    python_workers,
    taskmanager,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.stack

CLICKS = int(os.environ.get("STREAMFEAT_FAULT_CLICKS", "70000"))
KILLS = int(os.environ.get("STREAMFEAT_FAULT_KILLS", "2"))
OUTAGES = 2
"""Outages of the broker and of Redis each, in turn."""
DOWN_S = {"kafka": 5.0, "redis": float(os.environ.get("STREAMFEAT_FAULT_REDIS_DOWN_S", "10"))}
"""How long each outage lasts (Redis's inside the online sink's 60 s retry timeout)."""
CHECKPOINT_MS = int(os.environ.get("STREAMFEAT_FAULT_CHECKPOINT_MS", "2000"))
POISON_EVERY = 100
"""One poison record (tests/faults/poison.py: every kind the gate knows) after every 100
valid clicks, about 1 in 100 records."""
PRODUCE_S = float(os.environ.get("STREAMFEAT_FAULT_PRODUCE_S", "60"))
RATE = CLICKS / PRODUCE_S
"""Clicks produced per second: the stream lasts through every kill (each ~30 s)."""
SCRATCH = Scratch(
    {
        "clickstream": ("_faults-clicks", 12),
        "crm": ("_faults-crm", 3),
        "cdc_customers": ("_faults-cdc", 3),
        "cdc_orders": ("_faults-orders", 3),
    },
    "streamfeat-faults",
)
BUCKET = SCRATCH.bucket
RESULTS = PROJECT_ROOT / ".local" / "faults"


def _b64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)


def _dlq_complete(s: StackSettings, want: int) -> list[dict[str, Any]] | None:
    """The committed DLQ entries in the scratch bucket, once there are ``want`` of them."""
    client = s3_client(s)
    entries: list[dict[str, Any]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="dlq/"):
        for obj in page.get("Contents", []):
            name = obj["Key"].rsplit("/", 1)[-1]
            if not obj["Size"] or name.startswith(("_", ".")) or "/reason=" not in obj["Key"]:
                continue  # a folder placeholder, or a file in progress (hidden)
            body = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
            reason = obj["Key"].split("/reason=", 1)[1].split("/", 1)[0]  # a partition
            entries += [{**json.loads(line), "reason": reason} for line in body.splitlines()]
    return entries if len(entries) >= want else None


def _users_written(r: Any, users: list[int]) -> int:
    """How many of ``users`` have a lags row online."""
    pipe = r.pipeline(transaction=False)
    for u in users:
        pipe.exists(entity_key(USER_LAGS, u))
    return sum(pipe.execute())


def _restarted_since(client: FlinkClient, job_id: str, since_ms: float) -> bool:
    """Whether the job entered RESTARTING after ``since_ms`` (the JobManager's timestamps)."""
    return float(client.job(job_id).get("timestamps", {}).get("RESTARTING") or 0) > since_ms


def _taskmanager_fault(sup: Supervisor, client: FlinkClient, job_id: str) -> dict[str, float]:
    """SIGKILL the TaskManager, start a new one; returns when the job runs again. The job's
    Python function runs in the TaskManager's own interpreter (thread mode): no worker
    process is left behind (`up` would stop one:
    tests/unit/streamfeat/test_supervisor_errors.py)."""
    killed_at, killed_ms = time.monotonic(), time.time() * 1000
    tm = taskmanager(sup)
    assert not python_workers(tm), "the TaskManager runs Python worker processes"
    tm.kill()
    psutil.wait_procs([tm], timeout=30)
    sup.up([TM], progress=lambda _line: None)
    wait_for("the job restarted", lambda t=killed_ms: _restarted_since(client, job_id, t), 180)
    client.wait_state(job_id, "RUNNING", timeout_s=180)
    return {"to_running_s": round(time.monotonic() - killed_at, 1)}


def _api_while_redis_is_down(s: StackSettings, until: float) -> dict[str, float]:
    """Ask the stack's feature API for a user's features until ``until`` (the outage's
    end): every answer must be a 503 `online_store_unavailable`, none may hang (2 s client
    timeout). Returns how many answers and the slowest (ms)."""
    import httpx

    from feature_api.settings import Role, dev_key

    url = f"http://{s.host}:{s.ports.api}/v1/features/{USER_ACTIVITY.name}/{USER_BASE + 1}"
    slowest, n = 0.0, 0
    with httpx.Client(headers={"X-API-Key": dev_key(Role.READER)}, timeout=2.0) as http:
        while time.monotonic() < until:
            t0 = time.perf_counter()
            r = http.get(url)
            slowest = max(slowest, time.perf_counter() - t0)
            n += 1
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "online_store_unavailable", r.text
            time.sleep(0.2)  # the pace of a client retrying, not a wait for anything
    assert n > 0
    return {"api_503s": n, "api_slowest_ms": round(slowest * 1000, 1)}


def _outage(service: str) -> Callable[[Supervisor, FlinkClient, str], dict[str, float]]:
    """A fault: SIGKILL ``service``, keep it down :data:`DOWN_S` (the outage), start it again
    from its files; the job must ride it out without a restart. While Redis is down the
    feature API answers 503 at once."""

    def inject(sup: Supervisor, client: FlinkClient, job_id: str) -> dict[str, float]:
        restarts = client.restarts(job_id)
        proc = sup.table.alive(service)
        assert proc is not None, f"no {service} running"
        killed_at = time.monotonic()
        proc.kill()
        psutil.wait_procs([proc], timeout=30)
        api: dict[str, float] = {}
        if service == "redis":
            api = _api_while_redis_is_down(sup.ctx.settings, killed_at + DOWN_S[service])
        time.sleep(max(killed_at + DOWN_S[service] - time.monotonic(), 0))  # the fault's length
        sup.up([service], progress=lambda _line: None)
        back_s = round(time.monotonic() - killed_at, 1)
        assert client.restarts(job_id) == restarts, client.exceptions(job_id)
        assert client.job(job_id).get("state") == "RUNNING"
        return {"back_s": back_s, **api}

    return inject


FAULTS = {
    "taskmanager": ([_taskmanager_fault] * KILLS, True),
    "kafka-and-redis": ([_outage("kafka"), _outage("redis")] * OUTAGES, False),
}
"""Fault -> (the kills, one after another in one run; whether the job restarts)."""


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_process_killed_mid_stream_loses_and_duplicates_nothing(
    fault: str, supervisor: Supervisor, stack_settings: StackSettings
) -> None:
    s = stack_settings
    injections, restarts_job = FAULTS[fault]
    client = FlinkClient(StackContext(s))
    SCRATCH.create(s)
    cfg = SCRATCH.job_config(
        s, group_id=f"_faults-{uuid.uuid4().hex[:8]}", checkpoint_interval_ms=CHECKPOINT_MS
    )
    start_ms = (int(time.time()) // 60) * 60_000 - 12 * 3_600_000
    cfg, clicks, flush = demo_stream(
        cfg, seed=11, n=CLICKS, start_ms=start_ms, partitions=SCRATCH.topics["clickstream"][1]
    )
    bad = poison(len(clicks.records) // POISON_EVERY, now_ms=start_ms + 12 * 3_600_000,
                 ahead_ms=cfg.max_event_time_ahead_ms)  # fmt: skip
    stream: list[tuple[bytes, bytes | None]] = []
    for i, record in enumerate(clicks.records):
        stream.append(record)
        if (i + 1) % POISON_EVERY == 0 and (i + 1) // POISON_EVERY <= len(bad):
            stream.append(bad[(i + 1) // POISON_EVERY - 1][:2])
    done: list[str] = []
    sent = [0]
    producing = threading.Thread(
        target=produce_paced,
        args=(s, SCRATCH.clicks_topic, stream, RATE, sent, done),
        daemon=True,
    )
    r = redis_client(s)
    users = sorted(clicks.last_time)
    job_id = client.run_python(
        FEATURE_JOB, ["--config", cfg.model_dump_json()], name="faults-feature-job"
    ).job_id
    kills: list[dict[str, float | int]] = []
    try:
        client.wait_state(job_id, "RUNNING", timeout_s=180)
        producing.start()
        written = 0
        for inject in injections:
            # each kill after new output, and after a checkpoint that covers some of it
            written = wait_for(
                "new feature rows since the last kill",
                lambda before=written: (n := _users_written(r, users)) > before and n,
                180,
            )
            progress_ms = time.time() * 1000
            wait_for(
                "a checkpoint since then",
                lambda since=progress_ms: checkpointed_since(client, job_id, since),
                120,
            )
            produced = sent[0]
            recovery = inject(supervisor, client, job_id)
            kills.append(
                {"users_with_rows_before": written, "clicks_produced_before": produced, **recovery}
            )
        producing.join(timeout=CLICKS / RATE + 120)
        assert done == ["ok"], done
        produce_flush(s, SCRATCH.clicks_topic, flush)
        first = kills[0]  # killed mid-stream: after output began, before the input ended
        assert first["users_with_rows_before"] > 0
        assert first["clicks_produced_before"] < len(stream)
        wait_for(
            "every user's final state",
            lambda: not unfinished(r, clicks.last_time),
            max(600, CLICKS / 1000),
        )

        assert_activity_exact(s, clicks)
        events = events_by_user(clicks)
        store = RedisOnlineStore.from_url(s.redis_url)

        lake = s.model_copy(update={"s3": s.s3.model_copy(update={"lake_bucket": BUCKET})})

        def lag_rows() -> Any:
            rows = read_rows(lake, view=USER_LAGS.name).select(["entity_id", "version"])
            return rows if rows.num_rows >= clicks.events else None

        rows = wait_for("every event's offline row committed", lag_rows, 180).to_pylist()
        twice = [
            k for k, n in Counter((x["entity_id"], x["version"]) for x in rows).items() if n > 1
        ]
        assert not twice, f"{len(twice)} offline rows written twice, e.g. {twice[:3]}"
        per_user = Counter(int(x["entity_id"]) for x in rows if int(x["entity_id"]) in events)
        assert per_user == Counter({u: len(e) for u, e in events.items()})
        # the lags online (the job's two latest events per user) = the point-in-time join of
        # the offline event rows as of the user's last click, and the time between the user's
        # two latest clicks
        spine = pa.table({"entity_id": users, "ts": [clicks.last_time[u] for u in users]})
        offline_lags = join(
            spine,
            read_rows(lake, view=USER_LAGS.name),
            parse_features([USER_LAGS.name]),
            entity_column="entity_id",
            timestamp_column="ts",
        ).to_pylist()
        names = USER_LAGS.names
        differ = {}
        for user, on, off in zip(users, store.read(USER_LAGS, users), offline_lags, strict=True):
            times = sorted(e["event_time"] for e in events[user])
            since = times[-1] - times[-2] if len(times) > 1 else None
            got_on = tuple(on.get(n) for n in names)
            got_off = tuple(off[f"{USER_LAGS.name}__{n}"] for n in names)
            if got_on != got_off or on.get("ms_since_prev_event") != since:
                differ[user] = (got_on, got_off, since)
        assert not differ, f"{len(differ)} users' lags differ, e.g. {next(iter(differ.items()))}"

        # every poison record in the DLQ once, under its reason, with its bytes as sent
        entries = wait_for(
            "every poison record in the DLQ", lambda: _dlq_complete(s, len(bad)), 180
        )
        got = Counter((e["reason"], e.get("expectation"), _b64(e["original_b64"])) for e in entries)
        assert got == Counter((reason, expectation, value) for _, value, reason, expectation in bad)
        at = {(e["coordinates"]["partition"], e["coordinates"]["offset"]) for e in entries}
        assert len(at) == len(entries)
        assert {e["coordinates"]["topic"] for e in entries} == {SCRATCH.clicks_topic}
        RESULTS.mkdir(parents=True, exist_ok=True)
        if not restarts_job:
            assert client.restarts(job_id) == 0, client.exceptions(job_id)
        result = {
            "fault": fault,
            "clicks": clicks.events,
            "poison": len(bad),
            "users": len(users),
            "rate": RATE,
            "kills": kills,
            "restarts": client.restarts(job_id),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (RESULTS / f"{fault}-kills.json").write_text(json.dumps(result, indent=2))
        print(f"\n{fault} kills: {json.dumps(result)}")
    finally:
        if client.job(job_id).get("state") not in TERMINAL_STATES:
            client.end(job_id)
        SCRATCH.drop(s)
