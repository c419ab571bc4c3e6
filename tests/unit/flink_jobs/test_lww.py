"""Last-writer-wins: a total order on versions, independent of arrival, redelivery-safe."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.events import SOURCE_PRIORITY, Source
from core.version import Version, crm_version
from flink_jobs.logic.lww import LwwState, merge_all, winner, won_by
from flink_jobs.logic.records import AttributeUpdate
from tests.unit.flink_jobs.helpers import T0, cdc_v

TIMES = st.integers(T0, T0 + 3)  # few distinct times: many ties
SEQ_INTS = st.integers(0, 3)
KEYS = st.text(alphabet="ab/é", max_size=4)  # keys that are prefixes of each other


@st.composite
def versions(draw: st.DrawFn) -> Version:
    source = draw(st.sampled_from(list(Source)))
    seq: tuple[int | str, ...]
    if source is Source.PG_CDC:
        seq = (draw(SEQ_INTS), draw(SEQ_INTS))
    elif source is Source.S3_CRM:
        seq = (draw(SEQ_INTS), draw(KEYS), draw(SEQ_INTS))
    else:
        seq = (draw(SEQ_INTS), draw(SEQ_INTS))
    return Version(draw(TIMES), SOURCE_PRIORITY[source], seq)


@st.composite
def conflict_sets(draw: st.DrawFn) -> list[AttributeUpdate]:
    """Updates of one (entity, attribute); one value per version (the contract)."""
    vs = draw(st.lists(versions(), min_size=1, max_size=12, unique=True))
    out = []
    for v in vs:
        deleted = draw(st.booleans())
        value = None if deleted else draw(st.sampled_from(["gold", "silver", "bronze"]))
        out.append(AttributeUpdate(17, "tier", value, v, deleted))
    return out


@given(conflict_sets(), st.randoms(use_true_random=False))
def test_winner_does_not_depend_on_order(
    updates: list[AttributeUpdate], rnd: random.Random
) -> None:
    expected = max(updates, key=lambda u: u.version)
    shuffled = updates[:]
    rnd.shuffle(shuffled)
    assert winner(shuffled) == expected
    assert merge_all(shuffled) == {(17, "tier"): expected}
    state = LwwState()
    state.apply_all(shuffled)
    assert state.get(17, "tier") == expected


@given(conflict_sets(), st.randoms(use_true_random=False))
def test_redelivery_and_replay_change_nothing(
    updates: list[AttributeUpdate], rnd: random.Random
) -> None:
    state = LwwState()
    state.apply_all(updates)
    before = state.snapshot()
    replay = updates + [rnd.choice(updates) for _ in range(5)]
    rnd.shuffle(replay)
    assert state.apply_all(replay) == []
    assert state.snapshot() == before
    for u in updates:
        assert state.apply(u) is False


def test_apply_reports_changes() -> None:
    state = LwwState()
    old = AttributeUpdate(17, "tier", "silver", cdc_v(T0, 10, 10))
    new = AttributeUpdate(17, "tier", "gold", cdc_v(T0 + 1, 11, 11))
    assert state.apply(new) is True
    assert state.apply(old) is False  # stale: arrived late
    assert state.apply(new) is False  # redelivered: equal version
    assert state.values(17) == {"tier": "gold"}
    assert len(state) == 1


def test_equal_time_higher_priority_source_wins_whatever_the_sequence() -> None:
    pg = AttributeUpdate(17, "tier", "gold", cdc_v(T0, 1, 1))
    crm = AttributeUpdate(17, "tier", "silver", crm_version(T0, 2**62, "zzz", 2**62))
    assert winner([crm, pg]) == winner([pg, crm]) == pg
    assert won_by(pg) is Source.PG_CDC
    assert won_by(crm) is Source.S3_CRM
    later_crm = AttributeUpdate(17, "tier", "silver", crm_version(T0 + 1, 0, "a", 1))
    assert winner([pg, later_crm]) == later_crm  # time first, priority only on equal time


def test_equal_time_same_source_greater_sequence_wins() -> None:
    def crm(export: int, key: str, row: int) -> AttributeUpdate:
        return AttributeUpdate(
            17, "tier", f"{export}-{key}-{row}", crm_version(T0, export, key, row)
        )

    assert winner([crm(2, "a", 1), crm(1, "z", 9)]).value == "2-a-1"  # export_ts first
    assert winner([crm(1, "a/b", 1), crm(1, "a", 9)]).value == "1-a/b-1"  # then the key
    assert winner([crm(1, "a", 3), crm(1, "a", 2)]).value == "1-a-3"  # then the row
    # CDC: the commit LSN decides before the event's own LSN (interleaved transactions)
    first_tx = AttributeUpdate(17, "tier", "tx1", cdc_v(T0, 100, 250))
    second_tx = AttributeUpdate(17, "tier", "tx2", cdc_v(T0, 200, 210))
    assert winner([second_tx, first_tx]) == second_tx


def test_delete_is_a_versioned_tombstone() -> None:
    value = AttributeUpdate(17, "tier", "gold", cdc_v(T0, 1, 1))
    delete = AttributeUpdate(17, "tier", None, cdc_v(T0 + 10, 2, 2), deleted=True)
    stale = AttributeUpdate(17, "tier", "silver", crm_version(T0 + 5, T0, "k", 1))
    resurrect = AttributeUpdate(17, "tier", "bronze", crm_version(T0 + 20, T0, "k", 2))
    state = LwwState()
    state.apply_all([value, delete, stale])
    assert state.values(17) == {"tier": None}
    assert state.get(17, "tier") == delete
    assert state.apply(resurrect) is True
    assert state.values(17) == {"tier": "bronze"}
    assert winner([resurrect, stale, delete, value]) == resurrect


def test_merge_all_keys_by_entity_and_attribute() -> None:
    a = AttributeUpdate(1, "tier", "gold", cdc_v(T0, 1, 1))
    b = AttributeUpdate(1, "email", "a@x.io", cdc_v(T0, 1, 1))
    c = AttributeUpdate(2, "tier", "silver", cdc_v(T0, 1, 1))
    assert merge_all([a, b, c]) == {(1, "tier"): a, (1, "email"): b, (2, "tier"): c}


def test_winner_rejects_empty_and_mixed_input() -> None:
    with pytest.raises(ValueError):
        winner([])
    a = AttributeUpdate(1, "tier", "gold", cdc_v(T0, 1, 1))
    with pytest.raises(ValueError):
        winner([a, AttributeUpdate(2, "tier", "gold", cdc_v(T0, 1, 1))])


@given(versions(), versions())
def test_encoding_orders_like_versions(a: Version, b: Version) -> None:
    assert (a < b) == (a.encode() < b.encode())
    assert (a == b) == (a.encode() == b.encode())


@given(st.lists(versions(), max_size=20))
def test_sorting_by_encoding_equals_sorting_versions(vs: list[Version]) -> None:
    assert sorted(vs, key=Version.encode) == sorted(vs)


def test_object_key_prefix_sorts_first() -> None:
    short = crm_version(T0, T0, "crm/a", 99)
    long = crm_version(T0, T0, "crm/a0", 1)
    assert short < long
    assert short.encode() < long.encode()
