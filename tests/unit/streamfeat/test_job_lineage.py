"""The feature job's lineage is read from its own SQL: sources, views, offline table, DLQ."""

from __future__ import annotations

from core.features import CUSTOMER_PROFILE, USER_ACTIVITY, USER_LAGS, USER_SESSIONS, view
from core.lineage import Kind, classify
from core.settings import StackSettings
from flink_jobs.config import JobConfig
from streamfeat.job import job_config
from streamfeat.job_lineage import feature_job_spec, input_topics, output_views

SETTINGS = StackSettings()


def test_inputs_are_the_topics_the_job_reads() -> None:
    cfg = job_config(SETTINGS)
    topics = input_topics(cfg)
    assert {cfg.clickstream_topic, cfg.cdc_customers_topic, cfg.crm_topic} <= set(topics)
    configured = {v for k, v in cfg.model_dump().items() if k.endswith("_topic")}
    assert set(topics) <= configured


def test_scratch_topics_of_a_config_are_followed() -> None:
    cfg = job_config(SETTINGS, clickstream_topic="scratch.clicks", crm_topic="scratch.crm")
    topics = input_topics(cfg)
    assert "scratch.clicks" in topics and "scratch.crm" in topics
    assert "clickstream" not in topics


def test_outputs_are_declared_views_plus_offline_table_and_dlq() -> None:
    cfg: JobConfig = job_config(SETTINGS)
    views = output_views(cfg)
    assert {USER_ACTIVITY.name, USER_SESSIONS.name, USER_LAGS.name, CUSTOMER_PROFILE.name} <= set(
        views
    )
    for name in views:
        view(name)  # declared in core/features.py
    spec = feature_job_spec(SETTINGS, cfg)
    kinds = [classify(d.namespace, d.name) for d in spec.outputs]
    assert (Kind.S3, "streamfeat-lake/offline/feature_rows") in kinds
    assert (Kind.S3, "streamfeat-lake/dlq") in kinds
    assert [k for k, _ in kinds].count(Kind.FEATURE_VIEW) == len(views)
    assert spec.job.name == "feature_job"
    assert spec.run_facets["processing_engine"].name == "flink"
