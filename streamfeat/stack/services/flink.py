"""A Flink standalone cluster (JobManager + one TaskManager) from the apache-flink wheel.

The wheel ships a whole Flink distribution (bin/, lib/, opt/, conf/). We leave it untouched
and point its scripts at folders of ours through FLINK_CONF_DIR / FLINK_LIB_DIR /
FLINK_PLUGINS_DIR / FLINK_LOG_DIR: lib = the wheel's jars + the Kafka connector and Parquet
format from deploy/jvm; plugins = the S3 filesystem (configured for the local endpoint).
"""

from __future__ import annotations

import json
import os
import shutil
import sysconfig
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from core.settings import PROJECT_ROOT
from streamfeat.stack.base import Command, Health, Service, StackContext, write_if_changed
from streamfeat.stack.errors import StackError

WHEEL_CONF_FILES = (
    "log4j-console.properties",
    "log4j-cli.properties",
    "log4j.properties",
    "logback-console.xml",
    "logback.xml",
)


def flink_wheel_home() -> Path:
    """The Flink distribution inside the installed apache-flink wheel."""
    try:
        import pyflink
    except ImportError:
        raise StackError(
            "flink", "apache-flink is not installed in this environment", fix="run `make install`"
        ) from None
    return Path(pyflink.__file__).parent


class FlinkLayout:
    """Folders of one stack's Flink cluster; also what `flink run` needs in its env."""

    def __init__(self, ctx: StackContext) -> None:
        self.ctx = ctx
        self.root = ctx.home / "flink"
        self.conf = self.root / "conf"
        self.lib = self.root / "lib"
        self.plugins = self.root / "plugins"
        self.checkpoints = self.root / "checkpoints"
        self.savepoints = self.root / "savepoints"
        self.tmp = self.root / "tmp"
        self.wheel = flink_wheel_home()

    @property
    def bin(self) -> Path:
        return self.wheel / "bin"

    def env(self) -> dict[str, str]:
        return {
            **self.ctx.java_env(),
            "FLINK_CONF_DIR": str(self.conf),
            "FLINK_LIB_DIR": str(self.lib),
            "FLINK_PLUGINS_DIR": str(self.plugins),
            "FLINK_OPT_DIR": str(self.wheel / "opt"),
            "FLINK_LOG_DIR": str(self.ctx.log_dir / "flink"),
            "FLINK_PID_DIR": str(self.ctx.run_dir / "flink"),
            "PYFLINK_PYTHON": str(self.ctx.python),
        }

    def build(self) -> None:
        ctx = self.ctx
        s = ctx.settings
        for folder in (
            self.conf,
            self.checkpoints,
            self.savepoints,
            self.tmp,
            ctx.log_dir / "flink",
            ctx.run_dir / "flink",
        ):
            folder.mkdir(parents=True, exist_ok=True)
        extra_lib = ctx.jvm_path("flink", "lib", service="flink")
        s3_plugin = ctx.jvm_path("flink", "plugins", "s3-fs-hadoop", service="flink")
        # flink-python on the cluster's class path (not shipped per job): its embedded
        # interpreter (pemja) loads libpython once per JVM, so every later job's Python
        # functions run in thread mode too; and its classes are not loaded again per job
        python_jar = list((self.wheel / "opt").glob("flink-python-*.jar"))
        _link_jars(
            self.lib,
            [*(self.wheel / "lib").glob("*.jar"), *python_jar, *extra_lib.glob("*.jar")],
        )
        _link_jars(self.plugins / "s3-fs-hadoop", list(s3_plugin.glob("*.jar")))
        for name in WHEEL_CONF_FILES:
            src = self.wheel / "conf" / name
            if src.exists():
                write_if_changed(self.conf / name, src.read_text())
        wheel_conf = yaml.safe_load((self.wheel / "conf" / "config.yaml").read_text()) or {}
        java_opts = wheel_conf.get("env", {}).get("java", {}).get("opts", {}).get("all", "")
        gc_log = ctx.log_dir / "flink" / "taskmanager-gc.log"
        config = {
            "env.java.opts.all": java_opts,
            # GC pauses and heap after each collection, for whoever wonders why a TaskManager
            # stalled or died (rotated: 5 x 10 MB)
            "env.java.opts.taskmanager": (
                f"-Xlog:gc:file={gc_log}:time,uptime:filecount=5,filesize=10m"
            ),
            "jobmanager.rpc.address": s.host,
            "jobmanager.rpc.port": s.ports.flink_rpc,
            "jobmanager.bind-host": s.host,
            "jobmanager.memory.process.size": "1024m",
            "jobmanager.execution.failover-strategy": "region",
            "taskmanager.bind-host": s.host,
            "taskmanager.host": s.host,
            "taskmanager.numberOfTaskSlots": 4,
            "taskmanager.memory.process.size": "3328m",
            # Direct memory is framework off-heap + task off-heap + network buffers. With the
            # defaults it was 343 MB, of which 256 MB were in use during the test suite:
            # the network buffers, plus the Netty pools of Beam's gRPC to the Python workers
            # (process mode; the feature job's Python runs in thread mode) and of Flink's
            # own RPC. If it runs out, Netty cannot allocate, the
            # ResourceManager connection drops, and the TaskManager ends itself 5 min later
            # (RegistrationTimeoutException). Task off-heap memory is the headroom for that.
            "taskmanager.memory.task.off-heap.size": "256m",
            # every PyFlink job deployed leaves classes in metaspace (not unloaded after
            # cancel): 30-46 MiB while flink-python shipped with each job (the 256m default
            # died after a handful of deploys), ~4-6 MiB with it on the class path
            # (20 feature-job deploys: 104 -> 185 MiB; docs/reliability.md)
            "taskmanager.memory.jvm-metaspace.size": "768m",
            # The S3 filesystem's upload threads outlive the job that created them and keep
            # its (closed) class loader as their context loader; with the check on, the next
            # job's first checkpoint fails ("Uploading parts failed ... Trying to access
            # closed classloader") and the job restarts. The loader stays reachable either
            # way; the check only turns that into a failure.
            "classloader.check-leaked-classloader": False,
            "rest.address": s.host,
            "rest.bind-address": s.host,
            "rest.port": s.ports.flink_rest,
            "parallelism.default": 1,
            "io.tmp.dirs": str(self.tmp),
            "state.backend.type": "hashmap",
            "execution.checkpointing.dir": self.checkpoints.as_uri(),
            "execution.checkpointing.savepoint-dir": self.savepoints.as_uri(),
            "s3.endpoint": s.s3_endpoint,
            "s3.path.style.access": True,
            "s3.access-key": s.s3.access_key,
            "s3.secret-key": s.s3.secret_key.get_secret_value(),
            # S3A's multi-object delete of "fake directory" markers stalls ~40 s per call
            # against s3proxy; keep markers and delete one key at a time instead.
            "s3.directory.marker.retention": "keep",
            "s3.multiobjectdelete.enable": False,
            "python.executable": str(ctx.python),
            # Python functions in thread mode run in the TaskManager's own (embedded)
            # interpreter: it imports from the stack's virtualenv and the project
            "python.pythonpath": os.pathsep.join(
                [sysconfig.get_paths()["purelib"], str(PROJECT_ROOT)]
            ),
            "classloader.parent-first-patterns.additional": "pemja.",
            "python.client.executable": str(ctx.python),
        }
        write_if_changed(
            self.conf / "config.yaml",
            "# Generated by streamfeat from its settings; edits are overwritten.\n"
            + yaml.safe_dump(config, sort_keys=False),
        )
        (self.conf / "config.yaml").chmod(0o600)


def _link_jars(folder: Path, jars: list[Path]) -> None:
    """Make ``folder`` hold exactly symlinks to ``jars`` (stale links removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {jar.name: jar for jar in jars}
    for entry in folder.iterdir():
        if (
            entry.name not in wanted
            or not entry.is_symlink()
            or entry.resolve() != wanted[entry.name].resolve()
        ):
            entry.unlink() if entry.is_symlink() or entry.is_file() else shutil.rmtree(entry)
    for name, jar in wanted.items():
        link = folder / name
        if not link.exists():
            link.symlink_to(jar.resolve())


def _rest(ctx: StackContext, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(ctx.settings.flink_rest_url + path, timeout=3) as resp:
        return dict(json.load(resp))


class FlinkJobManager(Service):
    name = "flink-jobmanager"
    wave = 0
    needs_java = True

    def ports(self, ctx: StackContext) -> dict[str, int]:
        p = ctx.settings.ports
        return {"flink_rest": p.flink_rest, "flink_rpc": p.flink_rpc}

    def url(self, ctx: StackContext) -> str:
        return ctx.settings.flink_rest_url

    def prepare(self, ctx: StackContext) -> None:
        FlinkLayout(ctx).build()

    def command(self, ctx: StackContext) -> Command:
        layout = FlinkLayout(ctx)
        return Command(
            ["bash", str(layout.bin / "jobmanager.sh"), "start-foreground"], env=layout.env()
        )

    def check(self, ctx: StackContext) -> Health:
        cfg = _rest(ctx, "/config")
        return Health(True, f"Flink {cfg.get('flink-version', '?')}")


class FlinkTaskManager(Service):
    name = "flink-taskmanager"
    wave = 1
    needs_java = True

    def url(self, ctx: StackContext) -> str:
        return ctx.settings.flink_rest_url + "/#/task-manager"

    def prepare(self, ctx: StackContext) -> None:
        FlinkLayout(ctx).build()

    def command(self, ctx: StackContext) -> Command:
        layout = FlinkLayout(ctx)
        return Command(
            ["bash", str(layout.bin / "taskmanager.sh"), "start-foreground"], env=layout.env()
        )

    def check(self, ctx: StackContext) -> Health:
        overview = _rest(ctx, "/overview")
        tms = overview.get("taskmanagers", 0)
        slots = overview.get("slots-total", 0)
        return Health(tms >= 1 and slots >= 1, f"{tms} taskmanager(s), {slots} slots")
