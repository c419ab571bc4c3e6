"""`up` twice is harmless and `down` + `up` keeps Kafka topics, PostgreSQL rows, Redis keys
and S3 objects (the stack's data lives on disk under its home folder)."""

from __future__ import annotations

import uuid

from core.objectstore import s3_client
from core.settings import StackSettings
from streamfeat.stack.supervisor import Supervisor


def test_up_twice_keeps_the_running_processes(supervisor: Supervisor) -> None:
    before = {r.name: r.pid for r in supervisor.status()}
    lines: list[str] = []
    supervisor.up(progress=lines.append)
    after = {r.name: r.pid for r in supervisor.status()}
    assert after == before
    assert not any("starting" in line for line in lines)


def test_down_then_up_keeps_all_data(supervisor: Supervisor, stack_settings: StackSettings) -> None:
    import psycopg
    import redis
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    token = uuid.uuid4().hex
    s = stack_settings
    topic = f"test-persist-{token[:8]}"
    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": s.kafka_bootstrap, "acks": "all"})
    producer.produce(topic, value=token.encode())
    assert producer.flush(30) == 0
    with psycopg.connect(s.postgres_dsn()) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS persist_check (token text PRIMARY KEY)")
        conn.execute("INSERT INTO persist_check VALUES (%s)", (token,))
    redis.Redis.from_url(s.redis_url).set(f"persist:{token}", token)
    s3_client(s).put_object(Bucket=s.s3.lake_bucket, Key=f"persist/{token}", Body=token.encode())

    supervisor.down(progress=print)
    assert all(r.state == "stopped" for r in supervisor.status())
    supervisor.up(progress=print)

    with psycopg.connect(s.postgres_dsn()) as conn:
        assert conn.execute(
            "SELECT token FROM persist_check WHERE token = %s", (token,)
        ).fetchone() == (token,)
    assert redis.Redis.from_url(s.redis_url).get(f"persist:{token}") == token.encode()
    body = s3_client(s).get_object(Bucket=s.s3.lake_bucket, Key=f"persist/{token}")["Body"]
    assert body.read() == token.encode()
    consumer = Consumer(
        {
            "bootstrap.servers": s.kafka_bootstrap,
            "group.id": f"g-{token}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    values = []
    try:
        for _ in range(300):
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                values.append(msg.value())
                break
    finally:
        consumer.close()
    assert values == [token.encode()]
