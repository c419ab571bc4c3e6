"""The CLI turns every StackError into one line on stderr and exit code 1."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamfeat.cli import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STREAMFEAT_HOME", str(tmp_path / "stack"))
    return tmp_path


def test_up_with_a_taken_port_exits_1_with_one_line(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    monkeypatch.setenv("STREAMFEAT_PORTS__REDIS", str(port))
    try:
        result = runner.invoke(app, ["up", "redis"])
    finally:
        sock.close()
    assert result.exit_code == 1
    assert f"redis: port {port} (redis) on 127.0.0.1 is taken by pid" in result.output
    assert (
        "fix: stop that process, or move this service with STREAMFEAT_PORTS__REDIS" in result.output
    )


def test_up_with_missing_java_exits_1(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMFEAT_JAVA_HOME", str(env / "no-jdk"))
    monkeypatch.setenv("STREAMFEAT_PORTS__KAFKA", "0")
    result = runner.invoke(app, ["up", "kafka"])
    assert result.exit_code == 1
    assert "java: Java 17+ not found" in result.output


def test_logs_of_an_unknown_service(env: Path) -> None:
    result = runner.invoke(app, ["logs", "kafak"])
    assert result.exit_code == 1
    assert "kafak: unknown service" in result.output


def test_status_of_a_stopped_stack_exits_1(env: Path) -> None:
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert "stopped" in result.output
