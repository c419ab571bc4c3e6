"""Open-loop HTTP load at a fixed rate, run as its own process by :mod:`streamfeat.bench.api`.

``python -m streamfeat.bench.api_load --spec JSON`` prints one JSON line with the latency of
every request in microseconds.

Open loop: request ``i`` is *scheduled* at ``t0 + i / rate`` whatever happened before, and its
latency runs from that scheduled instant to the last byte of the answer. A slow answer
delays nobody's clock: a request that waits for a free connection carries that wait in its
latency — no coordinated omission (a closed loop that sends the next request only after an
answer hides exactly the stalls that matter).

The scheduler sleeps with ``time.sleep`` (nanosleep: tens of microseconds of slack, where
an asyncio timer has a millisecond's granularity — as much as the 2 ms goal's half) and
hands each request to a pool of worker threads, each with its own keep-alive HTTP/1.1
socket and pre-encoded request bytes; workers block in ``recv`` without the GIL. The
client's own cost is reported too: ``service_us`` (send to answer) beside ``latency_us``.
"""

from __future__ import annotations

import argparse
import json
import queue
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LoadSpec:
    host: str
    port: int
    method: str
    path: str
    headers: dict[str, str]
    body: str | None
    rate: float
    seconds: float
    connections: int = 16
    timeout_s: float = 5.0

    def request_bytes(self) -> bytes:
        body = (self.body or "").encode()
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        if self.body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Conn:
    """One keep-alive connection; reads Content-Length framed answers (uvicorn's JSON)."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.sock = socket.create_connection((spec.host, spec.port), timeout=spec.timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def request(self, data: bytes) -> int:
        self.sock.sendall(data)
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        while len(self.buf) < length:
            self._recv()
        self.buf = self.buf[length:]
        return status

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def run(spec: LoadSpec) -> dict[str, Any]:
    data = spec.request_bytes()
    total = max(1, round(spec.rate * spec.seconds))
    latency = [0.0] * total
    service = [0.0] * total
    errors: dict[str, int] = {}
    lock = threading.Lock()
    work: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()

    def worker() -> None:
        conn = _Conn(spec)
        while (item := work.get()) is not None:
            i, scheduled = item
            sent = time.perf_counter()
            try:
                status = conn.request(data)
                failure = None if status == 200 else f"HTTP {status}"
            except OSError as exc:
                failure = type(exc).__name__
                conn.close()
                conn = _Conn(spec)
            done = time.perf_counter()
            latency[i] = (done - scheduled) * 1e6
            service[i] = (done - sent) * 1e6
            if failure:
                with lock:
                    errors[failure] = errors.get(failure, 0) + 1
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(spec.connections)]
    for t in threads:
        t.start()
    t0 = time.perf_counter() + 0.05
    late = 0.0
    for i in range(total):
        scheduled = t0 + i / spec.rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        late = max(late, time.perf_counter() - scheduled)
        work.put((i, scheduled))
    for _ in threads:
        work.put(None)
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {
        "latency_us": latency,
        "service_us": service,
        "errors": errors,
        "sent": total,
        "achieved_rate": total / elapsed,
        "scheduler_max_late_us": late * 1e6,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True, help="LoadSpec as JSON")
    args = parser.parse_args(argv)
    result = run(LoadSpec(**json.loads(args.spec)))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
