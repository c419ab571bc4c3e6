"""The model endpoint's merge of both stages' answers (serving/router.py): back in the
request's entity order, in both protocols, each entity with the version that answered it."""

from __future__ import annotations

import json

import orjson

from serving.router import Answer, _merge


def _v1(preds: list[float], version: int, stage: str, ids: list[int]) -> Answer:
    body = {
        "model": "m",
        "predictions": preds,
        "versions": [version] * len(ids),
        "stages": [stage] * len(ids),
        "entity_ids": ids,
        "feature_age_ms": [{"user_activity": i} for i in ids],
    }
    return Answer(200, orjson.dumps(body))


def _v2(preds: list[float], version: int, stage: str, ids: list[int]) -> Answer:
    body = {
        "model_name": "m",
        "model_version": str(version),
        "outputs": [{"name": "prediction", "shape": [len(ids)], "datatype": "FP64", "data": preds}],
        "parameters": {
            "versions": json.dumps([version] * len(ids)),
            "stages": json.dumps([stage] * len(ids)),
            "feature_age_ms": json.dumps([{"user_activity": i} for i in ids]),
        },
    }
    return Answer(200, orjson.dumps(body))


def test_both_stages_merge_in_request_order() -> None:
    ids = [10, 11, 12, 13]
    parts = [("production", [0, 2, 3]), ("canary", [1])]
    v1 = _merge(
        ids,
        parts,
        [_v1([0.1, 0.3, 0.4], 1, "production", [10, 12, 13]), _v1([0.2], 2, "canary", [11])],
        False,
    )
    assert v1["predictions"] == [0.1, 0.2, 0.3, 0.4]
    assert v1["versions"] == [1, 2, 1, 1] and v1["stages"][1] == "canary"
    assert v1["entity_ids"] == ids
    assert [a["user_activity"] for a in v1["feature_age_ms"]] == ids
    v2 = _merge(
        ids,
        parts,
        [_v2([0.1, 0.3, 0.4], 1, "production", [10, 12, 13]), _v2([0.2], 2, "canary", [11])],
        True,
    )
    assert v2["outputs"][0]["data"] == [0.1, 0.2, 0.3, 0.4]
    assert json.loads(v2["parameters"]["versions"]) == [1, 2, 1, 1]
