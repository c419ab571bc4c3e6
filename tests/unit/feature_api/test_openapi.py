"""One error shape for every error, and an OpenAPI document that says so for every operation
(routes added later included: the document is post-processed, not written per route)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.settings import Ports, StackSettings
from feature_api.app import create_app
from feature_api.auth import PUBLIC_PATHS
from feature_api.settings import ApiSettings, Role, dev_key

ERROR_REF = {"$ref": "#/components/schemas/ErrorPublic"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    unused = StackSettings(ports=Ports(redis=1, postgres=1))  # no backend is reached here
    with TestClient(create_app(ApiSettings(), unused)) as c:
        yield c


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    spec: dict[str, Any] = client.get("/openapi.json").json()
    return spec


def _error(r: Any) -> dict[str, Any]:
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"} and {"code", "message", "detail"} <= set(body["error"])
    return body["error"]


def test_framework_errors_take_the_api_error_shape(client: TestClient) -> None:
    reader = {"X-API-Key": dev_key(Role.READER)}
    r = client.post("/v1/features/customer_profile:batch", json={"entity_ids": []}, headers=reader)
    err = _error(r)
    assert r.status_code == 422 and err["code"] == "invalid_request"
    assert err["detail"]["errors"][0]["loc"] == ["body", "entity_ids"]
    r = client.post(
        "/v1/features/customer_profile:batch",
        content=b"\xff\xfe{",  # not even text (malformed JSON text is a 422)
        headers={**reader, "content-type": "application/json"},
    )
    assert r.status_code == 400 and _error(r)["code"] == "bad_request"
    r = client.get("/no/such/path")
    assert r.status_code == 404 and _error(r)["code"] == "not_found"
    r = client.delete("/healthz")
    assert r.status_code == 405 and _error(r)["code"] == "method_not_allowed"


def test_every_operation_documents_its_errors(spec: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert spec["components"]["securitySchemes"].keys() == {"ApiKey", "BearerJWT"}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            where = f"{method.upper()} {path}"
            for status, response in responses.items():
                assert response.get("description"), (where, status)
            if "422" in responses:
                assert responses["422"]["content"]["application/json"]["schema"] == ERROR_REF
            if "requestBody" in op:
                assert responses["400"]["content"]["application/json"]["schema"] == ERROR_REF
            if path not in PUBLIC_PATHS:
                assert {"401", "403"} <= responses.keys(), where
                assert op["security"], where
