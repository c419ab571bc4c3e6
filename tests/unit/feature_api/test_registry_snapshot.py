"""The snapshot's kept connection, where no server is needed: bounded waits, failures kept."""

from __future__ import annotations

import socket
import time

import pytest

from feature_api.errors import RegistryUnavailable
from feature_api.registry_snapshot import KeptConnection, RegistrySnapshot
from feature_api.registry_store import RegistryStore


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _store(timeout_s: float = 0.2) -> RegistryStore:
    return RegistryStore(f"postgresql://u@127.0.0.1:{_closed_port()}/db", timeout_s=timeout_s)


def test_a_reader_never_queues_long_behind_a_stuck_read() -> None:
    kept = KeptConnection(_store())
    assert kept._lock.acquire()  # a read stuck on a server that stopped answering
    t0 = time.perf_counter()
    with pytest.raises(RegistryUnavailable, match="still busy"):
        kept.latest()
    assert time.perf_counter() - t0 < 3
    kept.close()  # bounded as well: returns, leaves the connection to the stuck reader
    assert time.perf_counter() - t0 < 5


def test_an_unreachable_registry_is_a_kept_error_and_no_connection() -> None:
    snapshot = RegistrySnapshot(_store(), refresh_s=3600)
    assert snapshot.refresh() is False
    assert snapshot.error and "unavailable" in snapshot.error
    assert snapshot.reader.connects == 0 and snapshot.reader._conn is None
    assert snapshot.current.views == {}
