"""Error paths of the stack supervisor with real (tiny) processes: every failure is one
StackError naming the service, its log and a fix; nothing hangs; nothing is left running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from core.settings import StackSettings
from streamfeat.stack.base import Command, Health, Service, StackContext
from streamfeat.stack.errors import StackError
from streamfeat.stack.supervisor import Supervisor

SLEEP = [sys.executable, "-c", "import time; print('sleeper up', flush=True); time.sleep(120)"]


class Fake(Service):
    name = "fake"

    def __init__(
        self,
        *,
        argv: list[str] = SLEEP,
        port: int | None = None,
        healthy: bool = True,
        java: bool = False,
    ) -> None:
        self.argv = argv
        self.port = port
        self.healthy = healthy
        self.needs_java = java

    def ports(self, ctx: StackContext) -> dict[str, int]:
        return {"fake": self.port} if self.port else {}

    def command(self, ctx: StackContext) -> Command:
        return Command(self.argv)

    def check(self, ctx: StackContext) -> Health:
        return Health(self.healthy, "ready" if self.healthy else "still warming up")


def _settings(tmp_path: Path, **extra: object) -> StackSettings:
    values = {"health_timeout_s": 2.0, "stop_timeout_s": 5.0, **extra}
    return StackSettings(home=tmp_path / "stack", **values)  # type: ignore[arg-type]


@pytest.fixture
def listening_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]  # type: ignore[misc]
    sock.close()


def test_port_taken_names_service_owner_and_fix(tmp_path: Path, listening_port: int) -> None:
    sup = Supervisor(_settings(tmp_path), [Fake(port=listening_port)])
    with pytest.raises(StackError) as info:
        sup.up(progress=lambda _: None)
    text = info.value.one_line()
    assert text.startswith("fake: port ")
    assert f"pid {os.getpid()}" in text
    assert "STREAMFEAT_PORTS__FAKE" in text
    assert str(tmp_path / "stack" / "logs" / "fake.log") in text
    assert sup.status()[0].state == "stopped"


def test_health_timeout_fails_with_the_last_detail_and_stops_the_process(tmp_path: Path) -> None:
    sup = Supervisor(_settings(tmp_path), [Fake(healthy=False)])
    with pytest.raises(StackError) as info:
        sup.up(progress=lambda _: None)
    assert "not healthy after 2s (still warming up)" in str(info.value)
    assert "STREAMFEAT_HEALTH_TIMEOUT_S" in str(info.value)
    assert sup.table.record("fake") is None
    assert not [
        p
        for p in psutil.Process().children(recursive=True)
        if p.is_running()
        and p.status() != psutil.STATUS_ZOMBIE
        and "sleeper up" in " ".join(p.cmdline())
    ]


def test_process_exiting_during_start_shows_its_last_log_lines(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('boom: bad config'); sys.exit(3)"]
    sup = Supervisor(_settings(tmp_path), [Fake(argv=argv, healthy=False)])
    with pytest.raises(StackError) as info:
        sup.up(progress=lambda _: None)
    assert "exited while starting" in str(info.value)
    assert "boom: bad config" in str(info.value)


def test_missing_java_is_reported_before_anything_starts(tmp_path: Path) -> None:
    sup = Supervisor(_settings(tmp_path, java_home=tmp_path / "no-jdk"), [Fake(java=True)])
    with pytest.raises(StackError) as info:
        sup.up(progress=lambda _: None)
    assert "Java 17+ not found" in str(info.value)
    assert "openjdk-17" in str(info.value)
    assert sup.table.record("fake") is None


def test_too_old_java_is_refused(tmp_path: Path) -> None:
    jdk = tmp_path / "old-jdk"
    (jdk / "bin").mkdir(parents=True)
    java = jdk / "bin" / "java"
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    java.chmod(0o755)
    sup = Supervisor(_settings(tmp_path, java_home=jdk), [Fake(java=True)])
    with pytest.raises(StackError, match="Java 11; Java 17"):
        sup.up(progress=lambda _: None)


def test_up_twice_is_harmless_and_down_stops_it(tmp_path: Path) -> None:
    sup = Supervisor(_settings(tmp_path), [Fake()])
    sup.up(progress=lambda _: None)
    first = sup.status()[0]
    assert first.state == "healthy"
    sup.up(progress=lambda _: None)
    assert sup.status()[0].pid == first.pid
    sup.down(progress=lambda _: None)
    assert sup.status()[0].state == "stopped"
    assert (
        not psutil.pid_exists(first.pid)
        or psutil.Process(first.pid).status() == psutil.STATUS_ZOMBIE
    )


def test_down_never_signals_a_process_it_did_not_start(tmp_path: Path) -> None:
    stranger = subprocess.Popen(SLEEP, stdout=subprocess.DEVNULL)
    try:
        sup = Supervisor(_settings(tmp_path), [Fake()])
        run = tmp_path / "stack" / "run"
        run.mkdir(parents=True)
        # a stale pid file whose pid now belongs to someone else (different start time)
        (run / "fake.pid.json").write_text(
            f'{{"pid": {stranger.pid}, "create_time": 1.0, "argv": ["old"]}}'
        )
        sup.down(progress=lambda _: None)
        assert stranger.poll() is None
        assert sup.table.record("fake") is None
    finally:
        stranger.kill()
        stranger.wait()


def test_unknown_service_lists_the_known_ones(tmp_path: Path) -> None:
    sup = Supervisor(_settings(tmp_path), [Fake()])
    with pytest.raises(StackError, match="choose from: fake"):
        sup.up(["nope"], progress=lambda _: None)


DIES = [
    sys.executable,
    "-c",
    "import sys, time; print('INFO warming up', flush=True); time.sleep(0.3);"
    "print('ERROR something minor', flush=True);"
    "print('java.lang.OutOfMemoryError: Metaspace', flush=True); sys.exit(3)",
]


def test_a_service_that_dies_on_its_own_is_exited_with_the_cause_from_its_log(
    tmp_path: Path,
) -> None:
    sup = Supervisor(_settings(tmp_path), [Fake(argv=DIES)])
    sup.up(progress=lambda _: None)
    pid = sup.status()[0].pid
    assert pid is not None
    psutil.wait_procs([psutil.Process(pid)], timeout=10)
    for _ in range(2):  # asking twice still says so: the record is kept until up or down
        row = sup.status()[0]
        assert row.state == "exited"
        assert f"pid {pid} ended without `down`" in row.detail
        assert "OutOfMemoryError: Metaspace" in row.detail
        assert row.log in row.detail
    lines: list[str] = []
    sup.up(progress=lines.append)  # up says why it starts the service again
    assert any("fake had exited" in line and "Metaspace" in line for line in lines), lines
    assert any("starting fake" in line for line in lines), lines
    sup.down(progress=lambda _: None)


def test_exit_sign_reads_only_the_last_run_of_a_log(tmp_path: Path) -> None:
    from streamfeat.stack.process import START_BANNER, exit_sign

    log = tmp_path / "svc.log"
    log.write_text(
        f"{START_BANNER}2026-01-01: old\nRECEIVED SIGNAL 15: SIGTERM\n"
        f"{START_BANNER}2026-01-02: new\nINFO fine\nERROR first\nERROR last\n"
    )
    assert exit_sign(log) == "ERROR last"
    with log.open("a") as fh:
        fh.write("Fatal error occurred while executing the TaskManager\nTerminating now\n")
    assert exit_sign(log) == "Fatal error occurred while executing the TaskManager"
    assert exit_sign(tmp_path / "absent.log") == ""


def test_down_forgets_a_service_that_had_exited(tmp_path: Path) -> None:
    sup = Supervisor(_settings(tmp_path), [Fake(argv=DIES)])
    sup.up(progress=lambda _: None)
    pid = sup.status()[0].pid
    assert pid is not None
    psutil.wait_procs([psutil.Process(pid)], timeout=10)
    sup.down(progress=lambda _: None)
    assert sup.status()[0].state == "stopped"


# A leader that starts a worker in its own process group (as a TaskManager starts its Python
# workers), then is killed: the worker outlives it.
LEADER = [
    sys.executable,
    "-c",
    "import subprocess, sys, time;"
    "w = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']);"
    "print('worker', w.pid, flush=True); time.sleep(120)",
]


def _worker_of(sup: Supervisor) -> psutil.Process:
    leader = psutil.Process(sup.status()[0].pid)  # type: ignore[arg-type]
    for _ in range(100):
        children = leader.children()
        if children:
            return children[0]
        psutil.wait_procs([leader], timeout=0.05)
    raise AssertionError("the leader started no worker")


@pytest.mark.parametrize("then", ["down", "up"])
def test_what_a_killed_service_left_running_is_stopped_by_down_and_up(
    tmp_path: Path, then: str
) -> None:
    sup = Supervisor(_settings(tmp_path), [Fake(argv=LEADER)])
    sup.up(progress=lambda _: None)
    worker = _worker_of(sup)
    leader = psutil.Process(sup.status()[0].pid)  # type: ignore[arg-type]
    leader.kill()
    psutil.wait_procs([leader], timeout=10)
    assert worker.is_running() and sup.status()[0].state == "exited"
    lines: list[str] = []
    (sup.down if then == "down" else sup.up)(progress=lines.append)
    psutil.wait_procs([worker], timeout=10)
    assert not worker.is_running()
    assert any("stopped 1 process(es) exited fake left running" in line for line in lines), lines
    sup.down(progress=lambda _: None)


def test_up_replaces_a_service_alive_but_unhealthy_past_its_health_timeout(
    tmp_path: Path,
) -> None:
    fake = Fake()
    sup = Supervisor(_settings(tmp_path, health_timeout_s=0.5), [fake])
    sup.up(progress=lambda _: None)
    first = psutil.Process(sup.status()[0].pid)  # type: ignore[arg-type]
    lines: list[str] = []
    sup.up(progress=lines.append)  # healthy: kept
    assert sup.status()[0].pid == first.pid and not any("replacing" in x for x in lines)
    fake.healthy = False  # e.g. a TaskManager alive but no longer registered
    psutil.wait_procs([first], timeout=0.6)  # older than its health timeout
    fake_recovers = iter([False, True])  # the replacement becomes healthy
    fake.check = lambda ctx: Health(next(fake_recovers, True), "")  # type: ignore[method-assign]
    sup.up(progress=lines.append)
    assert any(f"fake is running but unhealthy: replacing pid {first.pid}" in x for x in lines)
    assert not first.is_running() and sup.status()[0].pid != first.pid
    sup.down(progress=lambda _: None)
