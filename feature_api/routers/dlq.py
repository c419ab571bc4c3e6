"""Dead-letter queue review (admin): the counts, the entries and the replay of
`streamfeat dlq ls | show | replay` (connectors/dlq_review.py) over HTTP, and a page that uses
them (``GET /admin/dlq``).

Every route needs the admin role: entries hold the records' original payloads. Handlers are
plain ``def`` (boto3 and the Kafka producer are synchronous: FastAPI's thread pool).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from connectors import dlq_review
from core.dlq import StoredEntry, shown_bytes
from feature_api.auth import AUTH_RESPONSES, require
from feature_api.errors import ApiError
from feature_api.models import ErrorPublic
from feature_api.settings import Role

PAGE = Path(__file__).resolve().parent.parent / "static" / "dlq.html"
Day = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")]
Name = Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,64}$")]


class DlqUnavailable(ApiError):
    status_code = 503
    code = "dlq_unavailable"


class CountPublic(BaseModel):
    date: str
    source: str
    reason: str
    expectation: str = Field(description="The suite's expectation, `-` for none.")
    entries: int


class EntryPublic(BaseModel):
    id: str = Field(description="Where the record came from: topic/partition/offset or s3 key#row.")
    date: str
    source: str
    reason: str
    expectation: str | None
    detail: str
    coordinates: dict[str, Any]
    key: str | None = Field(description="The original key: text, else `base64:...`.")
    value: str | None = Field(description="The original value: text, else `base64:...`.")
    replayed: dict[str, Any] | None = Field(description="The last replay of this entry, if any.")


class ReplayIn(BaseModel):
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    source: Literal["clickstream", "pg_cdc", "s3_crm"]
    reason: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    limit: int | None = Field(None, ge=1, le=100_000)
    force: bool = Field(False, description="Send entries that were replayed before again.")
    ids: list[str] | None = Field(
        None, max_length=1000, description="Only these entries (their `id`) of the chosen set."
    )


class ReplayedPublic(BaseModel):
    id: str
    partition: int
    offset: int


class RefusedPublic(BaseModel):
    id: str
    why: str


class ReplayPublic(BaseModel):
    sent: list[ReplayedPublic]
    refused: list[RefusedPublic]


_ERRORS = {
    **AUTH_RESPONSES,
    503: {"model": ErrorPublic, "description": "S3 or Kafka is unreachable."},
}
router = APIRouter(
    prefix="/v1/dlq", tags=["dlq"], dependencies=[Depends(require(Role.ADMIN))], responses=_ERRORS
)
page_router = APIRouter()


def _public(e: StoredEntry, replayed: dict[str, Any] | None) -> EntryPublic:
    return EntryPublic(
        id=e.entry_id,
        date=e.date,
        source=e.source,
        reason=e.reason,
        expectation=e.expectation,
        detail=e.detail,
        coordinates=e.coordinates,
        key=shown_bytes(e.original_key),
        value=shown_bytes(e.original),
        replayed=replayed,
    )


def _unavailable(exc: Exception) -> DlqUnavailable:
    return DlqUnavailable(f"the DLQ on S3 (or Kafka, for a replay) is unreachable: {exc}")


@router.get("/counts", response_model=list[CountPublic])
def get_counts(
    request: Request, date: Day = None, source: Name = None, reason: Name = None
) -> list[CountPublic]:
    """Entries per day, source, reason and failed expectation."""
    try:
        got = dlq_review.counts(request.app.state.stack, dlq_review.Filters(date, source, reason))
    except Exception as exc:
        raise _unavailable(exc) from None
    return [
        CountPublic(date=d, source=s, reason=r, expectation=x, entries=n)
        for (d, s, r, x), n in sorted(got.items())
    ]


@router.get("/entries", response_model=list[EntryPublic])
def get_entries(
    request: Request,
    date: Day = None,
    source: Name = None,
    reason: Name = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[EntryPublic]:
    """Entries with their detail, coordinates, original key and value, and replay record."""
    stack = request.app.state.stack
    out: list[EntryPublic] = []
    try:
        from core.objectstore import s3_client

        client = s3_client(stack)
        for e in dlq_review.entries(stack, dlq_review.Filters(date, source, reason), client):
            if len(out) >= limit:
                break
            out.append(_public(e, dlq_review.replayed(stack, e, client)))
    except Exception as exc:
        raise _unavailable(exc) from None
    return out


@router.post("/replay", response_model=ReplayPublic)
def post_replay(request: Request, body: ReplayIn) -> ReplayPublic:
    """Send the chosen Kafka entries' original bytes back to their topics, once each unless
    forced (the day, source and reason are required: a replay is always a chosen set)."""
    filters = dlq_review.Filters(body.date, body.source, body.reason)
    try:
        got = dlq_review.replay(
            request.app.state.stack, filters, limit=body.limit, force=body.force, ids=body.ids
        )
    except Exception as exc:
        raise _unavailable(exc) from None
    return ReplayPublic(
        sent=[ReplayedPublic(id=e.entry_id, partition=p, offset=o) for e, p, o in got.sent],
        refused=[RefusedPublic(id=e.entry_id, why=why) for e, why in got.refused],
    )


@page_router.get("/admin/dlq", include_in_schema=False, response_class=HTMLResponse)
def dlq_page() -> HTMLResponse:
    """The review page: the counts, the entries and a replay action, through the routes
    above with the admin key the reviewer enters (kept in the tab's session storage)."""
    return HTMLResponse(PAGE.read_text())
