"""Registration: entities and feature views, versioned in PostgreSQL.

Reads need the reader role, registration (create, update) the writer role, deprecation the
admin role. ``PUT`` with the full definition makes a new version when every change is
compatible, answers ``unchanged`` when nothing changed, and 409 ``incompatible_change`` with
every reason otherwise (:mod:`core.registry` holds the rules). Handlers are plain ``def``:
the PostgreSQL client is synchronous and runs in FastAPI's thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, status

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
from feature_api.registry_store import Kind, Record, Result
from feature_api.settings import Role

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
DefName = Annotated[
    str, Path(pattern=NAME_PATTERN, max_length=63, description="Definition name (snake case).")
]
VersionQuery = Annotated[
    int | None, Query(ge=1, le=2**31 - 1, description="A version; the latest when absent.")
]

_404 = {"model": ErrorPublic, "description": "Unknown entity, feature view or version."}
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


def _entity_result(res: Result) -> EntityRegistrationPublic:
    return EntityRegistrationPublic(**_state(res.record), outcome=res.outcome)


def _view_result(res: Result, snapshot: Snapshot) -> FeatureViewRegistrationPublic:
    snapshot.refresh()  # retrievable through this process as soon as we answer
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
    responses={409: _409},
)
def create_entity(body: EntitySpec, registry: Registry, caller: Writer) -> EntityRegistrationPublic:
    """Register a new entity as version 1 (short name: the name unless given)."""
    return _entity_result(registry.create(body, by=caller.subject))


@router.get("/entities/{name}", response_model=EntityPublic, responses={404: _404})
def get_entity(name: DefName, registry: Registry, version: VersionQuery = None) -> EntityPublic:
    return _entity(registry.get(Kind.ENTITY, name, version))


@router.get("/entities/{name}/versions", response_model=list[EntityPublic], responses={404: _404})
def entity_versions(name: DefName, registry: Registry) -> list[EntityPublic]:
    return [_entity(r) for r in registry.versions(Kind.ENTITY, name)]


@router.put(
    "/entities/{name}",
    response_model=EntityRegistrationPublic,
    responses={404: _404, 409: _409},
)
def update_entity(
    name: DefName, body: EntityBody, registry: Registry, caller: Writer
) -> EntityRegistrationPublic:
    """New version if every change is compatible (description, owner, tags); ``unchanged``
    if nothing changed; 409 with reasons otherwise (join key, short name)."""
    return _entity_result(registry.update(Kind.ENTITY, name, body, by=caller.subject))


@router.post(
    "/entities/{name}:deprecate",
    response_model=EntityRegistrationPublic,
    responses={404: _404, 409: _409},
)
def deprecate_entity(
    name: DefName, registry: Registry, caller: Admin, body: DeprecateRequest | None = None
) -> EntityRegistrationPublic:
    """Deprecate (admin; idempotent). Refused while active views use the entity."""
    reason = body.reason if body else ""
    return _entity_result(registry.deprecate(Kind.ENTITY, name, by=caller.subject, reason=reason))


# ---- feature views ------------------------------------------------------------------------------


@router.get("/feature-views", response_model=list[FeatureViewPublic])
def list_feature_views(registry: Registry) -> list[FeatureViewPublic]:
    """Latest version of every registered feature view."""
    return [_view(r) for r in registry.latest(Kind.FEATURE_VIEW)]


@router.post(
    "/feature-views",
    status_code=status.HTTP_201_CREATED,
    response_model=FeatureViewRegistrationPublic,
    responses={409: _409},
)
def create_feature_view(
    body: FeatureViewSpec, registry: Registry, snapshot: Snapshot, caller: Writer
) -> FeatureViewRegistrationPublic:
    """Register a new view as version 1 on a registered entity. Short names omitted are
    derived (initials of the words, digits kept) and stored; retrieval serves the view at
    once under ``/v1/features/{name}/...``."""
    return _view_result(registry.create(body, by=caller.subject), snapshot)


@router.get("/feature-views/{name}", response_model=FeatureViewPublic, responses={404: _404})
def get_feature_view(
    name: DefName, registry: Registry, version: VersionQuery = None
) -> FeatureViewPublic:
    return _view(registry.get(Kind.FEATURE_VIEW, name, version))


@router.get(
    "/feature-views/{name}/versions", response_model=list[FeatureViewPublic], responses={404: _404}
)
def feature_view_versions(name: DefName, registry: Registry) -> list[FeatureViewPublic]:
    return [_view(r) for r in registry.versions(Kind.FEATURE_VIEW, name)]


@router.put(
    "/feature-views/{name}",
    response_model=FeatureViewRegistrationPublic,
    responses={404: _404, 409: _409},
)
def update_feature_view(
    name: DefName, body: FeatureViewBody, registry: Registry, snapshot: Snapshot, caller: Writer
) -> FeatureViewRegistrationPublic:
    """New version if every change is compatible (added features, TTL, metadata);
    ``unchanged`` if nothing changed; 409 ``incompatible_change`` with every reason otherwise
    (removed feature, changed dtype, entity, short names, scope or groups)."""
    result = registry.update(Kind.FEATURE_VIEW, name, body, by=caller.subject)
    return _view_result(result, snapshot)


@router.post(
    "/feature-views/{name}:deprecate",
    response_model=FeatureViewRegistrationPublic,
    responses={404: _404},
)
def deprecate_feature_view(
    name: DefName,
    registry: Registry,
    snapshot: Snapshot,
    caller: Admin,
    body: DeprecateRequest | None = None,
) -> FeatureViewRegistrationPublic:
    """Deprecate (admin; idempotent). The view stays readable and retrievable; it can no
    longer be updated."""
    result = registry.deprecate(
        Kind.FEATURE_VIEW, name, by=caller.subject, reason=body.reason if body else ""
    )
    return _view_result(result, snapshot)
