"""The canary's share (serving/canary.py): deterministic per entity, monotone in the share,
and close to the share over many entities."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from serving.canary import BUCKETS, bucket, split, to_canary


def test_ten_thousand_entities_land_five_percent_within_one_percent() -> None:
    for start in (0, 1_000_000, 9_000_000_000):
        ids = list(range(start, start + 10_000))
        _, canary = split(ids, 5.0)
        assert 400 <= len(canary) <= 600, (start, len(canary))


@given(st.integers(0, 2**62), st.floats(0.01, 99.99), st.floats(0.01, 99.99))
def test_an_entity_keeps_its_version_and_a_bigger_share_only_adds_entities(
    entity_id: int, a: float, b: float
) -> None:
    low, high = sorted((a, b))
    assert to_canary(entity_id, low) == to_canary(entity_id, low)  # same answer each time
    if to_canary(entity_id, low):
        assert to_canary(entity_id, high)
    assert 0 <= bucket(entity_id) < BUCKETS


def test_no_canary_means_production_for_all() -> None:
    assert split([1, 2, 3], None) == ([0, 1, 2], [])
    assert split([1, 2, 3], 0.0) == ([0, 1, 2], [])
    production, canary = split(list(range(1000)), 100.0)
    assert production == [] and len(canary) == 1000
