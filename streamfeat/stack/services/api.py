"""The feature API (FastAPI under uvicorn), reading the online store (Redis)."""

from __future__ import annotations

import urllib.error
import urllib.request

from core.settings import StackSettings
from streamfeat.stack.base import Command, Health, Service, StackContext


def settings_env(settings: StackSettings) -> dict[str, str]:
    """Environment that gives the child the supervisor's own stack settings (host, ports,
    home), so the API reads the same Redis whatever the supervisor was built from."""
    env = {
        "STREAMFEAT_HOST": settings.host,
        "STREAMFEAT_HOME": str(settings.home),
        "STREAMFEAT_ENVIRONMENT": settings.environment,
    }
    for name, port in settings.ports.model_dump().items():
        env[f"STREAMFEAT_PORTS__{name.upper()}"] = str(port)
    return env


class FeatureApi(Service):
    name = "api"
    wave = 1

    def ports(self, ctx: StackContext) -> dict[str, int]:
        return {"api": ctx.settings.ports.api}

    def url(self, ctx: StackContext) -> str:
        return f"http://{ctx.settings.host}:{ctx.settings.ports.api}"

    def command(self, ctx: StackContext) -> Command:
        s = ctx.settings
        return Command(
            [
                str(ctx.venv_bin / "uvicorn"),
                "feature_api.app:create_app",
                "--factory",
                "--host",
                s.host,
                "--port",
                str(s.ports.api),
                "--no-access-log",
            ],
            env=settings_env(s),
        )

    def check(self, ctx: StackContext) -> Health:
        try:
            with urllib.request.urlopen(self.url(ctx) + "/readyz", timeout=3) as resp:
                body = resp.read().decode().strip()
        except urllib.error.HTTPError as exc:
            return Health(False, f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:200]}")
        return Health(resp.status == 200, body)
