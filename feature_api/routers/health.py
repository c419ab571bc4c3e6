"""Probes and metrics: ``/healthz`` (the process answers), ``/readyz`` (Redis answers PING
within the timeout, else 503), ``/metrics`` (Prometheus text format).

Public on purpose (no credentials): orchestrators' probes and Prometheus scrapers carry
none, and these reveal no feature data (:data:`feature_api.auth.PUBLIC_PATHS`).
``/readyz`` stays ready while PostgreSQL is down — retrieval serves from the last registry
snapshot — and says so in its ``registry`` field."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from feature_api import service
from feature_api.deps import Metrics, Snapshot, Store
from feature_api.models import ErrorPublic

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={503: {"model": ErrorPublic, "description": "Online store (Redis) unavailable."}},
)
async def readyz(store: Store, snapshot: Snapshot) -> dict[str, str]:
    await service.ping(store=store)
    registry = "ok" if snapshot.error is None else f"stale snapshot: {snapshot.error}"
    return {"status": "ready", "online_store": "ok", "registry": registry}


@router.get("/metrics", include_in_schema=False)
def metrics(m: Metrics) -> Response:
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
