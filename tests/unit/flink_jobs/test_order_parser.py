"""The job's Java orders gate (flink_jobs/jvm OrderParser, compiled from the CDC orders suite)
against the Python reference (flink_jobs.logic.records.parse_cdc_order): the same reason and
expectation, or the same fields, for every input."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.quality import repository_suite, rules_spec
from flink_jobs.logic.records import CDC_ORDERS_SUITE, OrderEvent, parse_cdc_order
from tests.unit.flink_jobs.helpers import envelope, order_row
from tests.unit.flink_jobs.jvm_check import JvmCheck


class JavaOrders(JvmCheck):
    def __init__(self) -> None:
        super().__init__("--orders", rules_spec(repository_suite(CDC_ORDERS_SUITE)))

    def parse(self, value: bytes | None) -> str:
        return self.ask("-" if value is None else base64.b64encode(value).decode())


@pytest.fixture(scope="module")
def java() -> Iterator[JavaOrders]:
    parser = JavaOrders()
    yield parser
    parser.close()


def python_answer(value: bytes) -> str:
    got = parse_cdc_order(value)
    assert got is not None
    if not isinstance(got, OrderEvent):
        return f"{got.reason} {got.expectation or '-'}"
    created = "-" if got.created_at_ms is None else str(got.created_at_ms)
    commit, lsn = got.version.seq
    return " ".join(
        str(x)
        for x in ("ok", got.op, got.order_id, got.customer_id, got.amount_cents, created,
                  got.version.event_time, commit, lsn)
    )  # fmt: skip


def _event(op: str = "c", **row: Any) -> dict[str, Any]:
    after = order_row(**row)
    value = json.loads(envelope("orders", op, before=after if op == "d" else None,
                                after=None if op == "d" else after))  # fmt: skip
    return dict(value)


EDGES: list[bytes] = [
    json.dumps(_event()).encode(),
    json.dumps(_event("d")).encode(),
    json.dumps(_event("u", status="paid")).encode(),
    json.dumps(_event(created_at=None)).encode(),
    json.dumps(_event(created_at="2026-02-30T10:00:00Z")).encode(),
    json.dumps(_event(created_at="0000-01-01T00:00:00Z")).encode(),
    json.dumps(_event(created_at="2026-01-01T24:00:00Z")).encode(),
    json.dumps(_event(created_at="2026-01-01T10:00:00.5Z\n")).encode(),
    json.dumps(_event(created_at="1969-12-31T23:59:59.9995Z")).encode(),
    json.dumps(_event(created_at="2026-01-01T10:00:00+02:00")).encode(),
    json.dumps(_event(amount_cents=0)).encode(),
    json.dumps(_event(amount_cents=-1)).encode(),
    json.dumps(_event(status="lost")).encode(),
    json.dumps(_event(order_id="5")).encode(),
    json.dumps({**_event(), "op": "x"}).encode(),
    json.dumps({**_event(), "source": 5}).encode(),
    json.dumps({**_event(), "source": {**_event()["source"], "table": "customers"}}).encode(),
    json.dumps({**_event(), "source": {**_event()["source"], "sequence": None}}).encode(),
    json.dumps({**_event(), "source": {**_event()["source"], "sequence": '[null,"77"]'}}).encode(),
    json.dumps({**_event(), "source": {**_event()["source"],
                                       "sequence": '["9999999999999999999","1"]'}}).encode(),
    json.dumps({**_event(), "after": None}).encode(),
    b'{"op": "c", "source": {"ts_ms": 1}, "source": 5}',
    b"[]",
    b"{",
]  # fmt: skip


@pytest.mark.parametrize("value", EDGES, ids=range(len(EDGES)))
def test_java_orders_agree_on_edge_cases(java: JavaOrders, value: bytes) -> None:
    assert java.parse(value) == python_answer(value)


def test_the_edge_cases_are_about_many_reasons() -> None:
    answers = [python_answer(v) for v in EDGES]
    reasons = {a.split(" ")[0] for a in answers}
    assert {"ok", "bad_created_at", "bad_amount", "invalid_status", "bad_order_id", "unknown_op",
            "bad_event_time", "wrong_table", "bad_source", "not_an_object",
            "invalid_json"} <= reasons  # fmt: skip


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=3)
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.sampled_from(["c", "u", "d", "r", "orders", "paid", "created", '[null,"5"]',
                      '["4", "5"]', "2026-01-01T10:00:00.1Z", "2026-13-01T10:00:00Z"])
)  # fmt: skip
PATHS = [
    ("op",), ("source",), ("source", "ts_ms"), ("source", "lsn"), ("source", "sequence"),
    ("source", "table"), ("after",), ("before",), ("after", "id"), ("after", "customer_id"),
    ("after", "amount_cents"), ("after", "status"), ("after", "created_at"), ("before", "id"),
]  # fmt: skip


@st.composite
def events(draw: st.DrawFn) -> bytes:
    """A valid order event (any op) with some paths replaced by any value or removed."""
    event = _event(draw(st.sampled_from(["c", "u", "d", "r"])))
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=3)):
        node: Any = event
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            if draw(st.booleans()):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = draw(scalars)
    return json.dumps(event).encode()


@settings(max_examples=400, deadline=None)
@given(value=events())
def test_java_orders_agree_on_generated_events(java: JavaOrders, value: bytes) -> None:
    assert java.parse(value) == python_answer(value)
