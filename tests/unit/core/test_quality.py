"""The data-quality suites (core/suites) and their record-level meaning (core.quality):
Great Expectations itself is the oracle -- a record the compiled rules pass is one GE
finds nothing wrong with, and the first expectation the rules name is the first GE names."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.domain import CLICK_EVENT_TYPES, ORDER_STATUSES, SEGMENTS, TIERS, attribute_problem
from core.quality import (
    SUITES_DIR,
    GreatExpectations,
    Suite,
    SuiteError,
    compile_suite,
    ge_suite,
    load_suite,
    repository_suite,
    rules_spec,
)
from flink_jobs.logic.records import CLICKSTREAM_SUITE, click_suite_of


@pytest.fixture(scope="module")
def clickstream() -> Iterator[tuple[Suite, GreatExpectations]]:
    suite = repository_suite(CLICKSTREAM_SUITE)
    yield suite, GreatExpectations(suite)


@pytest.fixture(scope="module")
def customers() -> Iterator[tuple[Suite, GreatExpectations]]:
    suite = repository_suite("crm_customers")
    yield suite, GreatExpectations(suite)


def test_every_repository_suite_is_a_great_expectations_suite_the_stream_enforces() -> None:
    names = sorted(p.stem for p in SUITES_DIR.glob("*.json"))
    assert names == ["cdc_customers", "cdc_orders", "clickstream", "crm_customers"]
    for name in names:
        suite = load_suite(name)
        assert ge_suite(suite).name == name
        assert len(ge_suite(suite).expectations) == len(suite.rules)
        assert rules_spec(suite)


def test_the_suites_vocabularies_are_the_domains() -> None:
    def value_set(suite: Suite, column: str) -> tuple[str, ...]:
        (rule,) = [
            r
            for r in suite.rules
            if r.column == column and r.expectation == "expect_column_values_to_be_in_set"
        ]
        return tuple(rule.kwargs["value_set"])

    assert value_set(repository_suite("clickstream"), "event_type") == CLICK_EVENT_TYPES
    assert value_set(repository_suite("crm_customers"), "segment") == SEGMENTS
    assert value_set(repository_suite("crm_customers"), "tier") == TIERS
    assert value_set(repository_suite("cdc_orders"), "row.status") == ORDER_STATUSES


def _document() -> dict[str, Any]:
    return copy.deepcopy(dict(repository_suite(CLICKSTREAM_SUITE).document))


@pytest.mark.parametrize(
    ("expectation", "message"),
    [
        ({"type": "expect_column_mean_to_be_between", "kwargs": {"column": "user_id"}},
         "expect_column_mean_to_be_between): a record-level gate cannot enforce it"),
        ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "event_id"}},
         "expect_column_values_to_be_unique): a record-level gate cannot enforce it"),
        ({"type": "expect_column_values_to_not_be_null",
          "kwargs": {"column": "page", "mostly": 0.95}},
         "mostly=0.95 is a statement about a batch"),
        ({"type": "expect_column_values_to_be_in_set",
          "kwargs": {"column": "page", "value_set": ["/"], "row_condition": 'user_id>5'}},
         "cannot enforce row_condition per record"),
        ({"type": "expect_column_values_to_be_of_type",
          "kwargs": {"column": "page", "type_": "VARCHAR"}},
         "type_ 'VARCHAR' is not one of"),
        ({"type": "expect_column_values_to_match_regex",
          "kwargs": {"column": "page", "regex": "("}},
         "regex does not compile"),
        ({"type": "expect_column_values_to_be_between", "kwargs": {"column": "user_id"}},
         "needs min_value or max_value"),
        ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "page"},
          "meta": {"reason": "Bad Reason"}}, "is not a snake_case name"),
        ({"type": "expect_column_values_to_match_regex",
          "kwargs": {"column": "page", "regex": "'"}},
         "holds a quote"),
    ],
)  # fmt: skip
def test_a_suite_the_stream_cannot_enforce_is_refused_naming_the_expectation(
    expectation: dict[str, Any], message: str
) -> None:
    document = _document()
    document["expectations"].append(expectation)
    with pytest.raises(SuiteError, match="suite 'clickstream'") as refused:
        rules_spec(compile_suite(document))
    assert message in str(refused.value)
    position = len(document["expectations"])
    assert f"expectation {position}" in str(refused.value) or "holds a quote" in message


def test_a_suite_that_no_longer_guarantees_what_the_job_reads_is_refused() -> None:
    document = _document()
    document["expectations"] = [
        e
        for e in document["expectations"]
        if not (e["kwargs"]["column"] == "user_id" and e["type"].endswith("_of_type"))
    ]
    compile_suite(document)  # a suite GE and the rules can enforce ...
    with pytest.raises(SuiteError, match="reads 'user_id' as a non-null int"):
        click_suite_of(document)  # ... but not one the job can read its clicks through


def test_the_reason_is_the_expectations_meta_reason_else_its_type() -> None:
    document = {
        "name": "t",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "a",
             "min_value": 0, "max_value": 10, "strict_max": True}, "meta": {"reason": "big_a"}},
        ],
    }  # fmt: skip
    suite = compile_suite(document)
    missing = suite.check({})
    assert missing is not None and missing.reason == "expect_column_values_to_not_be_null"
    assert missing.rule.label == "expect_column_values_to_not_be_null(a)"
    big = suite.check({"a": 10})
    assert big is not None and big.reason == "big_a"
    assert suite.check({"a": 9.5}) is None
    assert suite.check({"a": 0}) is None


def test_customer_attributes_are_checked_by_the_customer_suite() -> None:
    assert attribute_problem("email", "a@b.example") is None
    problem = attribute_problem("email", "@nobody")
    assert problem is not None and problem[0] == "invalid_email"
    assert "expect_column_values_to_match_regex(email)" in problem[1]
    assert attribute_problem("segment", "smb") is None
    assert attribute_problem("tier", "diamond") == (
        "invalid_tier",
        'expect_column_values_to_be_in_set(tier): "diamond" is not in the set',
    )
    with pytest.raises(KeyError):
        attribute_problem("phone", "1")


# ---- Great Expectations as the oracle ----------------------------------------------------

ABSENT = object()

values = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=3)
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
    | st.sampled_from([*CLICK_EVENT_TYPES, *SEGMENTS, *TIERS, "a@b", "@b", "a@", "x" * 129])
    | st.builds(lambda n: "/" * n, st.sampled_from([0, 1, 2048, 2049]))
    | st.just({"k": 1})
    | st.just([1])
)


def records(columns: tuple[str, ...], valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Records mostly valid, each column now and then absent or any value."""
    cell = {c: st.one_of(st.just(valid.get(c, ABSENT)), st.just(ABSENT), values) for c in columns}
    return st.fixed_dictionaries(cell).map(
        lambda r: {k: v for k, v in r.items() if v is not ABSENT}
    )


CLICK = {"event_id": "e-1", "user_id": 7, "event_type": "search", "page": "/p", "event_time": 5}
CUSTOMER = {"customer_id": 3, "email": "a@b.example", "segment": "smb", "tier": "gold"}


def _agree(suite: Suite, ge: GreatExpectations, batch: list[dict[str, Any]]) -> None:
    verdict = ge.validate(batch)
    for record, ge_failed in zip(batch, verdict.failed, strict=True):
        mine = suite.check(record)
        if mine is None:
            assert ge_failed == [], (record, ge_failed)
            continue
        assert ge_failed, (record, mine)
        if mine.rule.expectation == "expect_column_to_exist":  # GE: a null of the batch
            assert ge_failed[0] == f"expect_column_values_to_not_be_null({mine.rule.column})"
        else:
            assert ge_failed[0] == mine.rule.label, (record, ge_failed)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(records(repository_suite(CLICKSTREAM_SUITE).columns(), CLICK), max_size=25))
def test_great_expectations_agrees_with_the_clickstream_rules(
    clickstream: tuple[Suite, GreatExpectations], batch: list[dict[str, Any]]
) -> None:
    _agree(*clickstream, batch)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(records(repository_suite("crm_customers").columns(), CUSTOMER), max_size=25))
def test_great_expectations_agrees_with_the_customer_rules(
    customers: tuple[Suite, GreatExpectations], batch: list[dict[str, Any]]
) -> None:
    _agree(*customers, batch)


ORDER = {
    "op": "c", "source.table": "orders", "source.ts_ms": 5, "source.lsn": 9,
    "source.sequence": '["1","9"]', "row.id": 3, "row.customer_id": 4, "row.amount_cents": 0,
    "row.status": "paid", "row.created_at": "2026-01-01T10:00:00.123456Z",
}  # fmt: skip


@pytest.fixture(scope="module")
def orders() -> Iterator[tuple[Suite, GreatExpectations]]:
    suite = repository_suite("cdc_orders")
    yield suite, GreatExpectations(suite)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(records(repository_suite("cdc_orders").columns(), ORDER), max_size=25))
def test_great_expectations_agrees_with_the_cdc_order_rules(
    orders: tuple[Suite, GreatExpectations], batch: list[dict[str, Any]]
) -> None:
    _agree(*orders, batch)


def test_a_validation_keeps_great_expectations_own_result(
    clickstream: tuple[Suite, GreatExpectations],
) -> None:
    suite, ge = clickstream
    verdict = ge.validate([CLICK, {**CLICK, "event_type": "dance"}])
    assert verdict.failed == [[], ["expect_column_values_to_be_in_set(event_type)"]]
    assert not verdict.success
    result = json.loads(json.dumps(verdict.result))
    assert result["success"] is False
    assert result["statistics"]["evaluated_expectations"] == len(suite.rules)
