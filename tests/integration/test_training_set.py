"""A training-set build end to end on the stack: offline rows written as the feature job
writes them (Parquet in core/offline.py's layout on the real S3 endpoint), committed to the
real Iceberg table (PostgreSQL catalog), built through the CLI, read back from S3 and
compared to hand-computed values; the lineage events reach the API's graph.

The Iceberg table is shared by the test session (the feature job's tests commit into it
too): this test's entities are ids no other test uses.
"""

from __future__ import annotations

import io
import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from batch.iceberg import commit
from batch.point_in_time import TrainingSetError, slot_of
from batch.training_set import read_manifest
from core.features import view as lookup_view
from core.objectstore import s3_client
from core.offline import OFFLINE_PREFIX
from core.settings import StackSettings
from core.version import cdc_version, click_version, crm_version
from streamfeat.cli import app
from tests.conftest import stack_env
from tests.integration.lineage_graph import api_client, edges, fetch_graph
from tests.unit.batch.offline_rows import ROW_SCHEMA

pytestmark = pytest.mark.stack

T = 1_772_323_200_000  # 2026-03-01T00:00:00Z
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR

FILE_SCHEMA = pa.schema(
    [*ROW_SCHEMA, *(pa.field(c, pa.string()) for c in ("source", "event_date", "entity"))]
)
"""A part file as the job writes it: the batch tests' rows plus the source and the
partition values (core.offline.COLUMNS)."""


def _row(
    view: str, entity: int, features: dict[str, str | None], t: int, version: Any
) -> dict[str, Any]:
    """A row as the job writes it; ``grp`` is the slot of its features (a window when the view
    declares version groups, the attribute of customer_profile, else '')."""
    declared = lookup_view(view)
    return {
        "view": view,
        "entity_id": entity,
        "grp": slot_of(declared, declared.feature(next(iter(features)))),
        "features": list(features.items()),
        "event_time": t,
        "version": version.encode(),
        "source": version.source.value,
        "event_date": "",  # set per file
        "entity": "customer",
    }


def _write_part(settings: StackSettings, date: str, rows: Sequence[dict[str, Any]]) -> str:
    """One committed part file as Flink's FileSink names it (core.offline.PART_FILE)."""
    key = (
        f"{OFFLINE_PREFIX}/dt={date}/entity_type=customer/"
        f"part-{uuid.uuid4()}-0-{random.randrange(1000)}"
    )
    buf = io.BytesIO()
    table = pa.Table.from_pylist([{**r, "event_date": date} for r in rows], schema=FILE_SCHEMA)
    pq.write_table(table, buf)
    s3_client(settings).put_object(Bucket=settings.s3.lake_bucket, Key=key, Body=buf.getvalue())
    return f"{settings.s3.lake_bucket}/{key}"


def test_build_is_point_in_time_correct_on_the_stack(
    supervisor: object, stack_settings: StackSettings
) -> None:
    s = stack_settings
    a = 9_300_000 + random.randrange(100_000)  # this test's customer
    b = a + 1  # in the spine only: no offline rows
    ua, cp = "user_sessions", "customer_profile"
    day1 = [
        _row(
            ua,
            a,
            {"last_session_duration_s": "2", "last_session_pages": "0"},
            T,
            click_version(T, 3, 1),
        ),
        _row(
            ua,
            a,
            {"last_session_duration_s": "5", "last_session_pages": "1"},
            T + 10 * MIN,
            click_version(T + 10 * MIN, 3, 9),
        ),
        _row(
            cp,
            a,
            {"email": "a@example.com"},
            T - HOUR,
            crm_version(T - HOUR, T, "crm/e.csv", 1),
        ),
        _row(
            cp,
            a,
            {"tier": "silver"},
            T + 5 * MIN,
            crm_version(T + 5 * MIN, T + DAY, "crm/f.csv", 4),
        ),
        _row(
            cp,
            a,
            {"tier": "gold"},
            T + 5 * MIN,
            cdc_version({"ts_ms": T + 5 * MIN, "lsn": 77}),
        ),
        _row(
            cp,
            a,
            {"email": None},
            T + 20 * MIN,
            cdc_version({"ts_ms": T + 20 * MIN, "lsn": 90}),
        ),
        _row(
            ua,
            a,
            {"last_session_duration_s": "99", "last_session_pages": "7"},
            T + 2 * HOUR,
            click_version(T + 2 * HOUR, 3, 20),
        ),
    ]
    # arrives later (its own file) but has the lower version at the same event time: loses
    late = [
        _row(
            ua,
            a,
            {"last_session_duration_s": "4", "last_session_pages": "4"},
            T + 10 * MIN,
            click_version(T + 10 * MIN, 3, 8),
        )
    ]
    two_days_before = [
        _row(ua, a, {"last_session_events": "9"}, T - 2 * DAY, click_version(T - 2 * DAY, 3, 0))
    ]
    files = [
        _write_part(s, "2026-03-01", day1),
        _write_part(s, "2026-03-01", late),
        _write_part(s, "2026-02-27", two_days_before),
    ]
    result = commit(s, files)
    assert result.added == 3

    spine_key = f"spines/{uuid.uuid4().hex}.parquet"
    spine_rows = [
        (a, T - 1, 0),
        (a, T + 10 * MIN, 1),
        (a, T + 30 * MIN, 0),
        (b, T + 30 * MIN, 1),
        (a, T + 3 * HOUR, 1),
        (a, T - 2 * DAY + HOUR, 0),
    ]
    buf = io.BytesIO()
    pq.write_table(
        pa.table(
            {
                "customer_id": [r[0] for r in spine_rows],
                "label_time": [r[1] for r in spine_rows],
                "churned": [r[2] for r in spine_rows],
            }
        ),
        buf,
    )
    s3_client(s).put_object(Bucket=s.s3.lake_bucket, Key=spine_key, Body=buf.getvalue())

    name = f"churn_{uuid.uuid4().hex[:8]}"
    args = [
        "training-set", "build", "--name", name,
        "--spine", f"s3://{s.s3.lake_bucket}/{spine_key}",
        "--features", "user_sessions:last_session_duration_s,user_sessions:last_session_events",
        "--features", "customer_profile:tier", "-f", "customer_profile:email",
        "--entity-column", "customer_id", "--timestamp-column", "label_time",
        "--label-column", "churned",
    ]  # fmt: skip
    done = CliRunner().invoke(app, args, env=stack_env(s))
    assert done.exit_code == 0, done.output

    manifest = read_manifest(s, name)
    assert manifest["rows"] == len(spine_rows)
    assert manifest["offline"]["snapshot_id"] == result.snapshot_id
    assert manifest["features"] == [
        "user_sessions:last_session_duration_s",
        "user_sessions:last_session_events",
        "customer_profile:tier",
        "customer_profile:email",
    ]
    assert manifest["data"] in done.output
    from core.objectstore import arrow_fs

    data = pq.read_table(manifest["data"].removeprefix("s3://"), filesystem=arrow_fs(s))
    got = [
        tuple(r.values())
        for r in data.select(
            [
                "customer_id",
                "label_time",
                "churned",
                "user_sessions__last_session_duration_s",
                "user_sessions__last_session_events",
                "customer_profile__tier",
                "customer_profile__email",
            ]
        ).to_pylist()
    ]
    assert got == [
        (a, T - 1, 0, None, None, None, "a@example.com"),  # before any 1h row or the tier
        (a, T + 10 * MIN, 1, 5, None, "gold", "a@example.com"),  # version 9 beats late 8
        (a, T + 30 * MIN, 0, 5, None, "gold", None),  # email deleted at T+20min
        (b, T + 30 * MIN, 1, None, None, None, None),  # no offline rows
        (a, T + 3 * HOUR, 1, 99, None, "gold", None),  # no later clicks_24h, 2-day-old one expired
        (a, T - 2 * DAY + HOUR, 0, None, 9, None, None),  # ... but fresh an hour after it
    ]

    # lineage: feature views, the offline table's prefix and the spine -> job -> training set
    job = f"job:training_set_build.{name}"
    lake = s.s3.lake_bucket
    with api_client(s) as api:
        up = edges(fetch_graph(api, f"training_set:{name}", "upstream", depth=2))
        down = edges(fetch_graph(api, "feature_view:user_sessions", "downstream", depth=2))
    assert {
        ("feature_view:user_sessions", job),
        ("feature_view:customer_profile", job),
        (f"s3:{lake}/{OFFLINE_PREFIX}", job),
        (f"s3:{lake}/{spine_key}", job),
        (job, f"training_set:{name}"),
    } <= up
    assert (job, f"training_set:{name}") in down
    spool = s.home / "lineage" / "spool.jsonl"
    assert not spool.exists() or name not in spool.read_text()  # delivered, not spooled


def test_build_errors_say_what_to_fix(supervisor: object, stack_settings: StackSettings) -> None:
    s = stack_settings
    name = f"broken_{uuid.uuid4().hex[:8]}"
    build = ["training-set", "build", "--name", name]
    runner = CliRunner()
    typo = runner.invoke(
        app, [*build, "--spine", "/nope.parquet", "-f", "user_activty"], env=stack_env(s)
    )
    assert typo.exit_code == 1
    assert "unknown feature view 'user_activty'" in typo.output
    assert "known views: customer_orders, customer_profile" in typo.output
    absent = f"s3://{s.s3.lake_bucket}/spines/absent.parquet"
    missing = runner.invoke(app, [*build, "--spine", absent, "-f", "user_lags"], env=stack_env(s))
    assert missing.exit_code == 1
    assert f"spine {absent} not found" in missing.output
    with pytest.raises(TrainingSetError, match="no finished build"):
        read_manifest(s, name)  # a failed build leaves no manifest


def test_offline_partitions_are_validated_and_a_failed_one_is_refused(
    supervisor: object, stack_settings: StackSettings
) -> None:
    """Two partitions of their own dates, committed and validated by Great Expectations
    through `streamfeat offline validate`: one good (a version written twice: a warning), one
    with a row outside its event date (a failure); results and Data Docs kept on S3; a
    training set reading the failed partition is refused, unless forced."""
    from batch.quality import DOCS_PREFIX, latest_results
    from batch.training_set import build

    s = stack_settings
    a = 9_500_000 + random.randrange(100_000)
    day = random.randrange(1, 28)
    good_day, bad_day = f"2025-01-{day:02d}", f"2025-02-{day:02d}"
    t_good = int(datetime.strptime(good_day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()) * 1000
    t_bad = int(datetime.strptime(bad_day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()) * 1000
    ua = "user_sessions"
    twice = _row(ua, a, {"last_session_events": "3"}, t_good + HOUR, click_version(t_good, 1, 1))
    good = [twice, twice, _row(ua, a, {"last_session_events": "4"}, t_good + 2 * HOUR,
                               click_version(t_good + 2 * HOUR, 1, 2))]  # fmt: skip
    outside = t_bad - HOUR  # the day before its partition's
    bad = [
        _row(ua, a, {"last_session_events": "5"}, t_bad + HOUR, click_version(t_bad + HOUR, 1, 3)),
        _row(ua, a, {"last_session_events": "6"}, outside, click_version(outside, 1, 4)),
    ]
    files = [_write_part(s, good_day, good), _write_part(s, bad_day, bad)]
    assert commit(s, files).added == 2

    for date in (good_day, bad_day):
        args = ["offline", "validate", "--date", date, "--entity", "customer"]
        done = CliRunner().invoke(app, args, env=stack_env(s))
        assert done.exit_code == 0, done.output
        assert f"event_date={date}/entity=customer" in done.output
    results = {r.date: r for r in latest_results(s, [good_day, bad_day], ["customer"])}
    assert results[good_day].success and results[good_day].rows == 3
    assert results[good_day].warnings == [
        "expect_compound_columns_to_be_unique(view,entity_id,grp,version)"
    ]
    assert not results[bad_day].success
    assert results[bad_day].failed == ["expect_column_values_to_be_between(event_time)"]
    s3 = s3_client(s)
    index = s3.get_object(Bucket=s.s3.lake_bucket, Key=f"{DOCS_PREFIX}/index.html")
    assert "offline_feature_rows" in index["Body"].read().decode()

    spine_key = f"spines/{uuid.uuid4().hex}.parquet"
    buf = io.BytesIO()
    pq.write_table(pa.table({"customer_id": [a], "label_time": [t_bad + 3 * HOUR]}), buf)
    s3.put_object(Bucket=s.s3.lake_bucket, Key=spine_key, Body=buf.getvalue())
    spine = f"s3://{s.s3.lake_bucket}/{spine_key}"
    kwargs: dict[str, Any] = {
        "name": f"dq_{uuid.uuid4().hex[:8]}",
        "spine": spine,
        "features": ["user_sessions:last_session_events"],
        "entity_column": "customer_id",
        "timestamp_column": "label_time",
    }
    with pytest.raises(TrainingSetError, match=rf"event_date={bad_day}/entity=customer: "
                       r"expect_column_values_to_be_between\(event_time\)"):  # fmt: skip
        build(s, **kwargs)
    forced = build(s, **kwargs, allow_failed_partitions=True)
    assert forced.manifest["rows"] == 1
