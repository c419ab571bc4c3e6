"""The model endpoint: one address for a model, production and canary behind it.

``python -m serving.router --serve-model NAME --serve-port P --production-url U --canary-url V``
answers ``POST /v1/models/NAME:predict`` and ``POST /v2/models/NAME/infer`` (KServe's v1 and
Open Inference Protocol v2 bodies, entity ids in) like a predictor does, and sends each entity
to the version its bucket chooses (serving/canary.py: the canary's share from the registry,
per entity, so a given entity sees one version). The entities of one request may be split
between both predictors (asked concurrently) and the answers are put back in request order,
each with the version and stage that made it.

The placement (which versions hold production and canary, the canary's share) is read from
MLflow every ``refresh_s``: a promotion or rollback moves traffic within that delay, with no
restart of anything. When the canary predictor is not ready (its version cannot load, or it
is still loading: looked at with the placement) or fails a request, its entities are answered
by production and counted as fallbacks: a canary that fails never costs answers. When
production is not ready, its entities get its 503, never a 200 it did not stand behind.

``/healthz`` (the process), ``/readyz`` (production answers ready), ``/metrics``
(Prometheus: requests per stage and version, fallbacks, latency).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import aiohttp
import httpx
import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.settings import StackSettings, load_settings
from serving.canary import split
from serving.inputs import entity_ids_of
from serving.stages import Placement

log = logging.getLogger("streamfeat.router")

REFRESH_S = 2.0
JSON_HEADERS = {"content-type": "application/json"}


class Answer(NamedTuple):
    status: int
    raw: bytes


@dataclass
class Routes:
    """Where the model's stages are served and who holds them now."""

    model: str
    production_url: str
    canary_url: str
    placement: Placement = field(default_factory=Placement)
    problem: str | None = "placement not read yet"
    ready: dict[str, bool] = field(default_factory=dict)
    """Per predictor URL: answered ready at the last look (refreshed with the placement)."""


def read_placement(settings: StackSettings, model: str) -> Placement:
    from mlflow import MlflowClient

    from serving.registry import placement_of

    client = MlflowClient(settings.mlflow_url, settings.mlflow_url)
    return placement_of(client.get_registered_model(model))


class RouterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "streamfeat_router_entities",
            "Entities answered, by stage (per version: the predictors' own metrics).",
            ("stage",),
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "streamfeat_router_canary_fallbacks",
            "Canary entities answered by production (canary not ready).",
            registry=self.registry,
        )
        self.latency = Histogram(
            "streamfeat_router_request_duration_seconds",
            "Requests through the router, end to end.",
            ("status",),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )


def create_app(routes: Routes, settings: StackSettings, refresh_s: float = REFRESH_S) -> Starlette:
    """The endpoint as a bare Starlette app: it only forwards, so no request models or
    dependency resolution (FastAPI's) on its path."""
    metrics = RouterMetrics()
    stop = threading.Event()

    def refresh() -> None:
        try:
            routes.placement = read_placement(settings, routes.model)
            routes.problem = None
        except Exception as exc:  # keep the last placement; say why
            routes.problem = f"{type(exc).__name__}: {exc}"
        for base in (routes.production_url, routes.canary_url):
            routes.ready[base] = _ready(base, routes.model)

    def follow() -> None:
        while not stop.wait(refresh_s):
            refresh()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        await asyncio.to_thread(refresh)
        threading.Thread(target=follow, name="placement", daemon=True).start()
        state["http"] = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10.0),
            connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30),
        )
        yield
        stop.set()
        await state["http"].close()

    state: dict[str, Any] = {}

    async def ask(url: str, body: dict[str, Any]) -> Answer:
        """POST ``body`` as JSON; the status and the answer's bytes."""
        http: aiohttp.ClientSession = state["http"]
        async with http.post(url, data=orjson.dumps(body), headers=JSON_HEADERS) as r:
            return Answer(r.status, await r.read())

    async def route(ids: Sequence[int], v2: bool) -> tuple[int, bytes]:
        """Ask each stage for its entities; (status, answer). The predictors answer in the
        endpoint's own form, so one stage's answer passes through as it came."""
        p = routes.placement
        share = p.canary_traffic if p.canary is not None else None
        to_production, to_canary = split(ids, share)
        if to_canary and not routes.ready.get(routes.canary_url, False):
            metrics.fallbacks.inc(len(to_canary))
            to_production, to_canary = sorted(to_production + to_canary), []
        parts = [("production", to_production), ("canary", to_canary)]
        parts = [(stage, where) for stage, where in parts if where]
        url = {"production": routes.production_url, "canary": routes.canary_url}
        answers = list(
            await asyncio.gather(
                *(
                    ask(_path(url[stage], routes.model, v2), _body([ids[i] for i in where], v2))
                    for stage, where in parts
                )
            )
        )
        if len(parts) == 2 and answers[1].status != 200:  # the canary failed since
            metrics.fallbacks.inc(len(to_canary))
            parts = [("production", list(range(len(ids))))]
            answers = [await ask(_path(url["production"], routes.model, v2), _body(list(ids), v2))]
        for r in answers:
            if r.status != 200:
                return r.status, r.raw
        for stage, where in parts:
            metrics.requests.labels(stage).inc(len(where))
        if len(parts) == 1:
            return 200, answers[0].raw
        return 200, orjson.dumps(_merge(ids, parts, answers, v2))

    async def handle(request: Request, name: str, v2: bool) -> Response:
        start = time.perf_counter()
        if name != routes.model:
            return _json(404, {"error": f"model {name!r} is not served here ({routes.model!r})"})
        try:
            body = orjson.loads(await request.body())
            if v2:
                inputs = [i for i in body.get("inputs", []) if i.get("name") == "entity_id"]
                ids = entity_ids_of({"instances": inputs[0]["data"] if inputs else None})
            else:
                ids = entity_ids_of(body)
        except (ValueError, AttributeError, TypeError, KeyError, orjson.JSONDecodeError) as exc:
            return _json(400, {"error": str(exc)})
        try:
            status, raw = await route(ids, v2)
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, raw = 503, orjson.dumps({"error": f"predictor unreachable: {exc!r}"})
        metrics.latency.labels(str(status)).observe(time.perf_counter() - start)
        return Response(raw, status_code=status, media_type="application/json")

    async def predict_v1(request: Request) -> Response:
        return await handle(request, request.path_params["name"], v2=False)

    async def infer_v2(request: Request) -> Response:
        return await handle(request, request.path_params["name"], v2=True)

    async def healthz(request: Request) -> Response:
        return _json(200, {"status": "ok"})

    async def readyz(request: Request) -> Response:
        ok = routes.ready.get(routes.production_url, False)
        p = routes.placement
        body = {
            "production": p.production,
            "canary": p.canary,
            "canary_traffic_percent": p.canary_traffic if p.canary is not None else None,
            "production_ready": ok,
            "canary_ready": routes.ready.get(routes.canary_url, False),
            "placement_problem": routes.problem,
        }
        return _json(200 if ok else 503, body)

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type="text/plain")

    return Starlette(
        routes=[
            Route("/v1/models/{name}:predict", predict_v1, methods=["POST"]),
            Route("/v2/models/{name}/infer", infer_v2, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", prometheus),
        ],
        lifespan=lifespan,
    )


_LISTS = ("predictions", "versions", "stages", "feature_age_ms")


def _merge(
    ids: Sequence[int],
    parts: Sequence[tuple[str, Sequence[int]]],
    answers: Sequence[Answer],
    v2: bool,
) -> dict[str, Any]:
    """Both stages' answers as one, in the request's entity order."""
    n = len(ids)
    merged: dict[str, list[Any]] = {k: [None] * n for k in _LISTS}
    for (_, where), answer in zip(parts, answers, strict=True):
        got = orjson.loads(answer.raw)
        if v2:
            params = got["parameters"]
            lists = {
                "predictions": got["outputs"][0]["data"],
                **{k: orjson.loads(params[k]) for k in _LISTS[1:]},
            }
        else:
            lists = {k: got[k] for k in _LISTS}
        for k in _LISTS:
            for j, i in enumerate(where):
                merged[k][i] = lists[k][j]
    if v2:
        return {
            "model_name": got["model_name"],
            "outputs": [
                {
                    "name": "prediction",
                    "shape": [n],
                    "datatype": "FP64",
                    "data": merged["predictions"],
                }
            ],
            "parameters": {k: orjson.dumps(merged[k]).decode() for k in _LISTS[1:]},
        }
    return {"model": got["model"], **merged, "entity_ids": list(ids)}


def _ready(base: str, model: str) -> bool:
    try:
        return httpx.get(f"{base}/v2/models/{model}/ready", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _path(base: str, model: str, v2: bool) -> str:
    return f"{base}/v2/models/{model}/infer" if v2 else f"{base}/v1/models/{model}:predict"


def _body(ids: list[int], v2: bool) -> dict[str, Any]:
    if v2:
        return {
            "inputs": [{"name": "entity_id", "shape": [len(ids)], "datatype": "INT64", "data": ids}]
        }
    return {"instances": ids}


def _json(status: int, body: Any) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-model", required=True)
    parser.add_argument("--serve-port", type=int, required=True)
    parser.add_argument("--production-url", required=True)
    parser.add_argument("--canary-url", required=True)
    args = parser.parse_args(argv)
    settings = load_settings()
    routes = Routes(args.serve_model, args.production_url, args.canary_url)
    uvicorn.run(
        create_app(routes, settings),
        host=settings.host,
        port=args.serve_port,
        log_level="info",
        access_log=False,
    )


if __name__ == "__main__":
    main()
