"""Lineage of the feature job, read from the job's own SQL so it cannot drift from it.

Inputs are the Kafka topics its source tables declare (``'topic' = '...'`` in the clickstream
and orders sources, and the topics the profile view reads). Outputs are the feature views its
queries write (sql.computed_views, the view of the profile's offline insert),
the offline table and the DLQ prefix of its configuration. Only names declared in
core/features.py or registered views the job computes (``cfg.registered_views``) count as
views, so a stray literal cannot invent a node.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

from core import lineage
from core.features import FEATURE_VIEWS
from core.settings import StackSettings
from flink_jobs import sql
from flink_jobs.config import JobConfig

JOB_NAME = "feature_job"
_SOURCE_TOPIC = re.compile(r"'topic' = '([^']+)'")
_PROFILE_TOPIC = re.compile(r"SELECT '([^']+)' AS topic")
_PROFILE_VIEW = re.compile(r"INSERT INTO \w+\s+SELECT '([a-z][a-z0-9_]*)'")


def input_topics(cfg: JobConfig) -> list[str]:
    sources = [sql.clicks_source(cfg, c) for c in sql.click_classes(cfg)]
    found = _SOURCE_TOPIC.findall("".join(sources) + sql.orders_source(cfg))
    found += _PROFILE_TOPIC.findall(sql.profile_view(cfg))
    return list(dict.fromkeys(found))


def output_views(cfg: JobConfig) -> list[str]:
    declared = {v.name for v in FEATURE_VIEWS} | {r.view.name for r in cfg.registered_views}
    found = [v.name for v in sql.computed_views(cfg)]
    found += _PROFILE_VIEW.findall(sql.offline_profile_insert())
    return [v for v in dict.fromkeys(found) if v in declared]


def _s3(path: str) -> lineage.Dataset:
    bucket, _, prefix = path.removeprefix("s3://").partition("/")
    return lineage.s3_prefix(bucket, prefix)


def feature_job_spec(settings: StackSettings, cfg: JobConfig) -> lineage.LineageSpec:
    """Topics -> feature job -> feature views (online), offline table, DLQ."""
    try:
        flink = version("apache-flink")
    except PackageNotFoundError:  # pragma: no cover - the wheel is a dependency
        flink = "unknown"
    return lineage.LineageSpec(
        job=lineage.job(JOB_NAME, processing="STREAMING", integration="FLINK"),
        inputs=tuple(lineage.kafka_topic(settings, t) for t in input_topics(cfg)),
        outputs=(
            *(lineage.feature_view(v) for v in output_views(cfg)),
            _s3(cfg.offline_path),
            _s3(cfg.dlq_path),
        ),
        run_facets=lineage.engine_facet("flink", flink),
    )
