"""The serving suite's goal rows (streamfeat/bench/serving.py)."""

from __future__ import annotations

from streamfeat.bench.serving import goal_rows


def test_goal_rows_compare_prediction_with_the_lookup_at_200_per_second() -> None:
    p99 = {
        ("feature lookup", 200.0): 2.0,
        ("predict (predictor)", 200.0): 4.5,
        ("predict (endpoint)", 200.0): 6.0,
        ("predict (endpoint)", 50.0): 1.0,
    }
    rows = {r.name.split(":")[0]: r for r in goal_rows(p99)}
    predictor, endpoint = rows["goal (predict (predictor))"], rows["goal (predict (endpoint))"]
    assert (predictor.value, predictor.detail.split(":")[0]) == (2.5, "met")
    assert (endpoint.value, endpoint.detail.split(":")[0]) == (4.0, "NOT met")
    missing = goal_rows({("feature lookup", 200.0): 2.0})
    assert all(r.detail.startswith("NOT measured") for r in missing)
