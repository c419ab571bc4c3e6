"""The build's checks and its lineage, without services: the emitter points at a port nothing
listens on, so every event lands in the spool, where the test reads what was reported."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.point_in_time import TrainingSetError, parse_features
from batch.training_set import build, build_spec, check_name
from core.lineage import LineageEmitter
from core.settings import StackSettings


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return StackSettings(environment="test", home=tmp_path / "home")


def _emitter(tmp_path: Path) -> LineageEmitter:
    return LineageEmitter(url="http://127.0.0.1:9", spool=tmp_path / "spool.jsonl", timeout_s=0.5)


@pytest.mark.parametrize("name", ["churn", "churn_v2.1", "A-1"])
def test_usable_names(name: str) -> None:
    check_name(name)


@pytest.mark.parametrize("name", ["", " churn", "a/b", "_x", "x" * 129, "a b"])
def test_unusable_names_are_refused(name: str) -> None:
    with pytest.raises(TrainingSetError, match="not usable"):
        check_name(name)


def test_spec_names_views_offline_prefix_and_spine(settings: StackSettings) -> None:
    spec = build_spec(
        settings,
        name="churn",
        requested=parse_features(["user_activity:clicks_1h", "customer_profile", "user_activity"]),
        spine="s3://streamfeat-lake/spines/s.parquet",
    )
    assert spec.job.name == "training_set_build.churn"
    assert [(d.namespace, d.name) for d in spec.inputs] == [
        ("streamfeat", "feature_view:user_activity"),
        ("streamfeat", "feature_view:customer_profile"),
        ("s3://streamfeat-lake", "offline/feature_rows"),
        ("s3://streamfeat-lake", "spines/s.parquet"),
    ]
    assert [(d.namespace, d.name) for d in spec.outputs] == [
        ("streamfeat", "training_set:churn"),
        ("s3://streamfeat-lake", "training-sets/churn"),
    ]


def test_failed_build_reports_start_then_fail_with_the_error(
    settings: StackSettings, tmp_path: Path
) -> None:
    spine = tmp_path / "spine.parquet"
    pq.write_table(pa.table({"entity_id": [1], "ts": [5]}), spine)
    emitter = _emitter(tmp_path)
    with pytest.raises(TrainingSetError, match="spine has no column 'timestamp'"):
        build(settings, name="churn", spine=str(spine), features=["user_lags"], emitter=emitter)
    events = [json.loads(line) for line in emitter.spool.pending()]
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    assert events[0]["run"]["runId"] == events[1]["run"]["runId"]
    message = events[1]["run"]["facets"]["errorMessage"]["message"]
    assert "spine has no column 'timestamp'" in message
    assert {"namespace": "file", "name": str(spine)} in [
        {k: d[k] for k in ("namespace", "name")} for d in events[0]["inputs"]
    ]


def test_a_typo_is_refused_before_any_run(settings: StackSettings, tmp_path: Path) -> None:
    emitter = _emitter(tmp_path)
    with pytest.raises(TrainingSetError, match="unknown feature view"):
        build(settings, name="churn", spine="x.parquet", features=["nope"], emitter=emitter)
    assert emitter.spool.pending() == []


@pytest.mark.parametrize(
    ("spine", "message"),
    [
        (None, "not found"),
        (
            pa.table({c: pa.array([], pa.int64()) for c in ("entity_id", "timestamp", "y")}),
            "no rows",
        ),
        (pa.table({"entity_id": [1], "timestamp": [2]}), "no label column 'y'"),
    ],
)
def test_spine_problems_are_named(
    settings: StackSettings, tmp_path: Path, spine: pa.Table | None, message: str
) -> None:
    path = tmp_path / "spine.parquet"
    if spine is not None:
        pq.write_table(spine, path)
    with pytest.raises(TrainingSetError, match=message):
        build(settings, name="n", spine=str(path), features=["user_lags"], label_column="y")


def test_csv_spines_are_read(settings: StackSettings, tmp_path: Path) -> None:
    from batch.training_set import read_spine

    path = tmp_path / "spine.csv"
    path.write_text("entity_id,timestamp,label\n1,1000,0\n2,2000,1\n")
    table = read_spine(settings, str(path))
    assert table.column("timestamp").to_pylist() == [1000, 2000]
