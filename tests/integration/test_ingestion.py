"""Ingestion on the real stack: PostgreSQL CDC, the clickstream topic, the S3 CRM bridge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.crm.bridge import CrmBridge
from connectors.kafka_clients import admin, consumer
from connectors.kafka_topics import check_topics
from core.dlq import decode_original
from core.objectstore import s3_client
from core.quality import SUITES_DIR
from core.settings import StackSettings
from core.topics import CDC_CUSTOMERS, CDC_ORDERS, CLICKSTREAM, CRM_CUSTOMERS, catalogue
from tests.conftest import stack_env


def read_until(
    settings: StackSettings, topic: str, last: Callable[[Any], bool], timeout_s: float = 60.0
) -> list[Any]:
    """Messages of ``topic`` from the beginning up to the first one for which ``last(msg)``
    holds, or the deadline. One call per message: the topic holds every earlier test's
    records too (thousands), so a check over all messages read so far would be quadratic."""
    c = consumer(settings, group=f"test-{uuid.uuid4().hex[:8]}")
    c.subscribe([topic])
    seen: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is not None and not msg.error():
                seen.append(msg)
                if last(msg):
                    return seen
    finally:
        c.close()
    raise AssertionError(f"{topic}: condition not met in {timeout_s}s ({len(seen)} messages)")


def test_catalogue_is_applied_without_drift(ingestion: StackSettings) -> None:
    assert check_topics(ingestion, catalogue()) == []


def test_clickstream_topic_has_12_partitions_and_7_days(ingestion: StackSettings) -> None:
    from confluent_kafka.admin import ConfigResource, ResourceType

    client = admin(ingestion)
    meta = client.list_topics(CLICKSTREAM, timeout=10).topics[CLICKSTREAM]
    assert len(meta.partitions) == 12
    fut = client.describe_configs([ConfigResource(ResourceType.TOPIC, CLICKSTREAM)])
    config = next(iter(fut.values())).result(timeout=10)
    assert config["retention.ms"].value == "604800000"
    assert config["cleanup.policy"].value == "delete"


def test_update_reaches_cdc_topic_with_commit_time_and_lsns(ingestion: StackSettings) -> None:
    import psycopg

    emails = [f"cdc-{uuid.uuid4().hex[:8]}@example.com" for _ in range(2)]
    committed = []
    for email in emails:  # two transactions, one after the other
        with psycopg.connect(ingestion.postgres_dsn()) as conn:
            conn.execute(
                "UPDATE customers SET email = %s, updated_at = now() WHERE id = 3", (email,)
            )
        with psycopg.connect(ingestion.postgres_dsn()) as conn:
            row = conn.execute(
                "SELECT floor(extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000)"
                "::bigint FROM customers WHERE id = 3"
            ).fetchone()
            assert row is not None
            committed.append(row[0])

    def after_email(m: Any) -> str | None:
        value = json.loads(m.value()) if m.value() else None
        return value["after"]["email"] if value and value["after"] else None

    msgs = read_until(ingestion, CDC_CUSTOMERS, lambda m: after_email(m) == emails[1])
    events = [json.loads(m.value()) for email in emails for m in msgs if after_email(m) == email]
    assert [e["op"] for e in events] == ["u", "u"]
    assert [json.loads(m.key()) for m in msgs if after_email(m) in emails] == [{"id": 3}] * 2
    # event_time of CDC = the commit timestamp PostgreSQL recorded, to the millisecond
    assert [e["source"]["ts_ms"] for e in events] == committed
    seqs = [json.loads(e["source"]["sequence"]) for e in events]
    for (commit_lsn, lsn), event in zip(seqs, events, strict=True):
        assert int(lsn) == int(event["source"]["lsn"]) > 0
        assert commit_lsn is None or int(commit_lsn) > 0
    # the commit LSN orders transactions: the later one has a greater (and known) one
    assert seqs[1][0] is not None
    assert seqs[0][0] is None or int(seqs[1][0]) > int(seqs[0][0])
    assert events[0]["before"]["email"] != emails[0]  # REPLICA IDENTITY FULL: whole old row


def test_delete_gives_a_delete_event_then_a_tombstone(ingestion: StackSettings) -> None:
    import psycopg

    order_id = 10_000_000 + int(uuid.uuid4().int % 1_000_000)
    with psycopg.connect(ingestion.postgres_dsn()) as conn:
        conn.execute(
            "INSERT INTO orders (id, customer_id, status, amount_cents, currency, "
            "created_at, updated_at) VALUES (%s, 1, 'created', 999, 'EUR', now(), "
            "now())",
            (order_id,),
        )
    with psycopg.connect(ingestion.postgres_dsn()) as conn:
        conn.execute("DELETE FROM orders WHERE id = %s", (order_id,))
    key = json.dumps({"id": order_id}, separators=(",", ":")).encode()

    def tombstoned(m: Any) -> bool:
        return bool(m.key() == key and m.value() is None)

    mine = [m for m in read_until(ingestion, CDC_ORDERS, tombstoned) if m.key() == key]
    ops = [json.loads(m.value())["op"] if m.value() else "tombstone" for m in mine]
    assert ops == ["c", "d", "tombstone"]
    delete = json.loads(mine[1].value())
    assert delete["after"] is None and delete["before"]["id"] == order_id


def _put(settings: StackSettings, key: str, body: bytes) -> None:
    s3_client(settings).put_object(Bucket=settings.s3.lake_bucket, Key=key, Body=body)


def _records_of(settings: StackSettings, object_key: str, expected: int) -> list[dict[str, Any]]:
    """The crm.customers records that came from ``object_key``, read until ``expected``
    distinct rows are seen (a resumed import may send some rows twice)."""
    mine: list[dict[str, Any]] = []
    rows: set[int] = set()
    needle = json.dumps(object_key).encode()

    def enough(m: Any) -> bool:
        value = m.value()
        if value is not None and needle in value:
            record = json.loads(value)
            if record["source_seq"][1] == object_key:
                mine.append(record)
                rows.add(record["source_seq"][2])
        return len(rows) >= expected

    read_until(settings, CRM_CUSTOMERS, enough, timeout_s=120)
    return mine


def test_crm_file_with_three_good_rows_and_one_bad(ingestion: StackSettings) -> None:
    run = uuid.uuid4().hex[:8]
    key = f"crm/exports/dt=2026-02-01/customers-20260201T040000Z-{run}.csv"
    body = (
        b"customer_id,email,segment,tier,updated_at\n"
        b"1,a@example.com,smb,gold,2026-02-01T03:00:00.000Z\n"
        b"2,b@example.com,consumer,silver,\n"
        b"3,c@example.com,enterprise,diamond,2026-02-01T03:00:01.000Z\n"
        b"4,d@example.com,enterprise,platinum,2026-02-01T03:00:02.000Z\n"
    )
    _put(ingestion, key, body)
    results = {r.object_key: r for r in CrmBridge(ingestion).sync_once()}
    assert (results[key].published, results[key].quarantined) == (3, 1)

    records = _records_of(ingestion, key, 3)
    assert sorted(r["source_seq"][2] for r in records) == [1, 2, 4]
    by_id = {r["customer_id"]: r for r in records}
    assert by_id[1]["event_time"] == 1769914800000  # the row's own updated_at
    assert by_id[2]["event_time"] == 1769918400000  # no updated_at: the export's timestamp
    assert all(r["source"] == "s3_crm" for r in records)

    s3 = s3_client(ingestion)
    listed = s3.list_objects_v2(
        Bucket=ingestion.s3.lake_bucket,
        Prefix="dlq/date=2026-02-01/source=s3_crm/reason=invalid_tier/",
    )
    entries = [
        json.loads(line)
        for obj in listed.get("Contents", [])
        if obj["Key"].endswith(".jsonl")
        for line in s3.get_object(Bucket=ingestion.s3.lake_bucket, Key=obj["Key"])["Body"]
        .read()
        .decode()
        .splitlines()
    ]
    mine = [e for e in entries if e["coordinates"]["object_key"] == key]
    assert len(mine) == 1
    assert mine[0]["coordinates"]["row"] == 3
    assert "diamond" in mine[0]["detail"]
    assert mine[0]["expectation"] == "expect_column_values_to_be_in_set(tier)"
    assert (
        decode_original(json.dumps(mine[0])) == b"3,c@example.com,enterprise,diamond,"
        b"2026-02-01T03:00:01.000Z"
    )
    # Great Expectations' own result of the chunk is kept beside what it decided
    kept = s3.list_objects_v2(
        Bucket=ingestion.s3.lake_bucket,
        Prefix="dq-validations/suite=crm_customers/date=2026-02-01/",
    ).get("Contents", [])
    results_of_file = [
        r
        for r in (
            json.loads(s3.get_object(Bucket=ingestion.s3.lake_bucket, Key=o["Key"])["Body"].read())
            for o in kept
        )
        if r["object_key"] == key
    ]
    assert len(results_of_file) == 1
    (validation,) = results_of_file
    assert (validation["rows"], validation["quarantined"]) == ([1, 4], 1)
    ge = validation["great_expectations"]
    assert ge["success"] is False
    assert ge["statistics"]["unsuccessful_expectations"] == 1
    (failed,) = [r for r in ge["results"] if not r["success"]]
    assert failed["expectation_config"]["type"] == "expect_column_values_to_be_in_set"
    assert failed["result"]["unexpected_list"] == ["diamond"]


def test_crm_rows_bad_in_every_way_are_quarantined_by_their_expectation_and_a_suite_edit_counts(
    ingestion: StackSettings, tmp_path: Path
) -> None:
    """Each bad row under the reason and expectation of the customer suite it fails, the good
    rows published; the same file against an edited suite (``quality_suites_dir``) that
    allows tier 'diamond' publishes that row too."""
    run = uuid.uuid4().hex[:8]
    key = f"crm/exports/dt=2026-02-03/customers-20260203T040000Z-{run}.csv"
    body = (
        b"customer_id,email,segment,tier,updated_at\n"
        b"1,a@example.com,smb,gold,\n"
        b"x7,b@example.com,smb,gold,\n"
        b"-3,c@example.com,smb,gold,\n"
        b"4,not-an-email,smb,gold,\n"
        b"5,e@example.com,galactic,gold,\n"
        b"6,f@example.com,smb,,\n"
        b"7,g@example.com,smb,diamond,\n"
        b"8,h@example.com,smb,gold,yesterday\n"
        b"9,i@example.com,smb\n"
        b"10,j@example.com,consumer,silver,\n"
    )
    _put(ingestion, key, body)
    results = {r.object_key: r for r in CrmBridge(ingestion).sync_once()}
    assert (results[key].published, results[key].quarantined) == (2, 8)
    expected = {
        2: ("invalid_customer_id", "expect_column_values_to_not_be_null(customer_id)"),
        3: ("invalid_customer_id", "expect_column_values_to_be_between(customer_id)"),
        4: ("invalid_email", "expect_column_values_to_match_regex(email)"),
        5: ("invalid_segment", "expect_column_values_to_be_in_set(segment)"),
        6: ("invalid_tier", "expect_column_values_to_not_be_null(tier)"),
        7: ("invalid_tier", "expect_column_values_to_be_in_set(tier)"),
        8: ("invalid_updated_at", None),
        9: ("unparsable_row", None),
    }
    s3 = s3_client(ingestion)
    got = {}
    for reason in {r for r, _ in expected.values()}:
        listed = s3.list_objects_v2(
            Bucket=ingestion.s3.lake_bucket,
            Prefix=f"dlq/date=2026-02-03/source=s3_crm/reason={reason}/",
        )
        for obj in listed.get("Contents", []):
            body_of = s3.get_object(Bucket=ingestion.s3.lake_bucket, Key=obj["Key"])["Body"]
            for line in body_of.read().decode().splitlines():
                e = json.loads(line)
                if e["coordinates"]["object_key"] == key:
                    got[e["coordinates"]["row"]] = (reason, e["expectation"])
    assert got == expected

    edited = json.loads((SUITES_DIR / "crm_customers.json").read_text())
    for e in edited["expectations"]:
        if e["kwargs"]["column"] == "tier" and e["type"] == "expect_column_values_to_be_in_set":
            e["kwargs"]["value_set"].append("diamond")
    (tmp_path / "crm_customers.json").write_text(json.dumps(edited))
    again = f"crm/exports/dt=2026-02-03/customers-20260203T050000Z-{run}.csv"
    _put(ingestion, again, body)
    edited_settings = ingestion.model_copy(update={"quality_suites_dir": tmp_path})
    results = {r.object_key: r for r in CrmBridge(edited_settings).sync_once()}
    assert (results[again].published, results[again].quarantined) == (3, 7)
    records = _records_of(ingestion, again, 3)
    assert sorted(r["customer_id"] for r in records) == [1, 7, 10]


def test_bridge_killed_mid_file_loses_no_row(ingestion: StackSettings) -> None:
    rows = 60_000
    run = uuid.uuid4().hex[:8]
    key = f"crm/exports/dt=2026-02-02/customers-20260202T040000Z-{run}.csv"
    lines = [b"customer_id,email,segment,tier,updated_at"]
    lines += [
        f"{i},u{i}@example.com,smb,gold,2026-02-02T03:00:00.000Z".encode()
        for i in range(1, rows + 1)
    ]
    _put(ingestion, key, b"\n".join(lines) + b"\n")

    env = {**os.environ, **stack_env(ingestion)}
    cmd = [
        sys.executable,
        "-m",
        "streamfeat.cli",
        "bridge",
        "run",
        "--once",
        "--chunk-rows",
        "2000",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bridge = CrmBridge(ingestion)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # kill it once it has committed a chunk of ours
            progress = bridge.load_progress().get(key)
            if progress is not None and progress.status == "in_progress":
                break
            assert proc.poll() is None, "the bridge finished before it could be killed"
            time.sleep(0.05)
        proc.kill()
    finally:
        proc.wait(timeout=30)
    first = bridge.load_progress()[key]
    assert first.status == "in_progress" and 1 < first.next_row <= rows

    results = {r.object_key: r for r in bridge.sync_once()}
    assert results[key].resumed_from == first.next_row
    assert bridge.load_progress()[key].status == "done"
    records = _records_of(ingestion, key, rows)
    assert {r["source_seq"][2] for r in records} == set(range(1, rows + 1))


def test_generator_output_is_deterministic_for_a_seed() -> None:
    from connectors.demo.loader import click_records

    first = list(click_records(5, 2000, start_ms=1767225600000))
    again = list(click_records(5, 2000, start_ms=1767225600000))
    other = list(click_records(6, 2000, start_ms=1767225600000))
    assert first == again and len(first) == 2000
    assert first != other


pytestmark = pytest.mark.stack
