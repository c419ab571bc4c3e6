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
"""

from __future__ import annotations

import argparse

from pyflink.table import EnvironmentSettings, TableEnvironment

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
    args = parser.parse_args(argv)

    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    conf.set("pipeline.name", f"bench-blackhole rows={args.rows}")
    if args.parallelism > 0:
        conf.set("parallelism.default", str(args.parallelism))
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


if __name__ == "__main__":
    main()
