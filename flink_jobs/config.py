"""The feature job's configuration: one validated object, passed to the job as JSON.

Built by `streamfeat job deploy` from the stack settings and core/ declarations, so the job
never reads environment variables or literals of its own.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.events import EVENT_TIME_FLOOR_MS
from core.features import FEATURE_VIEWS, SESSION_GAP_MS, FeatureView, view
from core.quality import repository_suite, rules_spec
from core.registry import EntitySpec, FeatureViewSpec, to_feature_view
from core.topics import CDC_CUSTOMERS, CDC_ORDERS, CLICKSTREAM, CRM_CUSTOMERS
from flink_jobs.logic.records import (
    CDC_ORDERS_SUITE,
    CLICKSTREAM_SUITE,
    click_suite_of,
    order_suite_of,
)


class RegisteredView(BaseModel):
    """A windowed feature view registered through the registry (its spec carries the
    aggregations: core.registry.AggregationsSpec) rather than declared in core/features.py,
    with its entity: the job computes its tiles like a declared view's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    view: FeatureViewSpec
    entity: EntitySpec

    @model_validator(mode="after")
    def _windowed(self) -> RegisteredView:
        if self.view.aggregations is None:
            raise ValueError(
                f"view {self.view.name!r} declares no aggregations: the job computes only "
                "registered windowed views (other views are written by their own producers)"
            )
        if self.view.name in {v.name for v in FEATURE_VIEWS}:
            raise ValueError(f"view {self.view.name!r} is declared in core/features.py")
        to_feature_view(self.view, self.entity)  # its entity, and shorts filled
        return self

    def feature_view(self) -> FeatureView:
        return to_feature_view(self.view, self.entity)


class JobConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap: str = Field(description="Kafka bootstrap servers.")
    group_id: str = Field("streamfeat-features", description="Kafka consumer group.")
    redis_url: str = Field(description="Online store.")
    lake_bucket: str = Field(description="Bucket of the offline table and the DLQ.")
    clickstream_topic: str = CLICKSTREAM
    cdc_customers_topic: str = CDC_CUSTOMERS
    cdc_orders_topic: str = CDC_ORDERS
    crm_topic: str = CRM_CUSTOMERS
    checkpoint_interval_ms: int = Field(10_000, gt=0)
    max_out_of_orderness_ms: int = Field(
        10_000,
        ge=0,
        description="Watermark lag behind the largest event time seen: the allowed lateness "
        "of every view that declares none (core.features.FeatureView.allowed_lateness_ms).",
    )
    allowed_lateness_ms: dict[str, int] = Field(
        default_factory=dict,
        description="Per feature view name: its allowed lateness for this deployment, over "
        "its declaration. Views of one source with different lateness read it through "
        "separate source tables, one watermark each (flink_jobs.lateness).",
    )
    idle_timeout_ms: int = Field(
        30_000, gt=0, description="A partition quiet this long stops holding watermarks back."
    )
    orders_idle_timeout_ms: int = Field(
        300_000,
        gt=0,
        description="The same for the CDC orders topic. Longer: a partition of a backlog being "
        "caught up (Debezium's snapshot) can look idle for a moment, and its orders would then "
        "be behind the watermark (late).",
    )
    session_gap_ms: int = Field(SESSION_GAP_MS, gt=0)
    event_time_floor_ms: int = Field(
        EVENT_TIME_FLOOR_MS,
        gt=0,
        description="A click dated before this (epoch ms; default 2000-01-01) is implausible: "
        "DLQ reason `implausible_event_time`, never reaching the watermark.",
    )
    max_event_time_ahead_ms: int = Field(
        3_600_000,
        gt=0,
        le=30 * 86_400_000,
        description="A click dated more than this ahead of its Kafka record timestamp (the "
        "producer's send time, or the broker's append time) is implausible: DLQ reason "
        "`implausible_event_time`; it never moves the watermark.",
    )
    tile_batch_ms: int = Field(
        200,
        gt=0,
        description="Mini-batch of the online tile aggregations: each tile is written at most "
        "once per batch (bounds window freshness; larger batches touch state less often).",
    )
    tile_state_grace_ms: int = Field(
        3_600_000,
        ge=0,
        description="How long an online tile's aggregation state outlives its tile plus the "
        "allowed lateness (processing time). A job stopped longer than this, and resumed from "
        "a savepoint while events of a then-open tile are still unread, restarts that tile's "
        "count: deploy such a restart with --replay instead.",
    )
    registered_views: tuple[RegisteredView, ...] = Field(
        (),
        description="Windowed views registered through the registry, computed beside the "
        "declared ones (`streamfeat job deploy` reads them from the registry). Adding one "
        "changes the SQL plan: deploy with --replay.",
    )
    clickstream_suite: dict[str, Any] = Field(
        default_factory=lambda: dict(repository_suite(CLICKSTREAM_SUITE).document),
        description="The clickstream's Great Expectations suite (core/suites/clickstream.json "
        "unless the stack's `quality_suites_dir` says otherwise): the gate is compiled from it "
        "at deploy, and a suite the stream cannot enforce is refused (core.quality).",
    )
    cdc_orders_suite: dict[str, Any] = Field(
        default_factory=lambda: dict(repository_suite(CDC_ORDERS_SUITE).document),
        description="The CDC orders' Great Expectations suite (core/suites/cdc_orders.json "
        "unless `quality_suites_dir` says otherwise): the orders gate is compiled from it.",
    )
    function_jars: tuple[str, ...] = Field(
        (),
        description="The job's Java functions and what they need (flink_jobs/jvm, built by "
        "`make install` into .local/jvm/udf): shipped with the job (`pipeline.jars`).",
    )
    parallelism: int = Field(1, gt=0)
    state_backend: Literal["hashmap", "rocksdb"] = Field(
        "rocksdb",
        description="Where keyed state lives: `rocksdb` (serialized on local disk within "
        "managed memory, incremental checkpoints: state is not bounded by the heap, and a "
        "checkpoint uploads only new files) or `hashmap` (objects on the TaskManager's heap, "
        "full snapshots: faster while the state fits the heap, GC-bound past it). "
        "docs/operations.md, State backend.",
    )
    python_execution_mode: Literal["thread", "process"] = Field(
        "thread",
        description="Where the profile updates' Python function runs: `thread` (the "
        "TaskManager's embedded interpreter, each record in the task's own thread: nothing "
        "buffered, nothing to release on a cancel, no worker processes) or `process` "
        "(separate Python workers fed in bundles over gRPC; a hard cancel mid-bundle can "
        "end the TaskManager). docs/operations.md, Stopping and cancelling.",
    )
    python_bundle_time_ms: int = Field(
        50,
        gt=0,
        description="In process mode, the longest the profile updates' Python function holds "
        "records before processing them: bounds the profile's freshness (Flink's default is "
        "1000 ms).",
    )
    online_flush_ms: int = Field(
        50,
        gt=0,
        description="Longest a feature write waits in the online store sink's buffer "
        "(bounds online freshness; every checkpoint barrier flushes too).",
    )
    online_batch_size: int = Field(
        1000, gt=0, description="Writes sent to Redis in one pipeline at most."
    )
    online_retry_timeout_ms: int = Field(
        60_000,
        ge=0,
        description="How long the online store sink resends a batch while Redis is "
        "unreachable (holding the stream back) before the job fails and restarts from its "
        "last checkpoint.",
    )
    online_writes: bool = Field(
        True,
        description="False: feature rows go to a blackhole instead of Redis (a benchmark "
        "baseline: what the SQL plan costs without the online writes).",
    )
    stop_at_latest: bool = Field(
        False,
        description="Read every topic up to its end offsets at start, then finish (a "
        "benchmark's bounded run).",
    )
    start_from_earliest: bool = Field(
        True, description="First start without committed offsets reads topics from the start."
    )

    @field_validator("allowed_lateness_ms")
    @classmethod
    def _known_views(cls, value: dict[str, int]) -> dict[str, int]:
        for name, ms in value.items():
            try:
                view(name)
            except KeyError:
                raise ValueError(f"allowed_lateness_ms: unknown feature view {name!r}") from None
            if ms < 0:
                raise ValueError(f"allowed_lateness_ms: {name} has a negative lateness {ms}")
        return value

    @field_validator("clickstream_suite")
    @classmethod
    def _enforceable(cls, value: dict[str, Any]) -> dict[str, Any]:
        click_suite_of(value)
        return value

    @field_validator("cdc_orders_suite")
    @classmethod
    def _enforceable_orders(cls, value: dict[str, Any]) -> dict[str, Any]:
        order_suite_of(value)
        return value

    @property
    def order_rules(self) -> str:
        """The CDC orders suite as the job's gate reads it (core.quality.rules_spec)."""
        return rules_spec(order_suite_of(self.cdc_orders_suite))

    @property
    def click_rules(self) -> str:
        """The clickstream suite as the job's gate reads it (core.quality.rules_spec)."""
        return rules_spec(click_suite_of(self.clickstream_suite))

    def environment_options(self) -> dict[str, str]:
        """Flink options of the job's own environment (over the cluster's defaults)."""
        options: dict[str, str] = {"state.backend.type": self.state_backend}
        if self.state_backend == "rocksdb":
            options["execution.checkpointing.incremental"] = "true"
            # most lookups of a tile aggregation miss (each new tile is a new key): without
            # a filter every miss searches every level's files; partitioned index and
            # filter blocks keep what a lookup needs in the small managed-memory cache
            # (docs/operations.md, State backend)
            options["state.backend.rocksdb.use-bloom-filter"] = "true"
            options["state.backend.rocksdb.memory.partitioned-index-filters"] = "true"
        return options

    @property
    def dlq_path(self) -> str:
        return f"s3://{self.lake_bucket}/dlq"

    @property
    def offline_path(self) -> str:
        return f"s3://{self.lake_bucket}/offline/feature_rows"
