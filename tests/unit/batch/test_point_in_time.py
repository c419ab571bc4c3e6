"""The point-in-time rule (batch/point_in_time.py) against a brute-force per-row reference."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch.point_in_time import (
    JoinStats,
    Requested,
    TrainingSetError,
    join,
    parse_features,
)
from core.features import CUSTOMER_PROFILE, USER_SESSIONS, view
from core.version import cdc_version, click_version, crm_version
from tests.unit.batch.offline_rows import GROUPED, VIEWS, row, table

HOUR = 3_600_000
DAY = 24 * HOUR


def _join(spine: pa.Table, rows: Sequence[dict[str, Any]], names: Sequence[str]) -> pa.Table:
    return join(
        spine,
        table(rows),
        parse_features(names, VIEWS),
        entity_column="entity_id",
        timestamp_column="timestamp",
    )


def _spine(pairs: Sequence[tuple[int, int]]) -> pa.Table:
    return pa.table(
        {
            "entity_id": pa.array([e for e, _ in pairs], pa.int64()),
            "timestamp": pa.array([t for _, t in pairs], pa.int64()),
        }
    )


def _decode(raw: str | None, req: Requested) -> Any:
    if raw is None:
        return None
    return {"int64": int, "bool": lambda s: s == "1", "string": str}[req.feature.dtype](raw)


def reference(
    spine: Sequence[tuple[int, int]], rows: Sequence[dict[str, Any]], reqs: Sequence[Requested]
) -> list[dict[str, Any]]:
    """The rule spelled out row by row: the greatest version among the slot's rows with
    event_time <= ts; NULL when none, when expired, or when it lacks the feature."""
    out = []
    for entity, ts in spine:
        result: dict[str, Any] = {"entity_id": entity, "timestamp": ts}
        for req in reqs:
            candidates = [
                r
                for r in rows
                if r["view"] == req.view.name
                and r["entity_id"] == entity
                and r["grp"] == req.slot
                and r["event_time"] <= ts
            ]
            value = None
            if candidates:
                best = max(candidates, key=lambda r: r["version"])
                if ts - best["event_time"] < req.view.ttl_s * 1000:
                    value = _decode(dict(best["features"]).get(req.feature.name), req)
            result[req.column] = value
        out.append(result)
    return out


def test_value_as_of_the_spine_time_never_a_later_one() -> None:
    rows = [
        row("grouped_activity", 1, "1h", {"clicks_1h": "3"}, 10 * HOUR),
        row("grouped_activity", 1, "1h", {"clicks_1h": "7"}, 12 * HOUR),
    ]
    spine = _spine([(1, 10 * HOUR - 1), (1, 10 * HOUR), (1, 11 * HOUR), (1, 12 * HOUR), (2, DAY)])
    got = _join(spine, rows, ["grouped_activity:clicks_1h"])
    assert got.column("grouped_activity__clicks_1h").to_pylist() == [None, 3, 3, 7, None]
    assert got.column("entity_id").to_pylist() == [1, 1, 1, 1, 2]  # spine order kept


def test_greatest_version_wins_not_the_last_row_or_arrival() -> None:
    late_arrival_older = row("user_sessions", 1, "", {"last_session_events": "1"}, 5 * HOUR, 9)
    newer = row("user_sessions", 1, "", {"last_session_events": "2"}, 5 * HOUR + 1, 0)
    got = _join(_spine([(1, 6 * HOUR)]), [newer, late_arrival_older], ["user_sessions"])
    assert got.column("user_sessions__last_session_events").to_pylist() == [2]


def test_equal_event_time_is_decided_by_the_rest_of_the_version() -> None:
    t = 5 * HOUR
    low = row("user_lags", 1, "", {"last_event_type": "view"}, t, offset=41)
    high = row("user_lags", 1, "", {"last_event_type": "purchase"}, t, offset=42)
    for order in ([low, high], [high, low]):
        got = _join(_spine([(1, t)]), order, ["user_lags:last_event_type"])
        assert got.column("user_lags__last_event_type").to_pylist() == ["purchase"]


def test_source_priority_breaks_an_event_time_tie_per_attribute() -> None:
    t = 3 * HOUR
    cdc = cdc_version({"ts_ms": t, "lsn": 100}).encode()  # pg_cdc outranks s3_crm
    crm = crm_version(t, t + 5, "crm/x.csv", 1).encode()
    assert cdc > crm
    rows = [
        row("customer_profile", 7, "tier", {"tier": "gold"}, t, version=cdc),
        row("customer_profile", 7, "tier", {"tier": "silver"}, t, version=crm),
        row("customer_profile", 7, "segment", {"segment": "smb"}, t - HOUR, version=crm),
    ]
    got = _join(_spine([(7, t)]), rows, ["customer_profile"])
    assert got.column("customer_profile__tier").to_pylist() == ["gold"]
    assert got.column("customer_profile__segment").to_pylist() == ["smb"]  # LWW per attribute
    assert got.column("customer_profile__email").to_pylist() == [None]


def test_attribute_tombstone_is_null_until_a_newer_value() -> None:
    rows = [
        row("customer_profile", 1, "email", {"email": "a@x"}, HOUR),
        row("customer_profile", 1, "email", {"email": None}, 2 * HOUR),
        row("customer_profile", 1, "email", {"email": "b@x"}, 3 * HOUR),
    ]
    spine = _spine([(1, HOUR), (1, 2 * HOUR), (1, 3 * HOUR)])
    got = _join(spine, rows, ["customer_profile:email"])
    assert got.column("customer_profile__email").to_pylist() == ["a@x", None, "b@x"]


def test_ttl_expiry_at_exactly_the_ttl() -> None:
    ttl = GROUPED.ttl_s * 1000
    rows = [row("grouped_activity", 1, "24h", {"clicks_24h": "4"}, HOUR)]
    spine = _spine([(1, HOUR + ttl - 1), (1, HOUR + ttl), (1, HOUR + 2 * ttl)])
    stats = JoinStats()
    got = join(
        spine,
        table(rows),
        parse_features(["grouped_activity:clicks_24h"], VIEWS),
        entity_column="entity_id",
        timestamp_column="timestamp",
        stats=stats,
    )
    assert got.column("grouped_activity__clicks_24h").to_pylist() == [4, None, None]
    assert stats.found["grouped_activity__clicks_24h"] == 3
    assert stats.expired["grouped_activity__clicks_24h"] == 2


def test_windows_are_separate_slots() -> None:
    rows = [
        row("grouped_activity", 1, "1h", {"clicks_1h": "1", "carts_1h": "0"}, 2 * HOUR),
        row("grouped_activity", 1, "7d", {"clicks_7d": "40", "purchases_7d": "2"}, HOUR),
    ]
    got = _join(_spine([(1, 3 * HOUR)]), rows, ["grouped_activity"])
    values = {k: v[0] for k, v in got.to_pydict().items()}
    assert values["grouped_activity__clicks_1h"] == 1
    assert values["grouped_activity__clicks_7d"] == 40  # an older group row is not superseded
    assert values["grouped_activity__purchases_7d"] == 2
    assert values["grouped_activity__clicks_24h"] is None


def test_without_groups_the_newest_row_decides_every_feature() -> None:
    rows = [
        row("user_sessions", 1, "", {"last_session_events": "3", "last_session_pages": "4"}, HOUR),
        row("user_sessions", 1, "", {"last_session_events": "5"}, 2 * HOUR),  # pages removed
    ]
    got = _join(_spine([(1, HOUR), (1, 2 * HOUR)]), rows, ["user_sessions"])
    assert got.column("user_sessions__last_session_events").to_pylist() == [3, 5]
    assert got.column("user_sessions__last_session_pages").to_pylist() == [4, None]


def test_dtypes_follow_the_declaration() -> None:
    rows = [
        row(
            "user_sessions",
            1,
            "",
            {"last_session_converted": "1", "last_session_pages": "3"},
            HOUR,
        )
    ]
    got = _join(_spine([(1, HOUR)]), rows, ["user_sessions"])
    assert got.schema.field("user_sessions__last_session_converted").type == pa.bool_()
    assert got.schema.field("user_sessions__last_session_pages").type == pa.int64()
    assert got.column("user_sessions__last_session_converted").to_pylist() == [True]


def test_spine_timestamps_may_be_arrow_timestamps_and_other_columns_pass_through() -> None:
    rows = [row("user_sessions", 1, "", {"last_session_events": "5"}, 2 * HOUR)]
    spine = pa.table(
        {
            "label": [1, 0],
            "entity_id": pa.array([1, 1], pa.int32()),
            "timestamp": pa.array([2 * HOUR, 2 * HOUR - 1], pa.timestamp("ms", "UTC")),
        }
    )
    got = _join(spine, rows, ["user_sessions:last_session_events"])
    assert got.column_names[:3] == ["label", "entity_id", "timestamp"]
    assert got.column("user_sessions__last_session_events").to_pylist() == [5, None]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["no_such_view"], "unknown feature view 'no_such_view'"),
        (["user_activity:nope"], "has no feature 'nope'"),
        ([" , "], "no features requested"),
    ],
)
def test_unknown_names_say_what_exists(names: list[str], message: str) -> None:
    with pytest.raises(TrainingSetError, match=message):
        parse_features(names, VIEWS)


def test_parse_keeps_order_and_drops_duplicates() -> None:
    reqs = parse_features(["user_lags:last_event_type,customer_profile", "user_lags"])
    assert [r.ref for r in reqs][:4] == [
        "user_lags:last_event_type",
        "customer_profile:email",
        "customer_profile:segment",
        "customer_profile:tier",
    ]
    assert len(reqs) == 4 + len(view("user_lags").features) - 1


@pytest.mark.parametrize(
    ("spine", "message"),
    [
        (pa.table({"entity_id": [1]}), "spine has no column 'timestamp'"),
        (pa.table({"entity_id": ["a"], "timestamp": [1]}), "expected integer ids"),
        (pa.table({"entity_id": [1], "timestamp": ["x"]}), "expected epoch milliseconds"),
        (pa.table({"entity_id": [1, None], "timestamp": [1, 2]}), "1 null value"),
    ],
)
def test_bad_spines_are_refused_with_the_reason(spine: pa.Table, message: str) -> None:
    with pytest.raises(TrainingSetError, match=message):
        _join(spine, [], ["user_lags"])


# ---- properties ------------------------------------------------------------------------

_REQS = parse_features(
    ["grouped_activity:clicks_1h,grouped_activity:clicks_24h", "customer_profile"], VIEWS
)
_SLOTS = [
    ("grouped_activity", "1h", "clicks_1h"),
    ("grouped_activity", "24h", "clicks_24h"),
    ("customer_profile", "tier", "tier"),
    ("customer_profile", "email", "email"),
]
_TIME = st.integers(0, 3 * DAY)
_OFFLINE_ROW = st.tuples(
    st.sampled_from(_SLOTS),
    st.integers(1, 4),  # entity
    _TIME,  # event time
    st.integers(0, 3),  # offset: equal event times are common
    st.one_of(st.none(), st.integers(0, 99)),  # value, None a delete/absent field
)


def _rows(drawn: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Distinct versions (a version names one write); duplicates collapse to the first."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for (view_name, grp, feature), entity, t, offset, value in drawn:
        if view_name == "customer_profile":
            value = None if value is None else f"v{value}"
        text = None if value is None else str(value)
        key = (view_name, grp, entity, t, offset)
        rows.setdefault(key, row(view_name, entity, grp, {feature: text}, t, offset))
    return list(rows.values())


@given(
    drawn=st.lists(_OFFLINE_ROW, max_size=60),
    spine=st.lists(st.tuples(st.integers(0, 5), _TIME), min_size=1, max_size=30),
    seed=st.integers(0, 2**32 - 1),
)
def test_equals_the_brute_force_reference_in_any_row_order(
    drawn: list[tuple[Any, ...]], spine: list[tuple[int, int]], seed: int
) -> None:
    rows = _rows(drawn)
    expected = reference(spine, rows, _REQS)
    random.Random(seed).shuffle(rows)
    got = join(
        _spine(spine),
        table(rows),
        _REQS,
        entity_column="entity_id",
        timestamp_column="timestamp",
    )
    assert got.to_pylist() == expected


@given(
    drawn=st.lists(_OFFLINE_ROW, max_size=60),
    spine=st.lists(st.tuples(st.integers(1, 4), _TIME), min_size=1, max_size=30),
)
def test_no_value_from_after_the_spine_time_ever_appears(
    drawn: list[tuple[Any, ...]], spine: list[tuple[int, int]]
) -> None:
    # every value names its own event time, so a leaked future value is visible as such
    rows = [
        row("grouped_activity", r["entity_id"], "1h", {"clicks_1h": str(r["event_time"])}, **t)
        for r in _rows(drawn)
        for t in [{"event_time": r["event_time"], "version": r["version"]}]
    ]
    got = _join(_spine(spine), rows, ["grouped_activity:clicks_1h"])
    for (_, ts), value in zip(
        spine, got.column("grouped_activity__clicks_1h").to_pylist(), strict=True
    ):
        assert value is None or value <= ts


@given(
    versions=st.lists(st.tuples(_TIME, st.integers(0, 3)), min_size=1, max_size=20, unique=True),
    ts=_TIME,
)
def test_an_unaligned_version_still_wins_by_version(
    versions: list[tuple[int, int]], ts: int
) -> None:
    """The rule is "greatest version among event_time <= ts", whatever the event times: rows
    whose version does not follow their event time (not written by the job) still obey it."""
    rng = random.Random(len(versions))
    rows = [
        row(
            "user_sessions",
            1,
            "",
            {"last_session_events": str(i)},
            t,
            version=click_version(rng.randrange(10**6), 0, i).encode(),
        )
        for i, (t, _) in enumerate(versions)
    ]
    reqs = parse_features(["user_sessions:last_session_events"])
    got = _join(_spine([(1, ts)]), rows, ["user_sessions:last_session_events"])
    assert got.to_pylist() == reference([(1, ts)], rows, reqs)


def test_user_sessions_is_one_slot() -> None:
    assert {Requested(USER_SESSIONS, f).slot for f in USER_SESSIONS.features} == {""}
    assert Requested(CUSTOMER_PROFILE, CUSTOMER_PROFILE.features[0]).slot == "email"


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=3 * DAY),
            st.sampled_from(["page_view", "add_to_cart", "purchase"]),
        ),
        min_size=1,
        max_size=40,
    ),
    st.lists(st.integers(min_value=0, max_value=4 * DAY), min_size=1, max_size=8),
)
def test_windowed_views_combine_the_final_tiles_as_of_each_spine_time(
    clicks: list[tuple[int, str]], instants: list[int]
) -> None:
    """The join's windowed columns equal core.windows.combine over the final tiles, as of the
    spine time and from complete tiles only; rows of the per-event layout before tiles (grp
    '' or a window name) are not tiles and are passed over."""
    from core.features import CLICK_AGGREGATIONS, USER_ACTIVITY
    from core.windows import combine, tiles_of

    base = 1_800_000_000_000 // DAY * DAY
    events = [{"user_id": 1, "event_time": base + t, "event_type": k} for t, k in clicks]
    tiles = tiles_of(CLICK_AGGREGATIONS, events)
    names = ["n", "carts", "purchases"]
    rows = [
        row("user_activity", 1, str(f), dict(zip(names, map(str, v), strict=True)), base, n)
        for n, (f, v) in enumerate(tiles.items())
    ]
    rows += [  # the old layout: one row per event with every window, grp '' or per window
        row("user_activity", 1, "", {"clicks_1h": "99"}, base),
        row("user_activity", 1, "1h", {"clicks_1h": "98"}, base),
    ]
    spine = [(1, base + t) for t in instants]
    got = _join(_spine(spine), rows, ["user_activity"])
    for i, (_, t) in enumerate(spine):
        want = combine(CLICK_AGGREGATIONS, tiles, t, open_head=False)
        assert {
            f.name: got.column(f"user_activity__{f.name}")[i].as_py()
            for f in USER_ACTIVITY.features
        } == want


# ---- lag views: derived from the two latest event rows ----------------------------------


def _lag_row(entity: int, event_type: str, t: int, offset: int) -> dict[str, Any]:
    """user_lags as the feature job writes it offline: one row per event, its own value."""
    return row("user_lags", entity, "", {"last_event_type": event_type}, t, offset=offset)


def test_lags_are_derived_from_the_two_latest_events_at_or_before_the_instant() -> None:
    rows = [
        _lag_row(1, "page_view", HOUR, 5),
        _lag_row(1, "purchase", 2 * HOUR, 9),  # the same time: ordered by the offset
        _lag_row(1, "add_to_cart", 2 * HOUR, 7),
        _lag_row(1, "add_to_cart", 2 * HOUR, 7),  # a replay wrote it again: one event
        _lag_row(2, "search", HOUR, 1),
    ]
    instants = [HOUR - 1, HOUR, 2 * HOUR - 1, 2 * HOUR, 2 * HOUR + DAY - 1, 2 * HOUR + DAY]
    got = _join(_spine([(1, t) for t in instants] + [(3, HOUR)]), rows, ["user_lags"])
    assert got.column("user_lags__last_event_type").to_pylist() == [
        None, "page_view", "page_view", "purchase", "purchase", None, None,
    ]  # fmt: skip
    assert got.column("user_lags__prev_event_type").to_pylist() == [
        None, None, None, "add_to_cart", "add_to_cart", None, None,
    ]  # fmt: skip
    assert got.column("user_lags__ms_since_prev_event").to_pylist() == [
        None, None, None, 0, 0, None, None,  # expired a day after the latest event
    ]  # fmt: skip


def test_a_previous_order_past_the_lags_horizon_is_none_offline() -> None:
    """As online (flink_jobs.sql.Chain): the horizon apart pairs, 1 ms more does not."""
    from core.features import ORDER_LAGS

    assert ORDER_LAGS.lags is not None
    h, t0 = ORDER_LAGS.lags.horizon_ms, 1_700_000_000_000
    rows = [
        row("order_lags", c, "", {"last_order_cents": str(a)}, t, offset=i)
        for i, (c, t, a) in enumerate(
            [(1, t0, 100), (1, t0 + h, 250), (2, t0, 100), (2, t0 + h + 1, 250)]
        )
    ]
    got = _join(_spine([(1, t0 + h), (2, t0 + h + 1)]), rows, ["order_lags"]).to_pylist()
    names = ["last_order_cents", "prev_order_cents", "order_delta_cents", "ms_since_prev_order"]
    assert [tuple(r[f"order_lags__{n}"] for n in names) for r in got] == [
        (250, 100, 150, h),
        (250, None, None, None),
    ]


@given(
    st.lists(
        st.tuples(st.integers(1, 3), st.integers(0, 40), st.integers(0, 5), st.integers(0, 9)),
        max_size=30,
    ),
    st.lists(st.tuples(st.integers(1, 4), st.integers(-1, 45)), min_size=1, max_size=20),
    st.randoms(use_true_random=False),
)
def test_lag_join_equals_the_lags_of_the_latest_event_whatever_the_row_order(
    events: list[tuple[int, int, int, int]],
    spine: list[tuple[int, int]],
    rnd: random.Random,
) -> None:
    """Orders (customer, minute, offset, amount): the join's order_lags at each instant are
    flink_jobs.logic.lags' per-event lags at the latest order at or before it (rows in any
    order, some written twice)."""
    from flink_jobs.logic.lags import lags

    minute = 60_000
    unique = {(c, t, o): a for c, t, o, a in events}  # one event per (time, offset)
    rows = [
        row("order_lags", c, "", {"last_order_cents": str(a)}, t * minute, offset=o)
        for (c, t, o), a in unique.items()
    ]
    rows += rnd.sample(rows, len(rows) // 3)
    rnd.shuffle(rows)
    truth = lags(
        unique.items(),
        entity_of=lambda e: e[0][0],
        time_of=lambda e: e[0][1] * minute,
        version_of=lambda e: click_version(e[0][1] * minute, 0, e[0][2]),
        value_of=lambda e: e[1],
    )
    got = _join(_spine([(c, t * minute) for c, t in spine]), rows, ["order_lags"]).to_pylist()
    for (c, t), out in zip(spine, got, strict=True):
        at = [x for x in truth if x.entity_id == c and x.time_ms <= t * minute]
        want = (None, None, None, None)
        if at:
            x = at[-1]
            delta = None if x.prev_value is None else x.value - x.prev_value
            want = (x.value, x.prev_value, delta, x.ms_since_prev)
        assert (
            out["order_lags__last_order_cents"],
            out["order_lags__prev_order_cents"],
            out["order_lags__order_delta_cents"],
            out["order_lags__ms_since_prev_order"],
        ) == want
