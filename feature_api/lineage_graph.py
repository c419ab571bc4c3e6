"""The lineage graph walk: pure functions over directed edges ``(source, target)``.

Edges point the way data flows: ``input dataset -> job -> output dataset``. A walk from the
root nodes follows them forward (``downstream``: what is made from the roots), backward
(``upstream``: what the roots are made from), or both — then it is the union of the two
walks, not a walk that may turn around (siblings that merely share an input are not part
of a node's lineage).

``depth`` counts hops: ``topic -> job -> feature view`` is depth 2. Cycles (a job that
reads and writes the same topic) end the walk at nodes already seen; the edge that closes
the cycle is still reported, so the cycle is visible.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

N = TypeVar("N", bound=Hashable)


class Direction(StrEnum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"
    BOTH = "both"


@dataclass(frozen=True)
class Walk(Generic[N]):
    distance: dict[N, int]
    """Every node reached, with its hop count from the nearest root (roots: 0)."""
    edges: frozenset[tuple[N, N]]
    """Edges followed, as stored (source, target), whatever the direction of the walk."""


def _one_way(
    edges: Iterable[tuple[N, N]], roots: Iterable[N], depth: int, *, forward: bool
) -> Walk[N]:
    nexts: dict[N, list[N]] = defaultdict(list)
    for src, dst in edges:
        if forward:
            nexts[src].append(dst)
        else:
            nexts[dst].append(src)
    distance = {r: 0 for r in roots}
    followed: set[tuple[N, N]] = set()
    frontier = list(distance)
    for hop in range(1, depth + 1):
        reached: list[N] = []
        for node in frontier:
            for other in nexts.get(node, ()):
                followed.add((node, other) if forward else (other, node))
                if other not in distance:
                    distance[other] = hop
                    reached.append(other)
        if not reached:
            break
        frontier = reached
    return Walk(distance, frozenset(followed))


def walk(
    edges: Iterable[tuple[N, N]], roots: Iterable[N], direction: Direction, depth: int
) -> Walk[N]:
    """The nodes and edges within ``depth`` hops of ``roots`` in ``direction``.

    Breadth first, so a node's distance is its shortest hop count; every root is in the
    result (distance 0) even without edges. ``depth`` 0 returns the roots alone.
    """
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    edge_list = list(edges)
    root_list = list(roots)
    if direction is not Direction.BOTH:
        return _one_way(edge_list, root_list, depth, forward=direction is Direction.DOWNSTREAM)
    down = _one_way(edge_list, root_list, depth, forward=True)
    up = _one_way(edge_list, root_list, depth, forward=False)
    distance = dict(up.distance)
    for node, d in down.distance.items():
        distance[node] = min(d, distance.get(node, d))
    return Walk(distance, down.edges | up.edges)
