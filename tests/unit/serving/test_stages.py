"""The serving-stage rules (serving/stages.py): examples of each rule, and hypothesis over
arbitrary sequences of moves checking the invariants every reachable state keeps."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.stages import (
    DEFAULT_CANARY_TRAFFIC,
    PREVIOUS_PRODUCTION,
    IllegalMove,
    Move,
    Placement,
    Stage,
    check_model_name,
    check_traffic,
    check_training_sets,
    promote,
    rollback,
)


def _walk(*steps: tuple[int, Stage]) -> Placement:
    p = Placement()
    for version, stage in steps:
        p = promote(p, version, stage).after
    return p


S, C, P = Stage.STAGING, Stage.CANARY, Stage.PRODUCTION


def test_a_version_goes_staging_canary_production() -> None:
    p = _walk((1, S))
    assert p == Placement(staging=1)
    canary = promote(p, 1, C)
    assert canary.after == Placement(canary=1, canary_traffic=DEFAULT_CANARY_TRAFFIC)
    prod = promote(canary.after, 1, P)
    assert prod.after == Placement(production=1)
    assert prod.retired is None and prod.stage is P and prod.version == 1


def test_production_retires_the_previous_one_and_clears_canary() -> None:
    p = _walk((1, S), (1, C), (1, P), (2, S), (2, C), (3, S))
    move = promote(p, 2, P)
    assert move.after == Placement(staging=3, production=2, previous_production=1)
    assert move.retired == 1
    assert move.notes == (f"version 1 retired to {PREVIOUS_PRODUCTION}",)
    sets, deletes = move.alias_changes()
    assert sets == {"production": 2, PREVIOUS_PRODUCTION: 1}
    assert deletes == ("canary",)


@pytest.mark.parametrize(
    ("steps", "version", "to", "message"),
    [
        ((), 1, C, "version 1 must be in staging before canary (it holds no serving stage)"),
        (((1, S),), 1, P, "version 1 must be in canary before production (it is in staging)"),
        (((1, S), (1, C), (1, P)), 1, S, "version 1 is in production; a served version"),
        (((1, S), (1, C)), 1, S, "version 1 is in canary; a served version does not go back"),
        (((1, S),), 1, S, "version 1 is already in staging"),
        (((1, S), (1, C), (1, P)), 1, P, "version 1 is already in production"),
        (((1, S), (1, C)), 1, C, "version 1 is already the canary at 5% traffic"),
    ],
)
def test_illegal_moves_are_refused_with_the_reason(
    steps: tuple[tuple[int, Stage], ...], version: int, to: Stage, message: str
) -> None:
    with pytest.raises(IllegalMove, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        promote(_walk(*steps), version, to)


def test_canary_traffic_is_set_changed_and_validated() -> None:
    p = promote(_walk((1, S)), 1, C, traffic=20).after
    assert p.canary_traffic == 20
    changed = promote(p, 1, C, traffic=50)
    assert changed.after.canary_traffic == 50 and changed.notes == ("canary traffic 20% -> 50%",)
    assert changed.alias_changes() == ({}, ())
    for bad in (0, 100, -1, 150, float("nan")):
        with pytest.raises(IllegalMove, match="more than 0 and less than 100"):
            promote(p, 1, C, traffic=bad)
    with pytest.raises(IllegalMove, match="--traffic applies to a canary only"):
        promote(_walk((1, S)), 1, S, traffic=5)


def test_a_new_canary_replaces_the_running_one() -> None:
    p = _walk((1, S), (1, C), (2, S))
    move = promote(p, 2, C, traffic=10)
    assert move.after == Placement(canary=2, canary_traffic=10)
    assert move.notes == ("replaces canary version 1 (it no longer gets traffic)",)


def test_rollback_returns_to_previous_production_once() -> None:
    p = _walk((1, S), (1, C), (1, P), (2, S), (2, C), (2, P))
    move = rollback(p)
    assert move.after == Placement(production=1)
    assert (move.version, move.stage, move.retired, move.rollback) == (1, P, 2, True)
    with pytest.raises(IllegalMove, match=f"no {PREVIOUS_PRODUCTION} version to roll back to"):
        rollback(move.after)
    with pytest.raises(IllegalMove, match="no previous-production"):
        rollback(Placement())


def test_rollback_to_a_restaged_version_clears_its_other_stage() -> None:
    p = _walk((1, S), (1, C), (1, P), (2, S), (2, C), (2, P), (1, S))
    assert p.staging == 1 and p.previous_production == 1
    move = rollback(p)
    assert move.after == Placement(production=1)
    assert "version 1 leaves staging" in move.notes


def test_placement_reads_mlflow_aliases() -> None:
    aliases = {"production": "3", "canary": "4", "champion": "1", PREVIOUS_PRODUCTION: "2"}
    p = Placement.from_aliases(aliases)
    assert p == Placement(canary=4, production=3, previous_production=2, canary_traffic=5.0)
    assert Placement.from_aliases({"canary": "4"}, 12.5).canary_traffic == 12.5
    assert Placement.from_aliases({"staging": "4"}, 12.5).canary_traffic is None


def test_names_and_traffic_checks() -> None:
    assert check_model_name("churn-v2.lr_1") == "churn-v2.lr_1"
    for bad in ("", "a/b", "-x", "a b", "x" * 201):
        with pytest.raises(ValueError, match="model name"):
            check_model_name(bad)
    assert check_training_sets(["a", "b", "a"]) == ("a", "b")
    with pytest.raises(ValueError, match="at least one training set"):
        check_training_sets([])
    for bad in ("a,b", " a", "a b", ""):
        with pytest.raises(ValueError, match="training set name"):
            check_training_sets([bad])
    assert check_traffic(0.5) == 0.5


# ---- property: any sequence of moves keeps the invariants ----


@dataclass
class History:
    """Every stage each version has held, in order (the reference the rules are checked by)."""

    held: dict[int, list[Stage]] = field(default_factory=dict)

    def record(self, move: Move) -> None:
        self.held.setdefault(move.version, []).append(move.stage)


def _legal(p: Placement, op: tuple[str, int, Stage, float | None]) -> bool:
    """The rules restated from the point of view of a user, independent of the code."""
    kind, version, to, traffic = op
    if kind == "rollback":
        return p.previous_production is not None
    if traffic is not None and to is not C:
        return False
    if to is S:
        return version not in (p.staging, p.canary, p.production)
    if to is C:
        share_ok = traffic is None or 0 < traffic < 100
        if p.canary == version:
            return traffic is not None and share_ok and traffic != p.canary_traffic
        return p.staging == version and share_ok
    return p.canary == version and p.production != version


def _check_invariants(p: Placement) -> None:
    served = [v for v in (p.staging, p.canary, p.production) if v is not None]
    assert len(served) == len(set(served)), f"a version holds two stages: {p}"
    assert (p.canary is None) == (p.canary_traffic is None)
    if p.canary_traffic is not None:
        assert 0 < p.canary_traffic < 100
    assert Placement.from_aliases(p.aliases(), p.canary_traffic) == p


traffic = st.one_of(st.none(), st.sampled_from([0.0, 5.0, 10.0, 50.0, 100.0]))
ops = st.one_of(
    st.tuples(st.just("promote"), st.integers(1, 4), st.sampled_from(Stage), traffic),
    # "the version in stage X, one stage further": random picks alone rarely get that far
    *[st.tuples(st.just("advance"), st.just(0), st.sampled_from(Stage), st.none())] * 4,
    st.tuples(st.just("rollback"), st.just(0), st.just(P), st.none()),
)


Op = tuple[str, int, Stage, float | None]


def _resolve(p: Placement, op: Op) -> Op:
    kind, _, to, traffic = op
    if kind != "advance":
        return op
    if to is S:  # a version that holds no serving stage, if any
        free = [v for v in (1, 2, 3, 4) if v not in (p.staging, p.canary, p.production)]
        return ("promote", free[0], S, traffic)
    held = p.staging if to is C else p.canary
    return ("promote", held or 1, to, traffic)


@given(st.lists(ops, min_size=20, max_size=60))
def test_any_sequence_of_moves_keeps_the_invariants(
    sequence: list[tuple[str, int, Stage, float | None]],
) -> None:
    p = Placement()
    history = History()
    for raw in sequence:
        op = _resolve(p, raw)
        kind, version, to, traffic = op
        legal = _legal(p, op)
        try:
            move = rollback(p) if kind == "rollback" else promote(p, version, to, traffic=traffic)
        except IllegalMove:
            assert not legal, f"refused a legal {op} from {p}"
            continue
        assert legal, f"allowed an illegal {op} from {p}"
        assert move.before == p
        sets, deletes = move.alias_changes()
        applied = {a: v for a, v in p.aliases().items() if a not in deletes} | sets
        assert applied == move.after.aliases()

        before, p = p, move.after
        _check_invariants(p)
        if p.production != before.production:
            # production moves only from canary, or back to previous-production
            came_from = before.previous_production if move.rollback else before.canary
            assert p.production == came_from
            assert p.previous_production == (None if move.rollback else before.production) or (
                before.production is None and p.previous_production == before.previous_production
            )
            assert move.retired == before.production
        if p.canary is not None and p.canary != before.canary:
            assert before.staging == p.canary  # canary only from staging
        if not move.rollback and move.stage is P:
            assert p.canary is None
        if not move.rollback:
            history.record(move)
            held = history.held[move.version]
            if move.stage is P:  # the path through every stage, in order, since last staged
                last_staging = max(i for i, s in enumerate(held) if s is S)
                assert held[last_staging:][:2] == [S, C] and held[-1] is P
