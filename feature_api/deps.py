"""Dependencies as ``Annotated`` aliases. Everything shared (the Redis pool, the registry
store and its snapshot, settings, metrics) is created once by the app and read from
``app.state`` here. Authentication lives in :mod:`feature_api.auth` (``require(role)``).

They are ``async def`` on purpose: they never block, and FastAPI runs a plain ``def``
dependency in its thread pool — a thread hop per dependency per request.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request

from core.online import AsyncOnlineReader
from feature_api.metrics import ApiMetrics
from feature_api.registry_snapshot import RegistrySnapshot
from feature_api.registry_store import RegistryStore
from feature_api.settings import ApiSettings


async def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


async def get_store(request: Request) -> AsyncOnlineReader:
    store: AsyncOnlineReader = request.app.state.store
    return store


async def get_registry(request: Request) -> RegistryStore:
    registry: RegistryStore = request.app.state.registry
    return registry


async def get_snapshot(request: Request) -> RegistrySnapshot:
    snapshot: RegistrySnapshot = request.app.state.snapshot
    return snapshot


async def get_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


async def now_ms() -> int:
    """The serving clock (epoch ms UTC); tests override it to judge freshness exactly."""
    return time.time_ns() // 1_000_000


Settings = Annotated[ApiSettings, Depends(get_settings)]
Store = Annotated[AsyncOnlineReader, Depends(get_store)]
Metrics = Annotated[ApiMetrics, Depends(get_metrics)]
Registry = Annotated[RegistryStore, Depends(get_registry)]
Snapshot = Annotated[RegistrySnapshot, Depends(get_snapshot)]
NowMs = Annotated[int, Depends(now_ms)]
