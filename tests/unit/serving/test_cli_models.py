"""`streamfeat model ...` failures that need no stack: each is one line on stderr, exit 1,
saying what failed and how to fix it (an MLflow that is down, a bad model, a bad name)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.registry import local_model_dir
from streamfeat.cli import app

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("STREAMFEAT_HOME", str(tmp_path / "stack"))
    monkeypatch.setenv("STREAMFEAT_PORTS__MLFLOW", str(port))
    monkeypatch.setenv("STREAMFEAT_LINEAGE_ENABLED", "false")
    return tmp_path


def test_mlflow_down_names_its_url_log_and_how_to_start_it(home: Path) -> None:
    for args in (["status", "churn"], ["promote", "churn", "1", "--to", "staging"]):
        result = runner.invoke(app, ["model", *args])
        assert result.exit_code == 1
        out = " ".join(result.output.split())
        assert "error: mlflow: MLflow at http://127.0.0.1:" in out and "unreachable" in out
        assert f"(log: {home / 'stack' / 'logs' / 'mlflow.log'})" in out
        assert "fix: start it with `streamfeat up mlflow`" in out


def test_bad_inputs_fail_before_mlflow_is_asked(home: Path) -> None:
    empty = home / "not-a-model"
    empty.mkdir()
    cases = {
        str(empty): f"{empty} is not an MLflow model directory (no MLmodel file)",
        str(home / "missing"): f"{home / 'missing'} is not a directory",
    }
    for uri, message in cases.items():
        result = runner.invoke(
            app, ["model", "register", "--name", "churn", "--model-uri", uri, "--training-set", "t"]
        )
        assert result.exit_code == 1
        assert message in " ".join(result.output.split())
    result = runner.invoke(
        app, ["model", "register", "--name", "a/b", "--model-uri", "x", "--training-set", "t"]
    )
    assert result.exit_code == 1 and "model name 'a/b' must be" in result.output


def test_promote_refuses_an_unknown_stage(home: Path) -> None:
    result = runner.invoke(app, ["model", "promote", "churn", "1", "--to", "prod"])
    assert result.exit_code == 2 and "prod" in result.output


def test_local_model_dir_recognises_paths_not_uris() -> None:
    assert local_model_dir("/tmp/m") == Path("/tmp/m")
    assert local_model_dir("file:///tmp/my%20model") == Path("/tmp/my model")
    for uri in ("runs:/abc/model", "models:/m-1", "s3://b/k", "mlflow-artifacts:/1/x"):
        assert local_model_dir(uri) is None
