"""Registration: entities and feature views, versioned in PostgreSQL.

Reads need the reader role, registration (create, update) the writer role, deprecation the
admin role. ``PUT`` with the full definition makes a new version when every change is
compatible, answers ``unchanged`` when nothing changed, and 409 ``incompatible_change`` with
every reason otherwise (:mod:`core.registry` holds the rules). Handlers are plain ``def``:
the PostgreSQL client is synchronous and runs in FastAPI's thread pool.

Optimistic concurrency (:mod:`feature_api.preconditions`): reading or registering a
definition answers its ``ETag`` (``"v3"``: the current state); ``PUT`` and ``:deprecate``
take ``If-Match`` and answer 412 ``precondition_failed`` when another update came first —
or 200 ``unchanged`` when the body is already what is registered. Without ``If-Match`` a
write is accepted as it always was (last writer wins, each compatible write a version).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status

from core.features import FEATURE_VIEWS
from core.registry import EntityBody, EntitySpec, FeatureViewBody, FeatureViewSpec
from feature_api.auth import AUTH_RESPONSES, Admin, Writer, require
from feature_api.deps import Registry, Snapshot
from feature_api.models import (
    DeprecateRequest,
    EntityPublic,
    EntityRegistrationPublic,
    ErrorPublic,
    FeatureViewPublic,
    FeatureViewRegistrationPublic,
)
from feature_api.preconditions import ETAG_HEADER, IF_MATCH_PATTERN, parse_if_match
from feature_api.registry_store import Kind, Record, Result
from feature_api.settings import Role

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
DefName = Annotated[
    str, Path(pattern=NAME_PATTERN, max_length=63, description="Definition name (snake case).")
]
VersionQuery = Annotated[
    int | None, Query(ge=1, le=2**31 - 1, description="A version; the latest when absent.")
]

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        pattern=IF_MATCH_PATTERN,
        max_length=1000,
        description='The ETag read before editing (e.g. "v3"), a list of them, or * (any '
        "current state). Compared with the current state atomically with the write: 412 "
        "when another update or a deprecation came first. Absent: the write is not "
        "conditional.",
    ),
]

_404 = {"model": ErrorPublic, "description": "Unknown entity, feature view or version."}
_412 = {
    "model": ErrorPublic,
    "description": "If-Match names a state the definition is no longer in; nothing was "
    "written. error.detail has current_version, status and etag: GET it again, redo the "
    "change on that version, retry with If-Match set to the new etag.",
}
_ETAG = {
    "headers": {
        ETAG_HEADER: {
            "description": 'The definition\'s current state ("v3", "v3-deprecated"), '
            "whatever version is shown: send it back as If-Match.",
            "schema": {"type": "string"},
        }
    }
}
_409 = {
    "model": ErrorPublic,
    "description": "Name or short name taken, incompatible change (reasons in detail), "
    "deprecated definition, a view on an unregistered or deprecated entity, or a "
    "concurrent update committed first.",
}

router = APIRouter(
    prefix="/v1",
    tags=["registry"],
    dependencies=[Depends(require(Role.READER))],
    responses={
        **AUTH_RESPONSES,
        503: {"model": ErrorPublic, "description": "Registry (PostgreSQL) unavailable."},
    },
)

_IN_CODE = frozenset(v.name for v in FEATURE_VIEWS)


def _state(r: Record) -> dict[str, Any]:
    return {
        "name": r.name,
        "version": r.version,
        "latest_version": r.latest_version,
        "status": r.status,
        "changes": r.changes,
        "created_at": r.created_at,
        "created_by": r.created_by,
        "deprecated_at": r.deprecated_at,
        "deprecated_by": r.deprecated_by,
        "deprecation_reason": r.deprecation_reason,
        "spec": r.spec,
    }


def _entity(r: Record) -> EntityPublic:
    return EntityPublic(**_state(r))


def _view(r: Record) -> FeatureViewPublic:
    return FeatureViewPublic(**_state(r), in_code=r.name in _IN_CODE)


def _entity_result(res: Result, response: Response) -> EntityRegistrationPublic:
    response.headers[ETAG_HEADER] = res.etag
    return EntityRegistrationPublic(**_state(res.record), outcome=res.outcome)


def _view_result(
    res: Result, snapshot: Snapshot, response: Response
) -> FeatureViewRegistrationPublic:
    snapshot.refresh()  # retrievable through this process as soon as we answer
    response.headers[ETAG_HEADER] = res.etag
    return FeatureViewRegistrationPublic(
        **_state(res.record), in_code=res.record.name in _IN_CODE, outcome=res.outcome
    )


# ---- entities ---------------------------------------------------------------------------------


@router.get("/entities", response_model=list[EntityPublic])
def list_entities(registry: Registry) -> list[EntityPublic]:
    """Latest version of every registered entity."""
    return [_entity(r) for r in registry.latest(Kind.ENTITY)]


@router.post(
    "/entities",
    status_code=status.HTTP_201_CREATED,
    response_model=EntityRegistrationPublic,
    responses={201: _ETAG, 409: _409},
)
def create_entity(
    body: EntitySpec, registry: Registry, caller: Writer, response: Response
) -> EntityRegistrationPublic:
    """Register a new entity as version 1 (short name: the name unless given)."""
    return _entity_result(registry.create(body, by=caller.subject), response)


@router.get("/entities/{name}", response_model=EntityPublic, responses={200: _ETAG, 404: _404})
def get_entity(
    name: DefName, registry: Registry, response: Response, version: VersionQuery = None
) -> EntityPublic:
    record = registry.get(Kind.ENTITY, name, version)
    response.headers[ETAG_HEADER] = record.etag
    return _entity(record)


@router.get("/entities/{name}/versions", response_model=list[EntityPublic], responses={404: _404})
def entity_versions(name: DefName, registry: Registry) -> list[EntityPublic]:
    return [_entity(r) for r in registry.versions(Kind.ENTITY, name)]


@router.put(
    "/entities/{name}",
    response_model=EntityRegistrationPublic,
    responses={200: _ETAG, 404: _404, 409: _409, 412: _412},
)
def update_entity(
    name: DefName,
    body: EntityBody,
    registry: Registry,
    caller: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> EntityRegistrationPublic:
    """New version if every change is compatible (description, owner, tags); ``unchanged``
    if nothing changed; 409 with reasons otherwise (join key, short name)."""
    result = registry.update(
        Kind.ENTITY, name, body, by=caller.subject, if_match=parse_if_match(if_match)
    )
    return _entity_result(result, response)


@router.post(
    "/entities/{name}:deprecate",
    response_model=EntityRegistrationPublic,
    responses={200: _ETAG, 404: _404, 409: _409, 412: _412},
)
def deprecate_entity(
    name: DefName,
    registry: Registry,
    caller: Admin,
    response: Response,
    body: DeprecateRequest | None = None,
    if_match: IfMatch = None,
) -> EntityRegistrationPublic:
    """Deprecate (admin; idempotent). Refused while active views use the entity."""
    result = registry.deprecate(
        Kind.ENTITY,
        name,
        by=caller.subject,
        reason=body.reason if body else "",
        if_match=parse_if_match(if_match),
    )
    return _entity_result(result, response)


# ---- feature views ------------------------------------------------------------------------------


@router.get("/feature-views", response_model=list[FeatureViewPublic])
def list_feature_views(registry: Registry) -> list[FeatureViewPublic]:
    """Latest version of every registered feature view."""
    return [_view(r) for r in registry.latest(Kind.FEATURE_VIEW)]


@router.post(
    "/feature-views",
    status_code=status.HTTP_201_CREATED,
    response_model=FeatureViewRegistrationPublic,
    responses={201: _ETAG, 409: _409},
)
def create_feature_view(
    body: FeatureViewSpec,
    registry: Registry,
    snapshot: Snapshot,
    caller: Writer,
    response: Response,
) -> FeatureViewRegistrationPublic:
    """Register a new view as version 1 on a registered entity. Short names omitted are
    derived (initials of the words, digits kept) and stored; retrieval serves the view at
    once under ``/v1/features/{name}/...``."""
    return _view_result(registry.create(body, by=caller.subject), snapshot, response)


@router.get(
    "/feature-views/{name}", response_model=FeatureViewPublic, responses={200: _ETAG, 404: _404}
)
def get_feature_view(
    name: DefName, registry: Registry, response: Response, version: VersionQuery = None
) -> FeatureViewPublic:
    record = registry.get(Kind.FEATURE_VIEW, name, version)
    response.headers[ETAG_HEADER] = record.etag
    return _view(record)


@router.get(
    "/feature-views/{name}/versions", response_model=list[FeatureViewPublic], responses={404: _404}
)
def feature_view_versions(name: DefName, registry: Registry) -> list[FeatureViewPublic]:
    return [_view(r) for r in registry.versions(Kind.FEATURE_VIEW, name)]


@router.put(
    "/feature-views/{name}",
    response_model=FeatureViewRegistrationPublic,
    responses={200: _ETAG, 404: _404, 409: _409, 412: _412},
)
def update_feature_view(
    name: DefName,
    body: FeatureViewBody,
    registry: Registry,
    snapshot: Snapshot,
    caller: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> FeatureViewRegistrationPublic:
    """New version if every change is compatible (added features, TTL, metadata);
    ``unchanged`` if nothing changed; 409 ``incompatible_change`` with every reason otherwise
    (removed feature, changed dtype, entity, short names, scope or groups). Features without
    a short name keep the one they have, new ones get a free derived one."""
    result = registry.update(
        Kind.FEATURE_VIEW, name, body, by=caller.subject, if_match=parse_if_match(if_match)
    )
    return _view_result(result, snapshot, response)


@router.post(
    "/feature-views/{name}:deprecate",
    response_model=FeatureViewRegistrationPublic,
    responses={200: _ETAG, 404: _404, 412: _412},
)
def deprecate_feature_view(
    name: DefName,
    registry: Registry,
    snapshot: Snapshot,
    caller: Admin,
    response: Response,
    body: DeprecateRequest | None = None,
    if_match: IfMatch = None,
) -> FeatureViewRegistrationPublic:
    """Deprecate (admin; idempotent). The view stays readable and retrievable; it can no
    longer be updated."""
    result = registry.deprecate(
        Kind.FEATURE_VIEW,
        name,
        by=caller.subject,
        reason=body.reason if body else "",
        if_match=parse_if_match(if_match),
    )
    return _view_result(result, snapshot, response)
