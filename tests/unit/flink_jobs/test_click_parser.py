"""The job's Java click parser (flink_jobs/jvm ClickParser) against the Python reference
(flink_jobs.logic.records.parse_click): same reason, or the same fields, for every input.

The Java side runs as one JVM for the module (ClickParserCheck: one base64 line in, one
line out), built by `make install` like the job that uses it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain import CLICK_EVENT_TYPES
from core.quality import Suite, compile_suite, repository_suite, rules_spec
from flink_jobs.logic.records import CLICKSTREAM_SUITE, ClickEvent, parse_click
from tests.unit.flink_jobs.helpers import click_value
from tests.unit.flink_jobs.jvm_check import JvmCheck


class JavaParser(JvmCheck):
    def __init__(self, rules: str | None = None) -> None:
        super().__init__(rules or rules_spec(repository_suite(CLICKSTREAM_SUITE)))

    def parse(self, value: bytes | None) -> str:
        return self.ask("-" if value is None else base64.b64encode(value).decode())


@pytest.fixture(scope="module")
def java() -> Iterator[JavaParser]:
    parser = JavaParser()
    yield parser
    parser.close()


def python_answer(value: bytes | None, suite: Suite | None = None) -> str:
    """What ClickParserCheck prints for ``value``, computed by the reference."""
    parsed = parse_click(value, 0, 0, suite)
    if not isinstance(parsed, ClickEvent):
        return f"{parsed.reason} {parsed.expectation or '-'}"
    b64 = [base64.b64encode(s.encode()).decode() for s in (parsed.event_id, parsed.page)]
    return " ".join(
        ["ok", b64[0], str(parsed.user_id), parsed.event_type, b64[1], str(parsed.event_time)]
    )


EDGES: list[bytes | None] = [
    None,
    b"",
    b" ",
    b"{}",
    b"[]",
    b"null",
    b"17",
    b'"text"',
    click_value(),
    click_value() + b" ",
    click_value() + b"\n\t\r ",
    click_value() + b"x",
    click_value() + b"{}",
    click_value() + b"\x00",
    b"\xef\xbb\xbf" + click_value(),
    click_value().replace(b"/product/123", b"/p\xff"),
    click_value().replace(b"/product/123", b"/p\xed\xa0\x80"),  # a surrogate, UTF-8 encoded
    click_value().replace(b"/product/123", b"/p\xc0\xaf"),  # overlong '/'
    click_value().replace(b"/product/123", b"/p\xf4\x90\x80\x80"),  # above U+10FFFF
    click_value().replace(b"/product/123", b"/p\xe2\x82"),  # truncated
    click_value().replace(b"/product/123", b"/p\\ud800"),  # a lone surrogate escape
    click_value().replace(b"/product/123", b"/p\\udc00x"),
    click_value().replace(b"/product/123", b"/p\\ud83d\\ude00"),  # a pair: valid
    click_value().replace(b"/product/123", "/p😀é".encode()),
    click_value().replace(b"/product/123", b"/p\x01"),  # a raw control character
    click_value().replace(b"/product/123", b"/p\\x"),
    click_value(properties=...).replace(b"}", b', "x": NaN}'),
    click_value(properties=...).replace(b"}", b', "x": 1e400}'),
    click_value(properties=...).replace(b"}", b', "x": -1e400}'),
    click_value(properties=...).replace(b"}", b', "x": 1' + b"0" * 400 + b"}"),
    click_value(properties=...).replace(b"}", b', "x": 1' + b"0" * 300 + b"}"),
    click_value(properties=...).replace(b"}", b', "x": 1' + b"0" * 308 + b"}"),  # 1e308
    click_value(properties=...).replace(b"}", b', "x": 2' + b"0" * 308 + b"}"),  # inf
    click_value(properties=...).replace(b"}", b', "x": -1' + b"0" * 309 + b"}"),
    click_value(properties=...).replace(b"}", b', "x": 1' + b"0" * 900_000 + b"}"),  # 1 MB
    click_value(properties=...).replace(b"}", b', "x": 01}'),
    click_value(properties=...).replace(b"}", b', "x": 1.}'),
    click_value(properties=...).replace(b"}", b', "x": [1,]}'),
    click_value(properties=...).replace(b"}", b",}"),
    click_value(properties=...).replace(b"}", b', "x": ' + b"[" * 1023 + b"]" * 1023 + b"}"),
    click_value(properties=...).replace(b"}", b', "x": ' + b"[" * 1024 + b"]" * 1024 + b"}"),
    b"[" * 1024 + b"]" * 1024,
    b"[" * 1025 + b"]" * 1025,
    click_value(user_id=2**63 - 1),
    click_value(user_id=2**63),
    click_value(user_id=2**64),
    click_value(user_id=10**30),
    click_value(user_id=-(2**63)),
    click_value(user_id=-(2**63) - 1),
    click_value(user_id=-0.0),
    click_value().replace(b'"user_id": 17', b'"user_id": -0'),
    click_value().replace(b'"user_id": 17', b'"user_id": 17, "user_id": "x"'),
    click_value().replace(b'"user_id": 17', b'"user_id": "x", "user_id": 17'),
    click_value().replace(b'"user_id": 17', b'"user_id": 1E3'),
    click_value(event_time=None),
    click_value(event_time=...),
    click_value(event_type=""),
    click_value(event_type="page_view|search"),
    click_value(page=""),
    click_value(event_id=None),
    click_value(properties=None),
    click_value(properties="x"),
    click_value(properties=[]),
    b'{"event_id": "e"',
    b"\x00\x00\x00{",
    '{"event_id":"e"}'.encode("utf-16"),
    click_value(event_id="e" * 128),
    click_value(event_id="e" * 129),
    click_value(page="😀" * 2048),  # 2,048 code points (4,096 UTF-16 units): valid
    click_value(page="😀" * 2049),
    click_value(user_id=1.0),
    click_value(user_id=2**63),
    click_value(event_type=1),
]


@pytest.mark.parametrize("value", EDGES, ids=range(len(EDGES)))
def test_java_parser_agrees_on_edge_cases(java: JavaParser, value: bytes | None) -> None:
    assert java.parse(value) == python_answer(value)


def test_the_reference_rejects_what_the_edge_cases_are_about(java: JavaParser) -> None:
    """The edge cases are not all valid by accident: most are rejections, of many reasons."""
    answers = [python_answer(v) for v in EDGES]
    reasons = {a.split(" ")[0] for a in answers if not a.startswith("ok ")}
    assert {"empty_value", "invalid_json", "not_an_object", "missing_field", "bad_type",
            "bad_user_id", "bad_event_time", "unknown_event_type", "bad_event_id",
            "bad_page"} <= reasons  # fmt: skip
    assert sum(a.startswith("ok ") for a in answers) >= 5


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(CLICK_EVENT_TYPES)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8,
)  # fmt: skip
FIELDS = ["event_id", "user_id", "event_type", "page", "event_time", "properties"]


@st.composite
def clicks(draw: st.DrawFn) -> bytes:
    """A valid click with some fields replaced by any JSON value or removed, some keys
    repeated, then maybe cut short or followed by something."""
    obj: dict[str, Any] = json.loads(click_value())
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        if draw(st.booleans()):
            obj.pop(name, None)
        else:
            obj[name] = draw(json_values)
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        name = draw(st.sampled_from(FIELDS))
        text = text[:-1] + f', "{name}": {json.dumps(draw(json_values))}}}'
    raw = text.encode("utf-8", "surrogatepass")
    cut = draw(st.sampled_from(["none", "none", "truncate", "append"]))
    if cut == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif cut == "append":
        raw += draw(st.binary(max_size=4))
    return raw


@settings(max_examples=400, deadline=None)
@given(clicks())
def test_java_parser_agrees_on_generated_clicks(java: JavaParser, value: bytes) -> None:
    assert java.parse(value) == python_answer(value)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=40) | st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass"))
)
def test_java_parser_agrees_on_any_bytes(java: JavaParser, value: bytes) -> None:
    assert java.parse(value) == python_answer(value)


# ---- every expectation kind, through an extended suite ----------------------------------

EXTRA = [
    {"type": "expect_column_values_to_be_between",
     "kwargs": {"column": "score", "min_value": -1.5, "max_value": 2**53 + 1, "strict_max": True}},
    {"type": "expect_column_values_to_be_between",
     "kwargs": {"column": "score", "min_value": -1, "strict_min": True}, "meta": {"reason": "low"}},
    {"type": "expect_column_values_to_be_in_set",
     "kwargs": {"column": "level", "value_set": [1, 2.5, True, "x", 9007199254740993]}},
    {"type": "expect_column_values_to_match_regex",
     "kwargs": {"column": "tag", "regex": "^[a-z]+-[0-9]{2,}$"}},
    {"type": "expect_column_value_lengths_to_be_between",
     "kwargs": {"column": "tag", "min_value": 4, "max_value": 7.5}},
    {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "flag", "type_": "bool"}},
    {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "ratio", "type_": "float"}},
    {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "items", "type_": "list"}},
    {"type": "expect_column_to_exist", "kwargs": {"column": "tag"}},
]  # fmt: skip
EXTENDED = compile_suite(
    {**repository_suite(CLICKSTREAM_SUITE).document,
     "expectations": [*repository_suite(CLICKSTREAM_SUITE).document["expectations"], *EXTRA]}
)  # fmt: skip
EXTRA_VALUES = (
    scalars
    | st.sampled_from([-1, -1.5, -1.25, 2**53, 2**53 + 1, 2**53 + 2, 2.5, 9007199254740993,
                       "ab-12", "abc-123", "a-1", "ab-1234567", "x", True, False, [], {}])
)  # fmt: skip


@pytest.fixture(scope="module")
def java_extended() -> Iterator[JavaParser]:
    parser = JavaParser(rules_spec(EXTENDED))
    yield parser
    parser.close()


@settings(max_examples=400, deadline=None)
@given(
    extra=st.dictionaries(
        st.sampled_from(["score", "level", "tag", "flag", "ratio", "items"]), EXTRA_VALUES
    )
)
def test_java_parser_agrees_on_every_expectation_kind(
    java_extended: JavaParser, extra: dict[str, Any]
) -> None:
    value = json.dumps({**json.loads(click_value()), **extra}).encode()
    assert java_extended.parse(value) == python_answer(value, EXTENDED)


def test_the_extended_suite_both_passes_and_fails(java_extended: JavaParser) -> None:
    good = {"score": 0, "level": 2.5, "tag": "ab-12", "flag": False, "ratio": 0.5, "items": []}
    value = json.dumps({**json.loads(click_value()), **good}).encode()
    assert java_extended.parse(value).startswith("ok ")
    bad = json.dumps({**json.loads(click_value()), **good, "score": -1}).encode()
    assert java_extended.parse(bad) == "low expect_column_values_to_be_between(score)"
