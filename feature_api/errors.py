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


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class UnknownView(NotFound):
    code = "unknown_view"


class UnknownFeature(NotFound):
    code = "unknown_feature"


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


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    if isinstance(exc, StoreUnavailable):
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.redis_errors.labels(kind=exc.kind).inc()
    headers = {"Retry-After": "1"} if isinstance(exc, StoreUnavailable) else None
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


def install(app: FastAPI) -> None:
    """Map the whole hierarchy to HTTP: one handler, the status code lives on the class."""
    app.add_exception_handler(ApiError, _handle)
