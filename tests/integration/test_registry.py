"""Registration on the real PostgreSQL (and retrieval of registered views on the real Redis):
versions, rejection of incompatible changes, deprecation, concurrency, PostgreSQL down."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from core.features import FEATURE_VIEWS
from core.online import RedisOnlineStore, RowWrite
from core.registry import EntitySpec, FeatureViewBody, FeatureViewSpec, to_feature_view, view_spec
from core.settings import StackSettings
from core.version import click_version
from feature_api.app import create_app
from feature_api.errors import PreconditionFailed
from feature_api.preconditions import parse_if_match
from feature_api.registry_snapshot import RegistrySnapshot
from feature_api.registry_store import Kind, RegistryStore
from feature_api.settings import ApiSettings, Role, dev_key
from streamfeat.cli_registry import API_KEY_ENV, apply_one
from tests.conftest import stack_env

pytestmark = pytest.mark.stack

READER = {"X-API-Key": dev_key(Role.READER)}
WRITER = {"X-API-Key": dev_key(Role.WRITER)}
ADMIN = {"X-API-Key": dev_key(Role.ADMIN)}


@pytest.fixture(scope="module")
def client(supervisor: object, stack_settings: StackSettings) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(), stack_settings)) as c:
        yield c


@pytest.fixture(scope="module")
def registry(supervisor: object, stack_settings: StackSettings) -> RegistryStore:
    return RegistryStore(stack_settings.postgres_dsn(), timeout_s=3)


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _entity(client: TestClient) -> str:
    name = _name("ent")
    r = client.post(
        "/v1/entities",
        json={"name": name, "join_key": "thing_id", "description": "a thing"},
        headers=WRITER,
    )
    assert r.status_code == 201, r.text
    return name


def _view_body(entity: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "entity": entity,
        "features": [
            {"name": "clicks_1h", "dtype": "int64", "description": "clicks in 1 h"},
            {"name": "last_page", "dtype": "string"},
        ],
        "sources": ["clickstream"],
        "transformation": "count(*) over 1 h",
        "ttl_s": 3600,
        "owner": "team-a",
        "description": "test view",
        "tags": {"tier": "gold"},
    }
    body.update(over)
    return body


def _post_view(client: TestClient, name: str, body: dict[str, Any]) -> Any:
    return client.post("/v1/feature-views", json={"name": name, **body}, headers=WRITER)


def _register_view(client: TestClient, entity: str, **over: Any) -> str:
    name = _name("view")
    r = _post_view(client, name, _view_body(entity, **over))
    assert r.status_code == 201, r.text
    return name


def test_entity_versions_and_compatible_update(client: TestClient) -> None:
    name = _entity(client)
    r = client.get(f"/v1/entities/{name}", headers=READER)
    assert r.status_code == 200
    got = r.json()
    assert (got["version"], got["status"], got["spec"]["short"]) == (1, "active", name)
    assert got["created_by"].startswith("api-key:")
    assert dev_key(Role.WRITER) not in got["created_by"]

    body = {"join_key": "thing_id", "description": "a better thing", "owner": "team-b"}
    r = client.put(f"/v1/entities/{name}", json=body, headers=WRITER)
    assert r.status_code == 200, r.text
    assert (r.json()["outcome"], r.json()["version"]) == ("new_version", 2)
    assert len(r.json()["changes"]) == 2

    r = client.put(f"/v1/entities/{name}", json={**body, "join_key": "other_id"}, headers=WRITER)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "incompatible_change"
    assert "join_key" in r.json()["error"]["detail"]["reasons"][0]

    versions = client.get(f"/v1/entities/{name}/versions", headers=READER).json()
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["spec"]["description"] == "a thing"


def test_view_created_with_derived_shorts_then_versioned(client: TestClient) -> None:
    entity = _entity(client)
    name = _register_view(client, entity)
    got = client.get(f"/v1/feature-views/{name}", headers=READER).json()
    assert [f["short"] for f in got["spec"]["features"]] == ["c1h", "lp"]
    assert (got["version"], got["in_code"], got["spec"]["short"]) == (1, False, name)

    # Compatible: a feature added, TTL and tags changed -> version 2, shorts kept.
    body = _view_body(entity, ttl_s=7200, tags={"tier": "silver"})
    body["features"] = [*body["features"], {"name": "clicks_24h", "dtype": "int64"}]
    r = client.put(f"/v1/feature-views/{name}", json=body, headers=WRITER)
    assert r.status_code == 200, r.text
    assert (r.json()["outcome"], r.json()["version"]) == ("new_version", 2)
    assert [f["short"] for f in r.json()["spec"]["features"]] == ["c1h", "lp", "c24h"]
    assert any("added" in c for c in r.json()["changes"])

    # The same body again: nothing to version.
    r = client.put(f"/v1/feature-views/{name}", json=body, headers=WRITER)
    assert (r.json()["outcome"], r.json()["version"]) == ("unchanged", 2)

    old = client.get(f"/v1/feature-views/{name}", params={"version": 1}, headers=READER).json()
    assert old["spec"]["ttl_s"] == 3600 and old["latest_version"] == 2
    r = client.get(f"/v1/feature-views/{name}", params={"version": 9}, headers=READER)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_version"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda b: b["features"].pop(), "removed"),
        (lambda b: b["features"][0].update(dtype="float64"), "dtype"),
        (lambda b: b["features"][0].update(short="zz"), "short"),
        (lambda b: b.update(version_scope="attribute"), "version_scope"),
    ],
)
def test_incompatible_view_changes_are_rejected_with_reasons(
    client: TestClient, change: Any, needle: str
) -> None:
    entity = _entity(client)
    name = _register_view(client, entity)
    body = _view_body(entity)
    change(body)
    r = client.put(f"/v1/feature-views/{name}", json=body, headers=WRITER)
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "incompatible_change"
    assert any(needle in reason for reason in err["detail"]["reasons"]), err
    assert client.get(f"/v1/feature-views/{name}", headers=READER).json()["version"] == 1


def test_changing_the_entity_is_rejected(client: TestClient) -> None:
    first, second = _entity(client), _entity(client)
    name = _register_view(client, first)
    r = client.put(f"/v1/feature-views/{name}", json=_view_body(second), headers=WRITER)
    assert r.status_code == 409
    assert any("entity" in x for x in r.json()["error"]["detail"]["reasons"])


def test_invalid_definitions(client: TestClient) -> None:
    r = _post_view(client, _name("v"), _view_body("no_such_entity"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_reference"
    entity = _entity(client)
    dup = _view_body(entity, features=[{"name": "a", "dtype": "int64"}] * 2)
    r = _post_view(client, _name("v"), dup)
    assert r.status_code == 422  # duplicate feature names: request validation
    # A short name the code declarations own (customer_profile writes sf:cp:...).
    r = _post_view(client, _name("v"), _view_body(entity, short="cp"))
    assert r.status_code == 409 and r.json()["error"]["detail"]["taken_by"] == "customer_profile"
    name = _register_view(client, entity)
    r = _post_view(client, name, _view_body(entity))
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_exists"
    assert client.get("/v1/feature-views/nope_nope", headers=READER).status_code == 404
    assert client.get("/v1/entities/nope_nope", headers=READER).status_code == 404
    assert (
        client.put("/v1/entities/nope_nope", json={"join_key": "k"}, headers=WRITER).status_code
        == 404
    )


def test_deprecation_needs_admin_blocks_updates_and_keeps_retrieval(
    client: TestClient, stack_settings: StackSettings
) -> None:
    entity = _entity(client)
    name = _register_view(client, entity)
    path = f"/v1/feature-views/{name}:deprecate"
    assert client.post(path, json={"reason": "x"}, headers=WRITER).status_code == 403
    r = client.post(path, json={"reason": "superseded"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["outcome"]) == ("deprecated", "deprecated")
    assert r.json()["deprecation_reason"] == "superseded"
    assert client.post(path, headers=ADMIN).json()["outcome"] == "unchanged"  # idempotent
    r = client.put(f"/v1/feature-views/{name}", json=_view_body(entity), headers=WRITER)
    assert r.status_code == 409 and r.json()["error"]["code"] == "deprecated"
    r = client.get(f"/v1/features/{name}/1", headers=READER)
    assert r.status_code == 200  # deprecated, still served

    # An entity with an active view cannot be deprecated; once the views are, it can.
    other = _entity(client)
    active = _register_view(client, other)
    r = client.post(f"/v1/entities/{other}:deprecate", headers=ADMIN)
    assert r.status_code == 409 and r.json()["error"]["detail"]["views"] == [active]
    client.post(f"/v1/feature-views/{active}:deprecate", headers=ADMIN)
    assert client.post(f"/v1/entities/{other}:deprecate", headers=ADMIN).status_code == 200
    r = _post_view(client, _name("v"), _view_body(other))
    assert r.status_code == 409 and "deprecated" in r.json()["error"]["message"]


def test_registered_view_not_in_code_is_retrievable(
    client: TestClient, registry: RegistryStore, stack_settings: StackSettings
) -> None:
    entity = _entity(client)
    name = _register_view(client, entity)
    view = registry.get(Kind.FEATURE_VIEW, name)
    ent = registry.get(Kind.ENTITY, entity)
    fv = to_feature_view(view.spec, ent.spec)
    now = time.time_ns() // 1_000_000
    store = RedisOnlineStore.from_url(stack_settings.redis_url)
    values = {"clicks_1h": 5, "last_page": "/cart"}
    store.write([RowWrite(fv, 42, values, click_version(now - 1_000, 3, 7))])
    key_fields = store.client.hkeys(f"sf:{name}:{{{entity}:42}}")
    assert {b"c1h", b"lp"} <= set(key_fields)  # stored under the registered short names

    r = client.get(f"/v1/features/{name}/42", headers=READER)
    assert r.status_code == 200, r.text
    f = r.json()["features"]
    assert (f["clicks_1h"]["status"], f["clicks_1h"]["value"]) == ("PRESENT", 5)
    assert f["last_page"]["value"] == "/cart" and f["last_page"]["source"] == "clickstream"
    r = client.post(f"/v1/features/{name}:batch", json={"entity_ids": [42, 43]}, headers=READER)
    assert [x["features"]["clicks_1h"]["status"] for x in r.json()["results"]] == [
        "PRESENT",
        "MISSING",
    ]


def _contenders(client: TestClient, n: int) -> tuple[str, list[FeatureViewBody]]:
    """A freshly registered view and ``n`` updates of it, differing in their description."""
    entity = _entity(client)
    name = _register_view(client, entity)
    bodies = [
        FeatureViewBody.model_validate(_view_body(entity, description=f"writer {i}"))
        for i in range(n)
    ]
    return name, bodies


def _together(n: int, work: Callable[[int], None]) -> list[BaseException]:
    """``work(0)`` .. ``work(n - 1)`` on n threads released at once; what they raised."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return errors


def test_concurrent_updates_never_share_a_version(
    client: TestClient, registry: RegistryStore
) -> None:
    n = 8
    name, bodies = _contenders(client, n)
    results: list[Any] = []
    errors = _together(
        n, lambda i: results.append(registry.update(Kind.FEATURE_VIEW, name, bodies[i], by=f"t{i}"))
    )
    assert not errors, errors
    versions = sorted(r.record.version for r in results)
    assert versions == list(range(2, n + 2))  # each update its own version, no gaps, no twins
    stored = registry.versions(Kind.FEATURE_VIEW, name)
    assert [v.version for v in stored] == list(range(1, n + 2))
    assert len({v.spec.description for v in stored[1:]}) == n


def test_migrations_are_idempotent_under_concurrency(stack_settings: StackSettings) -> None:
    stores = [RegistryStore(stack_settings.postgres_dsn(), timeout_s=5) for _ in range(4)]
    assert not _together(len(stores), lambda i: stores[i].migrate())
    assert all(s._migrated for s in stores)
    assert stores[0].latest(Kind.ENTITY) is not None


def _closed_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def test_postgres_down_retrieval_still_works_from_the_last_snapshot(
    client: TestClient, stack_settings: StackSettings
) -> None:
    entity = _entity(client)
    name = _register_view(client, entity)
    app_registry: RegistryStore = client.app.state.registry  # type: ignore[attr-defined]
    snapshot = client.app.state.snapshot  # type: ignore[attr-defined]
    assert name in snapshot.current.views
    good_dsn = app_registry.dsn
    # PostgreSQL "goes down" for this app: its registry now points at a closed port.
    closed = stack_settings.ports.model_copy(update={"postgres": _closed_port(stack_settings.host)})
    app_registry.dsn = stack_settings.model_copy(update={"ports": closed}).postgres_dsn()
    try:
        assert snapshot.refresh() is False
        assert snapshot.error and "unavailable" in snapshot.error
        assert name in snapshot.current.views  # the last good snapshot is kept
        assert client.get(f"/v1/features/{name}/1", headers=READER).status_code == 200
        assert client.get("/v1/features/customer_profile/1", headers=READER).status_code == 200
        t0 = time.perf_counter()
        r = client.post("/v1/entities", json={"name": _name("e"), "join_key": "k"}, headers=WRITER)
        assert r.status_code == 503 and r.json()["error"]["code"] == "registry_unavailable"
        assert time.perf_counter() - t0 < 5
        ready = client.get("/readyz")
        assert ready.status_code == 200 and "unavailable" in ready.json()["registry"]
    finally:
        app_registry.dsn = good_dsn
    assert snapshot.refresh() is True


def test_app_starts_and_serves_code_views_with_postgres_unreachable(
    stack_settings: StackSettings,
) -> None:
    ports = stack_settings.ports.model_copy(update={"postgres": _closed_port(stack_settings.host)})
    stack = stack_settings.model_copy(update={"ports": ports})
    with TestClient(create_app(ApiSettings(), stack), headers=READER) as c:
        assert c.get("/v1/features/user_activity/1").status_code == 200
        assert c.get("/v1/features/not_registered/1").status_code == 404
        assert c.get("/v1/entities").status_code == 503


def test_store_rejects_unknown_entity_directly(registry: RegistryStore) -> None:
    spec = EntitySpec(name=_name("e"), join_key="k", short=None)
    created = registry.create(spec, by="test")
    assert created.record.spec.short == spec.name and created.outcome == "created"


def _streamfeat(stack_settings: StackSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack_env(stack_settings)}
    env.pop(API_KEY_ENV, None)
    return subprocess.run(
        [str(Path(sys.executable).parent / "streamfeat"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_streamfeat_apply_registers_the_code_definitions_idempotently(
    stack_settings: StackSettings, registry: RegistryStore
) -> None:
    first = _streamfeat(stack_settings, "apply")
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.strip().splitlines()
    assert len(lines) == 1 + len(FEATURE_VIEWS)
    assert all(("created (v1)" in x) or ("unchanged" in x) for x in lines), lines
    for view in FEATURE_VIEWS:
        stored = registry.get(Kind.FEATURE_VIEW, view.name)
        assert stored.spec == view_spec(view)
        assert stored.created_by.startswith("api-key:")

    second = _streamfeat(stack_settings, "apply")
    assert second.returncode == 0, second.stderr
    assert [x for x in second.stdout.splitlines() if x] == [
        "  entity customer: unchanged (v1)",
        *[f"  feature view {v.name}: unchanged (v1)" for v in FEATURE_VIEWS],
    ]


def test_streamfeat_apply_reports_rejections_and_exits_1(
    stack_settings: StackSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from streamfeat import cli_registry
    from streamfeat.cli import app

    _streamfeat(stack_settings, "apply")  # the code definitions are registered
    entities, views = cli_registry.code_definitions()
    first = views[0]
    changed = [first.features[0].model_copy(update={"dtype": "bool"}), *first.features[1:]]
    edited = [first.model_copy(update={"features": changed}), *views[1:]]
    monkeypatch.setattr(cli_registry, "code_definitions", lambda: (entities, edited))
    base = f"http://{stack_settings.host}:{stack_settings.ports.api}"
    result = CliRunner().invoke(app, ["apply", "--url", base])
    assert result.exit_code == 1
    assert f"feature view {first.name}: rejected" in result.output
    assert "dtype" in result.output
    assert "feature view user_activity: unchanged" in result.output  # the others still applied


# ---- optimistic concurrency: ETag / If-Match ---------------------------------------------------


def _put_view(client: TestClient, name: str, body: dict[str, Any], if_match: str | None) -> Any:
    headers = {**WRITER, **({"If-Match": if_match} if if_match is not None else {})}
    return client.put(f"/v1/feature-views/{name}", json=body, headers=headers)


def test_if_match_makes_view_updates_conditional(client: TestClient) -> None:
    entity = _entity(client)
    name = _name("view")
    r = _post_view(client, name, _view_body(entity))
    assert (r.status_code, r.headers["ETag"]) == (201, '"v1"')
    assert client.get(f"/v1/feature-views/{name}", headers=READER).headers["ETag"] == '"v1"'

    mine, theirs = _view_body(entity, description="mine"), _view_body(entity, description="theirs")
    r = _put_view(client, name, theirs, '"v1"')
    assert (r.status_code, r.json()["version"], r.headers["ETag"]) == (200, 2, '"v2"')

    # Another body on the state read before "theirs" landed: refused, nothing written.
    r = _put_view(client, name, mine, '"v1"')
    assert r.status_code == 412, r.text
    err = r.json()["error"]
    assert err["code"] == "precondition_failed"
    assert err["detail"] == {
        "name": name, "current_version": 2, "status": "active", "etag": '"v2"', "if_match": '"v1"'
    }  # fmt: skip
    assert 'If-Match: "v2"' in err["message"] and "Nothing was written" in err["message"]
    got = client.get(f"/v1/feature-views/{name}", headers=READER).json()
    assert (got["version"], got["spec"]["description"]) == (2, "theirs")

    # The same body as registered, on a stale tag: already in effect, so 200 unchanged.
    r = _put_view(client, name, theirs, '"v1"')
    assert (r.status_code, r.json()["outcome"], r.headers["ETag"]) == (200, "unchanged", '"v2"')
    # A list matches any of its tags; * matches any state; a weak tag never matches.
    r = _put_view(client, name, mine, '"v0", "v2"')
    assert (r.status_code, r.json()["version"]) == (200, 3)
    assert _put_view(client, name, theirs, 'W/"v3"').status_code == 412
    assert _put_view(client, name, theirs, "*").json()["version"] == 4
    # Malformed: an invalid request, in the one error shape.
    r = _put_view(client, name, mine, "v4")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    # The tag is the definition's state, whatever version a GET shows.
    old = client.get(f"/v1/feature-views/{name}", params={"version": 1}, headers=READER)
    assert old.json()["version"] == 1 and old.headers["ETag"] == '"v4"'
    # Unknown: 404 first, whatever the precondition.
    assert _put_view(client, "nope_nope", mine, '"v1"').status_code == 404


def test_if_match_on_deprecation_and_entities(client: TestClient) -> None:
    entity = _entity(client)
    name = _register_view(client, entity)
    _put_view(client, name, _view_body(entity, description="v2"), None)
    path = f"/v1/feature-views/{name}:deprecate"
    r = client.post(path, headers={**ADMIN, "If-Match": '"v1"'})
    assert r.status_code == 412 and r.json()["error"]["detail"]["current_version"] == 2
    r = client.post(path, headers={**ADMIN, "If-Match": '"v2"'})
    assert (r.status_code, r.json()["outcome"]) == (200, "deprecated")
    assert r.headers["ETag"] == '"v2-deprecated"'
    r = client.post(path, headers={**ADMIN, "If-Match": '"v2"'})  # already in effect
    assert (r.status_code, r.json()["outcome"]) == (200, "unchanged")
    r = _put_view(client, name, _view_body(entity), '"v2"')
    assert r.status_code == 412 and r.json()["error"]["detail"]["status"] == "deprecated"
    r = _put_view(client, name, _view_body(entity), '"v2-deprecated"')
    assert r.status_code == 409 and r.json()["error"]["code"] == "deprecated"

    other = _entity(client)
    got = client.get(f"/v1/entities/{other}", headers=READER)
    assert got.headers["ETag"] == '"v1"'
    body = {"join_key": "thing_id", "description": "edited"}
    r = client.put(f"/v1/entities/{other}", json=body, headers={**WRITER, "If-Match": '"v1"'})
    assert (r.status_code, r.json()["version"], r.headers["ETag"]) == (200, 2, '"v2"')
    body["description"] = "edited again"
    r = client.put(f"/v1/entities/{other}", json=body, headers={**WRITER, "If-Match": '"v1"'})
    assert r.status_code == 412 and r.json()["error"]["detail"]["etag"] == '"v2"'


def test_concurrent_conditional_updates_exactly_one_wins(
    client: TestClient, registry: RegistryStore
) -> None:
    """Writers that all read version 1 and all send If-Match "v1": the check runs under the
    row lock with the write, so exactly one makes version 2 and every other gets 412."""
    n = 8
    name, bodies = _contenders(client, n)
    won: list[int] = []
    refused: list[PreconditionFailed] = []

    def update(i: int) -> None:
        try:
            res = registry.update(
                Kind.FEATURE_VIEW, name, bodies[i], by=f"t{i}", if_match=parse_if_match('"v1"')
            )
            won.append(i)
            assert res.record.version == 2 and res.etag == '"v2"'
        except PreconditionFailed as exc:
            refused.append(exc)

    errors = _together(n, update)
    assert not errors, errors
    assert len(won) == 1 and len(refused) == n - 1
    assert all(e.detail["current_version"] == 2 for e in refused)
    stored = registry.versions(Kind.FEATURE_VIEW, name)
    assert [v.version for v in stored] == [1, 2]
    assert stored[1].spec.description == f"writer {won[0]}"


def _api(stack_settings: StackSettings, on_response: Any = None) -> httpx.Client:
    hooks = {"response": [on_response]} if on_response else {}
    base = f"http://{stack_settings.host}:{stack_settings.ports.api}"
    return httpx.Client(base_url=base, headers=WRITER, timeout=10, event_hooks=hooks)


def _spec(name: str, entity: str, **over: Any) -> FeatureViewSpec:
    return FeatureViewSpec.model_validate({"name": name, **_view_body(entity, **over)})


def test_apply_never_overwrites_a_version_registered_after_its_read(
    client: TestClient, stack_settings: StackSettings
) -> None:
    """`streamfeat apply`'s per-definition step against the running API, with another writer
    registering between apply's GET and its PUT (an httpx response hook runs it there)."""
    entity = _entity(client)
    name = _register_view(client, entity)

    def other_writer(body: dict[str, Any]) -> Any:
        done: list[bool] = []

        def hook(response: httpx.Response) -> None:
            if response.request.method == "GET" and not done:
                done.append(True)
                r = client.put(f"/v1/feature-views/{name}", json=body, headers=WRITER)
                assert r.status_code == 200, r.text

        return hook

    # Another body came in between: apply reports it and overwrites nothing.
    with _api(stack_settings, other_writer(_view_body(entity, description="theirs"))) as api:
        applied = apply_one(api, "feature-views", "feature view", _spec(name, entity))
    assert (applied.outcome, applied.version) == ("conflict", 2)
    assert "changed concurrently" in applied.line() and '"v2"' in applied.line()
    got = client.get(f"/v1/feature-views/{name}", headers=READER).json()
    assert (got["version"], got["spec"]["description"]) == (2, "theirs")

    # The same body came in between (two applies of the same code): unchanged, no failure.
    same = _view_body(entity, description="ours, in both checkouts")
    with _api(stack_settings, other_writer(same)) as api:
        spec = _spec(name, entity, description="ours, in both checkouts")
        applied = apply_one(api, "feature-views", "feature view", spec)
    assert (applied.outcome, applied.version) == ("unchanged", 3)

    # Created by another apply between our GET (404) and our POST: taken as an update.
    fresh = _name("view")

    def creator(response: httpx.Response) -> None:
        if response.request.method == "GET" and response.status_code == 404:
            r = _post_view(client, fresh, _view_body(entity))
            assert r.status_code == 201, r.text

    with _api(stack_settings, creator) as api:
        applied = apply_one(api, "feature-views", "feature view", _spec(fresh, entity))
    assert (applied.outcome, applied.version) == ("unchanged", 1)


# ---- the snapshot's kept connection ------------------------------------------------------------


def test_snapshot_refreshes_over_one_connection_and_reconnects_after_losing_it(
    supervisor: object, stack_settings: StackSettings
) -> None:
    store = RegistryStore(stack_settings.postgres_dsn(), timeout_s=3)
    snapshot = RegistrySnapshot(store, refresh_s=3600)  # refreshed by hand only
    try:
        assert snapshot.refresh() is True
        conn = snapshot.reader._conn
        assert conn is not None
        pid = conn.info.backend_pid
        for _ in range(5):
            assert snapshot.refresh() is True
        assert snapshot.reader.connects == 1
        assert snapshot.reader._conn is conn and conn.info.backend_pid == pid
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # not in a tx

        # PostgreSQL drops the connection (a restart, an idle timeout, a proxy): the next
        # refresh reconnects at once and succeeds, reported as no outage.
        with psycopg.connect(stack_settings.postgres_dsn(), autocommit=True) as admin:
            row = admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
            assert row is not None and row[0] is True
        assert snapshot.refresh() is True, snapshot.error
        assert snapshot.error is None and snapshot.reader.connects == 2
        new = snapshot.reader._conn
        assert new is not None and new.info.backend_pid != pid
    finally:
        snapshot.stop()
    assert snapshot.reader._conn is None  # closed on stop
