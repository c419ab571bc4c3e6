"""Windowed views registered through the registry reach the job's plan: its tiles, its online
and offline rows and its lineage, beside the declared views."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.features import CUSTOMER, CUSTOMER_PROFILE, USER_ACTIVITY, windowed_features
from core.registry import (
    AggregationsSpec,
    FeatureSpec,
    FeatureViewSpec,
    entity_spec,
    fill_shorts,
    view_spec,
)
from flink_jobs import sql
from flink_jobs.config import JobConfig, RegisteredView


def registered(name: str = "searches") -> RegisteredView:
    aggs = AggregationsSpec.model_validate(
        {
            "source": "clickstream",
            "where": {"field": "event_type", "values": ["search"]},
            "measures": [{"name": "searches", "short": "s", "function": "count"}],
            "windows": [{"name": "30m", "length_ms": 1_800_000, "tile_ms": 60_000}],
        }
    )
    features = [
        FeatureSpec(name=f.name, dtype=f.dtype) for f in windowed_features(aggs.declaration())
    ]
    spec = FeatureViewSpec(
        name=name,
        entity=CUSTOMER.name,
        features=features,
        sources=["clickstream"],
        aggregations=aggs,
    )
    return RegisteredView(view=fill_shorts(spec), entity=entity_spec(CUSTOMER))


def _cfg(*views: RegisteredView) -> JobConfig:
    return JobConfig(
        bootstrap="k:9092", redis_url="redis://r", lake_bucket="lake", registered_views=views
    )


def test_a_registered_view_is_planned_like_a_declared_one() -> None:
    plain, cfg = _cfg(), _cfg(registered())
    assert [v.name for v in sql.windowed_views(cfg)] == [
        *(v.name for v in sql.windowed_views(plain)),
        "searches",
    ]
    assert [v.name for v in sql.windowed_views(cfg, "clickstream")][-1] == "searches"
    assert "searches" not in [v.name for v in sql.windowed_views(cfg, "orders")]
    planned = "\n".join(sql.tile_event_views(cfg))
    assert "CREATE TEMPORARY VIEW tile_events_searches AS" in planned
    assert "event_type IN ('search')" in planned.split("tile_events_searches AS", 1)[1]
    assert "tile_events_searches" not in "\n".join(sql.tile_event_views(plain))
    assert "searches" in sql.online_rows(cfg) and "searches" not in sql.online_rows(plain)
    assert "FROM tile_changes_searches" in sql.offline_feature_rows(cfg)
    # a registered view joins the lateness class of the declared views of its source
    assert len(sql.click_classes(cfg)) == len(sql.click_classes(plain))


def test_offline_rows_are_partitioned_by_their_views_entity() -> None:
    insert = sql.offline_features_insert(_cfg(registered()))
    assert f"WHEN 'searches' THEN '{CUSTOMER.name}'" in insert
    assert f"WHEN '{USER_ACTIVITY.name}' THEN '{USER_ACTIVITY.entity.name}'" in insert


def test_the_config_travels_as_json() -> None:
    cfg = _cfg(registered())
    again = JobConfig.model_validate_json(cfg.model_dump_json())
    assert again == cfg
    assert again.registered_views[0].feature_view() == cfg.registered_views[0].feature_view()


def test_only_windowed_views_not_declared_in_code_are_taken() -> None:
    with pytest.raises(ValidationError, match="declares no aggregations"):
        RegisteredView(view=view_spec(CUSTOMER_PROFILE), entity=entity_spec(CUSTOMER))
    with pytest.raises(ValidationError, match=r"declared in core/features\.py"):
        registered(USER_ACTIVITY.name)


def test_the_views_entity_must_be_its_own() -> None:
    other = entity_spec(CUSTOMER).model_copy(update={"name": "merchant"})
    with pytest.raises(ValidationError, match="not 'merchant'"):
        RegisteredView(view=registered().view, entity=other)
