"""The API benchmark's own parts: the open-loop load generator against a real local HTTP
server (rate, error counting, no coordinated omission), the goal verdicts, the bench app."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from feature_api.settings import Role, dev_key
from streamfeat.bench import api as bench_api
from streamfeat.bench.api_load import LoadSpec, run
from streamfeat.bench.runner import QUICK, SUITES


class _Server:
    """HTTP/1.1 keep-alive server on loopback; ``stall`` holds the n-th request (1-based)."""

    def __init__(self, status: int = 200, stall: tuple[int, float] | None = None) -> None:
        self.count = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with lock:
                    outer.count += 1
                    n = outer.count
                if stall and n == stall[0]:
                    time.sleep(stall[1])
                body = b'{"ok":true}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


def _spec(port: int, **kw: Any) -> LoadSpec:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "method": "GET",
        "path": "/x",
        "headers": {"X-API-Key": "k"},
        "body": None,
        "rate": 200.0,
        "seconds": 0.5,
        "connections": 4,
    }
    return LoadSpec(**(base | kw))


def test_request_bytes() -> None:
    get = _spec(1).request_bytes()
    assert get.startswith(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:1\r\nX-API-Key: k\r\n")
    assert get.endswith(b"\r\n\r\n") and b"Content-Length" not in get
    post = _spec(1, method="POST", body='{"a":1}').request_bytes()
    assert b"Content-Length: 7\r\n" in post and post.endswith(b'\r\n\r\n{"a":1}')


def test_fixed_rate_every_request_answered(server: _Server) -> None:
    res = run(_spec(server.port, rate=200.0, seconds=0.5))
    assert res["sent"] == server.count == 100
    assert res["errors"] == {}
    assert 150 <= res["achieved_rate"] <= 210
    pairs = zip(res["latency_us"], res["service_us"], strict=True)
    assert all(lat >= svc > 0 for lat, svc in pairs)


def test_non_200_answers_are_counted() -> None:
    s = _Server(status=503)
    try:
        res = run(_spec(s.port, rate=100.0, seconds=0.2, method="POST", body="{}"))
    finally:
        s.close()
    assert res["errors"] == {"HTTP 503": 20}


def test_a_stall_shows_in_the_requests_scheduled_behind_it() -> None:
    """One connection, 100/s, the 5th answer held 200 ms: the requests scheduled during
    the stall wait for the connection, and their latency (from the scheduled time) says so —
    a closed loop would have measured ~0 for them."""
    s = _Server(stall=(5, 0.2))
    try:
        res = run(_spec(s.port, rate=100.0, seconds=0.5, connections=1))
    finally:
        s.close()
    lat = res["latency_us"]
    assert lat[4] >= 200_000
    assert lat[5] >= 150_000  # scheduled 10 ms after the stalled one, answered after it
    assert sum(1 for v in lat if v >= 50_000) >= 10
    assert res["service_us"][5] < 50_000  # its own round trip was fast


def test_goal_verdicts() -> None:
    single, batch = "1 entity", "batch"
    p99 = {
        (single, 100.0): 1.0,
        (single, 250.0): 1.2,
        (single, 500.0): 1.8,
        (batch, 100.0): 4.0,
        (batch, 250.0): 7.2,
    }
    rows = {m.name: m for m in bench_api.goals(p99, single=single, batch=batch)}
    assert rows["goal: 1-entity p99 <= 2 ms at 500/s"].detail == "met"
    ratio = rows["goal: batch-100 p99 <= 5x 1-entity p99 (both at 100/s)"]
    assert (ratio.value, ratio.detail) == (4.0, "met")
    also = rows["also: batch-100 p99 <= 5x 1-entity p99 (both at 250/s)"]
    assert (also.value, also.detail) == (6.0, "NOT met (not the goal's rate)")
    rows = {m.name: m for m in bench_api.goals({(single, 500.0): 2.5}, single=single, batch=batch)}
    assert rows["goal: 1-entity p99 <= 2 ms at 500/s"].detail == "NOT met"
    missing = rows["goal: batch-100 p99 <= 5x 1-entity p99 at 100/s"]
    assert missing.detail.startswith("NOT measured")


def test_bench_app_adds_a_hidden_hello_route_behind_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMFEAT_PORTS__REDIS", "1")  # never reached
    monkeypatch.setenv("STREAMFEAT_PORTS__POSTGRES", "1")  # nor the registry's PostgreSQL
    with TestClient(bench_api.bench_app()) as client:
        assert client.get(bench_api.HELLO_PATH).status_code == 401
        r = client.get(bench_api.HELLO_PATH, headers={"X-API-Key": dev_key(Role.READER)})
        assert r.json() == {"hello": "world"}
        assert bench_api.HELLO_PATH not in client.get("/openapi.json").json()["paths"]


def test_the_api_suite_is_registered_and_part_of_all() -> None:
    assert "api" in SUITES and "all" in SUITES
    assert max(QUICK.api_rates) == 500  # the goal's rate, even in a quick run
