"""A small bounded job that proves the cluster's wiring: Kafka connector in, Parquet on S3 out.

Reads every record of a Kafka topic (JSON: {"k": str, "v": int, "ts": int}) up to the
offsets current at start, and writes them as Parquet under an s3:// path through Flink's S3
filesystem plugin. Run on the cluster by `streamfeat job wiring-check` and by the tests.
"""

from __future__ import annotations

import argparse

from pyflink.table import EnvironmentSettings, TableEnvironment


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--output", required=True, help="s3://bucket/prefix")
    args = parser.parse_args(argv)

    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    t_env.execute_sql(f"""
        CREATE TABLE src (k STRING, v BIGINT, ts BIGINT) WITH (
            'connector' = 'kafka',
            'topic' = '{args.topic}',
            'properties.bootstrap.servers' = '{args.bootstrap}',
            'properties.group.id' = 'streamfeat-wiring-check',
            'scan.startup.mode' = 'earliest-offset',
            'scan.bounded.mode' = 'latest-offset',
            'format' = 'json',
            'json.fail-on-missing-field' = 'false'
        )""")
    t_env.execute_sql(f"""
        CREATE TABLE sink (k STRING, v BIGINT, ts BIGINT) WITH (
            'connector' = 'filesystem',
            'path' = '{args.output}',
            'format' = 'parquet'
        )""")
    t_env.execute_sql("INSERT INTO sink SELECT k, v, ts FROM src").wait()


if __name__ == "__main__":
    main()
