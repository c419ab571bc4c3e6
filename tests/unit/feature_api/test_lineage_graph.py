"""The graph walk (pure): shortest hop counts, depth limits, cycles, both directions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from feature_api.lineage_graph import Direction, walk

CHAIN = [  # table -> debezium -> topic -> job -> view -> build -> training set
    ("table", "debezium"),
    ("debezium", "topic"),
    ("topic", "job"),
    ("job", "view"),
    ("view", "build"),
    ("build", "ts"),
    ("other_topic", "job"),
]


def test_downstream_upstream_and_both_of_a_chain() -> None:
    down = walk(CHAIN, ["topic"], Direction.DOWNSTREAM, depth=2)
    assert down.distance == {"topic": 0, "job": 1, "view": 2}
    assert down.edges == {("topic", "job"), ("job", "view")}

    up = walk(CHAIN, ["view"], Direction.UPSTREAM, depth=10)
    assert up.distance == {
        "view": 0,
        "job": 1,
        "topic": 2,
        "other_topic": 2,
        "debezium": 3,
        "table": 4,
    }
    assert ("other_topic", "job") in up.edges  # reported as stored, not reversed

    both = walk(CHAIN, ["job"], Direction.BOTH, depth=1)
    assert both.distance == {"job": 0, "topic": 1, "other_topic": 1, "view": 1}


def test_siblings_are_not_lineage() -> None:
    """other_topic shares the job with topic, but is neither up- nor downstream of topic."""
    assert "other_topic" not in walk(CHAIN, ["topic"], Direction.BOTH, depth=10).distance


def test_depth_zero_and_isolated_root() -> None:
    assert walk(CHAIN, ["view"], Direction.BOTH, depth=0).distance == {"view": 0}
    lone = walk(CHAIN, ["nowhere"], Direction.BOTH, depth=5)
    assert lone.distance == {"nowhere": 0} and lone.edges == frozenset()


def test_a_cycle_ends_and_its_closing_edge_is_reported() -> None:
    loop = [("topic", "job"), ("job", "topic")]  # a job reading and writing one topic
    w = walk(loop, ["topic"], Direction.DOWNSTREAM, depth=50)
    assert w.distance == {"topic": 0, "job": 1}
    assert w.edges == {("topic", "job"), ("job", "topic")}


# ---- properties over arbitrary graphs (cycles, self-loops, parallel edges) ----

nodes = st.integers(0, 11)
graphs = st.lists(st.tuples(nodes, nodes), max_size=40)


def _reach(edges: list[tuple[int, int]], roots: set[int], depth: int) -> dict[int, int]:
    """Reference: level sets R_k = R_{k-1} + succ(R_{k-1}), k <= depth (no queue)."""
    dist = {r: 0 for r in roots}
    for k in range(1, depth + 1):
        for s, t in edges:
            if s in dist and dist[s] == k - 1 and t not in dist:
                dist[t] = k
    return dist


@given(graphs, st.sets(nodes, min_size=1, max_size=3), st.integers(0, 14))
def test_downstream_equals_the_level_set_reference(
    edges: list[tuple[int, int]], roots: set[int], depth: int
) -> None:
    w = walk(edges, roots, Direction.DOWNSTREAM, depth)
    assert w.distance == _reach(edges, roots, depth)
    for s, t in w.edges:
        assert (s, t) in edges
        assert w.distance[s] < depth and t in w.distance


@given(graphs, st.sets(nodes, min_size=1, max_size=3), st.integers(0, 14))
def test_upstream_is_downstream_of_the_reversed_graph(
    edges: list[tuple[int, int]], roots: set[int], depth: int
) -> None:
    up = walk(edges, roots, Direction.UPSTREAM, depth)
    rev = walk([(t, s) for s, t in edges], roots, Direction.DOWNSTREAM, depth)
    assert up.distance == rev.distance
    assert up.edges == {(t, s) for s, t in rev.edges}


@given(graphs, st.sets(nodes, min_size=1, max_size=3), st.integers(0, 13))
def test_more_depth_never_loses_nodes_and_both_is_the_union(
    edges: list[tuple[int, int]], roots: set[int], depth: int
) -> None:
    for d in Direction:
        assert (
            walk(edges, roots, d, depth).distance.keys()
            <= walk(edges, roots, d, depth + 1).distance.keys()
        )
    both = walk(edges, roots, Direction.BOTH, depth)
    up = walk(edges, roots, Direction.UPSTREAM, depth)
    down = walk(edges, roots, Direction.DOWNSTREAM, depth)
    assert both.distance.keys() == up.distance.keys() | down.distance.keys()
    assert both.edges == up.edges | down.edges
    assert all(
        both.distance[n] == min(up.distance.get(n, 99), down.distance.get(n, 99))
        for n in both.distance
    )
