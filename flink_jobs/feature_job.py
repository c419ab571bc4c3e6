"""THE feature job: one Flink job graph over clickstream, CDC and CRM topics.

Thin PyFlink wiring; the rules live in flink_jobs.logic (pure Python) and flink_jobs.sql.

- clickstream: parsed once per record by the job's Java parser (flink_jobs/jvm) and gated
  in SQL (sql.clicks_gate; event-time watermarks, idle partitions ignored after
  ``idle_timeout_ms``); bad or late events -> DLQ on S3; valid ones -> tiles of the
  windowed views (core.windows: one mini-batch group aggregation per tile size, every
  change of a tile written online and appended offline), lags (the two latest events per
  entity, sql.Chain), sessions (SESSION windows; their count in tiles too) -> Redis
  (sql.ONLINE_WRITE rows: version-guarded script calls, pipelined by the job's Java sink)
  and the offline table (sql.FEATURE_ROW rows: Parquet on S3, committed by checkpoints).
  CDC orders likewise, counted once per order id.
- cdc.public.customers + crm.customers -> attribute updates with versions -> Redis (through
  the same sink), where the Lua upsert keeps the greatest version per attribute:
  last-writer-wins that does not depend on arrival order, parallelism, restarts or replay.
  Unparsable records -> DLQ.

Online writes are answered by Redis before the checkpoint that covers them completes (the
sink's flush at every barrier, sql.online_store_sink) and are idempotent through versions,
so recovery from a checkpoint replays harmlessly.
Run by `streamfeat job deploy` as ``flink run -py flink_jobs/feature_job.py --config JSON``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import DataTypes, Schema, StreamTableEnvironment
from pyflink.table.udf import TableFunction, udtf

from core.features import CUSTOMER_PROFILE
from core.online import encode_value
from flink_jobs import sql
from flink_jobs.config import JobConfig
from flink_jobs.logic.events import Rejection
from flink_jobs.logic.records import parse_cdc_customer, parse_crm

JOB_NAME = "streamfeat-features"
PROFILE_TYPES = [
    DataTypes.STRING(),
    DataTypes.BIGINT(),
    DataTypes.STRING(),
    DataTypes.STRING(),
    DataTypes.STRING(),
    DataTypes.BIGINT(),
    *[DataTypes.STRING()] * 4,
]
"""Columns of ``ingest_profile``'s rows: sql.PROFILE_COLUMNS."""


class IngestProfile(TableFunction):  # type: ignore[misc]
    """A CDC customer or CRM record -> its attribute updates (kind 'w': to Redis through the
    job's online sink, sql.profile_writes, where the Lua upsert keeps the greatest version
    per attribute; and to the offline table), or, if unparsable, one DLQ row (kind 'r');
    see sql.PROFILE_COLUMNS. ``val`` is the value in core.online's encoding."""

    def __init__(self, cdc_topic: str) -> None:
        self.cdc_topic = cdc_topic

    def is_deterministic(self) -> bool:
        return False  # planned once per record, its rows shared by the DLQ and both stores

    def eval(self, topic: str, key: bytes | None, value: bytes | None) -> Iterator[tuple[Any, ...]]:
        cdc = topic == self.cdc_topic
        parsed = parse_cdc_customer(key, value) if cdc else parse_crm(value)
        source = "pg_cdc" if cdc else "s3_crm"
        if isinstance(parsed, Rejection):  # the DLQ row keeps the record's own bytes (sql)
            yield (
                "r", None, None, None, None, None, source, parsed.reason, parsed.detail,
                parsed.expectation,
            )  # fmt: skip
            return
        for u in parsed:
            feature = CUSTOMER_PROFILE.feature(u.attribute)
            yield (
                "w",
                u.entity_id,
                u.attribute,
                None if u.value is None else encode_value(feature, u.value),
                u.version.encode(),
                u.version.event_time,
                source,
                None,
                None,
                None,
            )


def computed_once(
    t_env: StreamTableEnvironment,
    query: str,
    name: str,
    *,
    proctime: bool = False,
    event_time: bool = True,
) -> None:
    """Register the rows of ``query`` as table ``name``, computed once: the gates
    (sql.clicks_gate, sql.orders_gate) and the closed sessions (sql.closed_sessions). The
    query names its event time ``t0``; the table has it back as ``ts``, its event-time
    attribute.

    Planned as a view, a gate's JSON parsing would be copied into every consumer (and the
    session windows into each of their two, pruned differently). A round
    trip through a DataStream is a boundary the planner does not see through: the gate runs
    once per record, chained to the Kafka source, and its rows carry their event time as
    record timestamps; ``SOURCE_WATERMARK()`` keeps the source's per-partition watermarks
    (and idleness) on the way back. ``proctime``: the table has a processing-time attribute
    ``pt`` too (for a first-arrival deduplication). ``event_time=False``: rows without an
    event time (the profile path's, whose versions order them), no ``ts`` and no watermark."""
    gated = t_env.to_data_stream(t_env.sql_query(query))
    schema = Schema.new_builder()
    if event_time:
        schema = schema.column_by_metadata("ts", DataTypes.TIMESTAMP_LTZ(3), "rowtime")
    if proctime:
        schema = schema.column_by_expression("pt", "PROCTIME()")
    if event_time:
        schema = schema.watermark("ts", "SOURCE_WATERMARK()")
    t_env.create_temporary_view(name, t_env.from_data_stream(gated, schema.build()))


def build(env: StreamExecutionEnvironment, cfg: JobConfig) -> StreamTableEnvironment:
    """Everything is one statement set: sources are read once and shared by every branch
    (the DLQ's lateness check and the windows see the same watermarks)."""
    env.set_parallelism(cfg.parallelism)
    env.enable_checkpointing(cfg.checkpoint_interval_ms)
    if not cfg.function_jars:
        raise ValueError(
            "function_jars is empty: the job needs its Java functions (flink_jobs/jvm). "
            "Run `make install` (builds them into .local/jvm/udf) and deploy with "
            "`streamfeat job deploy`, which passes them."
        )
    env.add_jars(*(Path(j).resolve().as_uri() for j in cfg.function_jars))  # + pipeline.jars
    t_env = StreamTableEnvironment.create(env)
    conf = t_env.get_config()
    conf.set("table.exec.source.idle-timeout", f"{cfg.idle_timeout_ms} ms")
    conf.set("table.local-time-zone", "UTC")  # dates of partitions, parsing of created_at
    conf.set("pipeline.object-reuse", "true")  # SQL operators copy nothing between chained ones
    conf.set("pipeline.name", JOB_NAME)
    conf.set("python.fn-execution.bundle.time", str(cfg.python_bundle_time_ms))
    conf.set("python.execution-mode", cfg.python_execution_mode)
    for name, java_class in sql.JAVA_FUNCTIONS.items():
        t_env.create_java_temporary_system_function(name, java_class)

    t_env.create_temporary_function(
        "ingest_profile",
        udtf(
            IngestProfile(cfg.cdc_customers_topic),
            result_types=PROFILE_TYPES,
        ),
    )

    click_classes = sql.click_classes(cfg)  # one read of the clickstream per lateness class
    for c in click_classes:
        t_env.execute_sql(sql.clicks_source(cfg, c))
    t_env.execute_sql(sql.orders_source(cfg))
    for c in click_classes:
        computed_once(t_env, sql.clicks_gate(cfg, c), sql.clicks_gated(c))
    computed_once(t_env, sql.orders_gate(cfg), sql.ORDERS_GATED, proctime=True)
    t_env.execute_sql(sql.orders_view())
    t_env.execute_sql(sql.order_inserts())
    # the orders' first-copy deduplication: planned now, with a state TTL of its own and
    # before mini-batches (a mini-batched one would emit updates, sql.order_creations)
    conf.set("table.exec.state.ttl", f"{sql.order_dedup_ttl_ms(cfg)} ms")
    computed_once(t_env, sql.order_creations(), sql.ORDER_CREATIONS)
    # the profile path: its Python parse once per record (its rows shared by the DLQ and
    # both stores), then the first copy of each attribute update (sql.profile_updates), planned
    # the same way as the orders' deduplication
    for ddl in (
        sql.raw_source(cfg, "cdc_customers_raw", cfg.cdc_customers_topic),
        sql.raw_source(cfg, "crm_raw", cfg.crm_topic),
        sql.profile_view(cfg),
    ):
        t_env.execute_sql(ddl)
    computed_once(t_env, sql.profile_rows(cfg), sql.PROFILE_ROWS, proctime=True, event_time=False)
    conf.set("table.exec.state.ttl", f"{sql.profile_dedup_ttl_ms(cfg)} ms")
    computed_once(t_env, sql.profile_updates(), sql.PROFILE_UPDATES, event_time=False)
    conf.set("table.exec.state.ttl", "0 ms")
    # the online tile aggregations: two-phase, each key's state touched once per batch. Set
    # after the gates are planned: their source chains keep the sources' own watermarks.
    conf.set("table.exec.mini-batch.enabled", "true")
    conf.set("table.exec.mini-batch.allow-latency", f"{cfg.tile_batch_ms} ms")
    conf.set("table.exec.mini-batch.size", "5000")
    for c in click_classes:
        t_env.execute_sql(sql.clicks_view(c))
        t_env.execute_sql(sql.valid_clicks(c))
    computed_once(t_env, sql.closed_sessions(cfg), sql.CLOSED_SESSIONS)
    for ddl in (
        sql.dlq_sink(cfg),
        sql.blackhole("online_writes"),
        sql.online_store_sink(cfg),
        sql.offline_sink(cfg),
        *sql.tile_event_views(cfg),
        sql.online_rows(cfg),
        sql.offline_feature_rows(cfg),
    ):
        t_env.execute_sql(ddl)

    statements = t_env.create_statement_set()
    for c in click_classes:
        statements.add_insert_sql(sql.dlq_insert(cfg, c))
    statements.add_insert_sql(sql.orders_dlq_insert(cfg))
    statements.add_insert_sql(sql.online_insert(cfg))
    statements.add_insert_sql(sql.offline_features_insert(cfg))
    statements.add_insert_sql(sql.profile_dlq_insert())
    statements.add_insert_sql(sql.offline_profile_insert())
    statements.attach_as_datastream()
    return t_env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="JobConfig as JSON")
    args = parser.parse_args(argv)
    cfg = JobConfig.model_validate_json(args.config)
    options = Configuration()
    for key, value in cfg.environment_options().items():
        options.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(options)
    build(env, cfg)
    env.execute(JOB_NAME)


if __name__ == "__main__":
    main()
