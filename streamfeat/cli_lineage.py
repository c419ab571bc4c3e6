"""`streamfeat lineage graph NODE`: the lineage around a node, from the feature API; and the
emitter the CLI's commands report lineage through.

Credentials: the emitter sends ``STREAMFEAT_LINEAGE_API_KEY`` when set, else what every CLI
call sends for the writer role (``STREAMFEAT_API_KEY``, else the local stack's development
writer key — refused by a production API, so nothing silently works there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from core.settings import StackSettings, load_settings
from feature_api.settings import Role
from streamfeat.cli_registry import api_headers
from streamfeat.console import fail, out

if TYPE_CHECKING:
    from core.lineage import LineageEmitter

lineage_app = typer.Typer(no_args_is_help=True, help="Lineage of topics, jobs, feature views.")


def emitter(settings: StackSettings) -> LineageEmitter:
    """The lineage emitter of CLI commands (deploys, imports, connector applies)."""
    from core.lineage import LineageEmitter, LineageSettings, spool_path  # ~0.7 s: lazily

    cfg = LineageSettings()
    key = cfg.api_key.get_secret_value() if cfg.api_key else api_headers(Role.WRITER)["X-API-Key"]
    return LineageEmitter(
        url=cfg.url or f"http://{settings.host}:{settings.ports.api}",
        spool=spool_path(settings),
        api_key=key,
        timeout_s=cfg.timeout_ms / 1000,
        enabled=cfg.enabled,
    )


def fetch_graph(
    settings: StackSettings,
    *,
    node: str | None,
    namespace: str | None,
    name: str | None,
    direction: str,
    depth: int,
) -> dict[str, Any]:
    """GET /v1/lineage/graph; raises RuntimeError with the API's own message on failure."""
    import httpx

    params: dict[str, Any] = {"direction": direction, "depth": depth}
    if node is not None:
        params["node"] = node
    else:
        params.update(namespace=namespace, name=name)
    base = f"http://{settings.host}:{settings.ports.api}"
    try:
        with httpx.Client(base_url=base, timeout=10, headers=api_headers(Role.READER)) as client:
            resp = client.get("/v1/lineage/graph", params=params)
    except httpx.HTTPError as exc:
        raise RuntimeError(f"feature API at {base} unreachable: {exc}") from exc
    if resp.status_code != 200:
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = resp.text[:300]
        raise RuntimeError(f"HTTP {resp.status_code}: {message}")
    data: dict[str, Any] = resp.json()
    return data


@lineage_app.command("graph")
def graph(
    node: Annotated[
        str | None,
        typer.Argument(help="kind:label, e.g. topic:clickstream, feature_view:user_activity."),
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="With --name, instead of NODE.")] = None,
    name: Annotated[str | None, typer.Option(help="With --namespace, instead of NODE.")] = None,
    direction: Annotated[str, typer.Option(help="upstream | downstream | both")] = "both",
    depth: Annotated[int, typer.Option(help="Hops (dataset -> job -> dataset is 2).")] = 10,
) -> None:
    """Print the nodes and edges around NODE (upstream, downstream or both)."""
    settings = load_settings()
    try:
        data = fetch_graph(
            settings, node=node, namespace=namespace, name=name, direction=direction, depth=depth
        )
    except RuntimeError as exc:
        fail(
            "lineage",
            str(exc),
            fix="`streamfeat up api`; name a node that some deploy or import has reported",
        )
        return
    refs = {n["id"]: n["ref"] for n in data["nodes"]}
    nodes = Table(title=f"lineage {direction} of {node or f'{namespace} {name}'}")
    for column in ("hops", "node", "namespace", "name"):
        nodes.add_column(column)
    for n in data["nodes"]:
        nodes.add_row(str(n["distance"]), n["ref"], n["namespace"], n["name"])
    out.print(nodes)
    for e in data["edges"]:
        out.print(f"  {refs[e['source']]} -> {refs[e['target']]}")
