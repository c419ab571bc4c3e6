"""One error hierarchy for the API, mapped to HTTP in one place (:func:`install`).

Service code raises these and knows nothing of HTTP; request validation errors stay
FastAPI's own 422. Every error body has the same shape::

    {"error": {"code": "unknown_view", "message": "...", "detail": {...}}}
"""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class ApiError(Exception):
    """Base of every error the API answers on purpose."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "detail": self.detail}}

    def headers(self) -> dict[str, str] | None:
        return None


class Unauthorized(ApiError):
    """No credentials, or credentials that prove nothing (unknown key, bad/expired token)."""

    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str, *, scheme: str, **detail: Any) -> None:
        super().__init__(message, **detail)
        self.scheme = scheme

    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": self.scheme}


class Forbidden(ApiError):
    """Valid credentials whose role is below what the route needs."""

    status_code = 403
    code = "forbidden"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class UnknownView(NotFound):
    code = "unknown_view"


class UnknownFeature(NotFound):
    code = "unknown_feature"


class UnknownEntity(NotFound):
    code = "unknown_entity"


class UnknownVersion(NotFound):
    code = "unknown_version"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class AlreadyExists(Conflict):
    code = "already_exists"


class IncompatibleChange(Conflict):
    """An update that would break readers of the current version (the reasons say why);
    register it under a new name instead."""

    code = "incompatible_change"


class ConcurrentUpdate(Conflict):
    """Another update of the same definition committed first; re-read and retry."""

    code = "concurrent_update"


class Deprecated(Conflict):
    code = "deprecated"


class InvalidDefinition(ApiError):
    """A definition that is well-formed JSON but not a valid definition (e.g. a view on an
    unregistered entity, a duplicate feature name)."""

    status_code = 422
    code = "invalid_definition"


class BatchTooLarge(ApiError):
    status_code = 413
    code = "batch_too_large"


class StoreUnavailable(ApiError):
    """The online store did not answer in time or refused the connection (503: retry later)."""

    status_code = 503
    code = "online_store_unavailable"

    def __init__(self, message: str, *, kind: str, **detail: Any) -> None:
        super().__init__(message, kind=kind, **detail)
        self.kind = kind

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": "1"}


class RegistryUnavailable(ApiError):
    """The registry (PostgreSQL) did not answer; registration needs it, retrieval does not."""

    status_code = 503
    code = "registry_unavailable"

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": "1"}


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    if isinstance(exc, StoreUnavailable):
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.redis_errors.labels(kind=exc.kind).inc()
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers())


def install(app: FastAPI) -> None:
    """Map the whole hierarchy to HTTP: one handler, the status code lives on the class."""
    app.add_exception_handler(ApiError, _handle)
