"""Lags: previous value, time since it and delta; None at an entity's first event."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from core.features import ORDER_LAGS, USER_LAGS
from flink_jobs.logic.lags import click_lags, order_lags
from tests.unit.flink_jobs.helpers import HOUR, T0, click, order


def test_click_lags_hand_computed() -> None:
    events = [
        click(1, T0, "page_view"),
        click(2, T0 + 500, "search"),  # another user: no influence
        click(1, T0 + 1_000, "search"),
        click(1, T0 + 4_000, "add_to_cart"),
    ]
    rows = [r for r in click_lags(events[::-1]) if r.entity_id == 1]
    assert [tuple(r.values.values()) for r in rows] == [
        ("page_view", None, None),
        ("search", "page_view", 1_000),
        ("add_to_cart", "search", 3_000),
    ]
    assert tuple(rows[0].values) == USER_LAGS.names
    assert [r.version for r in rows] == [events[0].version, events[2].version, events[3].version]
    (other,) = [r for r in click_lags(events) if r.entity_id == 2]
    assert other.values == {
        "last_event_type": "search",
        "prev_event_type": None,
        "ms_since_prev_event": None,
    }


def test_equal_times_are_ordered_by_version() -> None:
    a = click(1, T0, "page_view", partition=0, offset=9)
    b = click(1, T0, "purchase", partition=1, offset=1)
    rows = click_lags([b, a])
    assert [(r.values["last_event_type"], r.values["ms_since_prev_event"]) for r in rows] == [
        ("page_view", None),
        ("purchase", 0),
    ]


def test_a_previous_event_past_the_horizon_counts_as_none() -> None:
    """Exactly the horizon apart still pairs; 1 ms more does not (core.features.Lags)."""
    horizon = USER_LAGS.lags.horizon_ms if USER_LAGS.lags else 0
    events = [
        click(1, T0, "page_view"),
        click(1, T0 + horizon, "search"),
        click(1, T0 + 2 * horizon + 1, "purchase"),
    ]
    assert [tuple(r.values.values()) for r in click_lags(events)] == [
        ("page_view", None, None),
        ("search", "page_view", horizon),
        ("purchase", None, None),
    ]
    orders = [order(7, T0, 1000), order(7, T0 + horizon + 1, 2500)]
    assert [tuple(r.values.values()) for r in order_lags(orders)] == [
        (1000, None, None, None),
        (2500, None, None, None),
    ]


def test_order_lags_hand_computed() -> None:
    orders = [
        order(7, T0, 1000),
        order(7, T0 + HOUR, 2500),
        order(7, T0 + HOUR, 2500, op="u", ts_ms=T0 + 2 * HOUR),  # updates don't count
        order(7, T0 + 3 * HOUR, 1800),
    ]
    rows = order_lags(orders)
    assert tuple(rows[0].values) == ORDER_LAGS.names
    assert [tuple(r.values.values()) for r in rows] == [
        (1000, None, None, None),
        (2500, 1000, 1500, HOUR),
        (1800, 2500, -700, 2 * HOUR),
    ]
    assert [r.event_time for r in rows] == [T0, T0 + HOUR, T0 + 3 * HOUR]


@given(
    st.lists(st.tuples(st.integers(1, 3), st.integers(0, 50)), max_size=25),
    st.randoms(use_true_random=False),
)
def test_lags_do_not_depend_on_input_order(spec: list[tuple[int, int]], rnd: random.Random) -> None:
    events = [click(u, T0 + t * 1000, rnd.choice(["page_view", "search"])) for u, t in spec]
    shuffled = events[:]
    rnd.shuffle(shuffled)
    assert click_lags(shuffled) == click_lags(events)
    firsts = {}
    for row in click_lags(events):
        if row.entity_id not in firsts:
            firsts[row.entity_id] = row
            assert row.values["prev_event_type"] is None
            assert row.values["ms_since_prev_event"] is None
        else:
            assert isinstance(row.values["ms_since_prev_event"], int)
            assert row.values["ms_since_prev_event"] >= 0
