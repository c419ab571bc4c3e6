"""The lineage graph as the API answers it (``GET /v1/lineage/graph``), for the tests that
check what a run's events connected."""

from __future__ import annotations

from typing import Any

import httpx

from core.settings import StackSettings
from feature_api.settings import Role, dev_key


def api_client(settings: StackSettings) -> httpx.Client:
    """A client of the stack's API (close it, or use it in a ``with`` block)."""
    return httpx.Client(base_url=f"http://{settings.host}:{settings.ports.api}", timeout=10)


def fetch_graph(api: httpx.Client, node: str, direction: str = "both", depth: int = 20) -> Any:
    r = api.get(
        "/v1/lineage/graph",
        params={"node": node, "direction": direction, "depth": depth},
        headers={"X-API-Key": dev_key(Role.READER)},
    )
    assert r.status_code == 200, r.text
    return r.json()


def refs(graph: Any) -> dict[str, int]:
    """Node ref -> its distance from the asked node."""
    return {n["ref"]: n["distance"] for n in graph["nodes"]}


def edges(graph: Any) -> set[tuple[str, str]]:
    """(source ref, target ref) of every edge."""
    ref = {n["id"]: n["ref"] for n in graph["nodes"]}
    return {(ref[e["source"]], ref[e["target"]]) for e in graph["edges"]}
