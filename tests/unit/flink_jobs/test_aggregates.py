"""Aggregators and rolling windows: [t - w, t] inclusive, peers included, merge-safe."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.features import CUSTOMER_ORDERS, USER_ACTIVITY, USER_LAGS
from flink_jobs.logic.aggregates import (
    CountAggregator,
    Measure,
    RollingWindows,
    SumAggregator,
    parse_window,
    rolling_features,
)
from flink_jobs.logic.lags import order_lags
from flink_jobs.logic.records import ClickEvent, OrderEvent
from tests.unit.flink_jobs.helpers import DAY, HOUR, MINUTE, T0, click, order


@given(st.lists(st.integers(-(10**12), 10**12), max_size=30), st.data())
def test_merge_of_partials_equals_one_pass(values: list[int], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(values)))
    for agg in (CountAggregator(), SumAggregator()):
        left, right = agg.create(), agg.create()
        for v in values[:cut]:
            left = agg.add(left, v)
        for v in values[cut:]:
            right = agg.add(right, v)
        assert agg.result(agg.merge(left, right)) == agg.over(values)
        assert agg.merge(agg.create(), left) == left
        if values:
            assert agg.retract(agg.add(left, values[0]), values[0]) == left


def test_window_boundary_is_inclusive() -> None:
    events = [
        click(1, T0 - HOUR - 1),  # 1 h + 1 ms before: out of the 1 h window
        click(1, T0 - HOUR),  # exactly 1 h before: in
        click(1, T0),
    ]
    last = rolling_features(events, USER_ACTIVITY)[-1]
    assert last.event_time == T0
    assert last.values["clicks_1h"] == 2
    assert last.values["clicks_24h"] == 3


def test_peers_all_count_and_get_equal_values() -> None:
    events = [
        click(1, T0, "page_view", offset=3),
        click(1, T0, "add_to_cart", offset=1),
        click(1, T0, "purchase", offset=2),
        click(1, T0 + 1, "add_to_cart", offset=4),
    ]
    rows = rolling_features(events[::-1], USER_ACTIVITY)
    assert [r.version.seq[1] for r in rows] == [1, 2, 3, 4]
    for r in rows[:3]:
        assert (r.values["clicks_1h"], r.values["carts_1h"], r.values["purchases_1h"]) == (3, 1, 1)
    assert (rows[3].values["clicks_1h"], rows[3].values["carts_1h"]) == (4, 2)


def test_every_feature_of_the_view_is_filled() -> None:
    rows = rolling_features([click(1, T0)], USER_ACTIVITY)
    assert set(rows[0].values) == set(USER_ACTIVITY.names)
    rows = rolling_features([order(1, T0, 100)], CUSTOMER_ORDERS)
    assert set(rows[0].values) == set(CUSTOMER_ORDERS.names)
    with pytest.raises(KeyError):
        rolling_features([], USER_LAGS)


def brute_force(events: list[ClickEvent], e: ClickEvent, w: int, kind: str | None = None) -> int:
    """Events of e's user in [t - w, t] (of ``kind`` if given), counted one by one."""
    return sum(
        1
        for x in events
        if x.user_id == e.user_id
        and e.event_time - w <= x.event_time <= e.event_time
        and kind in (None, x.event_type)
    )


@given(
    st.lists(
        st.tuples(
            st.integers(1, 3),
            st.integers(0, 9 * DAY).map(lambda d: T0 + d - d % MINUTE),
            st.sampled_from(["page_view", "add_to_cart", "purchase"]),
        ),
        max_size=40,
    )
)
def test_rolling_counts_equal_brute_force(spec: list[tuple[int, int, str]]) -> None:
    events = [click(u, t, kind) for u, t, kind in spec]
    rows = rolling_features(events, USER_ACTIVITY)
    assert len(rows) == len(events)
    by_version = {e.version: e for e in events}
    for row in rows:
        e = by_version[row.version]
        assert (row.entity_id, row.event_time) == (e.user_id, e.event_time)
        for suffix, w in (("1h", HOUR), ("24h", DAY), ("7d", 7 * DAY)):
            assert row.values[f"clicks_{suffix}"] == brute_force(events, e, w)
            assert row.values[f"carts_{suffix}"] == brute_force(events, e, w, "add_to_cart")
            assert row.values[f"purchases_{suffix}"] == brute_force(events, e, w, "purchase")


def test_long_streams_stay_exact_after_trimming() -> None:
    events = [click(1, T0 + i * MINUTE) for i in range(3000)]
    rows = rolling_features(events, USER_ACTIVITY)
    assert [r.values["clicks_1h"] for r in rows[60:]] == [61] * (3000 - 60)
    assert rows[-1].values["clicks_24h"] == 24 * 60 + 1


def test_orders_count_once_at_creation_with_spend() -> None:
    created = order(7, T0, 1000, order_id=1, op="r", ts_ms=T0 + 5 * DAY)  # snapshot later
    dup = order(7, T0, 1000, order_id=1, op="c", ts_ms=T0 + 6 * DAY)  # the same order again
    update = order(7, T0, 1000, order_id=1, op="u", ts_ms=T0 + 6 * DAY)
    second = order(7, T0 + 2 * HOUR, 2500, order_id=2)
    # order 1's events in their partition's order, order 2 anywhere among them
    rows = rolling_features([created, second, update, dup], CUSTOMER_ORDERS)
    assert [(r.event_time, r.values["orders_1h"], r.values["spend_cents_24h"]) for r in rows] == [
        (T0, 1, 1000),
        (T0 + 2 * HOUR, 1, 3500),
    ]
    assert rows[0].version == created.row_version


@given(
    st.lists(
        st.tuples(st.integers(1, 2), st.integers(0, 30), st.integers(0, 5000), st.integers(1, 3)),
        min_size=1,
        max_size=12,
    ),
    st.randoms(use_true_random=False),
)
def test_copies_of_an_order_count_once_whatever_their_arrival(
    spec: list[tuple[int, int, int, int]], rnd: random.Random
) -> None:
    """The rule the job's first-copy deduplication follows (flink_jobs.sql.order_creations):
    each order id counts once, as its first create event (c or r) on its partition;
    redelivered copies, a later snapshot read beside the insert, other amounts in the later
    copies and any interleaving with other orders change no order feature."""
    originals: list[OrderEvent] = []
    copies_of: dict[int, list[OrderEvent]] = {}
    for order_id, (customer, minutes, amount, copies) in enumerate(spec, start=1):
        created = T0 + minutes * 10 * MINUTE
        lsn = 1000 * order_id
        first = order(customer, created, amount, order_id=order_id, ts_ms=created, lsn=lsn)
        originals.append(first)
        copies_of[order_id] = [first]
        for n in range(1, copies):  # a later commit (a snapshot read) or the same record again
            later = n % 2 == 1
            copies_of[order_id].append(
                order(
                    customer,
                    created,
                    amount + n if later else amount,
                    order_id=order_id,
                    op="r" if later else "c",
                    ts_ms=created + n * MINUTE if later else created,
                    lsn=lsn + n if later else lsn,
                )
            )
    # any interleaving of the orders, each order's copies in their partition's order
    turns = [order_id for order_id, copies in copies_of.items() for _ in copies]
    rnd.shuffle(turns)
    arrived = [copies_of[order_id].pop(0) for order_id in turns]
    assert rolling_features(arrived, CUSTOMER_ORDERS) == rolling_features(
        originals, CUSTOMER_ORDERS
    )
    assert order_lags(arrived) == order_lags(originals)


def test_rolling_windows_streaming_contract() -> None:
    rw: RollingWindows[int] = RollingWindows(
        (0, HOUR), [Measure("sum", SumAggregator(), lambda v: v if v > 0 else None)]
    )
    assert rw.emit(T0, [5, -1, 2]) == {("sum", 0): 7, ("sum", HOUR): 7}
    assert rw.is_late(T0)
    with pytest.raises(ValueError):
        rw.emit(T0, [1])
    assert rw.emit(T0 + HOUR, [1]) == {("sum", 0): 1, ("sum", HOUR): 8}
    assert rw.emit(T0 + HOUR + 1, []) == {("sum", 0): 0, ("sum", HOUR): 1}
    with pytest.raises(ValueError):
        RollingWindows((-1,))


def test_parse_window() -> None:
    assert [parse_window(s) for s in ("1h", "24h", "7d", "30m", "5s", "10ms")] == [
        HOUR, DAY, 7 * DAY, 30 * MINUTE, 5000, 10
    ]  # fmt: skip
    with pytest.raises(ValueError):
        parse_window("1w")
