"""Freshness and status of stored values, judged from rows as the online store returns them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.events import Source
from core.features import CUSTOMER_PROFILE, USER_ACTIVITY, USER_SESSIONS, FeatureView
from core.version import EncodedVersion, cdc_version, click_version, crm_version
from feature_api.freshness import (
    Status,
    compact_values,
    feature_state,
    row_states,
    row_values,
    version_field,
)
from tests.grouped_view import GROUPED_ACTIVITY

NOW = 1_800_000_000_000
DAY_MS = 86_400_000


def _cdc(t: int) -> str:
    return cdc_version({"ts_ms": t, "lsn": 9, "sequence": '["8","9"]'}).encode()


def test_attribute_view_dates_each_attribute_by_its_own_version() -> None:
    fresh, old = NOW - 5_000, NOW - DAY_MS - 1
    row = {
        "email": "a@example.com",
        "e@": _cdc(fresh),
        "tier": "gold",
        "t@": crm_version(old, old, "crm/a.csv", 3).encode(),
    }
    email, segment, tier = row_states(
        view=CUSTOMER_PROFILE, features=CUSTOMER_PROFILE.features, row=row, now_ms=NOW
    )
    assert (email.status, email.value, email.event_time, email.age_ms, email.source) == (
        Status.PRESENT,
        "a@example.com",
        fresh,
        5_000,
        Source.PG_CDC,
    )
    assert (segment.status, segment.value, segment.event_time) == (Status.MISSING, None, None)
    assert (tier.status, tier.value, tier.event_time, tier.source) == (
        Status.EXPIRED,
        None,
        old,
        Source.S3_CRM,
    )


def test_tombstoned_attribute_is_missing_and_keeps_the_delete_version() -> None:
    row = {"e@": _cdc(NOW - 10)}  # value deleted, version kept
    state = feature_state(
        view=CUSTOMER_PROFILE, feature=CUSTOMER_PROFILE.feature("email"), row=row, now_ms=NOW
    )
    assert (state.status, state.value, state.event_time, state.source) == (
        Status.MISSING,
        None,
        NOW - 10,
        Source.PG_CDC,
    )


def test_grouped_view_dates_each_feature_by_its_group() -> None:
    h1, d7 = NOW - 1_000, NOW - DAY_MS  # the 7d group was last written a day ago: expired
    row = {
        "clicks_1h": 3,
        "clicks_7d": 40,
        "1h@": click_version(h1, 0, 5).encode(),
        "7d@": click_version(d7, 0, 2).encode(),
        "_t": str(h1),
    }
    c1h = feature_state(
        view=GROUPED_ACTIVITY, feature=GROUPED_ACTIVITY.feature("clicks_1h"), row=row, now_ms=NOW
    )
    c7d = feature_state(
        view=GROUPED_ACTIVITY, feature=GROUPED_ACTIVITY.feature("clicks_7d"), row=row, now_ms=NOW
    )
    assert (c1h.status, c1h.value, c1h.event_time, c1h.source) == (
        Status.PRESENT,
        3,
        h1,
        Source.CLICKSTREAM,
    )
    assert (c7d.status, c7d.value, c7d.event_time) == (Status.EXPIRED, None, d7)
    assert version_field(GROUPED_ACTIVITY, GROUPED_ACTIVITY.feature("purchases_24h")) == "24h@"


def test_plain_view_scope_dates_by_row_event_time_and_source_from_row_version() -> None:
    t = NOW - 60_000
    row = {"last_session_events": 2, "_t": str(t), "_v": click_version(t, 1, 7).encode()}
    pair = (USER_SESSIONS.feature("last_session_events"), USER_SESSIONS.features[0])
    n, d = row_states(view=USER_SESSIONS, features=pair, row=row, now_ms=NOW)
    assert (n.status, n.value, n.event_time, n.age_ms, n.source) == (
        Status.PRESENT,
        2,
        t,
        60_000,
        Source.CLICKSTREAM,
    )
    assert (d.status, d.event_time) == (Status.MISSING, t)


def test_unknown_source_priority_is_reported_as_none() -> None:
    row = {"last_session_events": 1, "_t": str(NOW), "_v": EncodedVersion(NOW, "zz").encode()}
    state = feature_state(
        view=USER_SESSIONS,
        feature=USER_SESSIONS.feature("last_session_events"),
        row=row,
        now_ms=NOW,
    )
    assert state.status is Status.PRESENT and state.source is None


def test_absent_row_is_missing_everywhere() -> None:
    for view in (CUSTOMER_PROFILE, USER_ACTIVITY, USER_SESSIONS):
        states = row_states(view=view, features=view.features, row={}, now_ms=NOW)
        assert {s.status for s in states} == {Status.MISSING}
        assert all(s.value is None and s.event_time is None for s in states)


@given(age=st.integers(min_value=-DAY_MS, max_value=3 * DAY_MS))
def test_expired_exactly_when_redis_ttl_from_event_time_would_fire(age: int) -> None:
    """Redis expires the key at event_time + ttl (PEXPIREAT): the API agrees to the ms."""
    event_time = NOW - age
    row = {"email": "x@example.com", "e@": _cdc(event_time)}
    state = feature_state(
        view=CUSTOMER_PROFILE, feature=CUSTOMER_PROFILE.feature("email"), row=row, now_ms=NOW
    )
    expired = event_time + CUSTOMER_PROFILE.ttl_s * 1000 <= NOW
    assert state.status is (Status.EXPIRED if expired else Status.PRESENT)
    assert state.age_ms == age and state.event_time == event_time
    assert (state.value is None) is expired


@given(
    t1=st.integers(min_value=0, max_value=NOW),
    t24=st.integers(min_value=0, max_value=NOW),
    row_t=st.integers(min_value=0, max_value=NOW),
)
def test_a_group_is_judged_by_its_own_version_never_by_the_row_time(
    t1: int, t24: int, row_t: int
) -> None:
    row = {
        "carts_1h": 1,
        "carts_24h": 2,
        "1h@": click_version(t1, 0, 1).encode(),
        "24h@": click_version(t24, 0, 1).encode(),
        "_t": str(row_t),
    }
    states = row_states(
        view=GROUPED_ACTIVITY,
        features=(GROUPED_ACTIVITY.feature("carts_1h"), GROUPED_ACTIVITY.feature("carts_24h")),
        row=row,
        now_ms=NOW,
    )
    assert [s.event_time for s in states] == [t1, t24]


_VIEWS = (CUSTOMER_PROFILE, GROUPED_ACTIVITY, USER_SESSIONS, USER_ACTIVITY)


@st.composite
def _rows(draw: st.DrawFn) -> tuple[FeatureView, dict[str, object]]:
    """A view and a row of it as the store returns them: any subset of values, version
    fields of any age (some expired, some from the future), or none."""
    view = draw(st.sampled_from(_VIEWS))
    ages = st.integers(min_value=-60_000, max_value=2 * DAY_MS)
    row: dict[str, object] = {}
    for f in view.features:
        if draw(st.booleans()):
            row[f.name] = draw(st.integers(0, 99)) if f.dtype == "int64" else "x"
    for vfield in {version_field(view, f) for f in view.features} | {"_t"}:
        if draw(st.booleans()):
            t = NOW - draw(ages)
            row[vfield] = str(t) if vfield == "_t" else click_version(t, 0, 1).encode()
    return view, row


@given(_rows())
def test_the_compact_answer_agrees_with_the_full_one(case: tuple[FeatureView, dict]) -> None:
    view, row = case
    full = row_values(view=view, features=view.features, row=row, now_ms=NOW)
    compact = compact_values(view=view, features=view.features, row=row, now_ms=NOW)
    indexes = sorted(i for m in compact["meta"] for i in m["features"])
    assert indexes == list(range(len(view.features)))  # each feature dated by one meta
    for i, f in enumerate(view.features):
        meta = next(m for m in compact["meta"] if i in m["features"])
        state, value = full[f.name], compact["values"][i]
        assert (meta["event_time"], meta["age_ms"], meta["source"]) == (
            state["event_time"],
            state["age_ms"],
            state["source"],
        )
        if state["status"] is Status.PRESENT:
            assert value == state["value"] and not meta["expired"]
        elif state["status"] is Status.EXPIRED:
            assert value is None and meta["expired"]
        else:
            assert value is None
    keys = [(m["event_time"], m["source"], m["expired"]) for m in compact["meta"]]
    assert len(keys) == len(set(keys))  # each distinct freshness once
    if view is not CUSTOMER_PROFILE and not view.groups:
        assert len(compact["meta"]) == 1  # freshness once per entity
