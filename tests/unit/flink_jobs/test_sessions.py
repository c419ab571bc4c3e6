"""Sessions: the exact gap boundary, out-of-order merging, lateness, features."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.features import SESSION_GAP_MS, USER_SESSIONS
from flink_jobs.logic.records import ClickEvent
from flink_jobs.logic.sessions import (
    Session,
    Sessionizer,
    session_count_rows,
    session_features,
    session_rows,
    sessions_24h,
    sessions_of,
)
from tests.unit.flink_jobs.helpers import DAY, MINUTE, T0, click

GAP = SESSION_GAP_MS


def test_event_at_exactly_the_gap_starts_a_new_session() -> None:
    a, b = click(1, T0), click(1, T0 + GAP)
    sessions = sessions_of([b, a])
    assert [(s.start_ms, s.end_ms) for s in sessions] == [(T0, T0), (T0 + GAP, T0 + GAP)]


def test_event_one_ms_inside_the_gap_joins() -> None:
    a, b = click(1, T0), click(1, T0 + GAP - 1)
    assert sessions_of([a, b]) == [Session(1, T0, T0 + GAP - 1, (a, b))]


def test_streaming_close_at_the_gap() -> None:
    s = Sessionizer(GAP, out_of_orderness_ms=0)
    first = click(1, T0)
    assert s.add(first) == []
    assert s.add(click(1, T0 + GAP - 1)) == []  # joins, nothing closes
    closed = s.add(click(1, T0 + 2 * GAP - 1))  # exactly last + gap: closes the first
    assert [(c.start_ms, c.end_ms, c.event_count) for c in closed] == [(T0, T0 + GAP - 1, 2)]
    assert s.watermark == T0 + 2 * GAP - 2


def test_single_event_session_lasts_zero_seconds() -> None:
    (session,) = sessions_of([click(1, T0 + 123)])
    assert session.duration_s == 0
    assert (session.event_count, session.distinct_pages, session.converted) == (1, 1, False)
    (session,) = sessions_of([click(1, T0), click(1, T0 + 1_999)])
    assert session.duration_s == 1  # floor


def test_session_content() -> None:
    events = [
        click(1, T0, "page_view", "/product/1"),
        click(1, T0 + MINUTE, "add_to_cart", "/product/1"),
        click(1, T0 + 2 * MINUTE, "page_view", "/checkout"),
        click(1, T0 + 3 * MINUTE, "purchase", "/checkout"),
    ]
    (session,) = sessions_of(events)
    assert (session.distinct_pages, session.converted, session.duration_s) == (2, True, 180)


def test_an_out_of_order_event_bridges_two_sessions() -> None:
    s = Sessionizer(GAP, out_of_orderness_ms=None)
    s.add(click(1, T0))
    s.add(click(1, T0 + GAP + 10 * MINUTE))
    assert len(s.open_sessions(1)) == 2
    s.add(click(1, T0 + 20 * MINUTE))  # within the gap of both
    assert [x.event_count for x in s.open_sessions(1)] == [3]
    assert [x.event_count for x in s.flush()] == [3]


def test_late_event_is_set_aside() -> None:
    s = Sessionizer(GAP, out_of_orderness_ms=0)
    s.add(click(1, T0))
    closed = s.add(click(2, T0 + 3 * GAP))  # another user's event moves the watermark
    assert [c.user_id for c in closed] == [1]
    late = click(1, T0 + 10)
    assert s.is_late(late)
    assert s.add(late) == []
    assert s.take_late() == [late]
    assert s.take_late() == []
    # an older event that still merges into an open session is not late
    s2 = Sessionizer(GAP, out_of_orderness_ms=None)
    s2.add(click(1, T0 + GAP))
    s2.close_until(T0 + GAP - 1)
    assert not s2.is_late(click(1, T0 + 1))


def test_watermark_never_goes_back_and_invalid_config() -> None:
    s = Sessionizer(GAP, out_of_orderness_ms=None)
    s.close_until(T0)
    s.close_until(T0 - 5)
    assert s.watermark == T0
    with pytest.raises(ValueError):
        Sessionizer(0)
    with pytest.raises(ValueError):
        Sessionizer(GAP, out_of_orderness_ms=-1)


@st.composite
def user_events(draw: st.DrawFn) -> list[ClickEvent]:
    """A few users' events; gaps chosen around the session gap to hit the boundary."""
    out = []
    for user in (1, 2, 3):
        t = T0
        for i in range(draw(st.integers(1, 12))):
            t += draw(st.sampled_from([0, 1, MINUTE, GAP - 1, GAP, GAP + 1, 3 * GAP]))
            out.append(click(user, t, offset=user * 100 + i))
    return out


@given(user_events(), st.randoms(use_true_random=False))
def test_arrival_order_does_not_change_sessions(
    events: list[ClickEvent], rnd: random.Random
) -> None:
    shuffled = events[:]
    rnd.shuffle(shuffled)
    s = Sessionizer(GAP, out_of_orderness_ms=None)
    for e in shuffled:
        assert s.add(e) == []
    assert sorted(s.flush(), key=lambda x: (x.user_id, x.start_ms)) == sessions_of(events)


@given(user_events(), st.integers(0, 2 * GAP), st.randoms(use_true_random=False))
def test_bounded_disorder_with_watermarks_gives_the_same_sessions(
    events: list[ClickEvent], bound: int, rnd: random.Random
) -> None:
    """Arrival delayed by at most ``bound``: nothing is late, sessions as if sorted."""
    arrival = sorted(events, key=lambda e: e.event_time + rnd.randint(0, bound))
    s = Sessionizer(GAP, out_of_orderness_ms=bound)
    closed = [c for e in arrival for c in s.add(e)] + s.flush()
    assert s.take_late() == []
    assert sorted(closed, key=lambda x: (x.user_id, x.start_ms)) == sessions_of(events)
    for user in (1, 2, 3):
        mine = [x for x in sessions_of(events) if x.user_id == user]
        for a, b in itertools.pairwise(mine):
            assert b.start_ms - a.end_ms >= GAP  # split iff the pause reaches the gap
        for x in mine:
            times = [e.event_time for e in x.events]
            assert all(t2 - t1 < GAP for t1, t2 in itertools.pairwise(times))


def test_session_features_boundaries() -> None:
    now = T0 + 2 * DAY
    sessions = [
        Session(1, now - DAY - 10, now - DAY, (click(1, now - DAY - 10),)),  # ended at now-24h
        Session(1, now - DAY + 1, now - DAY + 1, (click(1, now - DAY + 1),)),
        Session(1, now - 60_000, now, (click(1, now - 60_000), click(1, now, "purchase"))),
        Session(1, now + 1, now + 1, (click(1, now + 1),)),  # not ended yet at now
    ]
    features = session_features(sessions, now)
    assert tuple(features) == USER_SESSIONS.names
    assert features == {
        "last_session_duration_s": 60,
        "last_session_events": 2,
        "last_session_pages": 1,
        "last_session_converted": True,
    }
    assert sessions_24h(sessions, now) == 2  # (now - 24 h, now]: the 2nd and 3rd
    empty = session_features([], now)
    assert sessions_24h([], now) == 0
    assert empty["last_session_duration_s"] is None


def test_session_rows_are_as_of_each_session_end() -> None:
    events = [click(1, T0), click(1, T0 + MINUTE), click(1, T0 + 3 * GAP)]
    rows = session_rows(sessions_of(events))
    counts = session_count_rows(sessions_of(events))
    assert [(r.event_time, r.values["sessions_24h"]) for r in counts] == [
        (T0 + MINUTE, 1),
        (T0 + 3 * GAP, 2),
    ]
    assert [(r.event_time, r.version) for r in counts] == [(r.event_time, r.version) for r in rows]
    assert rows[0].version == events[1].version
    assert rows[1].values["last_session_events"] == 1
