"""MLflow tracking server and model registry: sqlite backend, artifacts on the S3 endpoint."""

from __future__ import annotations

import urllib.request

from core.objectstore import client_env
from streamfeat.stack.base import Command, Health, Service, StackContext


class MLflow(Service):
    name = "mlflow"
    wave = 1

    def ports(self, ctx: StackContext) -> dict[str, int]:
        return {"mlflow": ctx.settings.ports.mlflow}

    def url(self, ctx: StackContext) -> str:
        return ctx.settings.mlflow_url

    def command(self, ctx: StackContext) -> Command:
        s = ctx.settings
        home = ctx.data_dir("mlflow")
        return Command(
            [
                str(ctx.venv_bin / "mlflow"),
                "server",
                "--host",
                s.host,
                "--port",
                str(s.ports.mlflow),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{home / 'mlflow.db'}",
                "--artifacts-destination",
                f"s3://{s.s3.mlflow_bucket}/artifacts",
            ],
            # MLflow 3's server-side job runner (GenAI evaluation jobs; our registry never
            # uses it) starts ~6 huey consumer processes of ~250 MB each, CPU-busy at start.
            env={**client_env(s), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            cwd=home,
        )

    def check(self, ctx: StackContext) -> Health:
        with urllib.request.urlopen(ctx.settings.mlflow_url + "/health", timeout=3) as resp:
            body = resp.read().decode().strip()
        return Health(resp.status == 200, body)
