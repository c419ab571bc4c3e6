"""An S3-compatible endpoint that keeps objects on disk: s3proxy with the filesystem backend.

Path-style addressing; boto3, pyarrow and Flink's S3 filesystem all talk to it.
"""

from __future__ import annotations

from core.objectstore import s3_client
from streamfeat.stack.base import (
    Command,
    Health,
    Service,
    StackContext,
    properties,
    tcp_open,
    write_if_changed,
)


class S3(Service):
    name = "s3"
    wave = 0
    needs_java = True

    def ports(self, ctx: StackContext) -> dict[str, int]:
        return {"s3": ctx.settings.ports.s3}

    def url(self, ctx: StackContext) -> str:
        return ctx.settings.s3_endpoint

    def prepare(self, ctx: StackContext) -> None:
        s = ctx.settings
        home = ctx.data_dir("s3")
        (home / "objects").mkdir(exist_ok=True)
        write_if_changed(
            home / "s3proxy.conf",
            properties(
                {
                    "s3proxy.endpoint": s.s3_endpoint,
                    "s3proxy.authorization": "aws-v2-or-v4",
                    "s3proxy.identity": s.s3.access_key,
                    "s3proxy.credential": s.s3.secret_key.get_secret_value(),
                    "jclouds.provider": "filesystem",
                    "jclouds.filesystem.basedir": home / "objects",
                    "jclouds.region": s.s3.region,
                    # Current SDKs send checksum headers (x-amz-checksum-*, ...) that s3proxy
                    # does not implement; it answers 501 unless told to ignore them.
                    "s3proxy.ignore-unknown-headers": "true",
                }
            ),
        )
        (home / "s3proxy.conf").chmod(0o600)

    def command(self, ctx: StackContext) -> Command:
        jar = ctx.jvm_path("s3proxy", "s3proxy.jar", service=self.name)
        conf = ctx.data_dir("s3") / "s3proxy.conf"
        return Command(
            [str(ctx.java), "-Xmx384m", "-jar", str(jar), "--properties", str(conf)],
            env=ctx.java_env(),
        )

    def check(self, ctx: StackContext) -> Health:
        s = ctx.settings
        if not tcp_open(s.host, s.ports.s3):
            return Health(False, "port closed")
        buckets = s3_client(ctx.settings, timeout_s=3, attempts=1).list_buckets().get("Buckets", [])
        return Health(True, f"{len(buckets)} buckets")

    def after_healthy(self, ctx: StackContext) -> None:
        client = s3_client(ctx.settings, timeout_s=3, attempts=1)
        have = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in ctx.settings.s3.buckets:
            if bucket not in have:
                client.create_bucket(Bucket=bucket)
