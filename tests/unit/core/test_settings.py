from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from core.settings import Ports, PostgresSettings, S3Settings, StackSettings


def test_ports_shift_moves_every_port() -> None:
    base = Ports()
    shifted = base.shifted(20000)
    assert {k: v - 20000 for k, v in shifted.model_dump().items()} == base.model_dump()


def test_nested_environment_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMFEAT_PORTS__KAFKA", "19092")
    monkeypatch.setenv("STREAMFEAT_HOST", "127.0.0.2")
    settings = StackSettings()
    assert settings.ports.kafka == 19092
    assert settings.kafka_bootstrap == "127.0.0.2:19092"


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        StackSettings(no_such_field=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Ports(kafak=1)  # type: ignore[call-arg]


def test_production_refuses_development_secrets() -> None:
    with pytest.raises(ValidationError) as info:
        StackSettings(environment="production")
    message = str(info.value)
    assert "STREAMFEAT_S3__SECRET_KEY" in message
    assert "STREAMFEAT_POSTGRES__PASSWORD" in message


def test_production_accepts_real_secrets() -> None:
    settings = StackSettings(
        environment="production",
        s3=S3Settings(secret_key=SecretStr("s3-" + "x" * 20)),
        postgres=PostgresSettings(
            password=SecretStr("pg-" + "y" * 20), superuser_password=SecretStr("su-" + "z" * 20)
        ),
    )
    assert settings.environment == "production"


def test_secrets_do_not_leak_into_repr() -> None:
    text = repr(StackSettings())
    assert "streamfeat-secret" not in text


def test_postgres_dsn_names_user_and_database() -> None:
    s = StackSettings()
    assert "user=streamfeat" in s.postgres_dsn()
    assert "dbname=streamfeat" in s.postgres_dsn()
    assert "user=postgres" in s.postgres_dsn(superuser=True)
