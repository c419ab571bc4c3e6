"""Parsing and data-quality validation of raw topic records (connectors/SCHEMAS.md).

Every parser returns a typed value or a :class:`Rejection`; none raises on bad input (a
raise in the job would restart it and re-read the same record: a failover loop). A
rejection's ``reason`` is a short, stable snake_case name from :data:`REASONS` (it becomes
the DLQ partition ``reason=<reason>``); ``detail`` is for humans and may change.

Rules shared by every parser:

- Checks run in a fixed order and the FIRST failing one names the reason, so one record
  always gets the same reason.
- ``missing_field``: the key is absent. A key that is present with the wrong JSON type,
  ``null`` included, is ``bad_type`` — or the field's own reason where one exists
  (``bad_event_time``, ``bad_user_id``, ...).
- Integers are JSON integers: ``true``/``false``, floats and numeric strings are not ints.
  Ids and event times must fit a signed 64-bit int (Flink ``BIGINT``, fixed-width
  :meth:`core.version.Version.encode`).
- Attribute values (email, segment, tier) follow the same vocabulary as the CRM bridge
  (``core.domain``), whichever source carries them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, NoReturn, TypeGuard

import orjson

from core.domain import (
    CUSTOMER_ATTRIBUTES,
    attribute_problem,
)
from core.events import Source, parse_iso_ms
from core.quality import Suite, compile_suite, repository_suite
from core.version import Version, cdc_version, click_version, crm_version
from flink_jobs.logic.events import (
    AttributeUpdate,
    ClickEvent,
    OrderEvent,
    Rejection,
    dedup_clicks,
    order_creations,
)

__all__ = [
    "REASONS",
    "AttributeUpdate",
    "ClickEvent",
    "OrderEvent",
    "Rejection",
    "dedup_clicks",
    "order_creations",
    "parse_cdc_customer",
    "parse_cdc_order",
    "parse_click",
    "parse_crm",
]

INT64_MAX: Final = 2**63 - 1

REASONS: Final[dict[str, str]] = {
    "empty_value": "the record has no value where one is required",
    "invalid_json": "the value is not UTF-8 JSON",
    "not_an_object": "the JSON value is not an object",
    "missing_field": "a required key is absent",
    "bad_type": "a field has the wrong JSON type (null included)",
    "bad_event_time": "event_time / source.ts_ms is not an int in [1, 2^63-1]",
    "implausible_event_time": "event_time is before the floor (2000-01-01) or too far ahead "
    "of the Kafka record timestamp (core.events.plausible_event_time)",
    "bad_user_id": "clickstream user_id is not an int in [1, 2^63-1]",
    "bad_customer_id": "a customer id is not an int in [1, 2^63-1]",
    "bad_order_id": "an order id is not an int in [1, 2^63-1]",
    "unknown_event_type": "event_type is not in core.domain.CLICK_EVENT_TYPES",
    "bad_event_id": "clickstream event_id is empty or longer than the suite allows",
    "bad_page": "clickstream page is longer than the suite allows",
    "unknown_op": "Debezium op is not one of c, u, d, r",
    "wrong_table": "a CDC event of another table than the topic's",
    "bad_source": "the source block / source_seq cannot give a version",
    "invalid_key": "the Kafka key is not the documented JSON key",
    "key_mismatch": "the Kafka key's id differs from the row's id",
    "invalid_email": "email is not of the form local@domain",
    "invalid_segment": "segment is not in core.domain.SEGMENTS",
    "invalid_tier": "tier is not in core.domain.TIERS",
    "invalid_status": "order status is not in core.domain.ORDER_STATUSES",
    "bad_amount": "amount_cents is not an int in [0, 2^63-1]",
    "bad_created_at": "created_at is not an ISO-8601 timestamp with an offset",
}


class _Bad(Exception):
    """Internal control flow of this module only; every public parser catches it."""

    def __init__(self, reason: str, detail: str, expectation: str | None = None) -> None:
        super().__init__(reason, detail)
        self.rejection = Rejection(reason, detail, expectation)


def _fail(reason: str, detail: str) -> NoReturn:
    raise _Bad(reason, detail)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(value: Any) -> TypeGuard[int]:
    return type(value) is int  # bool is a subclass of int, and is not one here


def _load(value: bytes | None) -> dict[str, Any]:
    if value is None:
        _fail("empty_value", "null value")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        _fail("invalid_json", str(exc)[:200])
    if not isinstance(obj, dict):
        _fail("not_an_object", f"JSON {type(obj).__name__}, expected an object")
    return obj


def _field(obj: dict[str, Any], name: str, where: str = "") -> Any:
    if name not in obj:
        _fail("missing_field", f"{where}{name} is missing")
    return obj[name]


def _int(obj: dict[str, Any], name: str, reason: str, minimum: int = 1, where: str = "") -> int:
    value = _field(obj, name, where)
    if not _is_int(value) or not minimum <= value <= INT64_MAX:
        _fail(reason, f"{where}{name}={_show(value)} is not an int in [{minimum}, 2^63-1]")
    return value


def _str(obj: dict[str, Any], name: str, where: str = "") -> str:
    value = _field(obj, name, where)
    if not isinstance(value, str):
        _fail("bad_type", f"{where}{name}={_show(value)} is not a string")
    return value


def _object(obj: dict[str, Any], name: str) -> dict[str, Any]:
    value = _field(obj, name)
    if not isinstance(value, dict):
        _fail("bad_type", f"{name}={_show(value)} is not an object")
    return value


def _attributes(row: dict[str, Any], where: str) -> dict[str, str]:
    """The last-writer-wins attributes of a customer row, validated."""
    values = {a: _str(row, a, where) for a in CUSTOMER_ATTRIBUTES}
    for attribute, value in values.items():
        problem = attribute_problem(attribute, value)
        if problem:
            _fail(*problem)
    return values


# --- clickstream ---------------------------------------------------------------------------


def parse_click(
    value: bytes | None, partition: int, offset: int, suite: Suite | None = None
) -> ClickEvent | Rejection:
    """A clickstream record -> :class:`ClickEvent` with version (event_time, clickstream,
    (partition, offset)): a JSON object that meets every expectation of the clickstream
    suite (``core/suites/clickstream.json``, in its order; the first it fails names the
    reason and the expectation), else the rejection."""
    suite = suite or repository_suite(CLICKSTREAM_SUITE)
    try:
        obj = _load(value)
    except _Bad as bad:
        return bad.rejection
    failure = suite.check(obj)
    if failure is not None:
        return Rejection(failure.reason, failure.detail, failure.rule.label)
    version = click_version(obj["event_time"], partition, offset)
    return ClickEvent(
        obj["event_id"], obj["user_id"], obj["event_type"], obj["page"], obj["event_time"], version
    )


CLICKSTREAM_SUITE: Final = "clickstream"
CLICK_COLUMNS: Final = {
    "event_id": "str",
    "user_id": "int",
    "event_type": "str",
    "page": "str",
    "event_time": "int",
}
"""What the job reads of a click, and as what: a suite must guarantee each (Suite.requires)."""


def click_suite_of(document: Mapping[str, Any]) -> Suite:
    """A clickstream suite (Great Expectations' JSON) compiled for the job's gate: every
    expectation enforceable per record and :data:`CLICK_COLUMNS` guaranteed, else
    :class:`core.quality.SuiteError` naming what is wrong."""
    return compile_suite(document, name=CLICKSTREAM_SUITE, reads=CLICK_COLUMNS)


# --- Debezium CDC ---------------------------------------------------------------------------


CDC_ORDERS_SUITE: Final = "cdc_orders"
CDC_CUSTOMERS_SUITE: Final = "cdc_customers"
ORDER_COLUMNS: Final = {
    "op": "str",
    "row.id": "int",
    "row.customer_id": "int",
    "row.amount_cents": "int",
    "source.ts_ms": "int",
    "source.lsn": "int",
}
"""What the job reads of an order event, and as what: a suite must guarantee each."""


def order_suite_of(document: Mapping[str, Any]) -> Suite:
    """A CDC orders suite compiled for the job's gate (as :func:`click_suite_of`)."""
    return compile_suite(document, name=CDC_ORDERS_SUITE, reads=ORDER_COLUMNS)


def cdc_record(env: dict[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """The values of a suite's columns in a Debezium event: a column is a path of keys
    (``source.ts_ms``); ``row.`` is the row the change is about, ``before`` for a delete
    (op ``d``; complete under REPLICA IDENTITY FULL), else ``after``. An absent path is
    absent from the record (not null)."""
    row = "before" if env.get("op") == "d" else "after"
    out: dict[str, Any] = {}
    for column in columns:
        path = column.split(".")
        if path[0] == "row":
            path[0] = row
        node: Any = env
        for part in path:
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            out[column] = node
    return out


def _cdc_checked(value: bytes, suite: Suite) -> tuple[dict[str, Any], dict[str, Any], Version]:
    """(event, record, version) of a Debezium event that meets ``suite``."""
    env = _load(value)
    record = cdc_record(env, suite.columns())
    failure = suite.check(record)
    if failure is not None:
        raise _Bad(failure.reason, failure.detail, failure.rule.label)
    sequence = record.get("source.sequence")
    try:
        version = cdc_version(env["source"])
    except (ValueError, TypeError, KeyError) as exc:
        _fail("bad_source", f"source.sequence={_show(sequence)}: {exc}")
    if not all(_is_int(p) and 0 <= p <= INT64_MAX for p in version.seq):
        _fail("bad_source", f"source.sequence={_show(sequence)} out of range")
    return env, record, version


def _key_id(key: bytes | None) -> int | None:
    if key is None:
        return None
    try:
        obj = orjson.loads(key)
    except orjson.JSONDecodeError:
        _fail("invalid_key", f"key {_show(key)} is not JSON")
    if not isinstance(obj, dict) or not _is_int(obj.get("id")) or obj["id"] <= 0:
        _fail("invalid_key", f'key {_show(key)} is not {{"id": <positive int>}}')
    return int(obj["id"])


def parse_cdc_customer(key: bytes | None, value: bytes | None) -> list[AttributeUpdate] | Rejection:
    """A ``cdc.public.customers`` event -> one :class:`AttributeUpdate` per attribute of
    :data:`core.domain.CUSTOMER_ATTRIBUTES`, all at the event's version
    (:func:`core.version.cdc_version`).

    - ``c``/``u``/``r``: the values of ``after``.
    - ``d``: a tombstone (value None, deleted) per attribute, for the id of ``before``.
    - a Kafka tombstone (value None, after a delete) -> ``[]``: it exists only for log
      compaction; the delete event before it already carried the versioned tombstones.
    - a key, when given, must be ``{"id": n}`` with the row's id (``key_mismatch``).
    """
    if value is None:
        return []
    try:
        env, record, version = _cdc_checked(value, repository_suite(CDC_CUSTOMERS_SUITE))
        customer_id = record["row.id"]
        key_id = _key_id(key)
        if key_id is not None and key_id != customer_id:
            _fail("key_mismatch", f"key id {key_id} != row id {customer_id}")
        if record["op"] == "d":
            return [
                AttributeUpdate(customer_id, a, None, version, deleted=True)
                for a in CUSTOMER_ATTRIBUTES
            ]
        values = {a: env["after"].get(a) for a in CUSTOMER_ATTRIBUTES}
        for attribute, got in values.items():
            problem = attribute_problem(attribute, got)
            if problem:
                _fail(*problem)
    except _Bad as bad:
        return bad.rejection
    return [AttributeUpdate(customer_id, a, values[a], version) for a in CUSTOMER_ATTRIBUTES]


def parse_cdc_order(value: bytes | None) -> OrderEvent | Rejection | None:
    """A ``cdc.public.orders`` event -> :class:`OrderEvent` (any op; ``d`` carries the old
    row); a Kafka tombstone (value None) -> None. ``created_at`` is optional (None when
    absent or null); the rest is the orders suite (``core/suites/cdc_orders.json``): when
    present ``created_at`` must be Debezium's UTC form, ``2026-11-20T10:15:30.123456Z``."""
    if value is None:
        return None
    try:
        _, record, version = _cdc_checked(value, repository_suite(CDC_ORDERS_SUITE))
        created = record.get("row.created_at")
        created_ms: int | None = None
        if created is not None:
            try:
                created_ms = parse_iso_ms(created)
            except (ValueError, OverflowError) as exc:
                _fail("bad_created_at", f"row.created_at={_show(created)}: {exc}")
    except _Bad as bad:
        return bad.rejection
    return OrderEvent(
        record["row.id"],
        record["row.customer_id"],
        record["row.amount_cents"],
        record["row.status"],
        record["op"],
        version.event_time,
        created_ms,
        version,
    )


# --- S3 CRM bridge ----------------------------------------------------------------------------


def parse_crm(value: bytes | None) -> list[AttributeUpdate] | Rejection:
    """A ``crm.customers`` record -> one :class:`AttributeUpdate` per attribute at version
    :func:`core.version.crm_version` (event_time, s3_crm, (export_ts, object_key, row)).
    ``source`` must be ``"s3_crm"``; ``source_seq`` a list ``[int >= 0, str, int >= 0]``."""
    try:
        obj = _load(value)
        customer_id = _int(obj, "customer_id", "bad_customer_id")
        values = _attributes(obj, "")
        event_time = _int(obj, "event_time", "bad_event_time")
        if _field(obj, "source") != Source.S3_CRM.value:
            _fail("bad_source", f"source={_show(obj['source'])}, expected 's3_crm'")
        seq = _field(obj, "source_seq")
        if not (
            isinstance(seq, list)
            and len(seq) == 3
            and _is_int(seq[0])
            and 0 <= seq[0] <= INT64_MAX
            and isinstance(seq[1], str)
            and _is_int(seq[2])
            and 0 <= seq[2] <= INT64_MAX
        ):
            _fail("bad_source", f"source_seq={_show(seq)} is not [export_ts, object_key, row]")
    except _Bad as bad:
        return bad.rejection
    version = crm_version(event_time, seq[0], seq[1], seq[2])
    return [AttributeUpdate(customer_id, a, values[a], version) for a in CUSTOMER_ATTRIBUTES]
