"""Tiles and their combine rule (core.windows): hand-computed windows at chosen instants, and
properties over any events and any order of tile updates."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.features import CLICK_AGGREGATIONS, ORDER_AGGREGATIONS, USER_ACTIVITY
from core.online import TileWrite, tile_args
from core.windows import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    Aggregations,
    Measure,
    Window,
    combine,
    hash_combiner,
    newer,
    pack,
    sketch_estimate,
    sketch_of,
    split_field,
    tile_field,
    tiles_of,
    unpack,
)

H = 1_800_000_000_000 // HOUR_MS * HOUR_MS  # an hour boundary
TYPES = ("page_view", "search", "add_to_cart", "purchase")


def click(t: int, event_type: str = "page_view") -> dict[str, object]:
    return {"user_id": 1, "event_time": t, "event_type": event_type}


def test_tile_fields_are_compact_integers_per_size() -> None:
    minute = tile_field(CLICK_AGGREGATIONS, MINUTE_MS, H + 61_000)
    hour = tile_field(CLICK_AGGREGATIONS, HOUR_MS, H + 61_000)
    assert split_field(CLICK_AGGREGATIONS, minute) == (MINUTE_MS, (H + 60_000) // MINUTE_MS)
    assert split_field(CLICK_AGGREGATIONS, hour) == (HOUR_MS, H // HOUR_MS)
    assert minute < 2**31 and hour < 2**23  # listpack 32- and 24-bit integers


def test_pack_keeps_n_first_and_empty_min_max() -> None:
    assert pack([3]) == "3" and unpack(b"3") == (3,)
    assert unpack(pack([4, None, 7])) == (4, None, 7)


def test_windows_at_chosen_instants() -> None:
    t0 = H - 3 * HOUR_MS + 10 * MINUTE_MS
    events = [
        click(t0),
        click(t0 + HOUR_MS // 2, "add_to_cart"),
        click(t0 + HOUR_MS, "purchase"),
        click(t0 + HOUR_MS + 1),
        click(t0 + 2 * HOUR_MS),
    ]
    tiles = tiles_of(CLICK_AGGREGATIONS, events)

    def at(t: int, live: bool) -> tuple[int | None, ...]:
        got = combine(CLICK_AGGREGATIONS, tiles, t, open_head=live)
        return tuple(got[f.name] for f in USER_ACTIVITY.features)

    # features order: clicks 1h/24h/7d, carts 1h/24h/7d, purchases 1h/24h/7d
    assert at(t0 + HOUR_MS + MINUTE_MS, False) == (3, 4, 4, 1, 1, 1, 1, 1, 1)
    assert at(t0 + 2 * HOUR_MS, False) == (2, 4, 4, 0, 1, 1, 1, 1, 1)  # boundary: open tile out
    assert at(t0 + 2 * HOUR_MS + 20_000, True) == (1, 5, 5, 0, 1, 1, 0, 1, 1)  # inside a tile
    assert at(t0 + 3 * HOUR_MS + MINUTE_MS, True) == (0, 5, 5, 0, 1, 1, 0, 1, 1)  # 1 h empty
    assert at(t0 + 8 * 24 * HOUR_MS, True) == (0,) * 9  # every window empty
    assert at(t0 - 1, True) == (0,) * 9  # before any event: nothing from the future


def brute(events: list[dict[str, object]], t: int, window: Window, head: int, live: bool) -> int:
    """The window's documented coverage, event by event: from the first tile boundary at or
    after t - W, up to the last head-tile boundary at or before t (live: up to t's tile end)."""
    start = -((window.length_ms - t) // window.tile_ms) * window.tile_ms
    end = (t // head + (1 if live else 0)) * head
    return sum(1 for e in events if start <= e["event_time"] < end)  # type: ignore[operator]


spans = st.integers(0, 9 * 24 * HOUR_MS)


@given(
    st.lists(st.tuples(spans, st.sampled_from(TYPES)), max_size=60),
    spans,
    st.booleans(),
)
def test_combine_equals_the_events_it_covers(
    spec: list[tuple[int, str]], offset: int, live: bool
) -> None:
    base = H - 8 * 24 * HOUR_MS
    events = [click(base + t, kind) for t, kind in spec]
    t = base + offset
    got = combine(CLICK_AGGREGATIONS, tiles_of(CLICK_AGGREGATIONS, events), t, open_head=live)
    for w in CLICK_AGGREGATIONS.windows:
        assert got[f"clicks_{w.name}"] == brute(events, t, w, MINUTE_MS, live)
        carts = [e for e in events if e["event_type"] == "add_to_cart"]
        assert got[f"carts_{w.name}"] == brute(carts, t, w, MINUTE_MS, live)
        # never older than the window, never after the instant (as of a past instant)
        if not live:
            assert got[f"clicks_{w.name}"] <= sum(
                1
                for e in events
                if t - w.length_ms <= e["event_time"] < t  # type: ignore[operator]
            )


@given(
    st.lists(st.tuples(spans, st.sampled_from(TYPES)), max_size=60),
    spans,
    st.booleans(),
    st.sampled_from([b"", ""]),
)
def test_packed_tiles_as_stored_combine_like_unpacked_ones(
    spec: list[tuple[int, str]], offset: int, live: bool, kind: bytes | str
) -> None:
    """The read path hands combine the packed text Redis holds (bytes) and unpacks only
    the tiles a window counts: the same answer as from unpacked tiles."""
    base = H - 8 * 24 * HOUR_MS
    tiles = tiles_of(CLICK_AGGREGATIONS, [click(base + t, k) for t, k in spec])
    packed = {f: pack(v).encode() if isinstance(kind, bytes) else pack(v) for f, v in tiles.items()}
    t = base + offset
    assert combine(CLICK_AGGREGATIONS, packed, t, open_head=live) == combine(
        CLICK_AGGREGATIONS, tiles, t, open_head=live
    )


@given(st.lists(st.tuples(spans, st.integers(0, 10_000)), min_size=1, max_size=40), st.randoms())
def test_any_order_of_tile_updates_gives_the_same_answer(
    spec: list[tuple[int, int]], rnd: random.Random
) -> None:
    """The job writes each tile's running value (n grows with every event folded in); the
    store keeps the greatest n. Replayed, redelivered or reordered updates end in the same
    tiles, hence the same windows."""
    base = H - 8 * 24 * HOUR_MS
    events = [{"customer_id": 1, "order_ms": base + t, "amount_cents": a} for t, a in spec]
    updates = []  # every intermediate tile value, as the mini-batch aggregation emits them
    for i in range(1, len(events) + 1):
        updates += list(tiles_of(ORDER_AGGREGATIONS, events[:i]).items())
    updates += updates[: len(updates) // 2]  # redelivered
    rnd.shuffle(updates)
    held: dict[int, tuple[int | None, ...]] = {}
    for f, v in updates:
        if newer(held.get(f), v):
            held[f] = v
    assert held == tiles_of(ORDER_AGGREGATIONS, events)
    t = base + max(t for t, _ in spec) + 1
    assert combine(ORDER_AGGREGATIONS, held, t, open_head=True) == combine(
        ORDER_AGGREGATIONS, tiles_of(ORDER_AGGREGATIONS, events), t, open_head=True
    )


def test_min_and_max_over_no_event_are_none_and_sums_zero() -> None:
    aggs = Aggregations(
        source=ORDER_AGGREGATIONS.source,
        measures=(
            Measure("big", "b", "max", column="amount_cents"),
            Measure("small", "m", "min", column="amount_cents"),
            Measure("spend", "s", "sum", column="amount_cents"),
        ),
        windows=(Window("1h", HOUR_MS, MINUTE_MS),),
    )
    tiles = tiles_of(
        aggs, [{"order_ms": H + 5, "amount_cents": 7}, {"order_ms": H, "amount_cents": 3}]
    )
    assert combine(aggs, tiles, H + MINUTE_MS, open_head=False) == {
        "big_1h": 7,
        "small_1h": 3,
        "spend_1h": 10,
    }
    assert combine(aggs, tiles, H + 2 * HOUR_MS, open_head=True) == {
        "big_1h": None,
        "small_1h": None,
        "spend_1h": 0,
    }


def test_declarations_that_cannot_tile_are_refused() -> None:
    source = CLICK_AGGREGATIONS.source
    count = (Measure("n", "n", "count"),)
    with pytest.raises(ValueError, match="multiple of its tile"):
        Aggregations(source, count, (Window("90s", 90_000, MINUTE_MS),))
    with pytest.raises(ValueError, match="not an int64 field"):
        Aggregations(
            source, (Measure("x", "x", "sum", column="page"),), (Window("1h", HOUR_MS, MINUTE_MS),)
        )


def test_tile_writes_drop_what_no_window_reads() -> None:
    """The store's pruning bound per tile size: head (minute) tiles back to the largest tile
    plus the as_of horizon, hour tiles back to the 7 d window."""
    newest = H + 30 * MINUTE_MS
    w = TileWrite(
        USER_ACTIVITY, 1, tile_field(CLICK_AGGREGATIONS, MINUTE_MS, newest), 1, "1,0,0", newest
    )
    args = tile_args(CLICK_AGGREGATIONS, USER_ACTIVITY.ttl_s, [w])
    expire_at, _, nslots, minute, minute_kept, hour, hour_kept = (int(a) for a in args[:7])
    assert nslots == 2 and (minute, hour) == (MINUTE_MS, HOUR_MS)
    assert minute_kept == 2 * HOUR_MS + MINUTE_MS
    assert hour_kept == 7 * 24 * HOUR_MS + HOUR_MS
    assert expire_at == newest + 7 * 24 * HOUR_MS + HOUR_MS


def test_a_tile_the_store_would_drop_at_once_is_not_sent() -> None:
    """A batch holding tiles older than the pruning bound (a replay's backlog) sends only
    those a window still reads, so the hash never outgrows Redis' compact encoding."""
    newest = H + 30 * MINUTE_MS
    old = newest - 3 * HOUR_MS  # its minute tile is past the 2 h bound, its hour tile is not
    writes = [
        TileWrite(USER_ACTIVITY, 1, tile_field(CLICK_AGGREGATIONS, size, t), 1, "1,0,0", t)
        for t in (old, newest)
        for size in CLICK_AGGREGATIONS.tile_sizes
    ]
    args = tile_args(CLICK_AGGREGATIONS, USER_ACTIVITY.ttl_s, writes)
    sent = {int(f) for f in args[8::3]}
    assert int(args[7]) == len(sent) == 3
    assert sent == {w.field for w in writes} - {tile_field(CLICK_AGGREGATIONS, MINUTE_MS, old)}


LATEST = Aggregations(
    source=ORDER_AGGREGATIONS.source,
    measures=(
        Measure("orders", "o", "count"),
        Measure("last_amount", "l", "last", column="amount_cents"),
        Measure("amounts", "d", "approx_distinct", column="amount_cents"),
    ),
    windows=(Window("1h", HOUR_MS, MINUTE_MS), Window("24h", DAY_MS, HOUR_MS)),
)


def order(t: int, amount: int) -> dict[str, object]:
    return {"customer_id": 1, "order_ms": t, "amount_cents": amount}


def test_last_and_approx_distinct_at_chosen_instants() -> None:
    t0 = H + 5 * MINUTE_MS
    events = [
        order(t0, 5),
        order(t0 + 30 * MINUTE_MS, 3),
        order(t0 + 30 * MINUTE_MS, 7),  # same instant as 3: the greater value is the last
        order(t0 + 90 * MINUTE_MS, 5),
    ]
    tiles = tiles_of(LATEST, events)
    # each in its own register (the set's estimate by linear counting: 64 ln(64/61) = 3.07)
    assert sketch_estimate(sketch_of(["5", "3", "7"])) == 3

    def at(t: int, live: bool) -> tuple[int | None, ...]:
        got = combine(LATEST, tiles, t, open_head=live)
        return tuple(
            got[n] for n in ("last_amount_1h", "amounts_1h", "last_amount_24h", "amounts_24h")
        )

    assert at(t0 + HOUR_MS, False) == (7, 3, 7, 3)
    assert at(t0 + 2 * HOUR_MS, True) == (5, 1, 5, 3)  # 1 h: only the order at +90 min
    assert at(t0 + 90 * MINUTE_MS, False) == (7, 2, 7, 3)  # as of +90 min: that tile is open
    assert at(t0 + 3 * HOUR_MS, True) == (None, 0, 5, 3)  # 1 h empty: no last, 0 distinct
    assert at(t0 + 2 * DAY_MS, True) == (None, 0, None, 0)


@given(
    st.lists(st.tuples(spans, st.integers(-5, 30)), max_size=50),
    spans,
    st.booleans(),
)
def test_last_and_approx_distinct_equal_the_events_they_cover(
    spec: list[tuple[int, int]], offset: int, live: bool
) -> None:
    """``last`` is the value of the greatest (time, value) among the events the window
    covers, ``approx_distinct`` the estimate of exactly their values' sketch."""
    base = H - 8 * 24 * HOUR_MS
    events = [order(base + t, a) for t, a in spec]
    t = base + offset
    got = combine(LATEST, tiles_of(LATEST, events), t, open_head=live)
    for w in LATEST.windows:
        start = -((w.length_ms - t) // w.tile_ms) * w.tile_ms
        end = (t // MINUTE_MS + (1 if live else 0)) * MINUTE_MS
        covered = [
            (e["order_ms"], e["amount_cents"]) for e in events if start <= e["order_ms"] < end
        ]  # type: ignore[operator]
        assert got[f"last_amount_{w.name}"] == (max(covered)[1] if covered else None)
        values = [str(a) for _, a in covered]
        assert got[f"amounts_{w.name}"] == sketch_estimate(sketch_of(values))


@given(st.lists(st.tuples(spans, st.integers(0, 50)), min_size=1, max_size=40), st.randoms())
def test_last_and_approx_distinct_any_order_of_tile_updates(
    spec: list[tuple[int, int]], rnd: random.Random
) -> None:
    base = H - 8 * 24 * HOUR_MS
    events = [order(base + t, a) for t, a in spec]
    arrived = events + events[: len(events) // 2]
    rnd.shuffle(arrived)
    updates = []
    for i in range(1, len(arrived) + 1):
        updates += list(tiles_of(LATEST, arrived[:i]).items())
    rnd.shuffle(updates)
    held: dict[int, tuple[int | None, ...]] = {}
    for f, v in updates:
        if newer(held.get(f), v):
            held[f] = v
    # the final tiles hold every arrival (n counts the duplicates), the same last and sketch
    assert held == tiles_of(LATEST, arrived)
    final = tiles_of(LATEST, events)
    for f, v in held.items():
        assert v[1:] == final[f][1:]
    assert unpack(pack(next(iter(held.values())))) == next(iter(held.values()))


def test_approx_distinct_error_is_about_ten_percent() -> None:
    """Over 30 disjoint sets per size, the estimate's relative error: mean within 5 %, spread
    (one standard error) within 15 %, none off by more than half."""
    for n in (2, 10, 100, 1000):
        errors = []
        for trial in range(30):
            cols = sketch_of(f"/p/{trial}/{i}" for i in range(n))
            errors.append(sketch_estimate(cols) / n - 1)
        assert abs(statistics.mean(errors)) < 0.05, n
        assert statistics.pstdev(errors) < 0.15, n
        assert max(map(abs, errors)) <= 0.5, n


def test_last_and_approx_distinct_need_a_field() -> None:
    with pytest.raises(ValueError, match="not an int64 field"):
        Aggregations(
            source=CLICK_AGGREGATIONS.source,
            measures=(Measure("last_page", "l", "last", column="page"),),
            windows=(Window("1h", HOUR_MS, MINUTE_MS),),
        )
    with pytest.raises(ValueError, match="not a field"):
        Aggregations(
            source=CLICK_AGGREGATIONS.source,
            measures=(Measure("pages", "p", "approx_distinct", column="nope"),),
            windows=(Window("1h", HOUR_MS, MINUTE_MS),),
        )


@given(
    st.lists(
        st.lists(st.tuples(spans, st.sampled_from(TYPES), st.integers(-50, 5000)), max_size=30),
        min_size=1,
        max_size=6,
    ),
    spans,
    st.booleans(),
    st.sampled_from([CLICK_AGGREGATIONS, ORDER_AGGREGATIONS, LATEST]),
    st.sampled_from([None, b"_t", b"x"]),
)
def test_a_batch_of_stored_hashes_combines_like_each_entity_alone(
    per_entity: list[list[tuple[int, str, int]]],
    offset: int,
    live: bool,
    aggs: Aggregations,
    extra: bytes | None,
) -> None:
    """hash_combiner (numpy over the whole batch, for counts and sums) answers what combine
    answers entity by entity, with the hashes as Redis returns them (bytes, ``_t`` beside
    the tiles, an empty hash for an absent entity, a stray field: the per-entity path)."""
    base = H - 8 * 24 * HOUR_MS
    t = base + offset
    raws: list[dict[bytes, bytes]] = []
    for spec in per_entity:
        events = [
            {"event_time": base + dt, "order_ms": base + dt, "event_type": k, "amount_cents": a}
            for dt, k, a in spec
        ]
        raw = {str(f).encode(): pack(v).encode() for f, v in tiles_of(aggs, events).items()}
        if extra is not None and raw:
            raw[extra] = b"1"
        raws.append(raw)
    want = [
        combine(aggs, {int(f): v for f, v in raw.items() if f.isdigit()}, t, open_head=live)
        for raw in raws
    ]
    assert hash_combiner(aggs, t, open_head=live)(raws) == want
