"""The predictor: one serving stage of a registered model on the KServe model server.

``python -m serving.predictor --model NAME --stage production --port P`` serves
``models:/NAME@production`` (or ``canary``) under the name NAME with KServe's REST data
plane: Open Inference Protocol v2 (``POST /v2/models/NAME/infer``, an INT64 input
``entity_id``) and v1 (``POST /v1/models/NAME:predict``, ``{"instances": [17, ...]}`` or
``[{"entity_id": 17}, ...]``). A request carries entity ids; the predictor reads the model's
inputs online (serving/inputs.py: the feature API's retrieval code, one Redis round trip for
every view and entity of the request), predicts, and answers the predictions with the
version that made them and the age of each view's values.

The model follows its stage: a thread asks MLflow every ``refresh_s`` which version holds
the alias and loads a new one beside the old before swapping (requests in flight finish on
the old), so a promotion or rollback moves this stage without a restart and without
touching the other stage's process. Readiness (``/v2/models/NAME/ready``, ``/v1/models/NAME``)
is true only while a model is loaded: a stage with no version, or whose version cannot load,
is not ready and answers 503, never a 200 it cannot stand behind.

Metrics (``/metrics``, Prometheus, labelled by model, stage and version): requests,
latency, errors by kind, and the distribution of the predictions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kserve

from core.settings import StackSettings, load_settings
from serving.inputs import (
    InputError,
    ModelInputs,
    entity_ids_of,
    feature_views,
    model_inputs,
    rows,
)

log = logging.getLogger("streamfeat.predictor")

REFRESH_S = 2.0
PREDICTION_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


@dataclass(frozen=True)
class Loaded:
    version: int
    model: Any
    """An mlflow.pyfunc.PyFuncModel."""
    inputs: ModelInputs

    direct: Any = None
    """A scikit-learn model's predict function (its pyfunc's ``predict_fn``), else None."""

    def predict(self, values: list[list[float]]) -> Any:
        """The model on rows in the signature's column order. A scikit-learn model is called
        directly on an array (``direct``): ~0.5 ms less per request than the pyfunc's
        DataFrame and schema checks; any other flavor through its pyfunc."""
        if self.direct is not None:
            import numpy as np

            return self.direct(np.asarray(values, dtype=float))
        import pandas as pd

        return self.model.predict(pd.DataFrame(values, columns=list(self.inputs.columns)))


def _direct(model: Any) -> Any:
    flavors = model.metadata.flavors
    if "sklearn" not in flavors:
        return None
    name = flavors.get("python_function", {}).get("predict_fn", "predict")
    return getattr(model.get_raw_model(), name)


def load_version(settings: StackSettings, name: str, version: int) -> Loaded:
    """Version ``version`` of model ``name`` and the online features it reads."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_url)
    mlflow.set_registry_uri(settings.mlflow_url)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    schema = model.metadata.get_input_schema()
    if schema is None:
        raise InputError(f"model {name} version {version} has no input signature")
    inputs = model_inputs(schema.input_names(), feature_views(settings))
    return Loaded(version, model, inputs, _direct(model))


class StagePredictor(kserve.Model):  # type: ignore[misc]
    """A kserve.Model serving the version that holds ``stage`` of model ``name``."""

    def __init__(
        self, name: str, stage: str, settings: StackSettings, refresh_s: float = REFRESH_S
    ) -> None:
        super().__init__(name)
        self.stage = stage
        self.settings = settings
        self.refresh_s = refresh_s
        self.current: Loaded | None = None
        self.problem: str | None = "not loaded yet"
        self._reader: Any = None
        self._stop = threading.Event()
        self._metrics = _metrics()

    # ---- the model follows its stage ----

    def load(self) -> bool:
        self.follow()
        threading.Thread(target=self._run, name="stage-follower", daemon=True).start()
        return self.ready

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self.follow()

    def follow(self) -> None:
        """Load the version the stage's alias points at, if it is not the one loaded."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        try:
            client = MlflowClient(self.settings.mlflow_url, self.settings.mlflow_url)
            try:
                version = int(client.get_model_version_by_alias(self.name, self.stage).version)
            except MlflowException as exc:
                if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    raise
                self._unload(f"no version of {self.name!r} holds {self.stage!r}")
                return
            if self.current is not None and self.current.version == version:
                return
            self.current = load_version(self.settings, self.name, version)
            self.problem = None
            self.ready = True
            log.info("serving %s version %d as %s", self.name, version, self.stage)
        except Exception as exc:  # a version that cannot load: not ready, say why
            log.exception("cannot serve %s@%s", self.name, self.stage)
            self._unload(f"{type(exc).__name__}: {exc}")

    def _unload(self, problem: str) -> None:
        self.current = None
        self.problem = problem
        self.ready = False

    def start(self) -> None:  # kserve marks every model ready here; readiness is ours
        pass

    async def healthy(self) -> bool:
        return self.current is not None

    def stop(self) -> None:
        self._stop.set()
        self.ready = False

    # ---- predictions ----

    async def predict(
        self, payload: Any, headers: dict[str, str] | None = None, response_headers: Any = None
    ) -> Any:
        from fastapi import HTTPException

        from feature_api.errors import StoreUnavailable

        loaded = self.current
        if loaded is None:
            raise HTTPException(503, detail=f"{self.name}@{self.stage} not ready: {self.problem}")
        labels = (self.name, self.stage, str(loaded.version))
        start = time.perf_counter()
        try:
            ids = entity_ids_of(payload)
        except ValueError as exc:
            self._metrics["errors"].labels(*labels, "bad_request").inc()
            raise HTTPException(400, detail=str(exc)) from exc
        try:
            predictions, ages = await self._predict(loaded, ids)
        except StoreUnavailable as exc:
            self._metrics["errors"].labels(*labels, "online_store").inc()
            raise HTTPException(503, detail=exc.message) from exc
        self._metrics["requests"].labels(*labels).inc()
        self._metrics["latency"].labels(*labels).observe(time.perf_counter() - start)
        for p in predictions:
            if isinstance(p, float):
                self._metrics["predictions"].labels(*labels).observe(p)
        return self._answer(payload, loaded, ids, predictions, ages)

    async def _predict(
        self, loaded: Loaded, ids: Sequence[int]
    ) -> tuple[list[Any], list[dict[str, int | None]]]:
        from feature_api import service

        if self._reader is None:
            self._reader = _reader(self.settings)
        now = time.time_ns() // 1_000_000
        states = await service.read_views(
            store=self._reader, wanted=loaded.inputs.wanted, entity_ids=ids, now_ms=now
        )
        values, ages = rows(loaded.inputs, states)
        out = loaded.predict(values)
        predictions = out.tolist() if hasattr(out, "tolist") else list(out)
        return [_score(p) for p in predictions], ages

    def _answer(
        self,
        payload: Any,
        loaded: Loaded,
        ids: Sequence[int],
        predictions: list[Any],
        ages: list[dict[str, int | None]],
    ) -> Any:
        n = len(ids)
        versions, stages = [loaded.version] * n, [self.stage] * n
        if isinstance(payload, Mapping):  # the model endpoint answers the same form
            return {
                "model": self.name,
                "predictions": predictions,
                "versions": versions,
                "stages": stages,
                "entity_ids": list(ids),
                "feature_age_ms": ages,
            }
        out = kserve.InferOutput("prediction", [n], "FP64", data=predictions)
        return kserve.InferResponse(
            response_id=getattr(payload, "id", None) or "",
            model_name=self.name,
            model_version=str(loaded.version),
            infer_outputs=[out],
            parameters={
                "versions": json.dumps(versions),
                "stages": json.dumps(stages),
                "feature_age_ms": json.dumps(ages),
            },
        )


def _score(p: Any) -> Any:
    """One prediction as JSON: a class-probability row gives the last class's probability
    (a binary classifier's positive class), a number stays itself."""
    if isinstance(p, list):
        return float(p[-1]) if p else None
    return float(p) if isinstance(p, int | float) else p


def _reader(settings: StackSettings) -> Any:
    import redis.asyncio

    from core.online import AsyncOnlineReader

    client = redis.asyncio.Redis.from_url(
        settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
    )
    return AsyncOnlineReader(client)


_METRICS: dict[str, Any] = {}


def _metrics() -> dict[str, Any]:
    """The predictor's Prometheus metrics (the default registry, which KServe's ``/metrics``
    exposes), created once per process."""
    if not _METRICS:
        from prometheus_client import Counter, Histogram

        labels = ("model", "stage", "version")
        _METRICS.update(
            requests=Counter("streamfeat_predictor_requests", "Requests answered.", labels),
            errors=Counter(
                "streamfeat_predictor_errors", "Requests refused, by kind.", (*labels, "kind")
            ),
            latency=Histogram(
                "streamfeat_predictor_request_duration_seconds",
                "Features read + prediction, per request.",
                labels,
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            ),
            predictions=Histogram(
                "streamfeat_predictor_predictions",
                "Distribution of the predicted values.",
                labels,
                buckets=PREDICTION_BUCKETS,
            ),
        )
    return _METRICS


def serve(model: StagePredictor, host: str, port: int) -> None:
    """KServe's REST data plane for ``model`` on ``host:port`` (loopback in the stack)."""
    from kserve.model_repository import ModelRepository
    from kserve.model_server import FASTAPI_APP_IMPORT_STRING
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.server import RESTServer

    repo = ModelRepository()
    repo.update(model)
    rest = RESTServer(
        FASTAPI_APP_IMPORT_STRING,
        DataPlane(model_registry=repo),
        ModelRepositoryExtension(model_registry=repo),
        port,
    )
    rest.config.host = host
    rest.config.access_log = False  # a log line per request costs ~0.1 ms of the request's CPU
    model.enable_latency_logging = False
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)  # KServe's per-request timings
    # KServe 0.16 answers with FastAPI's deprecated ORJSONResponse, and a filter in its import
    # chain shows that warning on every request (~47,000 lines in one bench run)
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    import sklearn

    sklearn.set_config(skip_parameter_validation=True)  # fitted models: ~0.1 ms per call
    asyncio.run(rest.start())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-model", required=True, help="Registered model name.")
    parser.add_argument("--serve-stage", required=True, choices=("production", "canary"))
    parser.add_argument("--serve-port", type=int, required=True)
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # KServe parses the process's arguments when imported
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    settings = load_settings()
    model = StagePredictor(args.serve_model, args.serve_stage, settings)
    model.load()
    serve(model, settings.host, args.serve_port)


if __name__ == "__main__":
    main()
