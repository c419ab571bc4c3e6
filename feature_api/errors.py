"""One error hierarchy for the API, mapped to HTTP in one place (:func:`install`).

Service code raises these and knows nothing of HTTP. Every error body has the same shape,
FastAPI's own errors included (request validation 422, malformed body 400, unknown path 404,
wrong method 405)::

    {"error": {"code": "unknown_view", "message": "...", "detail": {...}}}

:func:`install` also makes the OpenAPI document say so for every operation (422 and, where a
body is taken, 400 answer :class:`feature_api.models.ErrorPublic`), so routes added later by
anyone are documented the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from feature_api.models import ErrorPublic


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


class PreconditionFailed(ApiError):
    """``If-Match`` names a state the definition is no longer in: another update (or a
    deprecation) came first. Nothing was written; the detail says the current state."""

    status_code = 412
    code = "precondition_failed"


class Deprecated(Conflict):
    code = "deprecated"


class InvalidReference(Conflict):
    """A well-formed definition that refers to what the registry does not hold as active
    (a view on an unregistered or deprecated entity): a conflict with the registry's state,
    not a malformed request — register or restore the referenced definition first."""

    code = "invalid_reference"


class BadAsOf(ApiError):
    """``as_of`` outside what the online store can answer (422)."""

    status_code = 422
    code = "bad_as_of"


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


async def _handle_unstorable_data(request: Request, exc: Exception) -> JSONResponse:
    # PostgreSQL (or psycopg, before sending) refuses data such as NUL (\u0000) in text and
    # JSONB, or a number out of a column's range: in a request, the input is at fault, not the
    # server. Models should refuse it up front (core.registry.NO_NUL); this keeps any route
    # that stores or looks up client data from answering 500 when one does not.
    return JSONResponse(
        _body(
            "invalid_request",
            "data PostgreSQL cannot store or compare (e.g. a NUL character \\u0000 in a "
            "string): " + str(exc).splitlines()[0],
        ),
        status_code=422,
    )


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


def _body(code: str, message: str, **detail: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "detail": detail}}


async def _handle_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in jsonable_encoder(exc.errors())
    ]  # the offending input is not echoed: it may be large or hold a secret
    summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:3])
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return JSONResponse(
        _body("invalid_request", f"invalid request: {summary}{more}", errors=errors),
        status_code=422,
    )


async def _handle_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return JSONResponse(
        _body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


def _documented(
    app: FastAPI, generate: Callable[[], dict[str, Any]]
) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` that documents the uniform error body for 422 on every operation and
    400 (malformed body) on every operation that takes a body."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        if "ErrorPublic" not in schemas:
            extra = ErrorPublic.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(extra.pop("$defs", {}))
            schemas["ErrorPublic"] = extra
        content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorPublic"}}}
        for item in schema.get("paths", {}).values():
            for op in item.values():
                responses = op.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {
                        "description": "Invalid request: error.detail.errors lists each problem "
                        "(location, message, type).",
                        "content": content,
                    }
                if "requestBody" in op:
                    responses.setdefault(
                        "400", {"description": "Malformed body (not JSON).", "content": content}
                    )
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    return openapi


def install(app: FastAPI) -> None:
    """Map the whole hierarchy to HTTP: one handler, the status code lives on the class;
    FastAPI's own errors take the same shape, and the OpenAPI document says so."""
    app.add_exception_handler(ApiError, _handle)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    app.add_exception_handler(psycopg.DataError, _handle_unstorable_data)
    app.openapi = _documented(app, app.openapi)  # type: ignore[method-assign]
