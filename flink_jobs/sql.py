"""The feature job's SQL (the hot path stays in Flink SQL operators).

Clickstream records are parsed once, strictly, by the job's Java parser (flink_jobs/jvm,
the rules of flink_jobs.logic.records.parse_click) and gated in SQL: the ``reason`` column
is NULL for a valid, on-time event, else the DLQ reason. ``late`` means the event's time
is at or behind the current watermark when it arrives (``CURRENT_WATERMARK``): the
session and tumbling windows would drop it silently, so it goes to the DLQ instead.
Rolling windows are tiles (core.windows): the job keeps each tile's partial aggregate and
the readers combine the tiles that cover a window as of the read. Online writes leave as
rows of script calls (:data:`ONLINE_WRITE`) for the job's Java Redis sink.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.domain import CUSTOMER_ATTRIBUTES
from core.events import SOURCE_PRIORITY, Source
from core.features import (
    CUSTOMER_PROFILE,
    FEATURE_VIEWS,
    ORDER_LAGS,
    USER_LAGS,
    USER_SESSIONS,
    Feature,
    FeatureView,
    Lags,
)
from core.online import ROW_VERSION, SCRIPTS, SET_MARK, attribute_version_field, key_parts
from core.windows import SLOTS, Aggregations, Filter, Measure
from flink_jobs.config import JobConfig
from flink_jobs.lateness import (
    LatenessClass,
    branch_lateness,
    class_of,
    lateness_classes,
    view_lateness,
)

CLICK_PRIORITY = SOURCE_PRIORITY[Source.CLICKSTREAM]
CDC_PRIORITY = SOURCE_PRIORITY[Source.PG_CDC]


def _kafka(cfg: JobConfig, topic: str, *, key: bool = False, group_suffix: str = "") -> str:
    startup = "'scan.startup.mode' = 'group-offsets', 'properties.auto.offset.reset' = " + (
        "'earliest'" if cfg.start_from_earliest else "'latest'"
    )
    key_opts = (
        ("'key.format' = 'raw', 'key.fields' = 'k', 'value.fields-include' = 'EXCEPT_KEY', ")
        if key
        else ""
    )
    bounded = "'scan.bounded.mode' = 'latest-offset', " if cfg.stop_at_latest else ""
    return (
        f"'connector' = 'kafka', 'topic' = '{topic}', {bounded}"
        f"'properties.bootstrap.servers' = '{cfg.bootstrap}', "
        f"'properties.group.id' = '{cfg.group_id}{group_suffix}', {startup}, {key_opts}"
        f"'value.format' = 'raw'"
    )


def lateness_overrides(cfg: JobConfig) -> dict[str, int]:
    """The deployment's lateness per view; the views of the closed sessions (tiles of them,
    computed with them) follow ``user_sessions`` unless set themselves."""
    out = dict(cfg.allowed_lateness_ms)
    if USER_SESSIONS.name in out:
        for v in windowed_views(cfg, "sessions"):
            out.setdefault(v.name, out[USER_SESSIONS.name])
    return out


def click_classes(cfg: JobConfig) -> list[LatenessClass]:
    """The clickstream's lateness classes (flink_jobs.lateness): each windowed view of the
    clicks, the lags and the sessions (with their counts) are branches of their own."""
    branches = [(v,) for v in windowed_views(cfg, "clickstream")]
    return lateness_classes(
        [*branches, (USER_LAGS,), (USER_SESSIONS, *windowed_views(cfg, "sessions"))],
        default_ms=cfg.max_out_of_orderness_ms,
        overrides=lateness_overrides(cfg),
    )


def orders_lateness_ms(cfg: JobConfig) -> int:
    """The orders' watermark bound: one source table, so every order view shares it."""
    return branch_lateness(
        (*windowed_views(cfg, "orders"), ORDER_LAGS),
        default_ms=cfg.max_out_of_orderness_ms,
        overrides=cfg.allowed_lateness_ms,
    )


def clicks_source(cfg: JobConfig, c: LatenessClass) -> str:
    """The clickstream read for one lateness class: its watermark lags the newest event
    time by the class's lateness (its own consumer group suffix: offsets of two reads never
    mix)."""
    lag_s = c.lateness_ms / 1000
    return f"""
CREATE TABLE clicks_raw{c.suffix} (
  k BYTES,
  v BYTES,
  kp INT METADATA FROM 'partition' VIRTUAL,
  ko BIGINT METADATA FROM 'offset' VIRTUAL,
  kts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  ts AS {click_ts(cfg)},
  WATERMARK FOR ts AS ts - INTERVAL '{lag_s}' SECOND
) WITH ({_kafka(cfg, cfg.clickstream_topic, key=True, group_suffix=c.suffix)})"""


IMPLAUSIBLE_TS = "TO_TIMESTAMP_LTZ(0, 3)"
"""The rowtime of a click whose event time is absent, malformed or implausible: the epoch,
behind every watermark, so it never advances one (the gate files it in the DLQ)."""

JAVA_FUNCTIONS = {
    "parse_click": "io.streamfeat.flink.ParseClick",
    "click_time": "io.streamfeat.flink.ClickTime",
    "bytes_base64": "io.streamfeat.flink.BytesBase64",
    "epoch_ms": "io.streamfeat.flink.EpochMillis",
    "plausible_time": "io.streamfeat.flink.PlausibleTime",
    "last_two": "io.streamfeat.flink.LastTwo",
    "updated_rows": "io.streamfeat.flink.UpdatedRows",
    "latest_value": "io.streamfeat.flink.LatestValue",
    "approx_distinct": "io.streamfeat.flink.ApproxDistinct",
    "dq_verdict": "io.streamfeat.flink.QualityVerdict",
    "parse_order": "io.streamfeat.flink.ParseOrder",
    "order_time": "io.streamfeat.flink.OrderTime",
}
"""The job's Java functions (flink_jobs/jvm): SQL name -> class, registered by the job."""


def parse_click(cfg: JobConfig, value: str = "v") -> str:
    """The strict parse of a click value against the clickstream suite (ParseClick:
    flink_jobs.logic.records.parse_click's rules, ``cfg.click_rules``):
    ROW<event_id, user_id, event_type, page, event_time, reason, expectation, detail>."""
    return f"parse_click({value}, '{cfg.click_rules}')"


def click_ts(cfg: JobConfig) -> str:
    """A click's rowtime: :func:`plausible_ts` of its ``event_time`` if the click is valid,
    else the epoch (ClickTime: the parse the gate then reuses, so a record the gate rejects
    never moves the watermark)."""
    return plausible_ts(f"click_time(v, '{cfg.click_rules}')", cfg)


def plausible_ts(ms: str, cfg: JobConfig) -> str:
    """The rowtime of a record whose event time is the BIGINT expression ``ms`` (NULL when
    absent or invalid): that time when plausible -- not before ``event_time_floor_ms`` and at
    most ``max_event_time_ahead_ms`` ahead of the Kafka record timestamp ``kts`` -- else
    :data:`IMPLAUSIBLE_TS`. Never NULL, for any input (a NULL rowtime fails the job); ``ms``
    is evaluated once (PlausibleTime, a Java function: in SQL, NULLIF and LEAST/GREATEST
    are expanded into CASE expressions that repeat their operand)."""
    return (
        f"plausible_time({ms}, kts, CAST({cfg.event_time_floor_ms} AS BIGINT), "
        f"CAST({cfg.max_event_time_ahead_ms} AS BIGINT))"
    )


def clicks_gated(c: LatenessClass) -> str:
    """The gate's output of one class, computed once (flink_jobs.feature_job.computed_once): see
    :func:`clicks_gate`."""
    return f"clicks_gated{c.suffix}"


def clicks_gate(cfg: JobConfig, c: LatenessClass) -> str:
    """Every click parsed and gated: the query behind the ``clicks`` view.

    Each record is parsed once, strictly, by the job's Java parser (:func:`parse_click`; the
    watermark's :func:`click_ts` asked first and the parse is reused). As a view, the
    planner would inline this query into each of its consumers (the DLQ, the windows, the
    sessions, the lags); the job computes it once behind a DataStream boundary instead
    (feature_job.computed_once): the event time leaves as ``t0`` (the rowtime: it becomes the record
    timestamps) and comes back as ``ts``, with the source's own watermarks. ``reason`` is
    the parser's, else ``implausible_event_time`` (:func:`plausible_ts`), else ``late``;
    the primary class's verdicts are counted as Flink metrics (``dq_verdict``: the other
    classes read the same records again)."""
    verdict = f"""CASE
    WHEN c.reason IS NOT NULL THEN c.reason
    WHEN ts <= {IMPLAUSIBLE_TS} THEN 'implausible_event_time'
    WHEN ts <= CURRENT_WATERMARK(ts) THEN 'late'
  END"""
    if c.primary:
        verdict = f"dq_verdict('clickstream', {verdict})"
    return f"""
SELECT kp, ko, kts, ts AS t0, k, v, c.user_id, c.event_type, c.page, c.event_time,
  {verdict} AS reason,
  c.expectation AS expectation, c.detail AS detail
FROM (SELECT *, {parse_click(cfg)} AS c FROM clicks_raw{c.suffix})"""


def clicks_view(c: LatenessClass) -> str:
    """The gated clicks with ``ts`` as their event-time attribute again (the record
    timestamps and watermarks that crossed the boundary), for the DLQ and the features."""
    return (
        f"CREATE TEMPORARY VIEW clicks{c.suffix} AS SELECT kp, ko, kts, ts, k, v, user_id, "
        f"event_type, page, event_time, reason, expectation, detail FROM {clicks_gated(c)}"
    )


def orders_source(cfg: JobConfig) -> str:
    """CDC orders with event time = the order's ``created_at`` (flink_jobs.logic.events
    .OrderEvent.order_time_ms): order features count an order when it was created, also for
    the snapshot's historical rows (whose commit time is the snapshot's). The connector
    snapshots orders by ``created_at`` (connectors/cdc/postgres.json), so each partition is in
    event-time order and the watermark holds for snapshot and stream alike. The watermark
    lags by the order views' allowed lateness (:func:`orders_lateness_ms`)."""
    lag_s = orders_lateness_ms(cfg) / 1000
    order_ts = plausible_ts(f"order_time(v, '{cfg.order_rules}')", cfg)
    return f"""
CREATE TABLE orders_raw (
  k BYTES,
  v BYTES,
  kp INT METADATA FROM 'partition' VIRTUAL,
  ko BIGINT METADATA FROM 'offset' VIRTUAL,
  kts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  ts AS {order_ts},
  WATERMARK FOR ts AS ts - INTERVAL '{lag_s}' SECOND
) WITH ({_kafka(cfg, cfg.cdc_orders_topic, key=True)},
  'scan.watermark.idle-timeout' = '{cfg.orders_idle_timeout_ms} ms')"""


ORDERS_GATED = "orders_gated"
"""The orders gate's output, computed once like the clicks gate's."""
ORDER_CREATIONS = "order_creations"
"""One create event per order (:func:`order_creations`), computed once."""


def orders_gate(cfg: JobConfig) -> str:
    """Every CDC orders event parsed and gated once, like :func:`clicks_gate`: by the job's
    Java parser against the CDC orders suite (ParseOrder, ``cfg.order_rules``); then a
    creation (op c/r) needs its ``created_at`` (the order's event time: else
    ``bad_created_at``), a plausible one, on time. Updates and deletes that meet the suite
    change no order feature (orders are counted when created) and are passed over (``reason``
    NULL); Kafka tombstones are skipped. Computed once (feature_job.computed_once)."""
    return f"""
SELECT kp, ko, kts, ts AS t0, k, v, o.op, o.order_id, o.customer_id, o.amount_cents,
  o.order_ms, o.src_ms, o.commit_lsn, o.lsn,
  dq_verdict('orders', CASE
    WHEN o.reason IS NOT NULL THEN o.reason
    WHEN o.op IN ('u', 'd') THEN CAST(NULL AS STRING)
    WHEN o.order_ms IS NULL THEN 'bad_created_at'
    WHEN ts <= {IMPLAUSIBLE_TS} THEN 'implausible_event_time'
    WHEN ts <= CURRENT_WATERMARK(ts) THEN 'late'
  END) AS reason,
  o.expectation AS expectation, o.detail AS detail
FROM (SELECT *, parse_order(v, '{cfg.order_rules}') AS o FROM orders_raw WHERE v IS NOT NULL)"""


def orders_view() -> str:
    return (
        "CREATE TEMPORARY VIEW orders AS SELECT kp, ko, kts, ts, k, v, op, order_id, customer_id, "
        f"amount_cents, order_ms, src_ms, commit_lsn, lsn, reason, expectation, detail, pt "
        f"FROM {ORDERS_GATED}"
    )


def order_inserts() -> str:
    """Valid, on-time create events (op c/r), duplicates included."""
    return (
        "CREATE TEMPORARY VIEW order_inserts AS "
        "SELECT * FROM orders WHERE op IN ('c', 'r') AND reason IS NULL"
    )


def order_creations() -> str:
    """One create event per order id (flink_jobs.logic.events.order_creations): a record
    Kafka Connect redelivers after a crash, or a row both read by the snapshot (``r``) and
    streamed as an insert (``c``), counts once, as the first copy to arrive: the first in
    its partition (all copies of one order are on one partition, keyed by the order id, and
    one source subtask reads a partition in order), so which copy counts is fixed by the
    topic, not by arrival across partitions, restarts or parallelism.

    A first-row deduplication on processing time: the first copy is emitted at once (no
    timer, no watermark: at any parallelism an order is counted as soon as it arrives).
    Planned without mini-batches and with ``table.exec.state.ttl`` =
    :func:`order_dedup_ttl_ms` (feature_job.build: computed once, before either is set for
    the rest), so its output is append-only and each order id is kept that long. A copy
    arriving later than the orders' lateness is behind the watermark and filed by the gate
    as ``late`` (DLQ) first, never counted twice. Its event time is ``t0``
    (feature_job.computed_once)."""
    return """
SELECT order_id, customer_id, amount_cents, order_ms, commit_lsn, lsn, ts AS t0
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY order_id ORDER BY pt) AS rn FROM order_inserts)
WHERE rn = 1"""


def order_dedup_ttl_ms(cfg: JobConfig) -> int:
    """How long :func:`order_creations` keeps an order id (processing time): the orders'
    lateness (later copies are rejected as late by the gate) plus the state grace."""
    return orders_lateness_ms(cfg) + cfg.tile_state_grace_ms


def orders_dlq_insert(cfg: JobConfig) -> str:
    return f"""
INSERT INTO dlq
SELECT
  CASE reason WHEN 'late' THEN 'order created_at at or behind the watermark on arrival'
    WHEN 'implausible_event_time' THEN 'failed CDC order expectation: implausible_event_time '
      || '(created_at ' || CAST(order_ms AS STRING) || ' ms is before '
      || '{cfg.event_time_floor_ms} or more than {cfg.max_event_time_ahead_ms} ms ahead of the '
      || 'Kafka timestamp ' || CAST(kts AS STRING) || ')'
    WHEN 'bad_created_at' THEN 'failed CDC order expectation: bad_created_at ('
      || COALESCE(detail, 'a creation without created_at') || ')'
    ELSE 'failed CDC order expectation: ' || reason || ' (' || COALESCE(detail, '') || ')' END,
  expectation,
  {kafka_original(f"'{cfg.cdc_orders_topic}'")},
  DATE_FORMAT(CASE WHEN ts > {IMPLAUSIBLE_TS} THEN ts ELSE kts END, 'yyyy-MM-dd'),
  'pg_cdc',
  reason
FROM orders WHERE reason IS NOT NULL"""


def _order_version() -> str:
    """OrderEvent.row_version: the CDC version with the order time in front."""
    return (
        f"{encoded_num('order_ms')} || '{CDC_PRIORITY:02x}' || {encoded_num('commit_lsn')} || "
        f"{encoded_num('lsn')}"
    )


def json_int(field: str, parent: str = "$") -> str:
    """A JSON integer field, NULL unless the JSON holds a bare number (as
    flink_jobs.logic.records.parse_click: "17" or 17.5 is not an int). JSON_VALUE alone would
    cast a numeric string."""
    return (
        f"CASE WHEN REGEXP(js, '\"{field}\"\\s*:\\s*-?[0-9]+\\s*[,}}]') "
        f"THEN TRY_CAST(JSON_VALUE(js, '{parent}.{field}') AS BIGINT) END"
    )


def dlq_sink(cfg: JobConfig) -> str:
    """The DLQ layout of core/dlq.py: date/source/reason partitions, JSON Lines entries;
    files become visible only when the checkpoint that covers them completes. JSON is a row
    format: its part files roll by time, not on checkpoints, so they roll after half a
    checkpoint interval; an entry is visible within about 1.5 checkpoint intervals plus
    the checkpoint's own duration (~16 s at the default 10 s). ``expectation`` names the
    suite's expectation a record failed (core.quality.Rule.label), NULL for the job's own
    rules (plausible event time, lateness). An entry keeps
    the record's key and value bytes exactly as they arrived (:func:`kafka_original`; NULL
    for an absent key or a tombstone) and its Kafka coordinates, timestamp in epoch ms."""
    return f"""
CREATE TABLE dlq (
  detail STRING,
  expectation STRING,
  coordinates ROW<topic STRING, `partition` INT, `offset` BIGINT, `timestamp` BIGINT>,
  original_key_b64 STRING,
  original_b64 STRING,
  `date` STRING,
  source STRING,
  reason STRING
) PARTITIONED BY (`date`, source, reason) WITH (
  'connector' = 'filesystem',
  'path' = '{cfg.dlq_path}',
  'format' = 'json',
  'sink.rolling-policy.rollover-interval' = '{max(cfg.checkpoint_interval_ms // 2, 1000)} ms',
  'sink.rolling-policy.check-interval' = '1 s'
)"""


def kafka_original(topic: str) -> str:
    """The DLQ columns ``coordinates, original_key_b64, original_b64`` of a Kafka record
    (``kp, ko, kts, k, v``) read from ``topic`` (an SQL expression)."""
    return f"ROW({topic}, kp, ko, epoch_ms(kts)), bytes_base64(k), bytes_base64(v)"


def dlq_insert(cfg: JobConfig, c: LatenessClass) -> str:
    """Rejected clicks of one lateness class: the primary class files every reason, the
    others only what is late for them (the rest is the primary's), each ``late`` entry
    naming the views the event did not reach."""
    late = (
        f"'event time at or behind the watermark on arrival: not counted in {c.view_names} "
        f"(allowed lateness {c.lateness_ms} ms)'"
    )
    implausible = (
        "'failed clickstream expectation: implausible_event_time (event_time ' || "
        f"CAST(event_time AS STRING) || ' is before {cfg.event_time_floor_ms} or more than "
        f"{cfg.max_event_time_ahead_ms} ms ahead of the Kafka timestamp ' || "
        "CAST(kts AS STRING) || ')'"
    )
    return f"""
INSERT INTO dlq
SELECT
  CASE reason WHEN 'late' THEN {late}
    WHEN 'implausible_event_time' THEN {implausible}
    ELSE 'failed clickstream expectation: ' || reason || ' (' || detail || ')' END,
  expectation,
  {kafka_original(f"'{cfg.clickstream_topic}'")},
  DATE_FORMAT(CASE WHEN ts > {IMPLAUSIBLE_TS} THEN ts ELSE kts END, 'yyyy-MM-dd'),
  'clickstream',
  reason
FROM clicks{c.suffix} WHERE {"reason IS NOT NULL" if c.primary else "reason = 'late'"}"""


FEATURE_ROW = "view, grp, entity_id, event_time, version, features"
"""Every offline feature query yields these columns; one row = one row of the offline table
(``grp`` NULL for ungrouped views, ``features`` long names -> values)."""

ONLINE_WRITE = "key, script, args"
"""One online write: a call of one of the store's Lua scripts (core.online.SCRIPTS) on one
hash, with its ARGV (:func:`online_store_sink`)."""


def features_map(view: FeatureView, values: dict[str, str]) -> str:
    """The offline row's ``features``: long name -> value (a NULL value stays NULL)."""
    for name in values:
        view.feature(name)  # KeyError on a typo
    pairs = ", ".join(f"'{name}', {expr}" for name, expr in values.items())
    return f"CAST(MAP[{pairs}] AS MAP<STRING, STRING>)"


def _text(literal: object) -> str:
    """A literal ARGV element (STRING, not CHAR(n): an ARRAY of CHARs would be padded)."""
    return f"CAST('{literal}' AS STRING)"


def _num(expr: str) -> str:
    return f"CAST({expr} AS STRING)"


def _write(view: FeatureView, script: str, entity: str, argv: list[str]) -> str:
    """The ONLINE_WRITE columns of one call of ``script`` on ``view``'s hash of ``entity``."""
    prefix, suffix = key_parts(view)
    key = f"'{prefix}' || CAST({entity} AS STRING) || '{suffix}'"
    return f"{key} AS key, {_text(script)} AS script, ARRAY[{', '.join(argv)}] AS args"


def upsert_write(
    view: FeatureView, *, entity: str, event_time: str, version: str, values: dict[str, str]
) -> str:
    """A whole row of a view-scoped view as one online write: core.online.UPSERT_LUA's ARGV
    for one group (as core.online.upsert_args builds it), the row's version field and every
    feature, a NULL value removing its field. ``values``: one SQL STRING expression per
    feature, already in core.online's encoding (integers as decimal text, bools '1'/'0')."""
    missing = {f.name for f in view.features} - values.keys()
    if missing:
        raise ValueError(f"upsert_write: a row of {view.name} needs {sorted(missing)} too")
    fields: list[str] = []
    for name, expr in values.items():
        fields += [_text(view.feature(name).short), f"COALESCE('{SET_MARK}' || {expr}, '')"]
    argv = [
        _num(f"{event_time} + {view.ttl_s * 1000}"),
        _num(event_time),
        _text(1),
        _text(ROW_VERSION),
        version,
        _text(len(values)),
        *fields,
    ]
    return _write(view, "upsert", entity, argv)


def attribute_write(
    view: FeatureView, *, entity: str, attribute: str, value: str, version: str, event_time: str
) -> str:
    """One attribute of an attribute-scoped view as one online write: UPSERT_LUA's ARGV for
    one group (as core.online.upsert_args builds it for one AttributeWrite): no ``_t``, the
    attribute's version field and version, its value (encoded; NULL deletes the field).
    ``attribute`` holds the feature's long name, one of the view's."""

    def per_feature(of: Callable[[Feature], str]) -> str:
        cases = " ".join(f"WHEN '{f.name}' THEN '{of(f)}'" for f in view.features)
        return f"CASE {attribute} {cases} END"

    argv = [
        _num(f"{event_time} + {view.ttl_s * 1000}"),
        _text(""),
        _text(1),
        per_feature(attribute_version_field),
        version,
        _text(1),
        per_feature(lambda f: f.short),
        f"COALESCE('{SET_MARK}' || {value}, '')",
    ]
    return _write(view, "upsert", entity, argv)


def tile_write(
    view: FeatureView, *, entity: str, event_time: str, tile: str, n: str, packed: str
) -> str:
    """One tile of a windowed view as one online write: core.online.TILE_LUA's ARGV for one
    tile (as core.online.tile_args builds it)."""
    aggs = _aggs(view)
    sizes = [_text(v) for size in aggs.tile_sizes for v in (size, aggs.retention_ms(size))]
    argv = [
        _num(f"{event_time} + {view.ttl_s * 1000}"),
        _num(event_time),
        _text(len(aggs.tile_sizes)),
        *sizes,
        _text(1),
        _num(tile),
        _num(n),
        packed,
    ]
    return _write(view, "tiles", entity, argv)


@dataclass(frozen=True)
class Chain:
    """Lag features of one event stream (core.features.Lags), without an OVER aggregation.

    Online: a group aggregation on the entity key keeps its two latest events by version
    (``last_two``, a Java aggregate: mini-batched, two-phase, no timers, no sorting) and
    each change is one version-guarded write of the lag features. An ``LAG`` OVER
    aggregation buffered and sorted every event until the watermark, and ordered events of
    equal time by arrival; this orders them by version. The row's version is the latest
    event's followed by the number of events taken in (encoded numbers are prefix-free, so
    the text order is the order of the pair): an older event arriving late changes only the
    previous one, and that write is still newer.

    Offline: one row per event holding the event's own value; the point-in-time join derives
    the other lag features from the two latest rows at or before each instant."""

    source: str
    """The valid events (a view with ``ts``, the event-time attribute)."""
    entity: str
    time_ms: str
    version: str
    value: str
    """The event's own value as STRING (core.online's encoding)."""
    lagged: FeatureView
    state_grace_ms: int
    """How long an entity's two events outlive the lags' horizon in state (processing
    time; JobConfig.tile_state_grace_ms)."""

    @property
    def state_ttl_ms(self) -> int:
        """An entity's state lives this long after its last event: past the horizon its
        previous event no longer counts, so nothing of it is needed (bounded state)."""
        return self.lags.horizon_ms + self.state_grace_ms

    @property
    def lags(self) -> Lags:
        if self.lagged.lags is None:
            raise ValueError(f"feature view {self.lagged.name!r} declares no lags")
        return self.lagged.lags

    def online_rows(self) -> str:
        """The online writes (sql.ONLINE_WRITE; an upsert stream, one entity per key)."""
        spec = self.lags
        within = f"l.t1 - l.t2 <= {spec.horizon_ms}"  # else as the entity's first event
        values = {
            spec.value: "l.x1",
            spec.prev: f"CASE WHEN {within} THEN l.x2 END",
            spec.since_ms: f"CASE WHEN {within} THEN CAST(l.t1 - l.t2 AS STRING) END",
        }
        if spec.delta is not None:
            values[spec.delta] = (
                f"CASE WHEN {within} THEN "
                "CAST(CAST(l.x1 AS BIGINT) - CAST(l.x2 AS BIGINT) AS STRING) END"
            )
        write = upsert_write(
            self.lagged,
            entity="entity_id",
            event_time="l.t1",
            version=f"l.v1 || {encoded_num('l.n')}",
            values=values,
        )
        return f"""
SELECT {write}
FROM (
  SELECT /*+ STATE_TTL('s' = '{self.state_ttl_ms} ms') */ {self.entity} AS entity_id,
    last_two({self.time_ms}, {self.version}, {self.value}) AS l
  FROM {self.source} AS s GROUP BY {self.entity})"""

    def event_rows(self) -> str:
        """The offline rows (sql.FEATURE_ROW, append-only): one per event, its own value."""
        return f"""
SELECT '{self.lagged.name}' AS view, CAST(NULL AS STRING) AS grp, {self.entity} AS entity_id,
  {self.time_ms} AS event_time, {self.version} AS version,
  {features_map(self.lagged, {self.lags.value: self.value})} AS features
FROM {self.source}"""


def click_chain(source: str, state_grace_ms: int) -> Chain:
    """user_lags over ``source`` (the valid clicks of its lateness class)."""
    return Chain(
        source=source,
        entity="user_id",
        time_ms="event_time",
        version=_click_version(),
        value="event_type",
        lagged=USER_LAGS,
        state_grace_ms=state_grace_ms,
    )


def order_chain(state_grace_ms: int) -> Chain:
    """order_lags at each order's creation time (flink_jobs.logic.lags.order_lags: NULL at
    the first order)."""
    return Chain(
        source=ORDER_CREATIONS,
        entity="customer_id",
        time_ms="order_ms",
        version=_order_version(),
        value="CAST(amount_cents AS STRING)",
        lagged=ORDER_LAGS,
        state_grace_ms=state_grace_ms,
    )


def windowed_views(cfg: JobConfig, source: str | None = None) -> tuple[FeatureView, ...]:
    """The windowed views (core.windows) the job computes: the declared ones, then those
    registered through the registry (``cfg.registered_views``); of one event source when
    named."""
    views = (*FEATURE_VIEWS, *(r.feature_view() for r in cfg.registered_views))
    return tuple(
        v
        for v in views
        if v.aggregations is not None and source in (None, v.aggregations.source.name)
    )


def tile_events_name(view: FeatureView) -> str:
    return f"tile_events_{view.name}"


def tile_events(view: FeatureView, source: str) -> str:
    """The events of a windowed view: entity, event time (ms and the time attribute ``ts``)
    and the fields its measures read, after the view's filter."""
    aggs = _aggs(view)
    fields = "".join(f", {f}" for f in aggs.source.fields)
    where = f" WHERE {_filter_sql(aggs.where)}" if aggs.where else ""
    return (
        f"CREATE TEMPORARY VIEW {tile_events_name(view)} AS SELECT {aggs.source.entity_field} "
        f"AS entity_id, {aggs.source.time_field} AS t_ms, ts{fields} FROM {source}{where}"
    )


def _aggs(view: FeatureView) -> Aggregations:
    if view.aggregations is None:
        raise ValueError(f"feature view {view.name!r} is not windowed")
    return view.aggregations


def _filter_sql(f: Filter) -> str:
    values = ", ".join("'" + v.replace("'", "''") + "'" for v in f.values)
    return f"{f.field} IN ({values})"


def _measure_sql(m: Measure) -> str:
    """One stored measure of a tile (core.windows.tiles_of): a count with a filter counts the
    matching events (0 when none), a sum adds the column (0 when none), min/max NULL when
    no event takes part, last the value at the latest (event time, value) (LatestValue),
    approx_distinct the column's sketch (ApproxDistinct: a ROW of its columns)."""
    cond = _filter_sql(m.where) if m.where else "TRUE"
    if m.function == "count":
        return f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)"
    value = f"CASE WHEN {cond} THEN {m.column} END"
    if m.function == "sum":
        return f"COALESCE(SUM({value}), 0)"
    if m.function == "last":
        return f"latest_value(t_ms, {value})"
    if m.function == "approx_distinct":
        return f"approx_distinct(CASE WHEN {cond} THEN CAST({m.column} AS STRING) END)"
    return f"{m.function.upper()}({value})"


def _column_sql(m: Measure, part: int) -> str:
    """A stored tile column of the tile aggregation's row (a sketch's ``part``-th field)."""
    if m.function == "approx_distinct":
        return f"`{m.name}`.r{part}"
    return f"`{m.name}`"


def tile_aggregates_name(view: FeatureView, size: int) -> str:
    return f"tiles_{view.name}_{_aggs(view).slot(size)}"


def tile_aggregates(view: FeatureView, cfg: JobConfig) -> list[str]:
    """The tiles of a windowed view, for the online and the offline store: per tile size a
    view of a group aggregation on (entity, tile) -- two-phase and mini-batched
    (``table.exec.mini-batch``: each key's state is touched once per batch, no per-event
    timers, no watermark) -- emitting each changed tile's absolute value (an upsert stream:
    ``entity_id, tile`` (its stored field), ``t`` (its newest event time), ``n`` and each
    stored measure by name). Its state lives ``tile + lateness + grace`` (a STATE_TTL hint):
    the watermark closes a tile after its end plus the allowed lateness, later events go to
    the DLQ as late, so an older tile never changes again."""
    aggs = _aggs(view)
    lateness = view_lateness(
        view, default_ms=cfg.max_out_of_orderness_ms, overrides=lateness_overrides(cfg)
    )
    measures = "".join(f", {_measure_sql(m)} AS `{m.name}`" for m in aggs.stored)
    out = []
    for size in aggs.tile_sizes:
        ttl_ms = size + lateness + cfg.tile_state_grace_ms
        out.append(f"""
CREATE TEMPORARY VIEW {tile_aggregates_name(view, size)} AS
SELECT /*+ STATE_TTL('e' = '{ttl_ms} ms') */ entity_id, tile, MAX(t_ms) AS t, COUNT(*) AS n
  {measures}
FROM (SELECT *, (t_ms / {size}) * {SLOTS} + {aggs.slot(size)} AS tile
      FROM {tile_events_name(view)}) AS e
GROUP BY entity_id, tile""")
    return out


def tile_changes_name(view: FeatureView) -> str:
    return f"tile_changes_{view.name}"


def tile_rows_name(view: FeatureView, size: int) -> str:
    return f"tile_rows_{view.name}_{_aggs(view).slot(size)}"


def tile_rows(view: FeatureView) -> list[str]:
    """Per tile size, the tiles' changes as feature rows (sql.FEATURE_ROW, an upsert
    stream): ``grp`` the tile's stored field, ``version`` its encoded ``n``, ``features``
    ``n`` and every stored measure by name."""
    aggs = _aggs(view)
    pairs = ", ".join(
        [
            "'n', CAST(n AS STRING)",
            *(
                f"'{m.stored_name(part)}', CAST({_column_sql(m, part)} AS STRING)"
                for m, part in aggs.stored_columns
            ),
        ]
    )
    return [
        f"""
CREATE TEMPORARY VIEW {tile_rows_name(view, size)} AS
SELECT '{view.name}' AS view, CAST(tile AS STRING) AS grp, entity_id, t AS event_time,
  {encoded_num("n")} AS version, CAST(MAP[{pairs}] AS MAP<STRING, STRING>) AS features
FROM {tile_aggregates_name(view, size)}"""
        for size in aggs.tile_sizes
    ]


def tile_changes(view: FeatureView) -> str:
    """Every value a tile took, as append-only feature rows (sql.FEATURE_ROW): ``updated_rows``
    (a Java table function) turns each insert and update of the tiles' upsert stream into a
    row, one call per tile size (chained to its aggregation: no exchange in between). Both
    stores read this one table, so each tile aggregation runs once: an upsert sink and a
    retracting reader of the aggregation itself would ask the planner for two changelog
    modes, and it would compute the aggregation twice."""
    calls = "\nUNION ALL\n".join(
        f"SELECT {FEATURE_ROW} FROM updated_rows(input => TABLE {tile_rows_name(view, size)})"
        for size in _aggs(view).tile_sizes
    )
    return f"CREATE TEMPORARY VIEW {tile_changes_name(view)} AS\n{calls}"


def tile_updates(view: FeatureView) -> str:
    """The online writes of a windowed view's tiles (sql.ONLINE_WRITE): every change of a
    tile, version-guarded by its ``n``."""
    aggs = _aggs(view)
    # core.windows.pack: n, then the stored measures, ','-separated, '' for a NULL
    packed = " || ',' || ".join(
        [
            "features['n']",
            *(f"COALESCE(features['{m.stored_name(p)}'], '')" for m, p in aggs.stored_columns),
        ]
    )
    write = tile_write(
        view,
        entity="entity_id",
        event_time="event_time",
        tile="CAST(grp AS BIGINT)",
        n="features['n']",
        packed=packed,
    )
    return f"SELECT {write} FROM {tile_changes_name(view)}"


def offline_tiles(view: FeatureView) -> str:
    """The offline rows of a windowed view (sql.FEATURE_ROW, append-only): every value a tile
    took (:func:`tile_changes`). The training-set join keeps the greatest version per tile
    (batch.point_in_time.windowed_columns), so the offline tiles are final without a second,
    watermark-driven aggregation that could drop an event the gate let through."""
    return f"SELECT {FEATURE_ROW} FROM {tile_changes_name(view)}"


def valid_clicks_name(c: LatenessClass) -> str:
    return f"valid_clicks{c.suffix}"


def valid_clicks(c: LatenessClass) -> str:
    """The valid, on-time clicks of one lateness class (what its views are computed from)."""
    return (
        f"CREATE TEMPORARY VIEW {valid_clicks_name(c)} AS "
        f"SELECT * FROM clicks{c.suffix} WHERE reason IS NULL"
    )


def _click_version() -> str:
    return click_version_sql(CLICK_PRIORITY)


CLOSED_SESSIONS = "closed_sessions"
"""The job's table of closed sessions (:func:`closed_sessions`)."""


def closed_sessions(cfg: JobConfig) -> str:
    """Sessions per user (SESSION window TVF over :func:`session_source`), one row per
    closed session with
    ``ts`` (its ``window_time``: an event-time attribute at its last event) and ``end_ms``:
    the ``sessions`` event source of core.windows (``user_session_counts`` counts them in
    tiles) and the rows of ``user_sessions``. Flink merges session windows that merely
    touch, so the gap is declared 1 ms shorter: an event exactly ``gap`` after the previous
    one starts a new session, as in flink_jobs.logic.sessions. Computed once
    (feature_job.computed_once: ``window_time`` leaves as ``t0``, comes back as ``ts``)."""
    gap_s = (cfg.session_gap_ms - 1) / 1000
    return f"""
SELECT user_id, window_time AS t0, MIN(event_time) AS start_ms, MAX(event_time) AS end_ms,
  COUNT(*) AS events, COUNT(DISTINCT page) AS pages,
  MAX(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS converted,
  MAX(kp) AS kp, MAX(ko) AS last_ko
FROM TABLE(SESSION(TABLE {session_source(cfg)} PARTITION BY user_id, DESCRIPTOR(ts),
                   INTERVAL '{gap_s:.3f}' SECOND(9, 3)))
GROUP BY user_id, window_start, window_end, window_time"""


SESSION_VALUES = {
    "last_session_duration_s": "CAST((end_ms - start_ms) / 1000 AS STRING)",
    "last_session_events": "CAST(events AS STRING)",
    "last_session_pages": "CAST(pages AS STRING)",
    "last_session_converted": "CASE WHEN converted = 1 THEN '1' ELSE '0' END",
}
"""``user_sessions``' features of a closed session (a row of :func:`closed_sessions`)."""


def _session_version() -> str:
    """A closed session's version: its last event's."""
    return (
        f"{encoded_num('end_ms')} || '{CLICK_PRIORITY:02x}' || "
        f"{encoded_num('kp')} || {encoded_num('last_ko')}"
    )


def sessions() -> str:
    """``user_sessions``' offline rows (sql.FEATURE_ROW): one per closed session
    (:func:`closed_sessions`), versioned by its last event."""
    return f"""
SELECT '{USER_SESSIONS.name}' AS view, CAST(NULL AS STRING) AS grp, user_id AS entity_id,
  end_ms AS event_time, {_session_version()} AS version,
  {features_map(USER_SESSIONS, SESSION_VALUES)} AS features
FROM {CLOSED_SESSIONS}"""


def session_writes() -> str:
    """``user_sessions``' online writes (sql.ONLINE_WRITE): each closed session's row."""
    write = upsert_write(
        USER_SESSIONS,
        entity="user_id",
        event_time="end_ms",
        version=_session_version(),
        values=SESSION_VALUES,
    )
    return f"SELECT {write} FROM {CLOSED_SESSIONS}"


def profile_writes() -> str:
    """``customer_profile``'s online writes (sql.ONLINE_WRITE): each attribute update of the
    profile path (CDC customers, CRM), version-guarded per attribute (last-writer-wins)."""
    write = attribute_write(
        CUSTOMER_PROFILE,
        entity="entity_id",
        attribute="attribute",
        value="val",
        version="version",
        event_time="event_time",
    )
    return f"SELECT {write} FROM {PROFILE_UPDATES}"


def computed_views(cfg: JobConfig) -> tuple[FeatureView, ...]:
    """The views the job computes (its lineage outputs)."""
    return (*windowed_views(cfg), USER_LAGS, ORDER_LAGS, USER_SESSIONS)


def event_sources(cfg: JobConfig) -> dict[str, str]:
    """Event source name (core.windows.EVENT_SOURCES) -> the job's table of its valid events;
    a clickstream view reads the valid clicks of its lateness class."""
    classes = click_classes(cfg)
    out = {
        v.name: valid_clicks_name(class_of(classes, v)) for v in windowed_views(cfg, "clickstream")
    }
    out |= {v.name: ORDER_CREATIONS for v in windowed_views(cfg, "orders")}
    out |= {v.name: CLOSED_SESSIONS for v in windowed_views(cfg, "sessions")}
    return out


def tile_event_views(cfg: JobConfig) -> list[str]:
    """Per windowed view: its events, its tiles and their feature rows."""
    sources = event_sources(cfg)
    out = []
    for v in windowed_views(cfg):
        out += [tile_events(v, sources[v.name]), *tile_aggregates(v, cfg), *tile_rows(v)]
        out.append(tile_changes(v))
    return out


def _chains(cfg: JobConfig) -> tuple[Chain, Chain]:
    classes = click_classes(cfg)
    grace = cfg.tile_state_grace_ms
    return click_chain(valid_clicks_name(class_of(classes, USER_LAGS)), grace), order_chain(grace)


def session_source(cfg: JobConfig) -> str:
    """The valid clicks the sessions are cut from (their lateness class's)."""
    return valid_clicks_name(class_of(click_classes(cfg), USER_SESSIONS))


def online_rows(cfg: JobConfig) -> str:
    """What the online store receives (sql.ONLINE_WRITE): each closed session, each change of
    an entity's lags, every change of a tile (upsert streams: each write is absolute) and
    each profile attribute update."""
    lags = [c.online_rows() for c in _chains(cfg)]
    tiles = [tile_updates(v) for v in windowed_views(cfg)]
    parts = [session_writes(), *lags, *tiles, profile_writes()]
    return "CREATE TEMPORARY VIEW online_rows AS\n" + "\nUNION ALL\n".join(f"({p})" for p in parts)


def offline_feature_rows(cfg: JobConfig) -> str:
    """What the offline table receives (sql.FEATURE_ROW, append-only): each closed session,
    each lag event and each final tile."""
    lags = [c.event_rows() for c in _chains(cfg)]
    tiles = [offline_tiles(v) for v in windowed_views(cfg)]
    parts = [sessions(), *lags, *tiles]
    return "CREATE TEMPORARY VIEW feature_rows AS\n" + "\nUNION ALL\n".join(f"({p})" for p in parts)


def raw_source(cfg: JobConfig, name: str, topic: str) -> str:
    return f"""
CREATE TABLE {name} (
  k BYTES,
  v BYTES,
  kp INT METADATA FROM 'partition' VIRTUAL,
  ko BIGINT METADATA FROM 'offset' VIRTUAL,
  kts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL
) WITH ({_kafka(cfg, topic, key=True)})"""


ONLINE_WRITE_COLUMNS = "key STRING, script STRING, args ARRAY<STRING>"


def _quoted(text: str) -> str:
    """Text inside a SQL string literal."""
    return text.replace("'", "''")


def blackhole(name: str, columns: str = ONLINE_WRITE_COLUMNS) -> str:
    return f"CREATE TABLE {name} ({columns}) WITH ('connector' = 'blackhole')"


def online_store_sink(cfg: JobConfig) -> str:
    """The online store (flink_jobs/jvm ``RedisScriptSinkFactory``): each row one call of a
    script of core.online.SCRIPTS, pipelined; a flush every ``online_flush_ms``, every
    ``online_batch_size`` rows and at every checkpoint barrier, answered before the
    checkpoint completes (at-least-once; the scripts make a second delivery harmless)."""
    scripts = "".join(
        f",\n  'script.{name}' = '{lua.replace(chr(39), chr(39) * 2)}'"
        for name, lua in SCRIPTS.items()
    )
    return f"""
CREATE TABLE online_store ({ONLINE_WRITE_COLUMNS}) WITH (
  'connector' = 'streamfeat-redis',
  'url' = '{cfg.redis_url}',
  'batch.size' = '{cfg.online_batch_size}',
  'flush.interval' = '{cfg.online_flush_ms} ms',
  'retry.timeout' = '{cfg.online_retry_timeout_ms} ms'{scripts}
)"""


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
    "expectation",
)


PROFILE, PROFILE_ROWS, PROFILE_UPDATES = "profile", "profile_rows", "profile_updates"
"""The profile path: the view over both sources, its rows computed once (with ``pt``), and
its attribute updates without redelivered copies (:func:`profile_updates`)."""


def profile_updates() -> str:
    """One row per attribute update, ``(entity_id, attribute, version)``, the first copy to
    arrive. After a crash Kafka Connect sends again what it sent since its last offset flush,
    and the CRM bridge a file's rows since its last checkpoint; a copy carries the version of
    the original (commit LSN and LSN; export time, object key and row), so Redis's version
    guard already ignores it, but the offline history would hold it twice. A first-row
    deduplication on processing time, planned like :func:`order_creations` (no
    mini-batches; ``table.exec.state.ttl`` = :func:`profile_dedup_ttl_ms`), so its output
    is append-only. The rejected records (kind 'r') skip it: their DLQ entries are kept per
    Kafka record (:func:`profile_dlq_insert`)."""
    columns = ", ".join(PROFILE_COLUMNS)
    return f"""
SELECT {columns}
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY entity_id, attribute, version ORDER BY pt) AS rn
  FROM {PROFILE_ROWS} WHERE kind = 'w')
WHERE rn = 1"""


def profile_dedup_ttl_ms(cfg: JobConfig) -> int:
    """How long :func:`profile_updates` remembers a version (processing time): a copy sent
    again later than this reaches the offline history a second time (harmless to the
    point-in-time join, which keeps one row per version)."""
    return cfg.tile_state_grace_ms


def profile_view(cfg: JobConfig) -> str:
    """CDC customers + CRM records through ``ingest_profile``: one output row per attribute
    update (kind 'w', for both stores: :func:`profile_writes`) or per rejected record
    (kind 'r', for the DLQ)."""
    parts = []
    for table, topic in (
        ("cdc_customers_raw", cfg.cdc_customers_topic),
        ("crm_raw", cfg.crm_topic),
    ):
        parts.append(f"""
SELECT '{topic}' AS topic, kp, ko, kts, k, v, DATE_FORMAT(kts, 'yyyy-MM-dd') AS kdate, T.*
FROM {table}, LATERAL TABLE(ingest_profile('{topic}', k, v)) AS T({", ".join(PROFILE_COLUMNS)})""")
    return f"CREATE TEMPORARY VIEW {PROFILE} AS" + "\nUNION ALL".join(parts)


def profile_rows(cfg: JobConfig) -> str:
    """The profile path's rows, computed once (:data:`PROFILE_ROWS`), each record's verdict
    counted as a Flink metric (``dq_verdict``: sources ``customers`` and ``crm``) on its
    DLQ row or on the first of its attribute updates."""
    first = CUSTOMER_ATTRIBUTES[0]
    source = f"CASE topic WHEN '{cfg.cdc_customers_topic}' THEN 'customers' ELSE 'crm' END"
    columns = [
        f"CASE WHEN kind = 'r' OR attribute = '{first}' THEN dq_verdict({source}, reason) "
        "ELSE reason END AS reason"
        if c == "reason"
        else c
        for c in PROFILE_COLUMNS
    ]
    return f"SELECT topic, kp, ko, kts, k, v, kdate, {', '.join(columns)} FROM {PROFILE}"


def profile_dlq_insert() -> str:
    return f"""
INSERT INTO dlq
SELECT detail, expectation, {kafka_original("topic")}, kdate, source, reason
FROM {PROFILE_ROWS} WHERE kind = 'r'"""


def offline_profile_insert() -> str:
    """Every profile attribute update into the offline table, partitioned by date and the
    view's entity (as :func:`offline_features_insert`)."""
    view, entity = CUSTOMER_PROFILE.name, CUSTOMER_PROFILE.entity.name
    return f"""
INSERT INTO offline_rows
SELECT '{view}', entity_id, attribute, MAP[attribute, val], event_time, version,
  source, d, '{entity}', d, '{entity}'
FROM (
  SELECT *, DATE_FORMAT(TO_TIMESTAMP_LTZ(event_time, 3), 'yyyy-MM-dd') AS d
  FROM {PROFILE_UPDATES})"""


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
    become visible) only when a checkpoint completes. ``event_date``/``entity`` repeat the
    path's partition values inside the file, so the Iceberg commit (batch/iceberg.py) can
    derive each file's partition from its column statistics."""
    return f"""
CREATE TABLE offline_rows (
  view STRING, entity_id BIGINT, grp STRING, features MAP<STRING, STRING>,
  event_time BIGINT, version STRING, source STRING, event_date STRING, entity STRING,
  dt STRING, entity_type STRING
) PARTITIONED BY (dt, entity_type) WITH (
  'connector' = 'filesystem',
  'path' = '{cfg.offline_path}',
  'format' = 'parquet',
  'sink.partition-commit.policy.kind' = 'success-file'
)"""


def online_insert(cfg: JobConfig) -> str:
    sink = "online_store" if cfg.online_writes else "online_writes"
    return f"INSERT INTO {sink} SELECT {ONLINE_WRITE} FROM online_rows"


def _by_view(cfg: JobConfig, what: Callable[[FeatureView], str]) -> str:
    """A feature row's ``what`` (its source, its entity), by its view."""
    cases = " ".join(f"WHEN '{v.name}' THEN '{what(v)}'" for v in computed_views(cfg))
    return f"CASE view {cases} END"


def offline_features_insert(cfg: JobConfig) -> str:
    """Every feature row into the offline table, partitioned by date and its view's entity
    (each computed view has one source)."""
    entity = _by_view(cfg, lambda v: v.entity.name)
    return f"""
INSERT INTO offline_rows
SELECT view, entity_id, COALESCE(grp, ''), features, event_time, version,
  {_by_view(cfg, lambda v: v.sources[0].value)}, d, {entity}, d, {entity}
FROM (SELECT *, DATE_FORMAT(TO_TIMESTAMP_LTZ(event_time, 3), 'yyyy-MM-dd') AS d
      FROM feature_rows)"""
