"""Model registry end to end on the stack: a real scikit-learn model logged to the test
stack's MLflow, registered with its training set, promoted staging -> canary -> production,
rolled back; the aliases and tags read back from MLflow, the model loaded through its
production alias, and the lineage graph read from the feature API.

Each test uses its own model name (the MLflow server lives for the whole session).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from core.lineage import LineageEmitter
from core.settings import StackSettings
from feature_api.settings import Role, dev_key
from serving.registry import (
    CANARY_TRAFFIC_TAG,
    TRAINING_SETS_TAG,
    ModelRegistry,
    RegistryError,
)
from serving.stages import PREVIOUS_PRODUCTION, IllegalMove, Stage
from tests.conftest import stack_env
from tests.integration.lineage_graph import edges, fetch_graph, refs

pytestmark = pytest.mark.stack

X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1], [0.1, 0.7], [0.8, 0.3]])
Y = np.array([0, 1, 0, 1, 0, 1])


@pytest.fixture(scope="module")
def spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lineage") / "spool.jsonl"


@pytest.fixture(scope="module")
def registry(supervisor: object, stack_settings: StackSettings, spool: Path) -> ModelRegistry:
    emitter = LineageEmitter(
        url=f"http://{stack_settings.host}:{stack_settings.ports.api}",
        spool=spool,
        api_key=dev_key(Role.WRITER),
    )
    return ModelRegistry(stack_settings.mlflow_url, lineage=emitter)


@pytest.fixture(scope="module")
def api(supervisor: object, stack_settings: StackSettings) -> Iterator[httpx.Client]:
    base = f"http://{stack_settings.host}:{stack_settings.ports.api}"
    with httpx.Client(base_url=base, timeout=10) as client:
        yield client


def _classifier(c: float = 1.0) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c).fit(X, Y)


@pytest.fixture(scope="module")
def run_model_uri(registry: ModelRegistry) -> str:
    """``runs:/<run>/model`` of a LogisticRegression logged the way a training job does."""
    import mlflow

    mlflow.set_experiment("test-model-registry")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(
            _classifier(), name="model", pip_requirements=["scikit-learn"], input_example=X[:1]
        )
    return f"runs:/{run.info.run_id}/model"


def _model() -> str:
    return f"churn_{uuid.uuid4().hex[:8]}"


def test_register_promote_through_every_stage_and_roll_back(
    registry: ModelRegistry, run_model_uri: str, api: httpx.Client, spool: Path
) -> None:
    model, ts = _model(), f"ts_{uuid.uuid4().hex[:8]}"
    client = registry.client

    v1 = registry.register(name=model, model_uri=run_model_uri, training_sets=[ts, "labels_q3"])
    assert (v1.version, v1.training_sets, v1.status) == (1, (ts, "labels_q3"), "READY")
    assert client.get_model_version(model, "1").tags[TRAINING_SETS_TAG] == f"{ts},labels_q3"

    registry.promote(model, 1, Stage.STAGING)
    canary = registry.promote(model, 1, "canary", traffic=10)
    assert canary.after.canary_traffic == 10
    rm = client.get_registered_model(model)
    assert rm.aliases == {"canary": "1"} and rm.tags[CANARY_TRAFFIC_TAG] == "10"
    registry.promote(model, 1, Stage.PRODUCTION)
    rm = client.get_registered_model(model)
    assert rm.aliases == {"production": "1"} and CANARY_TRAFFIC_TAG not in rm.tags

    v2 = registry.register(name=model, model_uri=run_model_uri, training_sets=[ts])
    assert v2.version == 2
    for stage in Stage:
        registry.promote(model, 2, stage)
    rm = client.get_registered_model(model)
    assert rm.aliases == {"production": "2", PREVIOUS_PRODUCTION: "1"}
    assert "streamfeat.retired_at" in client.get_model_version(model, "1").tags
    assert {"streamfeat.staging_at", "streamfeat.canary_at", "streamfeat.production_at"} <= set(
        client.get_model_version(model, "2").tags
    )

    back = registry.rollback(model)
    assert (back.version, back.retired) == (1, 2)
    assert client.get_registered_model(model).aliases == {"production": "1"}
    assert "streamfeat.rolled_back_at" in client.get_model_version(model, "2").tags
    with pytest.raises(IllegalMove, match="no previous-production version"):
        registry.rollback(model)

    status = registry.status(model)
    assert [(v.version, v.stages) for v in status.versions] == [(2, ()), (1, ("production",))]

    import mlflow

    served = mlflow.pyfunc.load_model(f"models:/{model}@production")  # what a server loads
    assert list(served.predict(X)) == list(_classifier().predict(X))

    assert not spool.exists() or not spool.read_text().strip()  # every event was delivered
    up = fetch_graph(api, f"serving_stage:{model}/production", "upstream", depth=10)
    up_edges = edges(up)
    chain = [
        f"training_set:{ts}",
        f"job:model_registration.{model}",
        f"model_version:{model}/1",
        f"job:model_promotion.{model}",
        f"serving_stage:{model}/production",
    ]
    assert all((a, b) in up_edges for a, b in itertools.pairwise(chain))
    distance = refs(up)
    assert distance[f"training_set:{ts}"] == 4 and distance["training_set:labels_q3"] == 4
    down = fetch_graph(api, f"model_version:{model}/2", "downstream", depth=2)
    assert {f"serving_stage:{model}/{s}" for s in ("staging", "canary", "production")} <= {
        n["ref"] for n in down["nodes"]
    }


def test_a_local_model_directory_is_uploaded_and_registered(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    import mlflow

    model, path = _model(), tmp_path / "model"
    mlflow.sklearn.save_model(_classifier(0.5), str(path), pip_requirements=["scikit-learn"])
    info = registry.register(name=model, model_uri=str(path), training_sets=["ts_local"])
    assert str(tmp_path) not in info.source  # reachable by a model server, not a local path
    run_id = registry.client.get_model_version(model, str(info.version)).run_id
    assert registry.client.get_run(run_id).data.tags["streamfeat.model"] == model
    loaded = mlflow.pyfunc.load_model(f"models:/{model}/{info.version}")
    assert list(loaded.predict(X)) == list(_classifier(0.5).predict(X))


def test_illegal_moves_change_nothing_and_report_nothing(
    registry: ModelRegistry, run_model_uri: str, api: httpx.Client
) -> None:
    model = _model()
    registry.register(name=model, model_uri=run_model_uri, training_sets=["ts_x"])
    with pytest.raises(IllegalMove, match="must be in canary before production"):
        registry.promote(model, 1, Stage.PRODUCTION)
    with pytest.raises(IllegalMove, match="must be in staging before canary"):
        registry.promote(model, 1, Stage.CANARY)
    with pytest.raises(RegistryError, match=f"model '{model}' has no version 7"):
        registry.promote(model, 7, Stage.STAGING)
    with pytest.raises(RegistryError, match="no registered model 'nope_"):
        registry.promote(f"nope_{uuid.uuid4().hex[:6]}", 1, Stage.STAGING)
    assert registry.client.get_registered_model(model).aliases == {}
    reader = {"X-API-Key": dev_key(Role.READER)}
    r = api.get(
        "/v1/lineage/graph", params={"node": f"job:model_promotion.{model}"}, headers=reader
    )
    assert r.status_code == 404  # no promotion was ever reported for this model


def test_a_failed_registration_reports_fail_and_adds_no_edge(
    registry: ModelRegistry, api: httpx.Client
) -> None:
    model, ts = _model(), f"ts_{uuid.uuid4().hex[:8]}"
    with pytest.raises(RegistryError, match="MLflow refused to register"):
        registry.register(
            name=model, model_uri=f"runs:/{uuid.uuid4().hex}/model", training_sets=[ts]
        )
    graph = fetch_graph(api, f"training_set:{ts}")
    assert graph["edges"] == [] and [n["ref"] for n in graph["nodes"]] == [f"training_set:{ts}"]


def test_cli_registers_promotes_and_refuses(
    supervisor: object, stack_settings: StackSettings, tmp_path: Path
) -> None:
    import mlflow

    path = tmp_path / "model"
    mlflow.sklearn.save_model(_classifier(), str(path), pip_requirements=["scikit-learn"])
    model = _model()
    env = {**os.environ, **stack_env(stack_settings)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "streamfeat.cli", "model", *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)

    done = cli("register", "--name", model, "--model-uri", str(path), "--training-set", "ts_cli")
    assert done.returncode == 0, done.stderr
    assert f"{model}: registered version 1 (training sets: ts_cli" in done.stdout
    refused = cli("promote", model, "1", "--to", "canary")
    assert refused.returncode == 1
    assert "refused: version 1 must be in staging before canary" in refused.stderr
    assert cli("promote", model, "1", "--to", "staging").returncode == 0
    # its inputs are not online features: no traffic unless told it is served elsewhere
    refused = cli("promote", model, "1", "--to", "canary")
    assert refused.returncode == 1
    assert "its signature names no input" in refused.stderr
    assert cli("promote", model, "1", "--to", "canary", "--skip-live-check").returncode == 0
    shown = cli("status", model)
    assert shown.returncode == 0, shown.stderr
    assert "canary: version 1 at 5% of traffic" in shown.stdout
    assert cli("rollback", model).returncode == 1
