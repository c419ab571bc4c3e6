"""Processes the supervisor started: spawn in a new process group, remember, stop.

A pid file holds the pid *and* the process's start time, so `down` never signals a
stranger that reused the pid after a reboot; only what `up` started is stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from streamfeat.stack.base import Command

START_BANNER = "===== streamfeat: start "
FATAL_SIGNS = re.compile(
    r"Fatal error|FATAL|OutOfMemoryError|A fatal error has been detected|RECEIVED SIGNAL"
    r"|Killed|Terminating|panic"
)


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    create_time: float
    argv: list[str]


class ProcessTable:
    """One JSON pid file per service under ``run_dir``."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def _path(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid.json"

    def record(self, name: str) -> ProcessRecord | None:
        try:
            data = json.loads(self._path(name).read_text())
            return ProcessRecord(int(data["pid"]), float(data["create_time"]), list(data["argv"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def alive(self, name: str) -> psutil.Process | None:
        """The running process recorded for ``name``, or None.

        A record whose process is gone is kept (see :meth:`exited`) until `up` replaces it
        or `down` forgets it, so `status` can say a service died rather than "stopped".
        """
        rec = self.record(name)
        if rec is None:
            return None
        try:
            proc = psutil.Process(rec.pid)
            if (
                abs(proc.create_time() - rec.create_time) < 1.0
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                return proc
        except psutil.Error:
            pass
        return None

    def exited(self, name: str) -> ProcessRecord | None:
        """The record of a process `up` started that is no longer running, else None."""
        rec = self.record(name)
        return rec if rec is not None and self.alive(name) is None else None

    def remember(self, name: str, popen: subprocess.Popen[bytes], argv: list[str]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        create_time = psutil.Process(popen.pid).create_time()
        tmp = self._path(name).with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": popen.pid, "create_time": create_time, "argv": argv}))
        tmp.replace(self._path(name))

    def forget(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


def spawn(cmd: Command, log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session/process group, stdout+stderr appended to the log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = list(cmd.argv)
    if cmd.user is not None and os.geteuid() == 0:
        argv = [
            "setpriv",
            f"--reuid={cmd.user}",
            f"--regid={cmd.user}",
            "--init-groups",
            "--",
            *argv,
        ]
    env = {**os.environ, **cmd.env}
    with open(log_path, "ab") as log:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"\n{START_BANNER}{stamp}: {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cmd.cwd,
            start_new_session=True,
        )


def terminate(proc: psutil.Process, sig: int, timeout: float) -> bool:
    """Signal the process group of ``proc``; SIGKILL it after ``timeout``.

    Returns True if it stopped on the polite signal. Children in the group (e.g. the JVM a
    launcher script execs, PostgreSQL's backends) go with it.
    """
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return True
    members = _group(pgid)
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return True
    _, still = psutil.wait_procs(members, timeout=timeout)
    if not still:
        return True
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    psutil.wait_procs(still, timeout=5)
    return False


def leftovers(rec: ProcessRecord) -> list[psutil.Process]:
    """Processes still in the group of a recorded service whose leader has exited: what it
    started and left behind (a killed TaskManager's Python workers). A group id is the
    leader's pid, which Linux does not hand out again while the group has members; members
    must also be younger than the leader, so nothing of a stranger's is ever matched."""
    out = []
    for proc in _group(rec.pid):
        try:
            if proc.pid != rec.pid and proc.create_time() >= rec.create_time - 1.0:
                out.append(proc)
        except psutil.Error:
            continue
    return out


def reap(rec: ProcessRecord, timeout: float) -> int:
    """Stop what an exited service left in its process group (SIGTERM, then SIGKILL after
    ``timeout``); returns how many processes there were."""
    members = leftovers(rec)
    if not members:
        return 0
    with contextlib.suppress(ProcessLookupError):
        os.killpg(rec.pid, signal.SIGTERM)
    _, still = psutil.wait_procs(members, timeout=timeout)
    if still:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(rec.pid, signal.SIGKILL)
        psutil.wait_procs(still, timeout=5)
    return len(members)


def _group(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def port_owner(port: int) -> str:
    """Who listens on ``port`` ("pid 123 (java)"), as far as this user may see."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid:
                    try:
                        return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
                    except psutil.Error:
                        return f"pid {conn.pid}"
                return "another process"
    except (psutil.Error, OSError):
        pass
    return "another process"


def tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def exit_sign(log_path: Path, window: int = 1024 * 1024) -> str:
    """Why the process last started into ``log_path`` ended, as far as its output says: the
    first line of its run (after the start banner `spawn` writes) that reads like a cause of
    death, else its last ERROR line, else ""."""
    try:
        with open(log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - window))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    run = text[text.rfind(START_BANNER) + 1 :].splitlines()[1:]
    fatal = next((line for line in run if FATAL_SIGNS.search(line)), "")
    error = next((line for line in reversed(run) if "ERROR" in line), "")
    return (fatal or error).strip()[:300]


def wait_gone(pid: int, deadline: float) -> bool:
    """Poll until ``pid`` has exited (or deadline)."""
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid):
            return True
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            return True
        time.sleep(0.1)
    return False
