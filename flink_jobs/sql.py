"""The feature job's SQL (the hot path stays in Flink SQL operators).

Clickstream records are parsed and gated in SQL: the ``reason`` column is NULL for a valid,
on-time event, else the DLQ reason. ``late`` means the event's time is at or behind the
current watermark when it arrives (``CURRENT_WATERMARK``): OVER aggregations would drop it
silently, so it goes to the DLQ instead. Windows use RANGE intervals over the event time,
inclusive of both ends: an event exactly 1 h before the current one is inside ``1h``.
"""

from __future__ import annotations

from core.domain import CLICK_EVENT_TYPES
from flink_jobs.config import JobConfig

WINDOW_INTERVALS = {
    "1h": "INTERVAL '1' HOUR",
    "24h": "INTERVAL '24' HOUR",
    "7d": "INTERVAL '7' DAY",
}


def _kafka(cfg: JobConfig, topic: str, *, key: bool = False) -> str:
    startup = "'scan.startup.mode' = 'group-offsets', 'properties.auto.offset.reset' = " + (
        "'earliest'" if cfg.start_from_earliest else "'latest'"
    )
    key_opts = (
        ("'key.format' = 'raw', 'key.fields' = 'k', 'value.fields-include' = 'EXCEPT_KEY', ")
        if key
        else ""
    )
    return (
        f"'connector' = 'kafka', 'topic' = '{topic}', "
        f"'properties.bootstrap.servers' = '{cfg.bootstrap}', "
        f"'properties.group.id' = '{cfg.group_id}', {startup}, {key_opts}"
        f"'value.format' = 'raw'"
    )


def clicks_source(cfg: JobConfig) -> str:
    lag_s = cfg.max_out_of_orderness_ms / 1000
    return f"""
CREATE TABLE clicks_raw (
  v BYTES,
  kp INT METADATA FROM 'partition' VIRTUAL,
  ko BIGINT METADATA FROM 'offset' VIRTUAL,
  kts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  ts AS TO_TIMESTAMP_LTZ(COALESCE(
        TRY_CAST(JSON_VALUE(CAST(v AS STRING), '$.event_time') AS BIGINT), 0), 3),
  WATERMARK FOR ts AS ts - INTERVAL '{lag_s}' SECOND
) WITH ({_kafka(cfg, cfg.clickstream_topic)})"""


def clicks_parsed() -> str:
    types = ", ".join(f"'{t}'" for t in CLICK_EVENT_TYPES)
    return f"""
CREATE TEMPORARY VIEW clicks AS
SELECT kp, ko, kts, ts, v, user_id, event_type, page, event_time,
  CASE
    WHEN NOT (js IS JSON OBJECT) THEN 'invalid_json'
    WHEN user_id IS NULL OR user_id <= 0 THEN 'bad_user_id'
    WHEN event_time IS NULL OR event_time <= 0 THEN 'bad_event_time'
    WHEN event_type IS NULL OR event_type NOT IN ({types}) THEN 'unknown_event_type'
    WHEN ts <= CURRENT_WATERMARK(ts) THEN 'late'
  END AS reason
FROM (
  SELECT kp, ko, kts, ts, v, js,
    TRY_CAST(JSON_VALUE(js, '$.user_id') AS BIGINT) AS user_id,
    JSON_VALUE(js, '$.event_type') AS event_type,
    JSON_VALUE(js, '$.page') AS page,
    TRY_CAST(JSON_VALUE(js, '$.event_time') AS BIGINT) AS event_time
  FROM (SELECT *, CAST(v AS STRING) AS js FROM clicks_raw)
)"""


def dlq_sink(cfg: JobConfig) -> str:
    """The DLQ layout of core/dlq.py: date/source/reason partitions, JSON Lines entries;
    files become visible only when the checkpoint that covers them completes."""
    return f"""
CREATE TABLE dlq (
  detail STRING,
  coordinates ROW<topic STRING, `partition` INT, `offset` BIGINT>,
  original_b64 STRING,
  `date` STRING,
  source STRING,
  reason STRING
) PARTITIONED BY (`date`, source, reason) WITH (
  'connector' = 'filesystem',
  'path' = '{cfg.dlq_path}',
  'format' = 'json',
  'sink.rolling-policy.rollover-interval' = '1 min',
  'sink.rolling-policy.check-interval' = '10 s'
)"""


def dlq_insert(cfg: JobConfig) -> str:
    return f"""
INSERT INTO dlq
SELECT
  CASE reason WHEN 'late' THEN 'event time at or behind the watermark on arrival'
    ELSE 'failed clickstream expectation: ' || reason END,
  ROW('{cfg.clickstream_topic}', kp, ko),
  TO_BASE64(CAST(v AS STRING)),
  DATE_FORMAT(CASE WHEN event_time > 0 THEN ts ELSE kts END, 'yyyy-MM-dd'),
  'clickstream',
  reason
FROM clicks WHERE reason IS NOT NULL"""


# Flink 2.2's sub-plan reuse treats OVER aggregates that differ only in their RANGE bound as
# the same plan (every window silently became the 1 h one). Each window therefore computes
# one distinct, otherwise unused "marker" aggregate so the plans differ and none is reused.
_MARKERS = {"1h": "MIN", "24h": "MAX", "7d": "AVG"}


def rolling(window: str) -> str:
    """Per-event counts over one RANGE window (Flink allows one OVER window per query)."""
    interval = WINDOW_INTERVALS[window]
    return f"""
SELECT user_id, event_time, kp, ko, '{window}' AS grp,
  {_MARKERS[window]}(event_time) OVER w AS marker,
  COUNT(*) OVER w AS clicks,
  SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) OVER w AS carts,
  SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) OVER w AS purchases
FROM clicks WHERE reason IS NULL
WINDOW w AS (PARTITION BY user_id ORDER BY ts
             RANGE BETWEEN {interval} PRECEDING AND CURRENT ROW)"""


def activity_rows() -> str:
    return "\nUNION ALL\n".join(f"({rolling(w)})" for w in WINDOW_INTERVALS)


def raw_source(cfg: JobConfig, name: str, topic: str) -> str:
    return f"""
CREATE TABLE {name} (
  k BYTES,
  v BYTES,
  kp INT METADATA FROM 'partition' VIRTUAL,
  ko BIGINT METADATA FROM 'offset' VIRTUAL,
  kts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL
) WITH ({_kafka(cfg, topic, key=True)})"""


def blackhole(name: str) -> str:
    return f"CREATE TABLE {name} (n INT) WITH ('connector' = 'blackhole')"


PROFILE_COLUMNS = (
    "kind",
    "entity_id",
    "attribute",
    "val",
    "version",
    "event_time",
    "source",
    "reason",
    "detail",
    "original_b64",
)


def profile_view(cfg: JobConfig) -> str:
    """CDC customers + CRM records through ``ingest_profile`` (which writes Redis): one output
    row per attribute update (kind 'w', for the offline table) or per rejected record
    (kind 'r', for the DLQ)."""
    parts = []
    for table, topic in (
        ("cdc_customers_raw", cfg.cdc_customers_topic),
        ("crm_raw", cfg.crm_topic),
    ):
        parts.append(f"""
SELECT '{topic}' AS topic, kp, ko, DATE_FORMAT(kts, 'yyyy-MM-dd') AS kdate, T.*
FROM {table}, LATERAL TABLE(ingest_profile('{topic}', k, v)) AS T({", ".join(PROFILE_COLUMNS)})""")
    return "CREATE TEMPORARY VIEW profile AS" + "\nUNION ALL".join(parts)


def profile_dlq_insert() -> str:
    return """
INSERT INTO dlq
SELECT detail, ROW(topic, kp, ko), original_b64, kdate, source, reason
FROM profile WHERE kind = 'r'"""


def offline_profile_insert() -> str:
    return """
INSERT INTO offline_rows
SELECT 'customer_profile', entity_id, attribute, MAP[attribute, val], event_time, version,
  source, DATE_FORMAT(TO_TIMESTAMP_LTZ(event_time, 3), 'yyyy-MM-dd'), 'customer'
FROM profile WHERE kind = 'w'"""


def encoded_num(expr: str) -> str:
    """SQL for core.version's encoding of a non-negative integer: one length character,
    then the lowercase hex digits (kept byte-for-byte equal to Version.encode)."""
    digits = f"LOWER(HEX(CAST({expr} AS BIGINT)))"
    return f"SUBSTRING('0123456789abcdefg' FROM CHAR_LENGTH({digits}) + 1 FOR 1) || {digits}"


def click_version_sql(priority: int) -> str:
    return (
        f"{encoded_num('event_time')} || '{priority:02x}' || {encoded_num('kp')} || "
        f"{encoded_num('ko')}"
    )


def offline_sink(cfg: JobConfig) -> str:
    """core/offline.py: Parquet, by event date and entity type; bulk formats roll (and so
    become visible) only when a checkpoint completes."""
    return f"""
CREATE TABLE offline_rows (
  view STRING, entity_id BIGINT, grp STRING, features MAP<STRING, STRING>,
  event_time BIGINT, version STRING, source STRING, dt STRING, entity_type STRING
) PARTITIONED BY (dt, entity_type) WITH (
  'connector' = 'filesystem',
  'path' = '{cfg.offline_path}',
  'format' = 'parquet',
  'sink.partition-commit.policy.kind' = 'success-file'
)"""


def offline_activity_insert(priority: int) -> str:
    return f"""
INSERT INTO offline_rows
SELECT 'user_activity', user_id, grp,
  MAP['clicks_' || grp, CAST(clicks AS STRING), 'carts_' || grp, CAST(carts AS STRING),
      'purchases_' || grp, CAST(purchases AS STRING)],
  event_time, {click_version_sql(priority)}, 'clickstream',
  DATE_FORMAT(TO_TIMESTAMP_LTZ(event_time, 3), 'yyyy-MM-dd'), 'customer'
FROM activity"""
