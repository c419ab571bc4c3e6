"""Probes and metrics: ``/healthz`` (the process answers), ``/readyz`` (Redis answers PING
within the timeout, else 503), ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from feature_api import service
from feature_api.deps import Metrics, Store

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(store: Store) -> dict[str, str]:
    service.ping(store=store)
    return {"status": "ready", "online_store": "ok"}


@router.get("/metrics", include_in_schema=False)
def metrics(m: Metrics) -> Response:
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
