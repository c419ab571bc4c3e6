"""Lineage routes without a database: roles, request validation, and a PostgreSQL that is
down answering 503 fast (a closed port, not a fake)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.settings import Ports, StackSettings
from feature_api.app import create_app
from feature_api.settings import ApiSettings, Role, dev_key


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def client() -> Iterator[TestClient]:
    stack = StackSettings(ports=Ports(redis=1, postgres=_closed_port()))  # nothing answers
    with TestClient(create_app(ApiSettings(registry_timeout_s=1.0), stack)) as c:
        yield c


def _key(role: Role) -> dict[str, str]:
    return {"X-API-Key": dev_key(role)}


def _event(**over: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventType": "START",
        "eventTime": "2026-11-26T00:00:00+00:00",
        "producer": "urn:test",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "streamfeat", "name": "feature_job"},
        "inputs": [{"namespace": "kafka://127.0.0.1:9092", "name": "clickstream"}],
        "outputs": [],
    }
    event.update(over)
    return event


def test_posting_events_needs_the_writer_role(client: TestClient) -> None:
    assert client.post("/api/v1/lineage", json=_event()).status_code == 401
    r = client.post("/api/v1/lineage", json=_event(), headers=_key(Role.READER))
    assert r.status_code == 403 and r.json()["error"]["detail"]["needed"] == "writer"


def test_reading_the_graph_needs_the_reader_role(client: TestClient) -> None:
    assert client.get("/v1/lineage/graph", params={"node": "topic:x"}).status_code == 401


@pytest.mark.parametrize(
    "event",
    [
        _event(eventTime="2026-11-26T00:00:00"),  # naive time
        _event(eventType="FINISHED"),
        _event(run={"runId": "not-a-uuid"}),
        _event(job=None),  # a run without a job
        _event(run=None, job=None),  # neither a run/job nor a dataset event
        _event(inputs=[{"namespace": "", "name": "x"}]),
        _event(dataset={"namespace": "s3://b", "name": "p"}),  # dataset event with a job
    ],
)
def test_malformed_events_are_422(client: TestClient, event: dict[str, Any]) -> None:
    r = client.post("/api/v1/lineage", json=event, headers=_key(Role.WRITER))
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"node": "topic:x", "namespace": "kafka://h:1", "name": "x"},
        {"namespace": "kafka://h:1"},
        {"node": "no-kind"},
        {"node": "planet:earth"},
        {"node": "topic:x", "direction": "sideways"},
        {"node": "topic:x", "depth": -1},
        {"node": "topic:x", "depth": 101},
    ],
)
def test_bad_graph_queries_are_422(client: TestClient, params: dict[str, Any]) -> None:
    r = client.get("/v1/lineage/graph", params=params, headers=_key(Role.READER))
    assert r.status_code == 422, r.text


def test_postgres_down_is_503_fast_and_retrieval_routes_still_answer(client: TestClient) -> None:
    t0 = time.perf_counter()
    r = client.post("/api/v1/lineage", json=_event(), headers=_key(Role.WRITER))
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "lineage_store_unavailable"
    assert r.headers["Retry-After"] == "1"
    r = client.get("/v1/lineage/graph", params={"node": "topic:x"}, headers=_key(Role.READER))
    assert r.status_code == 503
    assert time.perf_counter() - t0 < 5
    assert client.get("/healthz").status_code == 200
