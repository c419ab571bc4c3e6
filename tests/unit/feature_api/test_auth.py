"""Credentials and roles without a server: keys, tokens, role order, production refusal."""

from __future__ import annotations

import time

import jwt
import pytest
from pydantic import SecretStr, ValidationError

from core.settings import Ports, StackSettings
from feature_api.app import create_app
from feature_api.auth import authenticate, mint_token, role_of_claims
from feature_api.errors import Forbidden, Unauthorized
from feature_api.settings import (
    DEV_API_KEYS,
    DEV_JWT_SECRET,
    ApiSettings,
    Role,
    dev_key,
    refuse_dev_credentials,
)

REAL_SECRET = "a-real-secret-that-is-long-enough-0123456789"


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.WRITER) and Role.WRITER.allows(Role.READER)
    assert not Role.READER.allows(Role.WRITER) and not Role.WRITER.allows(Role.ADMIN)
    assert all(r.allows(r) for r in Role)


def test_api_keys() -> None:
    s = ApiSettings()
    p = authenticate(s, api_key=dev_key(Role.WRITER), bearer=None)
    assert (p.role, p.via) == (Role.WRITER, "api_key")
    assert dev_key(Role.WRITER) not in p.subject  # the key itself is never recorded
    with pytest.raises(Unauthorized):
        authenticate(s, api_key="nope", bearer=None)
    with pytest.raises(Unauthorized):
        authenticate(s, api_key=None, bearer=None)
    # A key wins over a token when both come (and a bad key is not rescued by a token).
    token = mint_token(s, role=Role.ADMIN, subject="x", expires_at=int(time.time()) + 60)
    with pytest.raises(Unauthorized):
        authenticate(s, api_key="nope", bearer=token)


def test_jwt() -> None:
    s = ApiSettings()
    soon = int(time.time()) + 60
    p = authenticate(s, api_key=None, bearer=mint_token(s, role=Role.READER, subject="ann",
                                                        expires_at=soon))  # fmt: skip
    assert (p.role, p.subject, p.via) == (Role.READER, "ann", "jwt")
    key = DEV_JWT_SECRET
    no_exp = jwt.encode({"role": "admin"}, key, algorithm="HS256")
    with pytest.raises(Unauthorized, match="exp"):
        authenticate(s, api_key=None, bearer=no_exp)
    expired = jwt.encode({"role": "admin", "exp": int(time.time()) - 5}, key, algorithm="HS256")
    with pytest.raises(Unauthorized, match="expired"):
        authenticate(s, api_key=None, bearer=expired)
    forged = jwt.encode({"role": "admin", "exp": soon}, REAL_SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        authenticate(s, api_key=None, bearer=forged)
    unsigned = jwt.encode({"role": "admin", "exp": soon}, None, algorithm="none")
    with pytest.raises(Unauthorized):
        authenticate(s, api_key=None, bearer=unsigned)
    roleless = jwt.encode({"exp": soon}, key, algorithm="HS256")
    with pytest.raises(Forbidden):
        authenticate(s, api_key=None, bearer=roleless)


@pytest.mark.parametrize(
    ("claims", "role"),
    [
        ({"role": "writer"}, Role.WRITER),
        ({"roles": ["reader", "admin", "auditor"]}, Role.ADMIN),
        ({"role": "reader", "roles": ["writer"]}, Role.WRITER),
        ({"roles": ["auditor"]}, None),
        ({"role": 3, "roles": "admin"}, None),
        ({}, None),
    ],
)
def test_role_of_claims(claims: dict[str, object], role: Role | None) -> None:
    assert role_of_claims(claims) == role


def test_development_credentials_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="refused in production"):
        ApiSettings(environment="production")
    with pytest.raises(ValidationError, match="API_KEYS"):
        ApiSettings(environment="production", jwt_secret=SecretStr(REAL_SECRET))
    ok = ApiSettings(
        environment="production", jwt_secret=SecretStr(REAL_SECRET), api_keys={"k" * 32: "admin"}
    )
    assert ok.api_keys == {"k" * 32: Role.ADMIN}
    assert "k" * 32 not in repr(ok)
    # The same switch as the stack's: STREAMFEAT_ENVIRONMENT.
    monkeypatch.setenv("STREAMFEAT_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="refused in production"):
        ApiSettings()
    monkeypatch.setenv("STREAMFEAT_API_JWT_SECRET", REAL_SECRET)
    monkeypatch.setenv("STREAMFEAT_API_API_KEYS", '{"prod-key-0123456789abcdef": "writer"}')
    assert ApiSettings().api_keys == {"prod-key-0123456789abcdef": Role.WRITER}


def test_create_app_refuses_dev_credentials_on_a_production_stack() -> None:
    dev_api = ApiSettings(environment="development")
    stack = StackSettings(
        environment="production",
        ports=Ports(redis=1, postgres=1),
        s3={"secret_key": "s3-real-secret"},  # type: ignore[arg-type]
        postgres={"password": "pg-real", "superuser_password": "pg-root-real"},  # type: ignore[arg-type]
    )
    with pytest.raises(ValueError, match="refused in production"):
        create_app(dev_api, stack)
    with pytest.raises(ValueError):
        refuse_dev_credentials(dev_api, "production")
    refuse_dev_credentials(dev_api, "test")


def test_secrets_never_echoed_and_short_jwt_secrets_refused() -> None:
    with pytest.raises(ValidationError) as info:
        ApiSettings(jwt_secret=SecretStr("short"))
    assert "short" not in str(info.value).replace("at least", "")
    assert set(DEV_API_KEYS.values()) == set(Role)
