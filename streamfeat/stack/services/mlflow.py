"""MLflow tracking server and model registry: sqlite backend, artifacts on the S3 endpoint."""

from __future__ import annotations

import urllib.request

from streamfeat.stack.base import Command, Health, Service, StackContext


def s3_client_env(ctx: StackContext) -> dict[str, str]:
    """Environment that points boto3-based clients (MLflow's) at the local S3 endpoint."""
    s = ctx.settings
    return {
        "MLFLOW_S3_ENDPOINT_URL": s.s3_endpoint,
        "AWS_ACCESS_KEY_ID": s.s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s.s3.secret_key.get_secret_value(),
        "AWS_DEFAULT_REGION": s.s3.region,
    }


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
        return Command([
            str(ctx.venv_bin / "mlflow"), "server",
            "--host", s.host, "--port", str(s.ports.mlflow), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
            "--artifacts-destination", f"s3://{s.s3.mlflow_bucket}/artifacts",
        ], env=s3_client_env(ctx), cwd=home)

    def check(self, ctx: StackContext) -> Health:
        with urllib.request.urlopen(ctx.settings.mlflow_url + "/health",  # noqa: S310
                                    timeout=3) as resp:
            body = resp.read().decode().strip()
        return Health(resp.status == 200, body)
