"""Schemathesis over the app's own OpenAPI document, in-process (ASGI), with the real Redis and
PostgreSQL of the test stack behind it: every operation, valid (positive) and invalid
(negative) generated inputs, every response checked against the document by schemathesis's
checks (no 5xx, status code documented, body/headers/content type conforming, invalid data
rejected). Any failure of any operation fails the test, listing all of them.

One check is left out: ``positive_data_acceptance`` (schema-valid data must not get a 4xx
other than 401/403/404/409/429). Some rules of a valid request cannot be written in JSON
Schema — feature names unique across the feature objects, groups naming declared features,
lineage graph queries naming a node one way or the other — and the API answers their
violation with 422 on purpose. Everything a schema can say is said (e.g. ``uniqueItems`` on
sources), and rules that depend on the registry's state answer 409, not 422.

Operations are driven with ``APIOperation.as_strategy`` and Hypothesis directly rather than
``schemathesis.pytest.from_fixture``: that loader sets ``Node._nodeid``, which pytest 9.2
no longer has. Credentials: the development admin key, so every operation is reachable (the
auth matrix in test_api_auth.py covers the other roles). Generated definitions get random
names, so they never collide with the definitions other tests register.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from core.settings import StackSettings
from feature_api.app import create_app
from feature_api.settings import ApiSettings, Role, dev_key

pytestmark = pytest.mark.stack

ADMIN = {"X-API-Key": dev_key(Role.ADMIN)}
EXAMPLES = 30


def _has_inputs(operation: schemathesis.APIOperation) -> bool:
    return bool(list(operation.iter_parameters())) or bool(operation.body)


def _describe(exc: BaseException) -> str:
    parts = [str(exc)]
    if isinstance(exc, BaseExceptionGroup):
        parts += [str(sub) for sub in exc.exceptions]
    return "\n".join(parts)[:3000]


def test_every_operation_conforms_to_the_openapi_document(
    supervisor: object, stack_settings: StackSettings
) -> None:
    app = create_app(ApiSettings(), stack_settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 16, [op.label for op in operations]
    failures: dict[str, str] = {}
    calls = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                nonlocal calls
                calls += 1
                case.call_and_validate(headers=ADMIN, excluded_checks=[positive_data_acceptance])

            try:
                run()
            except Unsatisfiable:
                # Nothing to make invalid (no parameters, no body): only positive cases exist.
                assert mode is GenerationMode.NEGATIVE and not _has_inputs(operation), operation
            except (Exception, BaseExceptionGroup) as exc:  # report each operation, fail once
                failures[f"{operation.label} ({mode.value})"] = _describe(exc)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    assert calls >= len(operations) * 2  # every operation was exercised in both modes
