"""deploy/k8s is generated from the shared declarations: it must be fresh, and every object
must validate against the official CRD schema (../shared/k8s-crds)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from core.settings import PROJECT_ROOT
from core.topics import catalogue
from streamfeat.k8s import inference_service, rendered

CRD_DIR = PROJECT_ROOT.parent / "shared" / "k8s-crds"


@cache
def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    assert CRD_DIR.is_dir(), f"official CRDs expected in {CRD_DIR} (shared/ beside the checkout)"
    schemas = {}
    for path in [*CRD_DIR.glob("strimzi-*.y*ml"), *CRD_DIR.glob("serving.kserve.io_*.y*ml")]:
        for crd in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


@pytest.mark.parametrize("path", sorted(rendered(catalogue())), ids=lambda p: p.name)
def test_generated_manifest_is_fresh(path: Path) -> None:
    expected = rendered(catalogue())[path]
    assert path.exists(), f"{path} missing: run `streamfeat render`"
    assert path.read_text() == expected, f"{path} is stale: run `streamfeat render`"


@pytest.mark.parametrize("path", sorted(rendered(catalogue())), ids=lambda p: p.name)
def test_every_object_validates_against_its_crd(path: Path) -> None:
    schemas = _crd_schemas()
    docs = [d for d in yaml.safe_load_all(rendered(catalogue())[path]) if d]
    assert docs
    for doc in docs:
        schema = schemas[(doc["apiVersion"], doc["kind"])]
        jsonschema.validate(doc, schema)
        assert len(doc["metadata"]["name"]) <= 253


def test_clickstream_topic_manifest_keeps_the_contract() -> None:
    docs = yaml.safe_load_all(rendered(catalogue())[PROJECT_ROOT / "deploy/k8s/kafka-topics.yaml"])
    click = next(d for d in docs if d["spec"]["topicName"] == "clickstream")
    assert click["spec"]["partitions"] == 12
    assert click["spec"]["config"]["retention.ms"] == 604800000


def test_inference_service_for_production_and_for_a_canary_validates() -> None:
    schema = _crd_schemas()[("serving.kserve.io/v1beta1", "InferenceService")]
    production = inference_service("purchase_propensity")
    canary = inference_service("purchase_propensity", stage="canary", canary_percent=5.0)
    for doc in (production, canary):
        jsonschema.validate(doc, schema)
    assert "canaryTrafficPercent" not in production["spec"]["predictor"]
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 5
    args = canary["spec"]["predictor"]["containers"][0]["args"]
    assert args[args.index("--serve-stage") + 1] == "canary"
    with pytest.raises(ValueError):
        inference_service("m", stage="canary")
