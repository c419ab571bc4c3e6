"""Model serving end to end on the stack: real MLflow, Redis, the KServe predictors of
production and canary and the model endpoint in front of them, all started by the stack.

One model (the stack's ``serving_model``) goes register -> staging -> canary -> production;
a second version becomes the canary at 5 %; 10,000 entities land 5 % +- 1 % on it, each
always on the same version; predictions equal the model's own on the same feature values
(written to Redis through the job's tile path); a version reading a view nobody writes is
refused before it gets traffic; production promoted then rolled back moves the traffic back;
a version that cannot load leaves its predictor not ready (503, never 200) and its entities
answered by production.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from core.features import CUSTOMER, CUSTOMER_ORDERS, USER_ACTIVITY, windowed_features
from core.lineage import LineageEmitter
from core.online import RedisOnlineStore, TileWrite
from core.registry import AggregationsSpec, entity_spec
from core.settings import StackSettings
from core.windows import MINUTE_MS, combine, pack, tiles_of
from feature_api.settings import Role, dev_key
from serving.canary import to_canary
from serving.live import NotLive, check_live, record_feature_views
from serving.registry import ModelRegistry
from serving.stages import Stage
from serving.training import fit_and_log
from tests.conftest import stack_env
from tests.waiting import wait_for

pytestmark = pytest.mark.stack

COLUMNS = [
    "user_activity__clicks_1h",
    "user_activity__purchases_24h",
    "customer_orders__orders_7d",
    "customer_orders__spend_cents_7d",
]
FEATURED = range(9_100_000, 9_100_200)
"""Entities the test writes features for (the rest of the 10,000 have none: NaN -> 0)."""


@pytest.fixture(scope="module")
def registry(
    supervisor: object, stack_settings: StackSettings, tmp_path_factory: Any
) -> ModelRegistry:
    emitter = LineageEmitter(
        url=f"http://{stack_settings.host}:{stack_settings.ports.api}",
        spool=Path(tmp_path_factory.mktemp("lineage")) / "spool.jsonl",
        api_key=dev_key(Role.WRITER),
    )
    return ModelRegistry(stack_settings.mlflow_url, lineage=emitter)


@pytest.fixture(scope="module")
def endpoint(supervisor: object, stack_settings: StackSettings) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack_settings.models_url, timeout=30) as client:
        yield client


def _write_features(s: StackSettings, now: int) -> dict[int, dict[str, float]]:
    """Clicks and orders for FEATURED through the job's tile writes; each entity's model
    inputs at ``now`` (core.windows.combine, as the API answers)."""
    store = RedisOnlineStore.from_url(s.redis_url)
    want: dict[int, dict[str, float]] = {}
    rng = np.random.default_rng(7)
    writes = []
    for e in FEATURED:
        clicks = [
            {"user_id": e, "event_time": now - int(t) * 1000, "event_type": kind}
            for t, kind in zip(
                rng.integers(60, 3000, size=int(rng.integers(0, 12))),
                rng.choice(["page_view", "purchase"], size=12),
                strict=False,
            )
        ]
        orders = [
            {"customer_id": e, "order_ms": now - int(t) * 60_000, "amount_cents": int(a)}
            for t, a in zip(
                rng.integers(5, 5000, size=int(rng.integers(0, 4))),
                rng.integers(100, 9000, size=4),
                strict=False,
            )
        ]
        row: dict[str, float] = {}
        for view, events, time_field in (
            (USER_ACTIVITY, clicks, "event_time"),
            (CUSTOMER_ORDERS, orders, "order_ms"),
        ):
            aggs = view.aggregations
            assert aggs is not None
            tiles = tiles_of(aggs, events)
            if tiles:
                newest = max(int(ev[time_field]) for ev in events)
                writes += [
                    TileWrite(view, e, f, v[0] or 0, pack(v), newest) for f, v in tiles.items()
                ]
            got = combine(aggs, tiles, now, open_head=True)
            for column in COLUMNS:
                v, _, feature = column.partition("__")
                if v == view.name:
                    row[column] = float(got[feature])  # type: ignore[arg-type]
        want[e] = row
    store.write(writes)
    store.client.close()
    return want


def _train(s: StackSettings, flip: bool) -> str:
    rng = np.random.default_rng(1 if flip else 0)
    frame = pd.DataFrame(
        rng.integers(0, 10, size=(300, len(COLUMNS))).astype(float), columns=COLUMNS
    )
    score = frame["user_activity__purchases_24h"] + frame["customer_orders__orders_7d"]
    labels = (score > score.median()).astype(int)
    if flip:
        labels = 1 - labels
    return fit_and_log(s, frame, labels.tolist(), experiment="test-serving")


def _predict(endpoint: httpx.Client, model: str, ids: list[int]) -> dict[str, Any]:
    r = endpoint.post(f"/v1/models/{model}:predict", json={"instances": ids})
    assert r.status_code == 200, r.text
    return r.json()


def _versions_seen(endpoint: httpx.Client, model: str, ids: list[int]) -> dict[int, int]:
    """Entity -> the version that answered it, 100 entities per request."""
    out: dict[int, int] = {}
    for i in range(0, len(ids), 100):
        got = _predict(endpoint, model, ids[i : i + 100])
        out.update(zip(got["entity_ids"], got["versions"], strict=True))
    return out


def _serving(endpoint: httpx.Client, model: str, ids: list[int]) -> dict[int, int] | None:
    """:func:`_versions_seen`, or None while the endpoint does not answer 200 (a predictor
    still loading its version)."""
    r = endpoint.post(f"/v1/models/{model}:predict", json={"instances": ids[:100]})
    return _versions_seen(endpoint, model, ids) if r.status_code == 200 else None


def _register_unwritten_view(s: StackSettings) -> str:
    """A windowed view registered through the API that no job writes."""
    name = f"unwritten_{uuid.uuid4().hex[:8]}"
    base = f"http://{s.host}:{s.ports.api}"
    with httpx.Client(base_url=base, headers={"X-API-Key": dev_key(Role.WRITER)}) as api:
        r = api.post("/v1/entities", json=entity_spec(CUSTOMER).model_dump(mode="json"))
        assert r.status_code in (201, 409), r.text
        aggs = AggregationsSpec.model_validate(
            {
                "source": "clickstream",
                "measures": [{"name": "views", "short": "v", "function": "count"}],
                "windows": [{"name": "1h", "length_ms": 3_600_000, "tile_ms": MINUTE_MS}],
            }
        )
        features = [
            {"name": f.name, "dtype": f.dtype} for f in windowed_features(aggs.declaration())
        ]
        view = {
            "name": name,
            "entity": CUSTOMER.name,
            "features": features,
            "sources": ["clickstream"],
            "aggregations": aggs.model_dump(mode="json"),
            "ttl_s": 3600,
        }
        r = api.post("/v1/feature-views", json=view)
        assert r.status_code == 201, r.text
    return name


def test_canary_production_rollback_and_readiness_through_the_model_endpoint(
    stack_settings: StackSettings, registry: ModelRegistry, endpoint: httpx.Client
) -> None:
    import mlflow

    s = stack_settings
    model = s.serving_model
    now = int(time.time() * 1000)
    want = _write_features(s, now)

    def live(name: str, version: int) -> None:
        check_live(s, name, version)

    # v1: staging -> canary -> production (its views are live: the test just wrote them)
    v1 = registry.register(
        name=model, model_uri=_train(s, False), training_sets=["synthetic"]
    ).version
    assert set(record_feature_views(s, model, v1)) == {"user_activity", "customer_orders"}
    for stage in (Stage.STAGING, Stage.CANARY, Stage.PRODUCTION):
        registry.promote(model, v1, stage, live=live)
    # v2: the canary at 5 %
    v2 = registry.register(
        name=model, model_uri=_train(s, True), training_sets=["synthetic"]
    ).version
    registry.promote(model, v2, Stage.STAGING)
    registry.promote(model, v2, Stage.CANARY, traffic=5.0, live=live)

    ids = list(range(9_100_000, 9_110_000))
    canary_ids = [e for e in ids if to_canary(e, 5.0)]

    # the InferenceService for this placement: the canary revision at the registry's share
    shown = subprocess.run(
        [sys.executable, "-m", "streamfeat.cli", "model", "manifest", model],
        env={**os.environ, **stack_env(s)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    (isvc,) = [d for d in yaml.safe_load_all(shown.stdout) if d]
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 5
    args = isvc["spec"]["predictor"]["containers"][0]["args"]
    assert args[args.index("--serve-stage") + 1] == "canary"

    def both_serving() -> dict[int, int] | None:
        seen = _serving(endpoint, model, canary_ids[:50] + ids[:50])
        ok = seen is not None and all(seen[e] == (v2 if to_canary(e, 5.0) else v1) for e in seen)
        return seen if ok else None

    wait_for("production v1 and canary v2 behind the endpoint", both_serving, 120)
    seen = _versions_seen(endpoint, model, ids)
    on_canary = [e for e, v in seen.items() if v == v2]
    assert 400 <= len(on_canary) <= 600, len(on_canary)  # 5 % +- 1 % of 10,000
    assert set(on_canary) == set(canary_ids)
    assert set(seen.values()) == {v1, v2}
    assert _versions_seen(endpoint, model, ids) == seen  # each entity stays on its version

    # predictions equal the model's own on the same feature values
    featured = list(FEATURED)
    got = _predict(endpoint, model, featured)
    frame = pd.DataFrame([want[e] for e in featured], columns=COLUMNS)
    local = {v: mlflow.pyfunc.load_model(f"models:/{model}/{v}").predict(frame) for v in (v1, v2)}
    for i in range(len(featured)):
        assert got["predictions"][i] == pytest.approx(
            float(local[got["versions"][i]][i][-1]), abs=1e-12
        )
        assert (
            got["feature_age_ms"][i]["user_activity"] is None
            or got["feature_age_ms"][i]["user_activity"] >= 0
        )
    # the v2 protocol through the same endpoint
    r = endpoint.post(
        f"/v2/models/{model}/infer",
        json={
            "inputs": [
                {"name": "entity_id", "shape": [2], "datatype": "INT64", "data": featured[:2]}
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == pytest.approx(got["predictions"][:2], abs=1e-12)

    # a version reading a view nobody writes gets no traffic
    unwritten = _register_unwritten_view(s)
    frame3 = pd.DataFrame(np.ones((20, 2)), columns=[COLUMNS[0], f"{unwritten}__views_1h"])
    v3_uri = fit_and_log(s, frame3, [0, 1] * 10, experiment="test-serving")
    v3 = registry.register(name=model, model_uri=v3_uri, training_sets=["synthetic"]).version
    assert record_feature_views(s, model, v3)[unwritten] == 1  # the registry's version
    registry.promote(model, v3, Stage.STAGING)
    with pytest.raises(NotLive, match=f"{unwritten}: nothing in the online store"):
        registry.promote(model, v3, Stage.CANARY, live=live)
    admin = {"X-API-Key": dev_key(Role.ADMIN)}
    r = httpx.post(
        f"http://{s.host}:{s.ports.api}/v1/feature-views/{unwritten}:deprecate",
        json={"reason": "test"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    with pytest.raises(NotLive, match=f"{unwritten}: deprecated in the feature registry"):
        registry.promote(model, v3, Stage.CANARY, live=live)
    assert registry.placement(model).canary == v2

    # production -> v2, then rolled back to v1: the traffic follows, nothing restarts
    registry.promote(model, v2, Stage.PRODUCTION, live=live)
    wait_for(
        "v2 answering every entity",
        lambda: set(_versions_seen(endpoint, model, ids[:300]).values()) == {v2},
        120,
    )
    registry.rollback(model)
    wait_for(
        "v1 answering every entity again",
        lambda: set(_versions_seen(endpoint, model, ids[:300]).values()) == {v1},
        120,
    )

    # a canary that cannot load: its predictor is not ready, answers 503, production covers
    broken = _broken_model_uri(s)
    v4 = registry.register(name=model, model_uri=broken, training_sets=["synthetic"]).version
    registry.promote(model, v4, Stage.STAGING)
    registry.promote(model, v4, Stage.CANARY, traffic=5.0, live=live)
    canary = f"http://{s.host}:{s.ports.predictor_canary}"

    def canary_refuses() -> bool:
        ready = httpx.get(f"{canary}/v2/models/{model}/ready", timeout=5).status_code
        return ready == 503

    wait_for("the canary predictor not ready with the broken version", canary_refuses, 120)
    direct = httpx.post(
        f"{canary}/v1/models/{model}:predict", json={"instances": canary_ids[:3]}, timeout=5
    )
    assert direct.status_code == 503, direct.text
    through = _predict(endpoint, model, canary_ids[:20])
    assert set(through["versions"]) == {v1} and set(through["stages"]) == {"production"}


def _broken_model_uri(s: StackSettings) -> str:
    """A pyfunc model with the right signature whose loading fails."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    class Broken(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
        def load_context(self, context: Any) -> None:
            raise RuntimeError("this model cannot load")

        # ``Any``, not ``list[...]``: MLflow would derive the signature from a list hint
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input

    signature = ModelSignature(inputs=Schema([ColSpec("double", c) for c in COLUMNS]))
    mlflow.set_tracking_uri(s.mlflow_url)
    mlflow.set_experiment("test-serving")
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(name="model", python_model=Broken(), signature=signature)
    return f"runs:/{run.info.run_id}/model"
