"""Lineage: OpenLineage events in (``POST /api/v1/lineage``, the path Marquez and the
OpenLineage HTTP transport use), the graph around a node out (``GET /v1/lineage/graph``).

Writing events needs the writer role, reading the graph the reader role. Handlers are plain
``def``: the PostgreSQL client is synchronous, so FastAPI runs them in its thread pool.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from feature_api.auth import AUTH_RESPONSES, require
from feature_api.errors import ApiError
from feature_api.lineage_graph import Direction
from feature_api.lineage_models import (
    EdgePublic,
    GraphPublic,
    LineageEventIn,
    LineageEventStored,
    NodePublic,
)
from feature_api.lineage_store import LineageStore, parse_ref
from feature_api.models import ErrorPublic
from feature_api.settings import Role

MAX_DEPTH = 100
_STORE_LOCK = threading.Lock()


class BadNodeQuery(ApiError):
    status_code = 422
    code = "bad_node_query"


def get_lineage_store(request: Request) -> LineageStore:
    """One store per app, made on first use from the stack's PostgreSQL settings."""
    state = request.app.state
    store: LineageStore | None = getattr(state, "lineage_store", None)
    if store is None:
        with _STORE_LOCK:
            store = getattr(state, "lineage_store", None)
            if store is None:
                store = LineageStore(
                    state.stack.postgres_dsn(), timeout_s=state.settings.registry_timeout_s
                )
                state.lineage_store = store
    return store


Store = Annotated[LineageStore, Depends(get_lineage_store)]

_ERRORS = {
    **AUTH_RESPONSES,
    503: {"model": ErrorPublic, "description": "The lineage store (PostgreSQL) is down."},
}

events_router = APIRouter(
    prefix="/api/v1/lineage",
    tags=["lineage"],
    dependencies=[Depends(require(Role.WRITER))],
    responses=_ERRORS,
)
graph_router = APIRouter(
    prefix="/v1/lineage",
    tags=["lineage"],
    dependencies=[Depends(require(Role.READER))],
    responses=_ERRORS,
)


@events_router.post("", status_code=status.HTTP_201_CREATED, response_model=LineageEventStored)
def post_event(event: LineageEventIn, store: Store) -> LineageEventStored:
    """Store one OpenLineage event (run, job or dataset event); the same event twice is
    stored once."""
    duplicate, edges = store.ingest(event)
    return LineageEventStored(shape=event.shape, duplicate=duplicate, edges=edges)


@graph_router.get(
    "/graph",
    response_model=GraphPublic,
    responses={
        404: {"model": ErrorPublic, "description": "No such node."},
        422: {"model": ErrorPublic, "description": "Bad or ambiguous node reference."},
    },
)
def get_graph(
    store: Store,
    node: Annotated[
        str | None,
        Query(
            description="`kind:label`, e.g. `topic:clickstream`, `feature_view:user_activity`,"
            " `table:public.customers`, `job:feature_job`, `s3:streamfeat-lake/crm/exports`."
        ),
    ] = None,
    namespace: Annotated[str | None, Query(description="With `name`, instead of `node`.")] = None,
    name: Annotated[str | None, Query(description="With `namespace`, instead of `node`.")] = None,
    direction: Direction = Direction.BOTH,
    depth: Annotated[int, Query(ge=0, le=MAX_DEPTH, description="Hops to follow.")] = 10,
) -> GraphPublic:
    """The lineage around a node: what it is made from (upstream), what is made from it
    (downstream), or both, up to ``depth`` hops (dataset -> job -> dataset is 2)."""
    by_name = namespace is not None or name is not None
    if (node is None) == (not by_name) or (by_name and (namespace is None or name is None)):
        raise BadNodeQuery("name the node either as `node=kind:label` or `namespace` + `name`")
    if node is not None:
        try:
            parse_ref(node)
        except ValueError as exc:
            raise BadNodeQuery(str(exc), node=node) from None
    roots = store.resolve(ref=node, namespace=namespace, name=name)
    graph = store.graph(roots, direction, depth)
    nodes = [
        NodePublic(
            id=n.public_id,
            ref=n.ref,
            kind=n.kind,
            label=n.label,
            namespace=n.namespace,
            name=n.name,
            distance=graph.walk.distance[n.id],
        )
        for n in sorted(graph.nodes.values(), key=lambda n: (graph.walk.distance[n.id], n.id))
    ]
    return GraphPublic(
        roots=[r.public_id for r in roots],
        direction=direction.value,
        depth=depth,
        nodes=nodes,
        edges=[
            EdgePublic(
                source=graph.nodes[e.source].public_id,
                target=graph.nodes[e.target].public_id,
                last_run_id=e.last_run_id,
                last_seen=e.last_seen,
            )
            for e in graph.edges
        ],
    )
