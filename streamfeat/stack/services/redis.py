"""Redis with persistence (AOF fsynced before each reply, plus RDB snapshots), loopback only."""

from __future__ import annotations

import shutil

from streamfeat.stack.base import Command, Health, Service, StackContext
from streamfeat.stack.errors import StackError


class Redis(Service):
    name = "redis"
    wave = 0

    def ports(self, ctx: StackContext) -> dict[str, int]:
        return {"redis": ctx.settings.ports.redis}

    def url(self, ctx: StackContext) -> str:
        return ctx.settings.redis_url

    def command(self, ctx: StackContext) -> Command:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError(
                self.name,
                "redis-server not found on PATH",
                fix="apt-get install -y redis-server (or run `make install`)",
            )
        s = ctx.settings
        return Command(
            [
                binary,
                "--bind",
                s.host,
                "--port",
                str(s.ports.redis),
                "--dir",
                str(ctx.data_dir("redis")),
                "--daemonize",
                "no",
                "--appendonly",
                "yes",
                # before each reply (one fsync per event-loop pass, shared by a whole pipeline):
                # a write the job's sink saw answered survives a crash of Redis, so a
                # checkpoint never covers a write Redis then loses (docs/reliability.md)
                "--appendfsync",
                "always",
                "--save",
                "60 1",
                "--protected-mode",
                "yes",
                "--logfile",
                "",
                # versions of CRM-sourced attributes embed the export's object key: keep
                # such hashes in the compact listpack encoding too (default limit 64 bytes)
                "--hash-max-listpack-value",
                "128",
                # a windowed view's hash holds up to ~300 tiles (minute tiles of 2 h, hour
                # tiles of 7 d: core.windows.Aggregations.retention_ms); past the default 128
                # entries Redis converts it to a hashtable, ~4x the bytes per field
                "--hash-max-listpack-entries",
                "512",
            ]
        )

    def check(self, ctx: StackContext) -> Health:
        import redis

        client = redis.Redis(
            host=ctx.settings.host,
            port=ctx.settings.ports.redis,
            socket_timeout=2,
            socket_connect_timeout=1,
        )
        try:
            info: dict[str, object] = client.info("persistence")  # type: ignore[assignment]
            loading = info.get("loading", 0)
            if loading:
                return Health(False, "loading dataset from disk")
            return Health(bool(client.ping()), "PONG")
        finally:
            client.close()
