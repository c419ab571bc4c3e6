"""Auth matrix over EVERY route of the app (real Redis and PostgreSQL behind it).

Routes are read from the app itself (``app.routes``, flattened through FastAPI's included
routers by ``iter_route_contexts``), so a route added later by anyone is held to the same
rules without editing this file:

- public only if listed in ``PUBLIC_PATHS`` (probes, metrics), ``DOCS_PATHS`` or
  ``PAGE_PATHS`` (static pages without data);
- every other route: 401 without credentials, with an unknown key, with a token signed by
  another secret or expired; 403 for every role below the route's; neither for its role,
  by API key and by JWT alike;
- a mutation (any method but GET/HEAD, except the retrieval POSTs listed here) needs at
  least the writer role;
- the OpenAPI document declares the security schemes and, on every protected operation,
  its security requirement and the 401/403 responses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from core.settings import StackSettings
from feature_api.app import create_app
from feature_api.auth import DOCS_PATHS, PAGE_PATHS, PUBLIC_PATHS, mint_token
from feature_api.settings import ApiSettings, Role, dev_key

pytestmark = pytest.mark.stack

READ_ONLY_POSTS = frozenset({"/v1/features/{view}:batch"})
"""POST routes that only read (a batch lookup is a POST because of its body)."""
ROLES = (Role.READER, Role.WRITER, Role.ADMIN)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    url: str
    role: Role | None  # None: no auth dependency found

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _required_role(dependant: Dependant) -> Role | None:
    found: list[Role] = []

    def walk(d: Dependant) -> None:
        role = getattr(d.call, "required_role", None)
        if isinstance(role, Role):
            found.append(role)
        for sub in d.dependencies:
            walk(sub)

    walk(dependant)
    return max(found, key=lambda r: r.rank, default=None)


def _url(path: str, dependant: Dependant | None) -> str:
    url = path
    for p in dependant.path_params if dependant else []:
        value = "1" if p.field_info.annotation is int else "zz_auth_probe"
        url = url.replace("{" + p.name + "}", value)
    assert "{" not in url, f"unfilled path parameter in {path}"
    return url


def endpoints(app: FastAPI) -> list[Endpoint]:
    found = []
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            assert route.path is not None
            role = _required_role(dependant) if dependant else None
            found.append(Endpoint(method, route.path, _url(route.path, dependant), role))
    return found


APP_FOR_COLLECTION = create_app(ApiSettings(), StackSettings())  # routes only; never started
ENDPOINTS = endpoints(APP_FOR_COLLECTION)
PROTECTED = [e for e in ENDPOINTS if e.path not in PUBLIC_PATHS | DOCS_PATHS | PAGE_PATHS]


@pytest.fixture(scope="module")
def client(supervisor: object, stack_settings: StackSettings) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(), stack_settings)) as c:
        yield c


def _call(client: TestClient, e: Endpoint, headers: dict[str, str]) -> Any:
    body = None if e.method == "GET" else {}
    return client.request(e.method, e.url, headers=headers, json=body)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _token(role: Role, *, expires_in: int = 300, secret: str | None = None) -> str:
    settings = ApiSettings(jwt_secret=secret) if secret else ApiSettings()  # type: ignore[arg-type]
    return mint_token(
        settings, role=role, subject="matrix", expires_at=int(time.time()) + expires_in
    )


def test_the_matrix_sees_every_route() -> None:
    paths = {e.path for e in ENDPOINTS}
    assert {"/healthz", "/v1/features/{view}/{entity_id}", "/v1/feature-views/{name}"} <= paths
    assert len(PROTECTED) >= 16


@pytest.mark.parametrize("e", PROTECTED, ids=str)
def test_every_protected_route_declares_a_role(e: Endpoint) -> None:
    assert e.role is not None, f"{e} has no auth dependency: add require(role) or list it public"
    mutation = e.method not in {"GET", "HEAD"} and e.path not in READ_ONLY_POSTS
    if mutation:
        assert e.role.allows(Role.WRITER), f"{e} mutates but needs only {e.role}"


@pytest.mark.parametrize("e", PROTECTED, ids=str)
def test_unauthenticated_is_401(client: TestClient, e: Endpoint) -> None:
    bad: list[dict[str, str]] = [
        {},
        {"X-API-Key": "not-a-key"},
        _bearer("not.a.jwt"),
        _bearer(_token(Role.ADMIN, secret="another-secret-of-enough-length-0123456789")),
        _bearer(_token(Role.ADMIN, expires_in=-60)),
    ]
    for headers in bad:
        r = _call(client, e, headers)
        assert r.status_code == 401, (e, headers, r.text)
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["WWW-Authenticate"]


@pytest.mark.parametrize("e", PROTECTED, ids=str)
def test_roles_below_are_403_and_the_role_itself_passes(client: TestClient, e: Endpoint) -> None:
    assert e.role is not None
    creds: list[Callable[[Role], dict[str, str]]] = [
        lambda r: {"X-API-Key": dev_key(r)},
        lambda r: _bearer(_token(r)),
    ]
    for cred in creds:
        for role in ROLES:
            r = _call(client, e, cred(role))
            if role.allows(e.role):
                assert r.status_code not in (401, 403), (e, role, r.text)
            else:
                assert r.status_code == 403, (e, role, r.text)
                assert r.json()["error"]["detail"]["needed"] == e.role.value


def test_public_routes_need_no_credentials(client: TestClient) -> None:
    public = [e for e in ENDPOINTS if e.path in PUBLIC_PATHS | DOCS_PATHS | PAGE_PATHS]
    assert {e.path for e in public} >= PUBLIC_PATHS
    for e in public:
        r = _call(client, e, {})
        assert r.status_code not in (401, 403), (e, r.text)


def test_openapi_declares_schemes_and_documents_auth_failures(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["ApiKey"]["description"],
    }
    assert schemes["BearerJWT"]["scheme"] == "bearer"
    for e in PROTECTED:
        op = spec["paths"][e.path][e.method.lower()]
        assert {"ApiKey": []} in op["security"] and {"BearerJWT": []} in op["security"], e
        assert {"401", "403"} <= set(op["responses"]), e
