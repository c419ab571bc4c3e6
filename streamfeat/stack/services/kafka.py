"""Kafka (KRaft, single node) and Kafka Connect (distributed mode, Debezium on plugin.path)."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from streamfeat.stack.base import (
    LOG4J2_CONSOLE,
    Command,
    Health,
    Service,
    StackContext,
    properties,
    tcp_open,
    write_if_changed,
)
from streamfeat.stack.errors import StackError

POSTGRES_CONNECTOR_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
_QUIET = logging.getLogger("streamfeat.kafka.health")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def _java(ctx: StackContext, main: str, args: list[str], heap: str, log4j: Path) -> list[str]:
    """A JVM on the Kafka/Connect classpath fetched by deploy/jvm (kafka/libs)."""
    classpath = str(ctx.jvm_path("kafka", "libs", service="kafka")) + "/*"
    return [
        str(ctx.java),
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        classpath,
        main,
        *args,
    ]


class Kafka(Service):
    name = "kafka"
    wave = 0
    needs_java = True

    def ports(self, ctx: StackContext) -> dict[str, int]:
        p = ctx.settings.ports
        return {"kafka": p.kafka, "kafka_controller": p.kafka_controller}

    def url(self, ctx: StackContext) -> str:
        return f"kafka://{ctx.settings.kafka_bootstrap}"

    def _config(self, ctx: StackContext) -> Path:
        return ctx.data_dir("kafka") / "server.properties"

    def prepare(self, ctx: StackContext) -> None:
        s = ctx.settings
        home = ctx.data_dir("kafka")
        data = home / "data"
        write_if_changed(home / "log4j2.properties", LOG4J2_CONSOLE)
        write_if_changed(
            self._config(ctx),
            properties(
                {
                    "process.roles": "broker,controller",
                    "node.id": 1,
                    "controller.quorum.voters": f"1@{s.host}:{s.ports.kafka_controller}",
                    "listeners": f"PLAINTEXT://{s.host}:{s.ports.kafka},"
                    f"CONTROLLER://{s.host}:{s.ports.kafka_controller}",
                    "advertised.listeners": f"PLAINTEXT://{s.host}:{s.ports.kafka}",
                    "controller.listener.names": "CONTROLLER",
                    "inter.broker.listener.name": "PLAINTEXT",
                    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    "log.dirs": data,
                    "num.partitions": 1,
                    "offsets.topic.replication.factor": 1,
                    "transaction.state.log.replication.factor": 1,
                    "transaction.state.log.min.isr": 1,
                    "share.coordinator.state.topic.replication.factor": 1,
                    "share.coordinator.state.topic.min.isr": 1,
                    "group.initial.rebalance.delay.ms": 0,
                    "log.flush.interval.ms": 1000,
                }
            ),
        )
        if (data / "meta.properties").exists():
            return
        cluster_file = home / "cluster.id"
        if not cluster_file.exists():
            cluster_file.write_text(
                base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            )
        cluster_id = cluster_file.read_text().strip()
        argv = _java(
            ctx,
            "kafka.tools.StorageTool",
            # one token: a urlsafe-base64 id starts with '-' about once in 64 starts, and as
            # a separate argument it would be read as an option ("expected one argument")
            ["format", f"--cluster-id={cluster_id}", "-c", str(self._config(ctx))],
            "256m",
            home / "log4j2.properties",
        )
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = ctx.log_path(self.name)
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a") as fh:
                fh.write(done.stdout + done.stderr)
            raise StackError(
                self.name,
                "formatting KRaft storage failed",
                log=log,
                fix=f"remove {data} if it holds a broken half-format, then retry",
            )

    def command(self, ctx: StackContext) -> Command:
        home = ctx.data_dir("kafka")
        return Command(
            _java(ctx, "kafka.Kafka", [str(self._config(ctx))], "768m", home / "log4j2.properties"),
            env={**ctx.java_env(), "LOG_DIR": str(ctx.log_dir)},
        )

    def check(self, ctx: StackContext) -> Health:
        s = ctx.settings
        if not tcp_open(s.host, s.ports.kafka):
            return Health(False, "broker port closed")
        from confluent_kafka.admin import AdminClient

        conf: dict[str, Any] = {
            "bootstrap.servers": s.kafka_bootstrap,
            "logger": _QUIET,
            "socket.timeout.ms": 2000,
        }
        admin = AdminClient(conf)
        meta = admin.list_topics(timeout=3)
        if not meta.brokers:
            return Health(False, "no broker in metadata")
        return Health(True, f"{len(meta.topics)} topics")


class KafkaConnect(Service):
    name = "connect"
    wave = 1
    needs_java = True

    def ports(self, ctx: StackContext) -> dict[str, int]:
        return {"connect": ctx.settings.ports.connect}

    def url(self, ctx: StackContext) -> str:
        return ctx.settings.connect_url

    def _config(self, ctx: StackContext) -> Path:
        return ctx.data_dir("connect") / "connect-distributed.properties"

    def prepare(self, ctx: StackContext) -> None:
        s = ctx.settings
        home = ctx.data_dir("connect")
        plugins = ctx.jvm_path("connect-plugins", service=self.name)
        write_if_changed(home / "log4j2.properties", LOG4J2_CONSOLE)
        write_if_changed(
            self._config(ctx),
            properties(
                {
                    "bootstrap.servers": s.kafka_bootstrap,
                    "group.id": "streamfeat-connect",
                    "key.converter": "org.apache.kafka.connect.json.JsonConverter",
                    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                    "key.converter.schemas.enable": "false",
                    "value.converter.schemas.enable": "false",
                    "offset.storage.topic": "_connect-offsets",
                    "offset.storage.replication.factor": 1,
                    "offset.storage.partitions": 5,
                    "config.storage.topic": "_connect-configs",
                    "config.storage.replication.factor": 1,
                    "status.storage.topic": "_connect-status",
                    "status.storage.replication.factor": 1,
                    "offset.flush.interval.ms": 5000,
                    "listeners": f"http://{s.host}:{s.ports.connect}",
                    "rest.advertised.host.name": s.host,
                    "rest.advertised.port": s.ports.connect,
                    "plugin.path": plugins,
                    "topic.creation.enable": "true",
                }
            ),
        )

    def command(self, ctx: StackContext) -> Command:
        home = ctx.data_dir("connect")
        return Command(
            _java(
                ctx,
                "org.apache.kafka.connect.cli.ConnectDistributed",
                [str(self._config(ctx))],
                "768m",
                home / "log4j2.properties",
            ),
            env=ctx.java_env(),
        )

    def check(self, ctx: StackContext) -> Health:
        url = f"{ctx.settings.connect_url}/connector-plugins?connectorsOnly=true"
        with urllib.request.urlopen(url, timeout=3) as resp:
            plugins = json.load(resp)
        classes = {p.get("class") for p in plugins}
        if POSTGRES_CONNECTOR_CLASS not in classes:
            return Health(False, f"{POSTGRES_CONNECTOR_CLASS} not on plugin.path")
        return Health(True, f"{len(classes)} connector plugins")
