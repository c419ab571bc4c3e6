"""Allowed lateness per view: which views share a watermark (one read of the source each),
and the SQL each lateness class gets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from core.features import (
    CUSTOMER_ORDERS,
    ORDER_LAGS,
    USER_ACTIVITY,
    USER_LAGS,
    USER_SESSION_COUNTS,
    USER_SESSIONS,
)
from flink_jobs import sql
from flink_jobs.config import JobConfig
from flink_jobs.lateness import branch_lateness, class_of, lateness_classes, view_lateness

CHAIN = (USER_ACTIVITY, USER_LAGS)
SESSIONS = (USER_SESSIONS, USER_SESSION_COUNTS)


def _cfg(**lateness: int) -> JobConfig:
    return JobConfig(
        bootstrap="k:9092",
        redis_url="redis://r",
        lake_bucket="lake",
        max_out_of_orderness_ms=1000,
        allowed_lateness_ms=lateness,
    )


def test_by_default_every_view_shares_one_watermark() -> None:
    (only,) = sql.click_classes(_cfg())
    assert (only.suffix, only.lateness_ms, only.primary) == ("", 1000, True)
    assert only.views == (*CHAIN, *SESSIONS)
    assert sql.orders_lateness_ms(_cfg()) == 1000


def test_a_view_with_its_own_lateness_gets_its_own_read_of_the_source() -> None:
    cfg = _cfg(user_sessions=300_000)
    primary, sessions = sql.click_classes(cfg)
    assert (primary.suffix, primary.lateness_ms, primary.views) == ("", 1000, CHAIN)
    assert (sessions.suffix, sessions.lateness_ms, sessions.views) == (
        "_l300000",
        300_000,
        SESSIONS,
    )
    source = sql.clicks_source(cfg, sessions)
    assert "CREATE TABLE clicks_raw_l300000" in source
    assert "ts - INTERVAL '300.0' SECOND" in source
    assert f"'properties.group.id' = '{cfg.group_id}_l300000'" in source  # offsets never mix
    # the sessions read the class's clicks, the chain the primary's
    assert sql.session_source(cfg) == "valid_clicks_l300000"
    assert "FROM valid_clicks AS s GROUP BY user_id" in sql.online_rows(cfg)  # lags, online
    assert "FROM valid_clicks)" in sql.offline_feature_rows(cfg)  # and offline
    assert "FROM valid_clicks WHERE" not in "".join(sql.tile_event_views(cfg))


def test_only_the_primary_class_files_failed_expectations() -> None:
    primary, sessions = sql.click_classes(_cfg(user_sessions=5_000))
    assert "WHERE reason IS NOT NULL" in sql.dlq_insert(_cfg(), primary)
    late_only = sql.dlq_insert(_cfg(), sessions)
    assert "FROM clicks_l5000 WHERE reason = 'late'" in late_only
    assert "in user_sessions, user_session_counts (allowed lateness 5000 ms)" in late_only


def test_views_computed_together_must_agree() -> None:
    # the clicks' views are computed apart (tiles, lags, sessions): each may differ
    primary, lags = sql.click_classes(_cfg(user_lags=50))
    assert (primary.views, lags.views, lags.lateness_ms) == (
        (USER_ACTIVITY, *SESSIONS),
        (USER_LAGS,),
        50,
    )
    assert "FROM valid_clicks_l50 AS s GROUP BY user_id" in sql.online_rows(_cfg(user_lags=50))
    # the orders have one source table: one watermark for every order view
    with pytest.raises(ValueError, match="customer_orders 7 ms, order_lags 1000 ms"):
        sql.orders_lateness_ms(_cfg(customer_orders=7))
    assert sql.orders_lateness_ms(_cfg(customer_orders=7, order_lags=7)) == 7


def test_unknown_or_negative_lateness_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown feature view 'user_actvity'"):
        _cfg(user_actvity=5)
    with pytest.raises(ValidationError, match="negative lateness"):
        _cfg(user_sessions=-1)


def test_the_job_override_wins_over_the_declaration() -> None:
    declared = USER_SESSIONS.__class__(**{**USER_SESSIONS.__dict__, "allowed_lateness_ms": 60_000})
    assert view_lateness(declared, default_ms=10, overrides={}) == 60_000
    assert view_lateness(declared, default_ms=10, overrides={"user_sessions": 5}) == 5
    assert view_lateness(USER_SESSIONS, default_ms=10, overrides={}) == 10


@given(
    st.lists(
        st.tuples(st.integers(1, 4), st.sampled_from([0, 1000, 5000, 60_000])),
        min_size=1,
        max_size=5,
    )
)
def test_classes_partition_the_views_by_lateness(spec: list[tuple[int, int]]) -> None:
    """Any branches with any lateness: every view in exactly one class, one class per
    distinct lateness, the first branch's class primary."""
    pool = [USER_ACTIVITY, USER_LAGS, USER_SESSIONS, CUSTOMER_ORDERS, ORDER_LAGS]
    branches, overrides, used = [], {}, 0
    for size, ms in spec:
        branch = tuple(pool[used : used + size])
        used += size
        if not branch:
            break
        branches.append(branch)
        overrides |= {v.name: ms for v in branch}
    classes = lateness_classes(branches, default_ms=1, overrides=overrides)
    views = [v for c in classes for v in c.views]
    assert sorted(v.name for v in views) == sorted(v.name for b in branches for v in b)
    assert len(classes) == len({overrides[b[0].name] for b in branches})
    assert classes[0].primary and not any(c.primary for c in classes[1:])
    for b in branches:
        c = class_of(classes, b[0])
        assert c.lateness_ms == branch_lateness(b, default_ms=1, overrides=overrides)
        assert all(class_of(classes, v) is c for v in b)
