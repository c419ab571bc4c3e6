"""Settings of the local stack: one validated object, read from the environment once.

Every field can be set as ``STREAMFEAT_<FIELD>`` (nested with ``__``, e.g.
``STREAMFEAT_PORTS__KAFKA=19092``). Defaults work on a developer's machine; secrets that
still hold their development default are refused when ``environment`` is ``production``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The checkout this package was installed from (editable install)."""

DEV_SECRET_DEFAULTS = frozenset({"streamfeat", "streamfeat-secret", "postgres"})


class Ports(BaseModel):
    """TCP ports on loopback, one per listening service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kafka: int = Field(9092, description="Kafka broker (PLAINTEXT listener).")
    kafka_controller: int = Field(9093, description="KRaft controller listener.")
    connect: int = Field(8083, description="Kafka Connect REST API.")
    postgres: int = Field(5432, description="PostgreSQL.")
    redis: int = Field(6379, description="Redis.")
    s3: int = Field(9000, description="S3-compatible endpoint (s3proxy).")
    flink_rest: int = Field(8081, description="Flink JobManager REST API and web UI.")
    flink_rpc: int = Field(6123, description="Flink JobManager RPC.")
    mlflow: int = Field(5000, description="MLflow tracking server.")
    api: int = Field(8000, description="Feature API (FastAPI).")
    models: int = Field(8070, description="Model endpoint: production and canary behind it.")
    predictor: int = Field(8071, description="KServe predictor of the production version.")
    predictor_canary: int = Field(8072, description="KServe predictor of the canary version.")

    def shifted(self, offset: int) -> Ports:
        """The same layout moved by ``offset`` (the test stack runs beside a developer's)."""
        return Ports(**{name: port + offset for name, port in self.model_dump().items()})


class S3Settings(BaseModel):
    """The S3-compatible endpoint and the buckets the platform uses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    access_key: str = Field("streamfeat", description="Access key id.")
    secret_key: SecretStr = Field(SecretStr("streamfeat-secret"), description="Secret key.")
    region: str = Field("us-east-1", description="Region name sent by clients.")
    lake_bucket: str = Field("streamfeat-lake", description="Offline store, DLQ, CRM drops.")
    mlflow_bucket: str = Field("streamfeat-mlflow", description="MLflow artifacts.")

    @property
    def buckets(self) -> tuple[str, ...]:
        return (self.lake_bucket, self.mlflow_bucket)


class PostgresSettings(BaseModel):
    """The platform's PostgreSQL database and its replication-capable user."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database: str = Field("streamfeat", description="Database holding the demo domain.")
    user: str = Field("streamfeat", description="Owner of the database; has REPLICATION.")
    password: SecretStr = Field(SecretStr("streamfeat"), description="Password of `user`.")
    superuser_password: SecretStr = Field(
        SecretStr("postgres"), description="Password of the cluster's `postgres` superuser."
    )
    os_user: str = Field(
        "postgres",
        description="OS account the server runs as when streamfeat runs as root "
        "(PostgreSQL refuses to run as root).",
    )


class StackSettings(BaseSettings):
    """Where the local stack lives, how it listens and how long it may take to start."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMFEAT_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    environment: Literal["development", "test", "production"] = Field(
        "development", description="Secrets with development defaults are refused in production."
    )
    home: Path = Field(
        PROJECT_ROOT / ".local" / "stack",
        description="Data, configuration, pid files and logs of every service.",
    )
    jvm_dir: Path = Field(
        PROJECT_ROOT / ".local" / "jvm",
        description="Jars fetched from Maven Central by deploy/jvm/pom.xml.",
    )
    host: str = Field("127.0.0.1", description="Every service listens on this address only.")
    ports: Ports = Field(default_factory=Ports)  # type: ignore[arg-type]
    s3: S3Settings = Field(default_factory=S3Settings)  # type: ignore[arg-type]
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)  # type: ignore[arg-type]
    serving_model: str = Field(
        "purchase_propensity",
        description="Registered model the local predictors and model endpoint serve.",
    )
    quality_suites_dir: Path | None = Field(
        None,
        description="Where the data-quality suites (`<source>.json`, Great Expectations' "
        "format) are read from when the feature job is deployed and the CRM bridge starts; "
        "the repository's core/suites by default (docs/data-quality.md).",
    )
    java_home: Path | None = Field(
        None, description="JDK/JRE 17+ for Kafka, Connect, Flink, s3proxy; else JAVA_HOME/PATH."
    )
    health_timeout_s: float = Field(
        120.0, description="How long one service may take to turn healthy before `up` fails."
    )
    stop_timeout_s: float = Field(
        30.0, description="How long `down` waits after SIGTERM before SIGKILL."
    )

    @model_validator(mode="after")
    def _no_dev_secrets_in_production(self) -> StackSettings:
        if self.environment != "production":
            return self
        secrets = {
            "STREAMFEAT_S3__SECRET_KEY": self.s3.secret_key,
            "STREAMFEAT_POSTGRES__PASSWORD": self.postgres.password,
            "STREAMFEAT_POSTGRES__SUPERUSER_PASSWORD": self.postgres.superuser_password,
        }
        weak = [
            name
            for name, value in secrets.items()
            if value.get_secret_value() in DEV_SECRET_DEFAULTS
        ]
        if weak:
            raise ValueError(
                f"development default secrets refused in production: {', '.join(weak)}"
            )
        return self

    # ---- derived endpoints (one place for every URL/DSN the wings use) ----

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.ports.kafka}"

    @property
    def connect_url(self) -> str:
        return f"http://{self.host}:{self.ports.connect}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{self.ports.s3}"

    @property
    def flink_rest_url(self) -> str:
        return f"http://{self.host}:{self.ports.flink_rest}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.ports.mlflow}"

    @property
    def models_url(self) -> str:
        """The model endpoint (serving/router.py)."""
        return f"http://{self.host}:{self.ports.models}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.host}:{self.ports.redis}/0"

    def postgres_dsn(self, *, superuser: bool = False, database: str | None = None) -> str:
        """libpq connection string (password included: pass it to a client, never log it)."""
        pg = self.postgres
        user = "postgres" if superuser else pg.user
        password = (pg.superuser_password if superuser else pg.password).get_secret_value()
        db = database or ("postgres" if superuser else pg.database)
        return (
            f"host={self.host} port={self.ports.postgres} dbname={db} "
            f"user={user} password={password} connect_timeout=3"
        )


def load_settings(**overrides: object) -> StackSettings:
    """Settings from the environment, with explicit overrides (tests use these)."""
    return StackSettings(**overrides)  # type: ignore[arg-type]
