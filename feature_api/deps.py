"""Dependencies as ``Annotated`` aliases. Everything shared (the Redis pool, settings,
metrics) is created once in the app's lifespan and read from ``app.state`` here.

Seam: an ``Auth`` alias (API keys / OIDC) slots in beside these and into the routers'
``dependencies=``, without touching the handlers.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request

from core.online import RedisOnlineStore
from feature_api.metrics import ApiMetrics
from feature_api.settings import ApiSettings


def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


def get_store(request: Request) -> RedisOnlineStore:
    store: RedisOnlineStore = request.app.state.store
    return store


def get_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


def now_ms() -> int:
    """The serving clock (epoch ms UTC); tests override it to judge freshness exactly."""
    return time.time_ns() // 1_000_000


Settings = Annotated[ApiSettings, Depends(get_settings)]
Store = Annotated[RedisOnlineStore, Depends(get_store)]
Metrics = Annotated[ApiMetrics, Depends(get_metrics)]
NowMs = Annotated[int, Depends(now_ms)]
