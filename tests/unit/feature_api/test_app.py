"""The HTTP layer on an in-memory online store: routes, status codes, response shape."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.features import CUSTOMER_PROFILE, FeatureView
from core.settings import Ports, StackSettings
from core.version import cdc_version
from feature_api.app import create_app
from feature_api.deps import get_store, now_ms
from feature_api.settings import ApiSettings, Role, dev_key

NOW = 1_800_000_000_000


class FakeStore:
    """Rows per (view, entity id), in the shape AsyncOnlineReader.read returns."""

    def __init__(self, rows: dict[tuple[str, int], dict[str, Any]]) -> None:
        self.rows = rows
        self.reads: list[list[object]] = []

    async def read(
        self, view: FeatureView, entity_ids: Sequence[object], **_: Any
    ) -> list[dict[str, Any]]:
        self.reads.append(list(entity_ids))
        return [dict(self.rows.get((view.name, int(str(e))), {})) for e in entity_ids]


@pytest.fixture
def store() -> FakeStore:
    v = cdc_version({"ts_ms": NOW - 1_000, "lsn": 1, "sequence": None}).encode()
    return FakeStore({(CUSTOMER_PROFILE.name, 7): {"email": "a@example.com", "e@": v}})


@pytest.fixture
def client(store: FakeStore) -> Iterator[TestClient]:
    unused = StackSettings(ports=Ports(redis=1, postgres=1))  # never reached: faked
    app = create_app(ApiSettings(max_batch=3), unused)
    app.dependency_overrides[get_store] = lambda: store
    app.dependency_overrides[now_ms] = lambda: NOW
    with TestClient(app, headers={"X-API-Key": dev_key(Role.READER)}) as c:
        yield c


def test_one_entity_reports_value_status_time_age_and_source(client: TestClient) -> None:
    r = client.get("/v1/features/customer_profile/7", params={"features": ["email", "tier"]})
    assert r.status_code == 200
    assert r.json() == {
        "view": "customer_profile",
        "served_at": NOW,
        "entity_id": 7,
        "features": {
            "email": {
                "value": "a@example.com",
                "status": "PRESENT",
                "event_time": NOW - 1_000,
                "age_ms": 1_000,
                "source": "pg_cdc",
            },
            "tier": {
                "value": None,
                "status": "MISSING",
                "event_time": None,
                "age_ms": None,
                "source": None,
            },
        },
    }


def test_all_features_when_none_asked_and_duplicates_once(client: TestClient) -> None:
    r = client.get("/v1/features/customer_profile/7")
    assert list(r.json()["features"]) == list(CUSTOMER_PROFILE.names)
    r = client.get("/v1/features/customer_profile/7?features=tier&features=email&features=tier")
    assert list(r.json()["features"]) == ["tier", "email"]


def test_batch_answers_in_request_order_in_one_read(client: TestClient, store: FakeStore) -> None:
    r = client.post(
        "/v1/features/customer_profile:batch", json={"entity_ids": [8, 7, 8], "features": None}
    )
    assert r.status_code == 200
    body = r.json()
    assert [x["entity_id"] for x in body["results"]] == [8, 7, 8]
    assert [x["features"]["email"]["status"] for x in body["results"]] == [
        "MISSING",
        "PRESENT",
        "MISSING",
    ]
    assert store.reads == [[8, 7, 8]]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/v1/features/nope/7", None, 404, "unknown_view"),
        ("GET", "/v1/features/customer_profile/7?features=bogus", None, 404, "unknown_feature"),
        ("POST", "/v1/features/nope:batch", {"entity_ids": [1]}, 404, "unknown_view"),
        ("POST", "/v1/features/customer_profile:batch", {"entity_ids": [1, 2, 3, 4]}, 413, None),
    ],
)
def test_errors_map_to_http_once(
    client: TestClient, method: str, path: str, body: Any, status: int, code: str | None
) -> None:
    r = client.request(method, path, json=body)
    assert r.status_code == status
    assert r.json()["error"]["code"] == (code or "batch_too_large")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/features/customer_profile/abc", None),
        ("GET", "/v1/features/customer_profile/-1", None),
        ("GET", f"/v1/features/customer_profile/{2**53}", None),  # past JSON-safe integers
        ("POST", "/v1/features/customer_profile:batch", {"entity_ids": [2**53]}),
        ("POST", "/v1/features/customer_profile:batch", {"entity_ids": []}),
        ("POST", "/v1/features/customer_profile:batch", {"entity_ids": ["x"]}),
        ("POST", "/v1/features/customer_profile:batch", {"entity_ids": [1], "extra": 1}),
    ],
)
def test_invalid_input_is_422(client: TestClient, method: str, path: str, body: Any) -> None:
    assert client.request(method, path, json=body).status_code == 422


def test_metrics_time_requests_by_route_template(client: TestClient) -> None:
    client.get("/v1/features/customer_profile/7")
    client.get("/healthz")
    text = client.get("/metrics").text
    assert 'route="/v1/features/{view}/{entity_id}"' in text
    assert 'route="/healthz"' in text
    assert "streamfeat_api_redis_errors_total" in text


def test_settings_are_validated_and_prefixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMFEAT_API_MAX_BATCH", "7")
    assert ApiSettings().max_batch == 7
    with pytest.raises(ValueError):
        ApiSettings(max_batch=0)
    with pytest.raises(ValueError):
        ApiSettings(nope=1)  # type: ignore[call-arg]
