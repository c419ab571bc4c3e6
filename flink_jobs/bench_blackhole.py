"""Baseline job of the benchmark harness: Kafka JSON in, Flink SQL only, blackhole out.

Reads every record of a topic (JSON ``{"user_id": int, "event_type": str, "event_time": int,
"v": int, ...}``; extra fields such as padding are skipped by the JSON format) from the
earliest offset up to the offsets current when the job starts ('scan.bounded.mode' =
'latest-offset'), in STREAMING mode so the runtime is the one the feature job uses, into a
The records are read ``--repeat`` times, by as many source tables (each its own consumer),
so that a small topic still makes a run long enough to measure the sustained rate rather than
the sources' start-up (60,000 records take ~0.15 s once running). 'blackhole' sink. No
Python function runs per record: this is the ceiling the feature job's SQL operators and
Python UDFs are compared against. Run by ``streamfeat.bench``.

``--gate`` measures the clickstream gate alone on the same records (raw bytes in, the
gate's columns to the blackhole): ``strict`` is the job's own source and gate
(flink_jobs.sql: the Java parser, its watermark and reasons); ``json_value`` the design it
replaced, kept here only as the comparison: JSON_VALUE per field, two REGEXP checks, and
the plausibility bounds in SQL (which the planner expands, repeating the event time's
JSON_VALUE); ``raw`` reads the bytes and parses nothing (what reading costs, to subtract).
"""

from __future__ import annotations

import argparse

from pyflink.table import EnvironmentSettings, TableEnvironment

from core.domain import CLICK_EVENT_TYPES
from flink_jobs import sql
from flink_jobs.config import JobConfig
from flink_jobs.lateness import LatenessClass

FETCH_MAX_BYTES = 8 * 1024 * 1024
"""Per fetch response (Kafka's default is 50 MB): each is read into direct memory, and
several sources fetching a 40 MB topic at once exhausted the TaskManager's (OutOfMemoryError:
Direct buffer memory)."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--topic", required=True, help="topic to read from the beginning")
    parser.add_argument(
        "--rows",
        type=int,
        required=True,
        help="rows the caller put in the topic; shown in the job name, checked by the caller",
    )
    parser.add_argument(
        "--parallelism", type=int, default=0, help="job parallelism (0: the cluster default)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="read the topic this many times (one source each)"
    )
    parser.add_argument(
        "--gate", choices=["none", *GATES], default="none", help="measure a clickstream gate"
    )
    parser.add_argument("--jars", default="", help="the job's function jars, ';'-separated")
    args = parser.parse_args(argv)

    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    conf.set("pipeline.name", f"bench-blackhole rows={args.rows} gate={args.gate}")
    if args.parallelism > 0:
        conf.set("parallelism.default", str(args.parallelism))
    if args.gate != "none":
        gate(t_env, args)
        return
    for i in range(args.repeat):
        t_env.execute_sql(f"""
            CREATE TABLE src{i} (
                user_id BIGINT,
                event_type STRING,
                event_time BIGINT,
                v BIGINT
            ) WITH (
                'connector' = 'kafka',
                'topic' = '{args.topic}',
                'properties.bootstrap.servers' = '{args.bootstrap}',
                'properties.group.id' = 'streamfeat-bench-blackhole-{i}',
                'properties.fetch.max.bytes' = '{FETCH_MAX_BYTES}',
                'scan.startup.mode' = 'earliest-offset',
                'scan.bounded.mode' = 'latest-offset',
                'format' = 'json',
                'json.fail-on-missing-field' = 'false',
                'json.ignore-parse-errors' = 'false'
            )""")
    t_env.execute_sql("""
        CREATE TABLE sink (
            user_id BIGINT,
            event_type STRING,
            event_time BIGINT,
            v BIGINT
        ) WITH ('connector' = 'blackhole')""")
    # Detached submission (`flink run --detached`) returns once the cluster accepted the job.
    t_env.execute_sql(
        "INSERT INTO sink "
        + " UNION ALL ".join(
            f"SELECT user_id, event_type, event_time, v FROM src{i}" for i in range(args.repeat)
        )
    )


GATES = ("strict", "json_value", "raw")


def gate(t_env: TableEnvironment, args: argparse.Namespace) -> None:
    """The topic read ``--repeat`` times through one gate design into a blackhole."""
    cfg = JobConfig(
        bootstrap=args.bootstrap,
        redis_url="redis://unused:1",
        lake_bucket="unused",
        clickstream_topic=args.topic,
        group_id=f"streamfeat-bench-gate-{args.gate}",
        stop_at_latest=True,
        max_event_time_ahead_ms=13 * 3_600_000,  # the demo clicks run 12 h ahead
        function_jars=tuple(j for j in args.jars.split(";") if j),
    )
    if cfg.function_jars:
        jars = ";".join(f"file://{j}" for j in cfg.function_jars)
        t_env.get_config().set("pipeline.jars", jars)  # merged with flink run's at submission
        for name, java_class in sql.JAVA_FUNCTIONS.items():
            t_env.create_java_temporary_system_function(name, java_class)
    queries = []
    for i in range(args.repeat):
        c = LatenessClass(suffix=f"_{i}", lateness_ms=10_000, views=())
        source = sql.clicks_source(cfg, c)
        if args.gate == "strict":
            queries.append(sql.clicks_gate(cfg, c).replace("ts AS t0", "ts"))
        elif args.gate == "json_value":
            source = source.replace(sql.click_ts(cfg), _json_value_ts(cfg))
            queries.append(_json_value_gate(c))
        else:
            source = source.replace(sql.click_ts(cfg), "kts")
            queries.append(f"SELECT kp, ko, v FROM clicks_raw_{i}")
        t_env.execute_sql(source)
    columns = {
        "strict": "kp INT, ko BIGINT, kts TIMESTAMP_LTZ(3), ts TIMESTAMP_LTZ(3), k BYTES, "
        "v BYTES, user_id BIGINT, event_type STRING, page STRING, event_time BIGINT, "
        "reason STRING, expectation STRING, detail STRING",
        "json_value": "kp INT, ko BIGINT, kts TIMESTAMP_LTZ(3), ts TIMESTAMP_LTZ(3), v BYTES, "
        "user_id BIGINT, event_type STRING, page STRING, event_time BIGINT, reason STRING",
        "raw": "kp INT, ko BIGINT, v BYTES",
    }[args.gate]
    t_env.execute_sql(f"CREATE TABLE sink ({columns}) WITH ('connector' = 'blackhole')")
    t_env.execute_sql("INSERT INTO sink " + " UNION ALL ".join(f"({q})" for q in queries))


def _json_value_ts(cfg: JobConfig) -> str:
    """The replaced rowtime: the plausibility bounds in SQL, whose NULLIF/LEAST/GREATEST the
    planner expands into CASE expressions that repeat the JSON_VALUE."""
    ms = "COALESCE(TRY_CAST(JSON_VALUE(CAST(v AS STRING), '$.event_time') AS BIGINT), 0)"
    clamped = f"TO_TIMESTAMP_LTZ(LEAST(GREATEST({ms}, 0), 253402300799999), 3)"
    hours, rest = divmod(cfg.max_event_time_ahead_ms, 3_600_000)
    assert rest == 0 and hours < 24, "whole hours under a day"
    beyond = f"kts + INTERVAL '0 {hours:02d}:00:00.001' DAY TO SECOND(3)"
    not_ahead = f"NULLIF(LEAST({clamped}, {beyond}), {beyond})"
    below = f"TO_TIMESTAMP_LTZ({cfg.event_time_floor_ms - 1}, 3)"
    return f"COALESCE(NULLIF(GREATEST({not_ahead}, {below}), {below}), {sql.IMPLAUSIBLE_TS})"


def _json_value_gate(c: LatenessClass) -> str:
    """The replaced gate: JSON_VALUE per field, REGEXP for bare integers."""
    types = ", ".join(f"'{t}'" for t in CLICK_EVENT_TYPES)

    return f"""
SELECT kp, ko, kts, ts, v, user_id, event_type, page, event_time,
  CASE
    WHEN user_id > 0 AND event_time > 0 AND event_type IN ({types}) AND ts > {sql.IMPLAUSIBLE_TS}
      THEN CASE WHEN ts <= CURRENT_WATERMARK(ts) THEN 'late' END
    WHEN NOT (js IS JSON OBJECT) THEN 'invalid_json'
    WHEN NOT JSON_EXISTS(js, '$.user_id') OR NOT JSON_EXISTS(js, '$.event_time')
      OR NOT JSON_EXISTS(js, '$.event_type') THEN 'missing_field'
    WHEN user_id IS NULL OR user_id <= 0 THEN 'bad_user_id'
    WHEN event_time IS NULL OR event_time <= 0 THEN 'bad_event_time'
    WHEN ts <= {sql.IMPLAUSIBLE_TS} THEN 'implausible_event_time'
    ELSE 'unknown_event_type'
  END AS reason
FROM (
  SELECT kp, ko, kts, ts, v, js, {sql.json_int("user_id")} AS user_id,
    JSON_VALUE(js, '$.event_type') AS event_type, JSON_VALUE(js, '$.page') AS page,
    {sql.json_int("event_time")} AS event_time
  FROM (SELECT *, CAST(v AS STRING) AS js FROM clicks_raw{c.suffix})
)"""


if __name__ == "__main__":
    main()
