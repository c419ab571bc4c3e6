"""The registry as retrieval sees it: an in-memory snapshot, refreshed in the background.

Retrieval must not need PostgreSQL per request (nor at all, for the views declared in
code): :func:`feature_api.service.resolve_view` looks a view up in core/features.py first,
then in the last good snapshot of registered views held here. A daemon thread re-reads the
registry every ``registry_refresh_s``; when PostgreSQL is down the refresh fails, the error
is kept for ``/readyz`` to report, and the last good snapshot keeps serving. A successful
registration through this process refreshes at once, so what it registered is retrievable
by the time the call returns.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from core.features import FeatureView
from core.registry import EntitySpec, FeatureViewSpec, to_feature_view
from feature_api.errors import ApiError
from feature_api.registry_store import Kind, RegistryStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    views: dict[str, FeatureView] = field(default_factory=dict)
    """Latest version of every registered view (active or deprecated), by name."""
    loaded_at_ms: int | None = None


def load(store: RegistryStore) -> Snapshot:
    records = store.latest()
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
        self.refresh_s = refresh_s
        self.current = Snapshot()
        self.error: str | None = "not loaded yet"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Load a new snapshot; on failure keep the last one and remember why."""
        try:
            self.current = load(self.store)
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
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.store.timeout_s * 3 + 1)
