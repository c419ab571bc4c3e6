"""Session fixtures. The real stack is started once per test session, on its own ports
(defaults + 20000) and its own folder (.local/test-stack), so it never touches a developer's
running stack. It starts from empty data each session and is stopped at the end."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from core.settings import PROJECT_ROOT, Ports, StackSettings
from streamfeat.stack.services import default_services
from streamfeat.stack.supervisor import Supervisor

# Property tests run beside a real stack on a shared 2-core machine: wall-clock deadlines
# per example would make them flaky, and they measure nothing (speed lives in benchmarks).
hypothesis_settings.register_profile("streamfeat", deadline=None)
hypothesis_settings.load_profile("streamfeat")

# Two checkouts' test sessions can run side by side on one machine when each sets its own
# STREAMFEAT_TEST_PORT_OFFSET (port sets must not overlap) and STREAMFEAT_TEST_HOME.
TEST_PORT_OFFSET = int(os.environ.get("STREAMFEAT_TEST_PORT_OFFSET", "20000"))
TEST_HOME = Path(
    os.environ.get("STREAMFEAT_TEST_HOME", str(PROJECT_ROOT / ".local" / "test-stack"))
)


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


def stack_env(settings: StackSettings) -> dict[str, str]:
    """Environment that points a `streamfeat` subprocess at the test stack."""
    env = {"STREAMFEAT_HOME": str(settings.home), "STREAMFEAT_ENVIRONMENT": "test"}
    for name, port in settings.ports.model_dump().items():
        env[f"STREAMFEAT_PORTS__{name.upper()}"] = str(port)
    return env


@pytest.fixture(scope="session")
def stack_settings() -> StackSettings:
    return make_test_settings()


_RUNNING: list[Supervisor] = []


@pytest.fixture(scope="session")
def supervisor(stack_settings: StackSettings) -> Iterator[Supervisor]:
    sup = Supervisor(stack_settings, default_services())
    sup.down(progress=lambda _: None)  # leftovers of an interrupted session
    _wipe(stack_settings)
    try:
        sup.up(progress=print)
        _RUNNING.append(sup)
        yield sup
    finally:
        _RUNNING.clear()
        sup.down(progress=print)


@pytest.fixture(autouse=True)
def _no_service_dies() -> Iterator[None]:
    """A stack service that ends on its own during a test fails that test (in teardown),
    naming the service and the line of its log that says why; the stack is then brought
    back up so the tests after it still run against a whole stack."""
    yield
    if not _RUNNING:
        return
    sup = _RUNNING[0]
    dead = sup.deaths()
    if dead:
        sup.up(progress=print)
        pytest.fail(
            "stack service(s) died during this test: "
            + "; ".join(f"{name}: {detail}" for name, detail in dead.items())
        )


@pytest.fixture(scope="session")
def ingestion(supervisor: Supervisor, stack_settings: StackSettings) -> StackSettings:
    """Topics applied, PostgreSQL migrated and seeded, the Debezium connector running."""
    from connectors.cdc.apply import apply_connectors
    from connectors.demo.loader import seed_all
    from connectors.kafka_topics import apply_topics
    from core.topics import catalogue

    apply_topics(stack_settings, catalogue())
    seed_all(stack_settings, seed=7, n_customers=60)
    apply_connectors(stack_settings, progress=print)
    return stack_settings
