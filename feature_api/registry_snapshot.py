"""The registry as retrieval sees it: an in-memory snapshot, refreshed in the background.

Retrieval must not need PostgreSQL per request (nor at all, for the views declared in
code): :func:`feature_api.service.resolve_view` looks a view up in core/features.py first,
then in the last good snapshot of registered views held here. A daemon thread re-reads the
registry every ``registry_refresh_s``; when PostgreSQL is down the refresh fails, the error
is kept for ``/readyz`` to report, and the last good snapshot keeps serving. A successful
registration through this process refreshes at once, so what it registered is retrievable
by the time the call returns.

Refreshes read through one :class:`KeptConnection` instead of connecting each time (a
refresh on a fresh connection took ~7 ms here, mostly the connect and its authentication).
Nothing here runs on the event loop: the refresher is its own thread, and the handlers that
refresh after a registration are plain ``def`` (FastAPI's thread pool).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from core.features import FeatureView
from core.registry import EntitySpec, FeatureViewSpec, to_feature_view
from feature_api.errors import ApiError, RegistryUnavailable
from feature_api.registry_store import Kind, Record, RegistryStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    views: dict[str, FeatureView] = field(default_factory=dict)
    """Latest version of every registered view (active or deprecated), by name."""
    loaded_at_ms: int | None = None


class KeptConnection:
    """The registry's latest definitions read over one long-lived connection.

    Opened on first use for the store's *current* DSN (a changed DSN reopens it), in
    autocommit: each read is one statement, so the connection never idles inside a
    transaction (no snapshot held open, no vacuum held back). Any failure closes it and the
    next read opens a new one. A read that fails on a *reused* connection — PostgreSQL
    restarted, an idle-session timeout, a proxy dropped it — is retried once at once on a
    fresh one, so a restart that is already over does not surface as an outage; a timeout
    is not retried (it would only double the wait). One reader at a time (a lock): the
    refresher thread and a registering handler may both refresh; neither waits for the
    other longer than one bounded read (then :class:`RegistryUnavailable`).
    """

    def __init__(self, store: RegistryStore) -> None:
        self.store = store
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        self._dsn = ""
        self._lock = threading.Lock()
        self.connects = 0
        """Connections opened so far (tests and diagnostics: steady state adds none)."""

    def latest(self) -> list[Record]:
        # Bounded wait: a caller (a registering request) must not queue behind a read that
        # is stuck; one read legitimately takes at most a connect plus a statement timeout.
        wait_s = self.store.timeout_s * 2 + 1
        if not self._lock.acquire(timeout=wait_s):
            raise RegistryUnavailable(
                f"registry read still busy after {wait_s:.0f} s (PostgreSQL not answering?)",
                cause="kept connection busy",
            )
        try:
            reused = self._conn is not None and self._dsn == self.store.dsn
            try:
                return self._read()
            except RegistryUnavailable as exc:
                if not reused or isinstance(exc.__cause__, psycopg.errors.QueryCanceled):
                    raise
                log.info("registry connection lost (%s); reconnecting", exc.detail.get("cause"))
                return self._read()
        finally:
            self._lock.release()

    def _read(self) -> list[Record]:
        self.store.ready()  # creates the schema once, on its own short connection
        try:
            with self.store.mapped_errors():
                return self.store.latest_on(self._open())
        except BaseException:
            self._close()
            raise

    def _open(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is not None and (self._conn.closed or self._dsn != self.store.dsn):
            self._close()
        if self._conn is None:
            self._dsn = self.store.dsn
            self._conn = self.store.connect(autocommit=True, long_lived=True)
            self.connects += 1
        return self._conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing a broken connection must not hide why it broke
                log.debug("closing the registry connection failed", exc_info=True)

    def close(self) -> None:
        """Close the connection; if a read is stuck on it past the bound, leave it to that
        (daemon) thread rather than wait with it."""
        if self._lock.acquire(timeout=self.store.timeout_s * 2 + 1):
            try:
                self._close()
            finally:
                self._lock.release()


def load(source: RegistryStore | KeptConnection) -> Snapshot:
    records = source.latest()
    entities = {r.name: r.spec for r in records if r.kind is Kind.ENTITY}
    views: dict[str, FeatureView] = {}
    for r in records:
        if r.kind is not Kind.FEATURE_VIEW:
            continue
        spec: FeatureViewSpec = r.spec
        entity: EntitySpec | None = entities.get(spec.entity)
        if entity is not None:  # always, as registration checks; never trust blindly
            views[r.name] = to_feature_view(spec, entity)
    return Snapshot(views, time.time_ns() // 1_000_000)


class RegistrySnapshot:
    """The last good :class:`Snapshot` and the background thread that refreshes it."""

    def __init__(self, store: RegistryStore, *, refresh_s: float) -> None:
        self.store = store
        self.reader = KeptConnection(store)
        self.refresh_s = refresh_s
        self.current = Snapshot()
        self.error: str | None = "not loaded yet"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Load a new snapshot; on failure keep the last one and remember why."""
        try:
            self.current = load(self.reader)
        except ApiError as exc:
            self.error = f"{exc.message} ({exc.detail.get('cause', '')})".strip()
            return False
        except Exception as exc:  # a bad row must not kill the refresher
            log.exception("registry snapshot refresh failed")
            self.error = f"{type(exc).__name__}: {exc}"
            return False
        self.error = None
        return True

    def _run(self) -> None:
        self.refresh()
        while not self._stop.wait(self.refresh_s):
            self.refresh()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="registry-snapshot", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing and close the connection (blocking: call it off the event loop)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.store.timeout_s * 3 + 1)
        self.reader.close()
