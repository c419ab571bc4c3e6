"""Model serving: a KServe predictor per serving stage (production, canary) and the model
endpoint in front of them (serving/predictor.py, serving/router.py).

Healthy means the process answers (``/v2/health/live``, ``/healthz``): a stage that holds no
version yet is a normal state of a new stack, reported by ``streamfeat status`` as not ready
with its reason, not a failed start.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from streamfeat.stack.base import Command, Health, Service, StackContext
from streamfeat.stack.services.api import settings_env


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _serving_module(ctx: StackContext, module: str, *args: str) -> Command:
    """``python -m <module> --serve-model <the stack's serving model> <args>``."""
    return Command(
        [str(ctx.python), "-m", module, "--serve-model", ctx.settings.serving_model, *args],
        env=settings_env(ctx.settings),
    )


class Predictor(Service):
    """The KServe predictor of one stage of the stack's serving model."""

    wave = 2

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.name = "predictor" if stage == "production" else f"predictor-{stage}"

    def port(self, ctx: StackContext) -> int:
        p = ctx.settings.ports
        return p.predictor if self.stage == "production" else p.predictor_canary

    def ports(self, ctx: StackContext) -> dict[str, int]:
        return {self.name: self.port(ctx)}

    def url(self, ctx: StackContext) -> str:
        return f"http://{ctx.settings.host}:{self.port(ctx)}"

    def command(self, ctx: StackContext) -> Command:
        args = ["--serve-stage", self.stage, "--serve-port", str(self.port(ctx))]
        return _serving_module(ctx, "serving.predictor", *args)

    def check(self, ctx: StackContext) -> Health:
        status, _ = _get(self.url(ctx) + "/v2/health/live")
        if status != 200:
            return Health(False, f"HTTP {status}")
        model = ctx.settings.serving_model
        ready, body = _get(f"{self.url(ctx)}/v2/models/{model}/ready")
        note = "ready" if ready == 200 else f"live; {model}@{self.stage} not ready ({body[:120]})"
        return Health(True, note)


class ModelEndpoint(Service):
    """One endpoint for the serving model: production and canary behind it."""

    name = "models"
    wave = 2

    def ports(self, ctx: StackContext) -> dict[str, int]:
        return {"models": ctx.settings.ports.models}

    def url(self, ctx: StackContext) -> str:
        return ctx.settings.models_url

    def command(self, ctx: StackContext) -> Command:
        return _serving_module(
            ctx,
            "serving.router",
            "--serve-port",
            str(ctx.settings.ports.models),
            "--production-url",
            Predictor("production").url(ctx),
            "--canary-url",
            Predictor("canary").url(ctx),
        )

    def check(self, ctx: StackContext) -> Health:
        status, _ = _get(self.url(ctx) + "/healthz")
        if status != 200:
            return Health(False, f"HTTP {status}")
        _, body = _get(self.url(ctx) + "/readyz")
        try:
            placement = json.loads(body)
        except ValueError:
            return Health(True, body[:200])
        return Health(True, json.dumps(placement))
