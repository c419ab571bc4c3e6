"""Session fixtures. The real stack is started once per test session, on its own ports
(defaults + 20000) and its own folder (.local/test-stack), so it never touches a developer's
running stack. It starts from empty data each session and is stopped at the end."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from core.settings import PROJECT_ROOT, Ports, StackSettings
from streamfeat.stack.services import default_services
from streamfeat.stack.supervisor import Supervisor

TEST_PORT_OFFSET = 20000
TEST_HOME = PROJECT_ROOT / ".local" / "test-stack"


def make_test_settings() -> StackSettings:
    return StackSettings(
        environment="test", home=TEST_HOME, ports=Ports().shifted(TEST_PORT_OFFSET)
    )


def _wipe(home_settings: StackSettings) -> None:
    home = home_settings.home
    outside = home / "postgres" / "cluster"
    if outside.is_symlink():
        shutil.rmtree(outside.resolve(), ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_settings() -> StackSettings:
    return make_test_settings()


@pytest.fixture(scope="session")
def supervisor(stack_settings: StackSettings) -> Iterator[Supervisor]:
    sup = Supervisor(stack_settings, default_services())
    sup.down(progress=lambda _: None)  # leftovers of an interrupted session
    _wipe(stack_settings)
    try:
        sup.up(progress=print)
        yield sup
    finally:
        sup.down(progress=print)
