"""The feature API as the stack runs it (the `api` service on the test ports) over the real
Redis: values written through the online store contract come back with their freshness."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from core.features import CLICK_AGGREGATIONS, CUSTOMER_PROFILE, USER_ACTIVITY, USER_SESSIONS
from core.online import (
    ROW_EVENT_TIME,
    ROW_VERSION,
    AttributeWrite,
    RedisOnlineStore,
    RowWrite,
    TileWrite,
    attribute_version_field,
    entity_key,
)
from core.settings import StackSettings
from core.version import cdc_version, click_version, crm_version
from core.windows import combine, pack, tiles_of
from feature_api.app import create_app
from feature_api.settings import ApiSettings, Role, dev_key

DAY_MS = 86_400_000
READER = {"X-API-Key": dev_key(Role.READER)}


@pytest.fixture(scope="module")
def api(supervisor: object, stack_settings: StackSettings) -> Iterator[httpx.Client]:
    base = f"http://{stack_settings.host}:{stack_settings.ports.api}"
    with httpx.Client(base_url=base, timeout=5, headers=READER) as client:
        yield client


@pytest.fixture(scope="module")
def store(supervisor: object, stack_settings: StackSettings) -> RedisOnlineStore:
    return RedisOnlineStore.from_url(stack_settings.redis_url)


def _entity() -> int:
    return int(uuid.uuid4().int % 10**12)


def _now() -> int:
    return time.time_ns() // 1_000_000


def test_probes_and_metrics(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").status_code == 200
    api.get("/v1/features/customer_profile/1")
    text = api.get("/metrics").text
    assert "streamfeat_api_request_duration_seconds_bucket" in text
    assert 'route="/v1/features/{view}/{entity_id}"' in text


def test_attribute_view_present_expired_by_event_time_and_missing(
    api: httpx.Client, store: RedisOnlineStore
) -> None:
    cid, now = _entity(), _now()
    cdc = cdc_version({"ts_ms": now - 2_000, "lsn": 10, "sequence": '["9","10"]'})
    crm_later = crm_version(now - 1_000, now, "crm/exports/a.csv", 4)  # newer: CRM wins email
    store.write(
        [
            AttributeWrite(CUSTOMER_PROFILE, cid, "email", "pg@example.com", cdc),
            AttributeWrite(CUSTOMER_PROFILE, cid, "email", "crm@example.com", crm_later),
        ]
    )
    # A value Redis still holds although its event time is past the TTL (e.g. written by a
    # job without TTL): set directly, since the versioned upsert would expire it at once.
    old = now - DAY_MS - 60_000
    stale = cdc_version({"ts_ms": old, "lsn": 5, "sequence": None})
    tier = CUSTOMER_PROFILE.feature("tier")
    fields = {tier.short: "gold", attribute_version_field(tier): stale.encode()}
    store.client.hset(entity_key(CUSTOMER_PROFILE, cid), mapping=fields)

    r = api.get(f"/v1/features/customer_profile/{cid}")
    assert r.status_code == 200, r.text
    f = r.json()["features"]
    assert f["email"]["status"] == "PRESENT"
    assert f["email"]["value"] == "crm@example.com"
    assert f["email"]["source"] == "s3_crm"
    assert f["email"]["event_time"] == now - 1_000
    assert 1_000 <= f["email"]["age_ms"] < 60_000
    assert f["tier"] == {
        "value": None,
        "status": "EXPIRED",
        "event_time": old,
        "age_ms": f["tier"]["age_ms"],
        "source": "pg_cdc",
    }
    assert f["tier"]["age_ms"] >= DAY_MS
    assert f["segment"]["status"] == "MISSING"


def test_view_scoped_rows_one_version_per_view(api: httpx.Client, store: RedisOnlineStore) -> None:
    """A view-scoped row is dated by its one version: every feature of user_sessions is
    PRESENT while the row is fresh, every one EXPIRED (never stale values) once it is older
    than the TTL by event time — also while Redis still holds it. (Views with per-group
    versions: tests/unit/feature_api/test_freshness.py.)"""
    uid, old_uid, now = _entity(), _entity(), _now()
    counts = {"last_session_duration_s": 1, "last_session_events": 40}
    old = now - 2 * DAY_MS
    store.write([RowWrite(USER_SESSIONS, uid, counts, click_version(now - 500, 2, 9))])
    store.client.hset(
        entity_key(USER_SESSIONS, old_uid),
        mapping={
            USER_SESSIONS.feature("last_session_events").short: "40",
            ROW_VERSION: click_version(old, 2, 1).encode(),
            ROW_EVENT_TIME: str(old),
        },
    )
    query = (
        "features=last_session_duration_s&features=last_session_events&features=last_session_pages"
    )
    f = api.get(f"/v1/features/user_sessions/{uid}?{query}").json()["features"]
    d = f["last_session_duration_s"]
    assert (d["status"], d["value"]) == ("PRESENT", 1)
    assert (f["last_session_events"]["value"], f["last_session_events"]["event_time"]) == (
        40,
        now - 500,
    )
    assert f["last_session_pages"]["status"] == "MISSING"
    f = api.get(f"/v1/features/user_sessions/{old_uid}?{query}").json()["features"]
    assert (f["last_session_events"]["status"], f["last_session_events"]["event_time"]) == (
        "EXPIRED",
        old,
    )
    assert f["last_session_events"]["value"] is None


def test_windowed_views_are_answered_as_of_the_request(
    api: httpx.Client, store: RedisOnlineStore
) -> None:
    """Tiles combined at read time: live counts include the open minute, ``as_of`` counts
    complete tiles only, a window without events answers 0 (PRESENT), and ``as_of`` outside
    the online horizon or on a non-windowed view is a 422 naming the fix."""
    uid, unseen, now = _entity(), _entity(), _now()
    events = [
        {"user_id": uid, "event_time": now - 90 * 60_000, "event_type": "page_view"},
        {"user_id": uid, "event_time": now - 30 * 60_000, "event_type": "purchase"},
        {"user_id": uid, "event_time": now - 1000, "event_type": "add_to_cart"},
    ]
    tiles = tiles_of(CLICK_AGGREGATIONS, events)
    store.write(
        TileWrite(USER_ACTIVITY, uid, f, v[0] or 0, pack(v), now - 1000) for f, v in tiles.items()
    )
    got = api.get(f"/v1/features/user_activity/{uid}").json()["features"]
    served_at = api.get(f"/v1/features/user_activity/{uid}").json()["served_at"]
    want = combine(CLICK_AGGREGATIONS, tiles, served_at, open_head=True)
    assert {k: v["value"] for k, v in got.items()} == want
    assert (got["clicks_1h"]["status"], got["clicks_24h"]["value"]) == ("PRESENT", 3)
    assert (got["clicks_1h"]["event_time"], got["clicks_1h"]["source"]) == (
        now - 1000,
        "clickstream",
    )
    as_of = now - 20 * 60_000
    past = api.get(f"/v1/features/user_activity/{uid}?as_of={as_of}").json()["features"]
    assert {k: v["value"] for k, v in past.items()} == combine(
        CLICK_AGGREGATIONS, tiles, as_of, open_head=False
    )
    assert past["carts_1h"]["value"] == 0  # the cart is after as_of
    batch = api.post(
        "/v1/features/user_activity:batch",
        json={"entity_ids": [uid, unseen], "features": ["clicks_7d"], "as_of": as_of},
    ).json()["results"]
    assert [r["features"]["clicks_7d"]["value"] for r in batch] == [past["clicks_7d"]["value"], 0]
    assert batch[1]["features"]["clicks_7d"]["status"] == "PRESENT"
    too_old = api.get(f"/v1/features/user_activity/{uid}?as_of={now - 2 * 3_600_000}")
    assert too_old.status_code == 422 and too_old.json()["error"]["code"] == "bad_as_of"
    not_windowed = api.get(f"/v1/features/user_sessions/{uid}?as_of={as_of}")
    assert not_windowed.status_code == 422 and "windowed" in not_windowed.json()["error"]["message"]

    sid = _entity()
    row = {"last_session_events": 3}
    store.write([RowWrite(USER_SESSIONS, sid, row, click_version(now - 100, 0, 1))])
    f = api.get(f"/v1/features/user_sessions/{sid}").json()["features"]
    e = f["last_session_events"]
    assert (e["status"], e["value"], e["event_time"]) == ("PRESENT", 3, now - 100)
    assert f["last_session_pages"]["status"] == "MISSING"


def test_batch(api: httpx.Client, store: RedisOnlineStore, stack_settings: StackSettings) -> None:
    cid, absent, now = _entity(), _entity(), _now()
    v = cdc_version({"ts_ms": now, "lsn": 1, "sequence": None})
    store.write([AttributeWrite(CUSTOMER_PROFILE, cid, "segment", "vip", v)])
    r = api.post(
        "/v1/features/customer_profile:batch",
        json={"entity_ids": [absent, cid], "features": ["segment"]},
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["entity_id"] for x in results] == [absent, cid]
    assert [x["features"]["segment"]["status"] for x in results] == ["MISSING", "PRESENT"]
    assert results[1]["features"]["segment"]["value"] == "vip"

    too_many = ApiSettings().max_batch + 1
    r = api.post("/v1/features/customer_profile:batch", json={"entity_ids": [1] * too_many})
    assert r.status_code == 413 and r.json()["error"]["code"] == "batch_too_large"


def test_compact_batch_dates_each_version_field_once(
    api: httpx.Client, store: RedisOnlineStore
) -> None:
    """The compact form answers the same values as the full one, with the freshness once per
    distinct version: per written attribute for customer_profile, once per entity for
    user_activity."""
    cid, absent, now = _entity(), _entity(), _now()
    v = cdc_version({"ts_ms": now - 5_000, "lsn": 1, "sequence": None})
    store.write([AttributeWrite(CUSTOMER_PROFILE, cid, "tier", "gold", v)])
    for view, ids in (("customer_profile", [cid, absent]), ("user_activity", [cid, absent])):
        body = {"entity_ids": ids}
        full = api.post(f"/v1/features/{view}:batch", json=body)
        compact = api.post(f"/v1/features/{view}:batch", json=body | {"format": "compact"})
        assert full.status_code == compact.status_code == 200, compact.text
        got = compact.json()
        if view == "user_activity":  # 9 features, one meta per entity
            assert len(compact.content) < len(full.content) / 3
        for entity, answer in zip(full.json()["results"], got["results"], strict=True):
            assert answer["entity_id"] == entity["entity_id"]
            assert [entity["features"][n]["value"] for n in got["features"]] == answer["values"]
            for meta in answer["meta"]:
                for i in meta["features"]:
                    state = entity["features"][got["features"][i]]
                    assert (meta["event_time"], meta["source"]) == (
                        state["event_time"],
                        state["source"],
                    )
    profile = api.post(
        "/v1/features/customer_profile:batch", json={"entity_ids": [cid], "format": "compact"}
    ).json()
    tier = profile["features"].index("tier")
    (dated,) = [m for m in profile["results"][0]["meta"] if m["event_time"] is not None]
    assert (dated["features"], dated["event_time"], dated["source"]) == (
        [tier],
        now - 5_000,
        "pg_cdc",
    )
    assert len(profile["results"][0]["meta"]) == 2  # email and segment: one undated meta


def test_client_errors(api: httpx.Client) -> None:
    r = api.get("/v1/features/no_such_view/1")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_view"
    r = api.get("/v1/features/customer_profile/1?features=nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_feature"
    assert api.get("/v1/features/customer_profile/not-an-id").status_code == 422
    assert api.post("/v1/features/customer_profile:batch", json={}).status_code == 422


def _closed_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _redis_down_app(stack_settings: StackSettings, port: int) -> TestClient:
    ports = stack_settings.ports.model_copy(update={"redis": port})
    stack = stack_settings.model_copy(update={"ports": ports})
    return TestClient(create_app(ApiSettings(), stack), headers=READER)


def _assert_fast_503(client: TestClient, kind: str) -> None:
    for method, path, body in [
        ("GET", "/v1/features/customer_profile/1", None),
        ("POST", "/v1/features/user_activity:batch", {"entity_ids": [1, 2]}),
        ("GET", "/readyz", None),
    ]:
        t0 = time.perf_counter()
        r = client.request(method, path, json=body)
        took = time.perf_counter() - t0
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "online_store_unavailable"
        assert r.json()["error"]["detail"]["kind"] == kind
        assert took < 0.2, f"{method} {path} took {took * 1000:.0f} ms"
    assert client.get("/healthz").status_code == 200  # the process itself is fine
    assert f'streamfeat_api_redis_errors_total{{kind="{kind}"}} 3.0' in client.get("/metrics").text


def test_redis_refusing_connections_is_503_fast(stack_settings: StackSettings) -> None:
    with _redis_down_app(stack_settings, _closed_port(stack_settings.host)) as client:
        _assert_fast_503(client, "connection")


def test_redis_not_answering_is_503_within_the_timeout(stack_settings: StackSettings) -> None:
    # A listener that never accepts: connects complete in the backlog, replies never come.
    with socket.socket() as silent:
        silent.bind((stack_settings.host, 0))
        silent.listen(64)
        port = int(silent.getsockname()[1])
        with _redis_down_app(stack_settings, port) as client:
            _assert_fast_503(client, "timeout")


def test_shared_redis_untouched(stack_settings: StackSettings, supervisor: object) -> None:
    assert redis.Redis.from_url(stack_settings.redis_url).ping()
