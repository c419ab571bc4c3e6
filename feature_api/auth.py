"""Authentication and roles: API keys (``X-API-Key``) or bearer JWTs (HS256).

Every route but the probes depends on :func:`require` with the least role it needs::

    router = APIRouter(dependencies=[Depends(require(Role.WRITER))], responses=AUTH_RESPONSES)

or takes the caller as a parameter (``caller: Writer``) when it records who did something.
Roles are ordered ``admin > writer > reader`` (:class:`feature_api.settings.Role`).

- No credentials, an unknown key, a bad signature or an expired token: 401.
- Valid credentials whose role is below the route's: 403.
- A JWT must carry ``exp``; its role is the claim ``role`` (a string) or ``roles`` (a list:
  the highest known one counts). Unknown role names are ignored, not errors.

Public on purpose: :data:`PUBLIC_PATHS` (liveness/readiness probes and Prometheus scraping —
orchestrators and scrapers carry no credentials; they reveal no feature data) and FastAPI's
own docs and OpenAPI document. The auth-matrix test iterates ``app.routes`` and holds every
other route to 401/403.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

import jwt
from fastapi import Depends, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from feature_api.deps import Settings
from feature_api.errors import Forbidden, Unauthorized
from feature_api.models import ErrorPublic
from feature_api.settings import ApiSettings, Role

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Routes that need no credentials: probes and metrics (see the module docstring)."""
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
"""FastAPI's interactive docs and the OpenAPI document (public: the API's contract)."""
PAGE_PATHS = frozenset({"/admin/dlq"})
"""Pages served as static HTML (public: they hold no data; what they fetch needs a role)."""

JWT_ALGORITHMS = ["HS256"]

api_key_scheme = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    description="An API key from STREAMFEAT_API_API_KEYS; it grants one role.",
    auto_error=False,
)
bearer_scheme = HTTPBearer(
    scheme_name="BearerJWT",
    bearerFormat="JWT",
    description="An HS256 JWT signed with STREAMFEAT_API_JWT_SECRET, with `exp` and a "
    "`role` (or `roles`) claim.",
    auto_error=False,
)

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "No credentials, or invalid/expired ones."},
    403: {"model": ErrorPublic, "description": "The credentials' role is below the route's."},
}
"""OpenAPI responses every protected route answers; pass to its router's ``responses``."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who called: ``subject`` is safe to store and log (never the key itself)."""

    subject: str
    role: Role
    via: Literal["api_key", "jwt"]


def _key_subject(key: str) -> str:
    return "api-key:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _from_api_key(settings: ApiSettings, key: str) -> Principal:
    # Compare every configured key in constant time: timing reveals neither key nor match.
    found: Role | None = None
    for known, role in settings.api_keys.items():
        if hmac.compare_digest(known.encode(), key.encode()):
            found = role
    if found is None:
        raise Unauthorized("unknown API key", scheme="ApiKey")
    return Principal(_key_subject(key), found, "api_key")


def role_of_claims(claims: dict[str, Any]) -> Role | None:
    """The highest known role named by ``role`` or ``roles`` (None when none is known)."""
    named: list[Any] = []
    if isinstance(claims.get("role"), str):
        named.append(claims["role"])
    if isinstance(claims.get("roles"), list):
        named.extend(claims["roles"])
    values = {r.value for r in Role}
    known = [Role(r) for r in named if isinstance(r, str) and r in values]
    return max(known, key=lambda r: r.rank, default=None)


def _from_jwt(settings: ApiSettings, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=JWT_ALGORITHMS,
            options={"require": ["exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("bearer token expired", scheme="BearerJWT") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid bearer token: {exc}", scheme="BearerJWT") from None
    role = role_of_claims(claims)
    if role is None:
        raise Forbidden(
            "bearer token grants no known role (claim `role` or `roles`)",
            known_roles=[r.value for r in Role],
        )
    subject = str(claims.get("sub") or "jwt:anonymous")
    return Principal(subject, role, "jwt")


def authenticate(settings: ApiSettings, *, api_key: str | None, bearer: str | None) -> Principal:
    """The caller behind the credentials; an API key wins when both are sent."""
    if api_key:
        return _from_api_key(settings, api_key)
    if bearer:
        return _from_jwt(settings, bearer)
    raise Unauthorized(
        "credentials required: send an X-API-Key header or Authorization: Bearer <JWT>",
        scheme="ApiKey, BearerJWT",
    )


def mint_token(settings: ApiSettings, *, role: Role, subject: str, expires_at: int) -> str:
    """An HS256 token for ``role`` (tests and local tooling; production issuers are external)."""
    claims = {"sub": subject, "role": role.value, "exp": expires_at}
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


@cache
def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller, when their role is at least ``role`` (else 401/403).

    One function per role (cached), so FastAPI's per-request dependency cache shares it and
    tests can find which role a route needs (``required_role`` on the function).
    """

    async def dependency(  # async: CPU only, and a plain def would cost a thread hop
        settings: Settings,
        api_key: Annotated[str | None, Security(api_key_scheme)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    ) -> Principal:
        principal = authenticate(
            settings, api_key=api_key, bearer=bearer.credentials if bearer else None
        )
        if not principal.role.allows(role):
            raise Forbidden(
                f"this needs the {role.value} role; the credentials grant {principal.role.value}",
                needed=role.value,
                granted=principal.role.value,
            )
        return principal

    dependency.__name__ = f"require_{role.value}"
    dependency.required_role = role  # type: ignore[attr-defined]
    return dependency


Reader = Annotated[Principal, Depends(require(Role.READER))]
Writer = Annotated[Principal, Depends(require(Role.WRITER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
