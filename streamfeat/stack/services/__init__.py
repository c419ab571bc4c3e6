"""The services of the local stack, in start order (waves)."""

from __future__ import annotations

from streamfeat.stack.base import Service
from streamfeat.stack.services.api import FeatureApi
from streamfeat.stack.services.flink import FlinkJobManager, FlinkTaskManager
from streamfeat.stack.services.kafka import Kafka, KafkaConnect
from streamfeat.stack.services.mlflow import MLflow
from streamfeat.stack.services.postgres import Postgres
from streamfeat.stack.services.redis import Redis
from streamfeat.stack.services.s3 import S3
from streamfeat.stack.services.serving import ModelEndpoint, Predictor


def default_services() -> list[Service]:
    return [
        Postgres(),
        Redis(),
        S3(),
        Kafka(),
        FlinkJobManager(),
        KafkaConnect(),
        FlinkTaskManager(),
        MLflow(),
        FeatureApi(),
        Predictor("production"),
        Predictor("canary"),
        ModelEndpoint(),
    ]
