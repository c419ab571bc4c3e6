"""Lineage end to end on the stack: events sent by the real emitters (OpenLineage client over
HTTP) to the `api` service, stored in the real PostgreSQL, and the graph read back.

The graph is shared by the whole test session (other tests deploy the job too), so each
test asserts what its own events must have added, and uses unique names where it asserts
that something is absent.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openlineage.client.serde import Serde

from connectors.cdc.apply import apply_connectors
from connectors.crm.bridge import EXPORT_PREFIX, CrmBridge
from core import lineage
from core.lineage import LineageEmitter, RunState
from core.objectstore import s3_client
from core.settings import StackSettings
from feature_api.settings import Role, dev_key
from streamfeat.job import job_config
from streamfeat.job_lineage import feature_job_spec
from tests.conftest import stack_env
from tests.integration.lineage_graph import edges, fetch_graph, refs

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def api(supervisor: object, stack_settings: StackSettings) -> Iterator[httpx.Client]:
    base = f"http://{stack_settings.host}:{stack_settings.ports.api}"
    with httpx.Client(base_url=base, timeout=10) as client:
        yield client


def _emitter(settings: StackSettings, spool: Path, *, url: str | None = None) -> LineageEmitter:
    return LineageEmitter(
        url=url or f"http://{settings.host}:{settings.ports.api}",
        spool=spool,
        api_key=dev_key(Role.WRITER),
    )


def test_deploy_events_make_topic_job_feature_view(
    api: httpx.Client, stack_settings: StackSettings, tmp_path: Path
) -> None:
    emitter = _emitter(stack_settings, tmp_path / "spool.jsonl")
    run = emitter.start(feature_job_spec(stack_settings, job_config(stack_settings)))
    run.running()  # what `streamfeat job deploy` reports once Flink runs the job
    assert not emitter.spool.pending()

    down = fetch_graph(api, "topic:clickstream", "downstream", depth=2)
    assert refs(down)["job:feature_job"] == 1
    assert refs(down)["feature_view:user_activity"] == 2
    assert ("topic:clickstream", "job:feature_job") in edges(down)
    assert ("job:feature_job", "feature_view:user_lags") in edges(down)
    lake = stack_settings.s3.lake_bucket
    assert f"s3:{lake}/dlq" in refs(down)
    assert f"s3:{lake}/offline/feature_rows" in refs(down)

    up = fetch_graph(api, "feature_view:customer_profile", "upstream", depth=2)
    assert {"topic:cdc.public.customers", "topic:crm.customers"} <= refs(up).keys()
    assert "feature_view:user_activity" not in refs(up)  # a sibling, not lineage


def test_table_to_serving_stage_through_real_connector_apply(
    api: httpx.Client, ingestion: StackSettings, tmp_path: Path
) -> None:
    emitter = _emitter(ingestion, tmp_path / "spool.jsonl")
    apply_connectors(ingestion, progress=lambda _: None, lineage=emitter)  # real Connect
    emitter.start(feature_job_spec(ingestion, job_config(ingestion))).running()
    model = f"churn_{uuid.uuid4().hex[:8]}"
    for spec in (
        lineage.training_set_spec(name=f"{model}_ts", feature_views=["customer_profile"]),
        lineage.model_registration_spec(model=model, version=1, training_sets=[f"{model}_ts"]),
        lineage.serving_stage_spec(model=model, version=1, stage="production"),
    ):
        with emitter.track(spec):
            pass

    down = fetch_graph(api, "table:public.customers", "downstream", depth=20)
    distance = refs(down)
    chain = [
        "table:public.customers",
        "job:debezium.streamfeat-postgres-cdc",
        "topic:cdc.public.customers",
        "job:feature_job",
        "feature_view:customer_profile",
        f"job:training_set_build.{model}_ts",
        f"training_set:{model}_ts",
        f"job:model_registration.{model}",
        f"model_version:{model}/1",
        f"job:model_promotion.{model}",
        f"serving_stage:{model}/production",
    ]
    assert [distance[c] for c in chain] == list(range(len(chain)))
    assert all((a, b) in edges(down) for a, b in itertools.pairwise(chain))

    up = fetch_graph(api, f"serving_stage:{model}/production", "upstream", depth=20)
    assert refs(up)["table:public.customers"] == len(chain) - 1
    assert "topic:clickstream" in refs(up)  # the feature job also reads it


def test_bridge_pass_reports_exports_to_topic_and_dlq(
    api: httpx.Client, ingestion: StackSettings, tmp_path: Path
) -> None:
    key = f"{EXPORT_PREFIX}dt=2026-03-01/customers-20260301T040000Z-{uuid.uuid4().hex[:8]}.csv"
    body = (
        b"customer_id,email,segment,tier,updated_at\n"
        b"880001,l@example.com,smb,gold,2026-03-01T03:00:00.000Z\n"
        b"880002,m@example.com,smb,not-a-tier,2026-03-01T03:00:00.000Z\n"
    )
    s3_client(ingestion).put_object(Bucket=ingestion.s3.lake_bucket, Key=key, Body=body)
    emitter = _emitter(ingestion, tmp_path / "spool.jsonl")
    results = CrmBridge(ingestion, log=lambda _: None, lineage=emitter).sync_once()
    assert key in {r.object_key for r in results}

    lake = ingestion.s3.lake_bucket
    down = fetch_graph(api, f"s3:{lake}/crm/exports", "downstream", depth=2)
    assert (f"s3:{lake}/crm/exports", "job:crm_bridge") in edges(down)
    assert ("job:crm_bridge", "topic:crm.customers") in edges(down)
    assert ("job:crm_bridge", f"s3:{lake}/dlq") in edges(down)  # the bad row


def test_idempotent_events_failed_runs_and_unknown_nodes(
    api: httpx.Client, stack_settings: StackSettings
) -> None:
    writer = {"X-API-Key": dev_key(Role.WRITER), "Content-Type": "application/json"}
    tag = uuid.uuid4().hex[:8]
    spec = lineage.s3_import_spec(
        stack_settings, job_name=f"import_{tag}", prefix=f"in_{tag}", topic=f"out_{tag}"
    )
    run_id = str(uuid.uuid4())
    start = Serde.to_json(lineage.run_event(spec, RunState.START, run_id=run_id))
    first = api.post("/api/v1/lineage", content=start, headers=writer)
    again = api.post("/api/v1/lineage", content=start, headers=writer)
    assert first.status_code == again.status_code == 201
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)

    failed = lineage.run_event(spec, RunState.FAIL, run_id=run_id, error=RuntimeError("x"))
    r = api.post("/api/v1/lineage", content=Serde.to_json(failed), headers=writer)
    assert r.json()["edges"] == 0
    graph = fetch_graph(api, f"topic:out_{tag}")
    assert graph["edges"] == [] and [n["ref"] for n in graph["nodes"]] == [f"topic:out_{tag}"]

    reader = {"X-API-Key": dev_key(Role.READER)}
    r = api.get("/v1/lineage/graph", params={"node": f"topic:nope_{tag}"}, headers=reader)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_node"


def test_same_label_in_two_namespaces_is_ambiguous_until_named_fully(
    api: httpx.Client, stack_settings: StackSettings
) -> None:
    tag = uuid.uuid4().hex[:8]
    writer = {"X-API-Key": dev_key(Role.WRITER)}
    for cluster in ("kafka://10.0.0.1:9092", "kafka://10.0.0.2:9092"):
        job_event = {  # a job event: static lineage, no run
            "eventTime": "2026-11-26T00:00:00+00:00",
            "producer": "urn:test",
            "job": {"namespace": "mirror", "name": f"mm_{tag}"},
            "inputs": [{"namespace": cluster, "name": f"t_{tag}"}],
            "outputs": [{"namespace": "s3://archive", "name": f"t_{tag}"}],
        }
        r = api.post("/api/v1/lineage", json=job_event, headers=writer)
        assert r.status_code == 201 and r.json()["edges"] == 2
    reader = {"X-API-Key": dev_key(Role.READER)}
    r = api.get("/v1/lineage/graph", params={"node": f"topic:t_{tag}"}, headers=reader)
    assert r.status_code == 422 and r.json()["error"]["code"] == "ambiguous_node"
    r = api.get(
        "/v1/lineage/graph",
        params={
            "namespace": "kafka://10.0.0.2:9092",
            "name": f"t_{tag}",
            "direction": "downstream",
        },
        headers=reader,
    )
    assert r.status_code == 200
    assert {n["ref"] for n in r.json()["nodes"]} == {
        f"topic:t_{tag}",
        f"job:mirror/mm_{tag}",
        f"s3:archive/t_{tag}",
    }


def test_events_spooled_while_the_api_is_unreachable_arrive_later(
    api: httpx.Client, stack_settings: StackSettings, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as s:
        s.bind((stack_settings.host, 0))
        closed = f"http://{stack_settings.host}:{s.getsockname()[1]}"
    spool = tmp_path / "lineage" / "spool.jsonl"
    tag = uuid.uuid4().hex[:8]
    spec = lineage.s3_import_spec(
        stack_settings, job_name=f"late_{tag}", prefix=f"in_{tag}", topic=f"late_{tag}"
    )
    with _emitter(stack_settings, spool, url=closed).track(spec):
        pass  # the operation succeeds although lineage is down
    assert len(spool.read_text().splitlines()) == 2

    reader = {"X-API-Key": dev_key(Role.READER)}
    r = api.get("/v1/lineage/graph", params={"node": f"topic:late_{tag}"}, headers=reader)
    assert r.status_code == 404

    later = lineage.s3_import_spec(
        stack_settings, job_name=f"later_{tag}", prefix=f"in_{tag}", topic=f"later_{tag}"
    )
    _emitter(stack_settings, spool).start(later)  # any later emit replays the spool first
    assert not spool.exists()
    assert (f"job:late_{tag}", f"topic:late_{tag}") in edges(fetch_graph(api, f"topic:late_{tag}"))


def test_cli_prints_thefetch_graph(api: httpx.Client, stack_settings: StackSettings) -> None:
    _emitter(stack_settings, stack_settings.home / "lineage" / "spool.jsonl").start(
        feature_job_spec(stack_settings, job_config(stack_settings))
    ).running()
    env = {**os.environ, **stack_env(stack_settings)}
    cmd = [sys.executable, "-m", "streamfeat.cli", "lineage", "graph", "topic:crm.customers"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "topic:crm.customers -> job:feature_job" in done.stdout
    missing = subprocess.run(
        [*cmd[:-1], "topic:no_such_topic_anywhere"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr
