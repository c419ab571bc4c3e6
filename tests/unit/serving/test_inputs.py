"""A model's inputs as online features (serving/inputs.py) and the entity ids of a request
(serving/predictor.py): column names, rows with NaN for what is not PRESENT, clear errors."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from core.features import FEATURE_VIEWS
from serving.inputs import InputError, entity_ids_of, model_inputs, rows

VIEWS = {v.name: v for v in FEATURE_VIEWS}
COLUMNS = ["user_activity__clicks_1h", "customer_orders__orders_7d", "user_activity__carts_24h"]


def _state(value: object, status: str = "PRESENT", age: int | None = 5) -> dict[str, object]:
    return {"value": value, "status": status, "age_ms": age}


def test_columns_name_views_and_features_in_order() -> None:
    inputs = model_inputs(COLUMNS, VIEWS)
    assert inputs.views == ("user_activity", "customer_orders")
    assert [f.name for f in inputs.wanted[0][1]] == ["clicks_1h", "carts_24h"]
    states = [  # per view, per entity
        [
            {"clicks_1h": _state(3), "carts_24h": _state(None, "MISSING")},
            {"clicks_1h": _state(0, age=9), "carts_24h": _state(1, age=9)},
        ],
        [{"orders_7d": _state(2, age=7)}, {"orders_7d": _state(None, "EXPIRED", None)}],
    ]
    values, ages = rows(inputs, states)
    assert values[0][:2] == [3.0, 2.0] and math.isnan(values[0][2])
    assert math.isnan(values[1][1]) and values[1][0::2] == [0.0, 1.0]
    assert ages == [
        {"user_activity": 5, "customer_orders": 7},
        {"user_activity": 9, "customer_orders": None},
    ]


@pytest.mark.parametrize(
    ("column", "problem"),
    [
        ("clicks", "is not <view>__<feature>"),
        ("nope__clicks_1h", "no feature view 'nope'"),
        ("user_activity__nope", "has no feature 'nope'"),
    ],
)
def test_a_column_that_is_not_an_online_feature_is_named(column: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        model_inputs([column], VIEWS)


def test_entity_ids_of_v1_and_v2_requests() -> None:
    assert entity_ids_of({"instances": [1, {"entity_id": 2}]}) == [1, 2]
    v2 = SimpleNamespace(inputs=[SimpleNamespace(name="entity_id", data=[7, 8])])
    assert entity_ids_of(v2) == [7, 8]
    bad_bodies: list[dict[str, object]] = [
        {"instances": []},
        {"instances": [-1]},
        {"instances": ["1"]},
        {"x": 1},
    ]
    for bad in bad_bodies:
        with pytest.raises(ValueError):
            entity_ids_of(bad)
    with pytest.raises(ValueError, match="entity_id"):
        entity_ids_of(SimpleNamespace(inputs=[]))
