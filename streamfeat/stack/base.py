"""What a service of the local stack is, and the context every service is built from.

A service is declared, not scripted: its ports, how to prepare its data directory (idempotent,
so `up` twice is harmless and data survives `down`/`up`), the command that runs it in the
foreground, a health check, and an optional step once healthy (create buckets, roles...).
The supervisor owns the processes; services never fork daemons of their own.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from core.settings import StackSettings
from streamfeat.stack.errors import StackError

JAVA_MIN_MAJOR = 17


@dataclass(frozen=True)
class Command:
    """A foreground process: argv, extra environment, working dir, OS user to run as."""

    argv: list[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    user: str | None = None


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str = ""


class StackContext:
    """Paths and tools derived from the settings, shared by all services of one stack."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.home = settings.home
        self.run_dir = settings.home / "run"
        self.log_dir = settings.home / "logs"

    def data_dir(self, service: str) -> Path:
        path = self.home / service
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log_path(self, service: str) -> Path:
        return self.log_dir / f"{service}.log"

    @property
    def python(self) -> Path:
        """The interpreter streamfeat runs in (the project venv): MLflow and PyFlink use it."""
        return Path(sys.executable)

    @property
    def venv_bin(self) -> Path:
        return self.python.parent

    @cached_property
    def java(self) -> Path:
        return find_java(self.settings.java_home)

    def java_env(self) -> dict[str, str]:
        return {"JAVA_HOME": str(self.java.parent.parent)}

    def jvm_path(self, *parts: str, service: str) -> Path:
        """A folder fetched by deploy/jvm/pom.xml; a clear error when `make install` is due."""
        path = self.settings.jvm_dir.joinpath(*parts)
        if not path.exists() or (path.is_dir() and not any(path.iterdir())):
            raise StackError(
                service,
                f"JVM parts missing: {path} is empty or absent",
                fix="run `make install` (fetches the jars from Maven Central)",
            )
        return path


class Service:
    """Base of every service. Subclasses set ``name``/``wave`` and override the hooks."""

    name: str = ""
    wave: int = 0
    """Services of one wave start together; a wave starts when the previous is healthy."""
    needs_java: bool = False
    stop_signal: int = signal.SIGTERM

    def ports(self, ctx: StackContext) -> dict[str, int]:
        return {}

    def url(self, ctx: StackContext) -> str:
        return ""

    def prepare(self, ctx: StackContext) -> None:
        """Create config and data directories; must be idempotent and keep existing data."""

    def command(self, ctx: StackContext) -> Command:
        raise NotImplementedError

    def check(self, ctx: StackContext) -> Health:
        raise NotImplementedError

    def after_healthy(self, ctx: StackContext) -> None:
        """Idempotent bootstrap once healthy (buckets, roles, databases)."""


# ---- shared helpers ----


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_is_free(host: str, port: int) -> bool:
    """True if nothing listens on host:port (a bind succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def find_java(java_home: Path | None) -> Path:
    """The `java` binary of a JDK/JRE >= 17: STREAMFEAT_JAVA_HOME, then JAVA_HOME, then PATH."""
    candidates: list[Path] = []
    if java_home is not None:
        candidates.append(java_home / "bin" / "java")
    elif os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    else:
        found = shutil.which("java")
        if found:
            candidates.append(Path(found).resolve())
    fix = (
        "apt-get install -y openjdk-17-jre-headless, or set STREAMFEAT_JAVA_HOME "
        "to a JDK 17+ folder"
    )
    for java in candidates:
        if not java.is_file():
            continue
        try:
            out = subprocess.run(
                [str(java), "-version"], capture_output=True, text=True, timeout=20, check=False
            ).stderr
        except (OSError, subprocess.TimeoutExpired):
            continue
        match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
        if not match:
            continue
        major = int(match.group(1)) if match.group(1) != "1" else int(match.group(2) or 0)
        if major < JAVA_MIN_MAJOR:
            raise StackError(
                "java", f"{java} is Java {major}; Java {JAVA_MIN_MAJOR}+ needed", fix=fix
            )
        return java
    looked = ", ".join(str(c) for c in candidates) or "STREAMFEAT_JAVA_HOME, JAVA_HOME, PATH"
    raise StackError("java", f"Java {JAVA_MIN_MAJOR}+ not found (looked at {looked})", fix=fix)


def write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def properties(values: Mapping[str, object]) -> str:
    """A Java .properties file body, in the given order."""
    return "".join(f"{key}={value}\n" for key, value in values.items())


LOG4J2_CONSOLE = """\
# Generated by streamfeat: console only; the supervisor sends stdout to the service's log.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{ISO8601} %-5p [%t] %c{1.} - %m%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
logger.jetty.name = org.eclipse.jetty
logger.jetty.level = WARN
"""
