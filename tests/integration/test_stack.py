"""Each service of the local stack does its real job (no mocks): one test per capability."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.objectstore import arrow_fs, s3_client
from core.settings import StackSettings
from streamfeat.stack.supervisor import Supervisor
from streamfeat.wiring import check_wiring


def test_every_service_is_healthy(supervisor: Supervisor) -> None:
    rows = supervisor.status()
    assert [r.name for r in rows if r.state != "healthy"] == []
    assert {r.name for r in rows} == {
        "postgres",
        "redis",
        "s3",
        "kafka",
        "flink-jobmanager",
        "connect",
        "flink-taskmanager",
        "mlflow",
        "api",
        "predictor",
        "predictor-canary",
        "models",
    }


def test_kafka_produce_consume_round_trip(
    supervisor: Supervisor, stack_settings: StackSettings
) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"test-roundtrip-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": stack_settings.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": stack_settings.kafka_bootstrap, "acks": "all"})
    sent = {f"key-{i}": f"value-{i}" for i in range(50)}
    for key, value in sent.items():
        producer.produce(topic, key=key.encode(), value=value.encode())
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": stack_settings.kafka_bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    got: dict[str, str] = {}
    try:
        for _ in range(300):  # bounded: at most 300 polls of 0.2 s
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                if len(got) == len(sent):
                    break
                continue
            got[msg.key().decode()] = msg.value().decode()
            if len(got) == len(sent):
                break
    finally:
        consumer.close()
    assert got == sent


def test_connect_lists_the_debezium_postgres_connector(
    supervisor: Supervisor, stack_settings: StackSettings
) -> None:
    with urllib.request.urlopen(
        stack_settings.connect_url + "/connector-plugins", timeout=10
    ) as resp:
        plugins = json.load(resp)
    postgres = [
        p for p in plugins if p["class"] == "io.debezium.connector.postgresql.PostgresConnector"
    ]
    assert len(postgres) == 1
    assert postgres[0]["version"].startswith("3.6.1")


def test_postgres_is_logical_with_a_replication_user(
    supervisor: Supervisor, stack_settings: StackSettings
) -> None:
    import psycopg

    with psycopg.connect(stack_settings.postgres_dsn()) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        row = conn.execute(
            "SELECT rolreplication FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert row == (True,)
        assert conn.execute("SELECT current_database()").fetchone() == (
            stack_settings.postgres.database,
        )


def test_redis_ping_and_persistence_is_on(
    supervisor: Supervisor, stack_settings: StackSettings
) -> None:
    import redis

    client = redis.Redis.from_url(stack_settings.redis_url)
    assert client.ping() is True
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    client.close()


def test_s3_put_get_with_boto3(supervisor: Supervisor, stack_settings: StackSettings) -> None:
    client = s3_client(stack_settings)
    bucket = stack_settings.s3.lake_bucket
    key = f"tests/{uuid.uuid4().hex}.bin"
    body = uuid.uuid4().bytes * 1000
    client.put_object(Bucket=bucket, Key=key, Body=body)
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="tests/")["Contents"]]
    assert key in keys
    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]})
    with pytest.raises(client.exceptions.NoSuchKey):
        client.get_object(Bucket=bucket, Key=key)


def test_parquet_written_by_pyarrow_to_s3_reads_back(
    supervisor: Supervisor, stack_settings: StackSettings
) -> None:
    fs = arrow_fs(stack_settings)
    path = f"{stack_settings.s3.lake_bucket}/tests/{uuid.uuid4().hex}.parquet"
    table = pa.table({"entity": ["u1", "u2", "u3"], "clicks": [3, 0, 7]})
    pq.write_table(table, path, filesystem=fs)
    assert pq.read_table(path, filesystem=fs).equals(table)


def test_flink_cluster_has_one_taskmanager(
    supervisor: Supervisor, stack_settings: StackSettings
) -> None:
    with urllib.request.urlopen(
        stack_settings.flink_rest_url + "/taskmanagers", timeout=10
    ) as resp:
        tms = json.load(resp)["taskmanagers"]
    assert len(tms) == 1
    assert tms[0]["slotsNumber"] >= 1


def test_pyflink_job_reads_kafka_and_writes_parquet_to_s3(
    supervisor: Supervisor, stack_settings: StackSettings
) -> None:
    result = check_wiring(stack_settings, count=250)
    assert result.state == "FINISHED"
    assert result.rows_read_back == 250


def test_mlflow_registers_a_model_version(
    supervisor: Supervisor, stack_settings: StackSettings
) -> None:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.pyfunc import PythonModel

    class Echo(PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return model_input

    name = f"streamfeat-test-{uuid.uuid4().hex[:8]}"
    mlflow.set_tracking_uri(stack_settings.mlflow_url)
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(
            name="model", python_model=Echo(), pip_requirements=[], registered_model_name=name
        )
    client = MlflowClient(stack_settings.mlflow_url)
    versions = client.search_model_versions(f"name = '{name}'")
    assert [v.version for v in versions] == ["1"]
    assert versions[0].run_id == run.info.run_id
    # artifacts went through the server to the S3 endpoint
    listed = s3_client(stack_settings).list_objects_v2(
        Bucket=stack_settings.s3.mlflow_bucket, Prefix="artifacts/"
    )
    assert any(o["Key"].endswith("MLmodel") for o in listed.get("Contents", []))
