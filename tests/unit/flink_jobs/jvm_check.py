"""The job's Java functions from the tests: one JVM running ClickParserCheck (flink_jobs/jvm,
built by `make install`), one line in, one line out, compared with the Python rules."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pyflink

from core.settings import StackSettings
from streamfeat.job import function_jars
from streamfeat.stack.base import find_java


class JvmCheck:
    """``ClickParserCheck *args`` kept running; :meth:`ask` sends a line, returns the answer.
    ``flink``: put Flink's table API on the classpath too (for the aggregate functions)."""

    def __init__(self, *args: str, flink: bool = False) -> None:
        settings = StackSettings()
        classpath = list(function_jars(settings))
        if flink:
            lib = Path(pyflink.__file__).parent / "lib"
            for pattern in ("flink-table-api-java-uber-*", "flink-dist-*"):
                classpath += [str(p) for p in lib.glob(pattern)]
        self.proc = subprocess.Popen(
            [str(find_java(settings.java_home)), "-cp", ":".join(classpath),
             "io.streamfeat.flink.ClickParserCheck", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
