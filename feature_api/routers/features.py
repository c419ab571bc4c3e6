"""Feature retrieval: one entity (GET) or a batch (POST ``{view}:batch``).

Handlers are ``async def`` on the online store's asyncio client: no thread-pool hop (and no
wait for the GIL behind it) per request; every Redis call is bounded by ``redis_timeout_ms``.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from feature_api import service
from feature_api.auth import AUTH_RESPONSES, require
from feature_api.deps import NowMs, Settings, Snapshot, Store
from feature_api.models import (
    MAX_ENTITY_ID,
    BatchFeaturesPublic,
    BatchFeaturesRequest,
    CompactBatchPublic,
    ErrorPublic,
    FeaturesPublic,
)
from feature_api.settings import Role

router = APIRouter(
    prefix="/v1/features",
    tags=["features"],
    dependencies=[Depends(require(Role.READER))],
    responses={
        **AUTH_RESPONSES,
        404: {"model": ErrorPublic, "description": "Unknown feature view or feature."},
        503: {"model": ErrorPublic, "description": "Online store unavailable or too slow."},
    },
)

FeatureNames = Annotated[
    list[str] | None, Query(description="Feature names (repeat); all when absent.")
]
AsOf = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_ENTITY_ID,
        description="Windowed views only: answer as of this past instant (epoch ms, within "
        "the last hour) from complete tiles; absent: live, counting the open head tile.",
    ),
]


def _json(content: dict[str, Any]) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


@router.get("/{view}/{entity_id}", response_model=FeaturesPublic)
async def get_entity_features(
    view: str,
    entity_id: Annotated[int, Path(ge=0, le=MAX_ENTITY_ID)],
    store: Store,
    settings: Settings,
    now: NowMs,
    snapshot: Snapshot,
    features: FeatureNames = None,
    as_of: AsOf = None,
) -> Response:
    fv = service.resolve_view(name=view, registered=snapshot.current.views)
    chosen = service.resolve_features(view=fv, names=features)
    (states,) = await service.read_features(
        store=store,
        view=fv,
        features=chosen,
        entity_ids=[entity_id],
        now_ms=now,
        max_batch=settings.max_batch,
        as_of=as_of,
    )
    return _json({"view": fv.name, "served_at": now, "entity_id": entity_id, "features": states})


@router.post(
    "/{view}:batch",
    response_model=BatchFeaturesPublic | CompactBatchPublic,
    responses={413: {"model": ErrorPublic, "description": "More entity ids than max_batch."}},
)
async def get_batch_features(
    view: str,
    body: BatchFeaturesRequest,
    store: Store,
    settings: Settings,
    now: NowMs,
    snapshot: Snapshot,
) -> Response:
    fv = service.resolve_view(name=view, registered=snapshot.current.views)
    chosen = service.resolve_features(view=fv, names=body.features)
    per_entity = await service.read_features(
        store=store,
        view=fv,
        features=chosen,
        entity_ids=body.entity_ids,
        now_ms=now,
        max_batch=settings.max_batch,
        as_of=body.as_of,
        compact=body.format == "compact",
    )
    if body.format == "compact":
        compact = [
            {"entity_id": eid, **answer}
            for eid, answer in zip(body.entity_ids, per_entity, strict=True)
        ]
        names = [f.name for f in chosen]
        return _json({"view": fv.name, "served_at": now, "features": names, "results": compact})
    results = [
        {"entity_id": eid, "features": states}
        for eid, states in zip(body.entity_ids, per_entity, strict=True)
    ]
    return _json({"view": fv.name, "served_at": now, "results": results})
