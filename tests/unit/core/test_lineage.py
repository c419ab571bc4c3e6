"""core.lineage: the naming contract, the events each operation produces (including the
training-set and model events that batch/ and serving/ will emit), and delivery that never
breaks the operation — against a real local HTTP server standing in for the feature API."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openlineage.client.serde import Serde

from core import lineage
from core.lineage import Delivery, Kind, LineageEmitter, RunState, Spool, classify
from core.settings import Ports, StackSettings

SETTINGS = StackSettings(ports=Ports(postgres=5432, kafka=9092))


class _Api:
    """A real HTTP server on loopback recording what it receives; answers ``status``."""

    def __init__(self) -> None:
        self.status = 201
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                api.headers.append(dict(self.headers))
                if api.status < 300:
                    api.received.append(json.loads(body))
                self.send_response(api.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[_Api]:
    server = _Api()
    yield server
    server.close()


def _closed_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _emitter(url: str, tmp_path: Path, key: str | None = "k-writer") -> LineageEmitter:
    return LineageEmitter(url=url, spool=tmp_path / "lineage" / "spool.jsonl", api_key=key)


def _spec() -> lineage.LineageSpec:
    return lineage.debezium_spec(
        SETTINGS, connector="pg", tables=["public.customers"], topic_prefix="cdc"
    )


# ---- naming ----


def test_dataset_names_follow_the_openlineage_naming_spec() -> None:
    table = lineage.postgres_table(SETTINGS, "public.customers")
    assert (table.namespace, table.name) == (
        "postgres://127.0.0.1:5432",
        "streamfeat.public.customers",
    )
    topic = lineage.kafka_topic(SETTINGS, "clickstream")
    assert (topic.namespace, topic.name) == ("kafka://127.0.0.1:9092", "clickstream")
    prefix = lineage.s3_prefix("streamfeat-lake", "/crm/exports/")
    assert (prefix.namespace, prefix.name) == ("s3://streamfeat-lake", "crm/exports")


@pytest.mark.parametrize(
    ("dataset", "kind", "label"),
    [
        (lineage.postgres_table(SETTINGS, "public.customers"), Kind.TABLE, "public.customers"),
        (lineage.kafka_topic(SETTINGS, "cdc.public.orders"), Kind.TOPIC, "cdc.public.orders"),
        (lineage.s3_prefix("lake", "dlq"), Kind.S3, "lake/dlq"),
        (lineage.feature_view("user_activity"), Kind.FEATURE_VIEW, "user_activity"),
        (lineage.training_set("churn_2026"), Kind.TRAINING_SET, "churn_2026"),
        (lineage.model_version("churn", 3), Kind.MODEL_VERSION, "churn/3"),
        (lineage.serving_stage("churn", "canary"), Kind.SERVING_STAGE, "churn/canary"),
    ],
)
def test_every_dataset_builder_classifies_to_its_kind(
    dataset: lineage.Dataset, kind: Kind, label: str
) -> None:
    assert classify(dataset.namespace, dataset.name) == (kind, label)


def test_jobs_and_foreign_datasets_classify() -> None:
    assert classify("streamfeat", "feature_job", job=True) == (Kind.JOB, "feature_job")
    assert classify("airflow", "dag.task", job=True) == (Kind.JOB, "airflow/dag.task")
    assert classify("bigquery", "p.d.t") == (Kind.DATASET, "bigquery/p.d.t")
    assert classify("streamfeat", "no_kind_prefix") == (Kind.DATASET, "streamfeat/no_kind_prefix")


@given(st.text(min_size=1).filter(lambda s: s == s.strip()))
def test_logical_names_round_trip(name: str) -> None:
    assert classify(*_ns_name(lineage.feature_view(name))) == (Kind.FEATURE_VIEW, name)


def _ns_name(d: lineage.Dataset) -> tuple[str, str]:
    return d.namespace, d.name


def test_logical_names_must_be_non_empty() -> None:
    with pytest.raises(ValueError, match="training_set name"):
        lineage.training_set(" x")


# ---- events per operation ----


def _io(event: dict[str, Any]) -> tuple[list[str], list[str]]:
    ins = [f"{d['namespace']}|{d['name']}" for d in event["inputs"]]
    outs = [f"{d['namespace']}|{d['name']}" for d in event["outputs"]]
    return ins, outs


def _json(spec: lineage.LineageSpec, state: RunState, **kw: Any) -> dict[str, Any]:
    event = lineage.run_event(spec, state, run_id=str(uuid.uuid4()), **kw)
    return json.loads(Serde.to_json(event))


def test_debezium_apply_tables_to_cdc_topics() -> None:
    spec = lineage.debezium_spec(
        SETTINGS, connector="pg", tables=["public.customers", "public.orders"], topic_prefix="cdc"
    )
    event = _json(spec, RunState.START)
    assert event["eventType"] == "START"
    assert event["job"]["namespace"] == "streamfeat"
    assert event["job"]["name"] == "debezium.pg"
    assert event["job"]["facets"]["jobType"]["processingType"] == "STREAMING"
    assert _io(event) == (
        [
            "postgres://127.0.0.1:5432|streamfeat.public.customers",
            "postgres://127.0.0.1:5432|streamfeat.public.orders",
        ],
        ["kafka://127.0.0.1:9092|cdc.public.customers", "kafka://127.0.0.1:9092|cdc.public.orders"],
    )
    assert event["producer"] == lineage.PRODUCER
    uuid.UUID(event["run"]["runId"])


def test_s3_import_names_the_dlq_only_when_rows_were_quarantined() -> None:
    clean = lineage.s3_import_spec(
        SETTINGS, job_name="crm_bridge", prefix="crm/exports/", topic="crm.customers"
    )
    dirty = lineage.s3_import_spec(
        SETTINGS,
        job_name="crm_bridge",
        prefix="crm/exports/",
        topic="crm.customers",
        dlq_prefix="dlq",
    )
    assert _io(_json(clean, RunState.COMPLETE)) == (
        ["s3://streamfeat-lake|crm/exports"],
        ["kafka://127.0.0.1:9092|crm.customers"],
    )
    assert _io(_json(dirty, RunState.COMPLETE))[1] == [
        "kafka://127.0.0.1:9092|crm.customers",
        "s3://streamfeat-lake|dlq",
    ]


def test_training_set_model_and_stage_events_chain() -> None:
    """The emitters batch/ and serving/ will call: feature views -> training set -> model
    version -> serving stage, each output the next one's input."""
    ts = lineage.training_set_spec(
        name="churn_2026_11",
        feature_views=["user_activity", "customer_profile"],
        sources=[lineage.s3_prefix("streamfeat-lake", "offline/feature_rows")],
    )
    reg = lineage.model_registration_spec(model="churn", version=4, training_sets=["churn_2026_11"])
    promo = lineage.serving_stage_spec(model="churn", version=4, stage="production")
    ts_in, ts_out = _io(_json(ts, RunState.COMPLETE))
    reg_in, reg_out = _io(_json(reg, RunState.COMPLETE))
    promo_in, promo_out = _io(_json(promo, RunState.COMPLETE))
    assert ts_in == [
        "streamfeat|feature_view:user_activity",
        "streamfeat|feature_view:customer_profile",
        "s3://streamfeat-lake|offline/feature_rows",
    ]
    assert ts_out == reg_in == ["streamfeat|training_set:churn_2026_11"]
    assert reg_out == promo_in == ["streamfeat|model_version:churn/4"]
    assert promo_out == ["streamfeat|serving_stage:churn/production"]
    assert _json(reg, RunState.COMPLETE)["job"]["name"] == "model_registration.churn"
    assert _json(promo, RunState.START)["job"]["name"] == "model_promotion.churn"


def test_fail_event_carries_the_error_and_engine_facets_travel() -> None:
    spec = lineage.LineageSpec(
        lineage.job("feature_job", processing="STREAMING", integration="FLINK"),
        (),
        (lineage.feature_view("user_lags"),),
        lineage.engine_facet("flink", "2.2.0"),
    )
    event = _json(spec, RunState.FAIL, error=RuntimeError("slot missing"))
    assert event["eventType"] == "FAIL"
    assert event["run"]["facets"]["errorMessage"]["message"] == "RuntimeError: slot missing"
    assert event["run"]["facets"]["processing_engine"]["version"] == "2.2.0"


# ---- delivery ----


def test_delivered_with_the_api_key_header(api: _Api, tmp_path: Path) -> None:
    emitter = _emitter(api.url, tmp_path)
    assert emitter.emit(lineage.run_event(_spec(), RunState.START, run_id=str(uuid.uuid4()))) is (
        Delivery.DELIVERED
    )
    assert api.received[0]["job"]["name"] == "debezium.pg"
    assert api.headers[0]["X-API-Key"] == "k-writer"
    assert not emitter.spool.pending()


def test_unreachable_api_spools_and_the_next_emit_replays_in_order(
    api: _Api, tmp_path: Path
) -> None:
    down = _emitter(_closed_url(), tmp_path)
    with down.track(_spec()) as run:  # the operation goes on although nothing is delivered
        done = True
    assert done and run.ended
    spooled = [json.loads(x)["eventType"] for x in down.spool.pending()]
    assert spooled == ["START", "COMPLETE"]

    up = _emitter(api.url, tmp_path)  # same stack home: same spool
    up.emit(lineage.run_event(_spec(), RunState.START, run_id=str(uuid.uuid4())))
    assert [e["eventType"] for e in api.received] == ["START", "COMPLETE", "START"]
    assert api.received[0]["run"]["runId"] == api.received[1]["run"]["runId"]
    assert not up.spool.path.exists()


@pytest.mark.parametrize(("status", "kept"), [(401, True), (503, True), (422, False)])
def test_refused_events_are_kept_unless_invalid(
    api: _Api, tmp_path: Path, status: int, kept: bool
) -> None:
    api.status = status
    emitter = _emitter(api.url, tmp_path)
    outcome = emitter.emit(lineage.run_event(_spec(), RunState.START, run_id=str(uuid.uuid4())))
    assert outcome is (Delivery.RETRY if kept else Delivery.REJECTED)
    assert len(emitter.spool.pending()) == (1 if kept else 0)


def test_track_reports_fail_and_reraises(api: _Api, tmp_path: Path) -> None:
    emitter = _emitter(api.url, tmp_path)
    with pytest.raises(KeyError), emitter.track(_spec()):
        raise KeyError("boom")
    assert [e["eventType"] for e in api.received] == ["START", "FAIL"]
    assert "boom" in api.received[1]["run"]["facets"]["errorMessage"]["message"]


def test_disabled_emitter_sends_and_spools_nothing(api: _Api, tmp_path: Path) -> None:
    emitter = LineageEmitter(url=api.url, spool=tmp_path / "s.jsonl", enabled=False)
    with emitter.track(_spec()):
        pass
    assert api.received == [] and not emitter.spool.path.exists()


@given(st.lists(st.sampled_from(list(Delivery)), max_size=12))
def test_spool_replay_keeps_everything_from_the_first_retry(outcomes: list[Delivery]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        spool = Spool(Path(d) / "spool.jsonl")
        for i in range(len(outcomes)):
            spool.append(json.dumps({"i": i}))
        answers = iter(outcomes)
        sent: list[int] = []

        def send(doc: str) -> Delivery:
            sent.append(json.loads(doc)["i"])
            return next(answers)

        delivered = spool.replay(send)
        first_retry = next(
            (i for i, o in enumerate(outcomes) if o is Delivery.RETRY), len(outcomes)
        )
        assert sent == list(range(min(first_retry + 1, len(outcomes))))
        assert delivered == outcomes[:first_retry].count(Delivery.DELIVERED)
        kept = [json.loads(x)["i"] for x in spool.pending()]
        assert kept == list(range(first_retry, len(outcomes)))
