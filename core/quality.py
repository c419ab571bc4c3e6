"""Data quality: the Great Expectations suites that say what a good record is, compiled to
record-level rules.

Each source has one suite in ``core/suites/<source>.json``, in Great Expectations' own
format (``great_expectations.ExpectationSuite(**json)`` loads it, :func:`ge_suite`). The
suites are the one statement of a good record: the feature job's gate (the Java parser in
flink_jobs/jvm, given :func:`rules_spec`), its Python reference
(flink_jobs.logic.records) and the CRM bridge (which validates whole chunks with Great
Expectations itself) all derive their checks from them.

The stream checks one record at a time, so only record-level expectations compile
(:data:`SUPPORTED`); a suite with any other expectation, or with ``mostly`` below 1 or a
``row_condition``, is refused by :func:`compile_suite` with the expectation named, and the
job refuses to deploy it.

Record-level meaning of each supported expectation (a record is one JSON object; a key that
is absent or JSON ``null`` is a null value; as in Great Expectations, every expectation but
the first two passes a null):

- ``expect_column_to_exist``: the key is present (``null`` counts as present);
- ``expect_column_values_to_not_be_null``: present and not ``null``;
- ``expect_column_values_to_be_of_type`` (``type_``): the JSON kind -- ``str``, ``int``
  (an integer that fits a signed 64-bit int; ``true``/``false`` are not ints), ``float``
  (a number with a fraction or exponent), ``bool``, ``dict``, ``list``;
- ``expect_column_values_to_be_in_set`` (``value_set``): equal to a member of the same
  kind (numbers compare by value);
- ``expect_column_values_to_be_between`` (``min_value``, ``max_value``, ``strict_min``,
  ``strict_max``): a number in the range, compared exactly; anything else fails;
- ``expect_column_values_to_match_regex`` (``regex``): a string in which the pattern is
  found (search, not full match; write patterns in the syntax Python and Java share);
- ``expect_column_value_lengths_to_be_between`` (``min_value``, ``max_value``): a string
  whose length in code points is in the range.

Each expectation may name its DLQ reason in ``meta.reason`` (a stable snake_case name: it
becomes the DLQ partition); otherwise the reason is the expectation type. Expectations run
in the suite's order and the first that fails names the reason and the expectation.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

SUITES_DIR: Final = Path(__file__).with_name("suites")
"""Where the repository keeps the suites (``<source>.json``)."""

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

TYPES: Final = ("str", "int", "float", "bool", "dict", "list")
"""The kinds ``expect_column_values_to_be_of_type`` accepts in a record-level suite."""

SUPPORTED: Final = (
    "expect_column_to_exist",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_of_type",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_between",
    "expect_column_values_to_match_regex",
    "expect_column_value_lengths_to_be_between",
)
"""The expectation types a record-level gate enforces (module docstring)."""

_KWARGS: Final[dict[str, frozenset[str]]] = {
    "expect_column_to_exist": frozenset(),
    "expect_column_values_to_not_be_null": frozenset(),
    "expect_column_values_to_be_of_type": frozenset({"type_"}),
    "expect_column_values_to_be_in_set": frozenset({"value_set"}),
    "expect_column_values_to_be_between": frozenset(
        {"min_value", "max_value", "strict_min", "strict_max"}
    ),
    "expect_column_values_to_match_regex": frozenset({"regex"}),
    "expect_column_value_lengths_to_be_between": frozenset({"min_value", "max_value"}),
}
_HARMLESS_KWARGS: Final = frozenset({"column", "mostly", "result_format", "catch_exceptions"})

_SEP_RULE: Final = "\x1e"
_SEP_FIELD: Final = "\x1f"
_SEP_ITEM: Final = "\x1d"
"""Separators of :func:`rules_spec` (ASCII record/unit/group separators)."""

_REASON: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class SuiteError(ValueError):
    """A suite the stream cannot enforce, or that is not a suite: the message names the
    suite, the expectation (by its position and type) and what to change."""


@dataclass(frozen=True)
class Rule:
    """One compiled expectation of a record-level suite."""

    expectation: str
    """The Great Expectations type, e.g. ``expect_column_values_to_be_in_set``."""
    column: str
    reason: str
    """The DLQ reason when it fails (``meta.reason``, else the expectation type)."""
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """What the DLQ names as the failed expectation: ``type(column)``."""
        return f"{self.expectation}({self.column})"


@dataclass(frozen=True)
class Failure:
    """The first expectation a record fails."""

    rule: Rule
    detail: str

    @property
    def reason(self) -> str:
        return self.rule.reason


@dataclass(frozen=True)
class Suite:
    """A suite as the repository keeps it (Great Expectations' JSON) and its rules."""

    name: str
    document: Mapping[str, Any]
    rules: tuple[Rule, ...]

    def columns(self) -> tuple[str, ...]:
        """The columns the suite speaks of, in first-mention order."""
        return tuple(dict.fromkeys(r.column for r in self.rules))

    def check(self, record: Mapping[str, Any]) -> Failure | None:
        """The first expectation ``record`` (a decoded JSON object) fails, or None."""
        for rule in self.rules:
            problem = _CHECKS[rule.expectation](rule, record)
            if problem is not None:
                return Failure(rule, f"{rule.label}: {problem}")
        return None

    def column_problem(self, column: str, value: Any) -> Failure | None:
        """The first expectation on ``column`` that ``value`` fails (the other columns not
        considered), or None."""
        for rule in self.rules:
            if rule.column == column:
                problem = _CHECKS[rule.expectation](rule, {column: value})
                if problem is not None:
                    return Failure(rule, f"{rule.label}: {problem}")
        return None

    def requires(self, column: str, type_: str) -> None:
        """Refuse the suite unless every record it passes has ``column`` non-null of
        ``type_`` (what a reader of the column relies on)."""
        mine = [r for r in self.rules if r.column == column]
        not_null = any(r.expectation == "expect_column_values_to_not_be_null" for r in mine)
        typed = any(
            r.expectation == "expect_column_values_to_be_of_type" and r.kwargs["type_"] == type_
            for r in mine
        )
        if not (not_null and typed):
            raise SuiteError(
                f"suite {self.name!r}: the job reads {column!r} as a non-null {type_}: the suite "
                f"must keep expect_column_values_to_not_be_null and "
                f"expect_column_values_to_be_of_type(type_={type_!r}) on it"
            )


# ---- compiling --------------------------------------------------------------------------


def compile_suite(
    document: Mapping[str, Any],
    name: str | None = None,
    reads: Mapping[str, str] | None = None,
) -> Suite:
    """``document`` (a Great Expectations suite as JSON) -> :class:`Suite`; raises
    :class:`SuiteError` naming the first expectation the stream cannot enforce, or a column
    of ``reads`` (column -> type) the suite does not guarantee (:meth:`Suite.requires`)."""
    name = str(document.get("name") or name or "?")
    expectations = document.get("expectations")
    if not isinstance(expectations, list) or not expectations:
        raise SuiteError(f"suite {name!r} has no expectations list")
    rules = tuple(_rule(name, i, e) for i, e in enumerate(expectations, start=1))
    suite = Suite(name, document, rules)
    for column, type_ in (reads or {}).items():
        suite.requires(column, type_)
    return suite


def _rule(suite: str, position: int, e: Any) -> Rule:
    where = f"suite {suite!r}, expectation {position}"
    if not isinstance(e, dict) or not isinstance(e.get("type"), str):
        raise SuiteError(f"{where}: not an expectation (an object with a 'type')")
    kind = e["type"]
    kwargs = e.get("kwargs") or {}
    where = f"{where} ({kind})"
    if kind not in SUPPORTED:
        raise SuiteError(
            f"{where}: a record-level gate cannot enforce it; supported: {', '.join(SUPPORTED)}"
            " (batch expectations belong in a batch suite)"
        )
    column = kwargs.get("column")
    if not isinstance(column, str) or not column:
        raise SuiteError(f"{where}: needs a 'column'")
    mostly = kwargs.get("mostly", 1)
    if mostly != 1:
        raise SuiteError(f"{where}: mostly={mostly!r} is a statement about a batch, not a record")
    unknown = set(kwargs) - _KWARGS[kind] - _HARMLESS_KWARGS
    if unknown:
        raise SuiteError(f"{where}: cannot enforce {', '.join(sorted(unknown))} per record")
    reason = (e.get("meta") or {}).get("reason", kind)
    if not isinstance(reason, str) or not _REASON.match(reason):
        raise SuiteError(f"{where}: meta.reason {reason!r} is not a snake_case name")
    args = {k: kwargs[k] for k in _KWARGS[kind] if kwargs.get(k) is not None}
    _check_args(where, kind, args)
    return Rule(kind, column, reason, args)


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _check_args(where: str, kind: str, args: dict[str, Any]) -> None:
    if kind == "expect_column_values_to_be_of_type" and args.get("type_") not in TYPES:
        raise SuiteError(f"{where}: type_ {args.get('type_')!r} is not one of {', '.join(TYPES)}")
    if kind == "expect_column_values_to_be_in_set":
        members = args.get("value_set")
        if not isinstance(members, list) or not all(
            isinstance(m, (str, bool)) or _number(m) for m in members
        ):
            raise SuiteError(f"{where}: value_set must be a list of strings, numbers, booleans")
    if kind in ("expect_column_values_to_be_between", "expect_column_value_lengths_to_be_between"):
        for bound in ("min_value", "max_value"):
            if bound in args and not _number(args[bound]):
                raise SuiteError(f"{where}: {bound} must be a number")
        if "min_value" not in args and "max_value" not in args:
            raise SuiteError(f"{where}: needs min_value or max_value")
    if kind == "expect_column_values_to_match_regex":
        try:
            re.compile(args.get("regex", ""))
        except (re.error, TypeError) as exc:
            raise SuiteError(f"{where}: regex does not compile: {exc}") from exc
        if "regex" not in args:
            raise SuiteError(f"{where}: needs a regex")


# ---- the record-level meaning of each expectation ---------------------------------------


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if value is not None else "null"
    return text if len(text) <= 80 else text[:77] + "..."


def kind_of(value: Any) -> str:
    """The JSON kind of a decoded value, as ``expect_column_values_to_be_of_type`` names it
    (``none`` for null; ``bigint`` for an integer outside int64)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if INT64_MIN <= value <= INT64_MAX else "bigint"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _exist(rule: Rule, record: Mapping[str, Any]) -> str | None:
    return None if rule.column in record else "is missing"


def _not_null(rule: Rule, record: Mapping[str, Any]) -> str | None:
    if rule.column not in record:
        return "is missing"
    return "is null" if record[rule.column] is None else None


def _of_type(rule: Rule, record: Mapping[str, Any]) -> str | None:
    value = record.get(rule.column)
    if value is None or kind_of(value) == rule.kwargs["type_"]:
        return None
    return f"{_shown(value)} is not of type {rule.kwargs['type_']}"


def _in_set(rule: Rule, record: Mapping[str, Any]) -> str | None:
    value = record.get(rule.column)
    if value is None:
        return None
    for member in rule.kwargs["value_set"]:
        if isinstance(value, bool) or isinstance(member, bool):
            if value is member:
                return None
        elif isinstance(value, str) or isinstance(member, str):
            if value == member and type(value) is type(member):
                return None
        elif kind_of(value) in ("int", "bigint", "float") and value == member:
            return None
    return f"{_shown(value)} is not in the set"


def _in_range(rule: Rule, n: Any) -> bool:
    low, high = rule.kwargs.get("min_value"), rule.kwargs.get("max_value")
    strict_min, strict_max = rule.kwargs.get("strict_min"), rule.kwargs.get("strict_max")
    if low is not None and (n <= low if strict_min else n < low):
        return False
    return not (high is not None and (n >= high if strict_max else n > high))


def _between(rule: Rule, record: Mapping[str, Any]) -> str | None:
    value = record.get(rule.column)
    if value is None:
        return None
    if kind_of(value) not in ("int", "bigint", "float") or not _in_range(rule, value):
        return f"{_shown(value)} is not between {_bounds(rule)}"
    return None


def _bounds(rule: Rule) -> str:
    low, high = rule.kwargs.get("min_value"), rule.kwargs.get("max_value")
    left = "(" if rule.kwargs.get("strict_min") else "["
    right = ")" if rule.kwargs.get("strict_max") else "]"
    return f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"


def _regex(rule: Rule, record: Mapping[str, Any]) -> str | None:
    value = record.get(rule.column)
    if value is None:
        return None
    if not isinstance(value, str) or _pattern(rule.kwargs["regex"]).search(value) is None:
        return f"{_shown(value)} does not match {rule.kwargs['regex']!r}"
    return None


@cache
def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


def _length(rule: Rule, record: Mapping[str, Any]) -> str | None:
    value = record.get(rule.column)
    if value is None:
        return None
    if not isinstance(value, str) or not _in_range(rule, len(value)):
        length = len(value) if isinstance(value, str) else "no"
        return f"length {length} of {_shown(value)} is not between {_bounds(rule)}"
    return None


_CHECKS: Final[dict[str, Callable[[Rule, Mapping[str, Any]], str | None]]] = {
    "expect_column_to_exist": _exist,
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_of_type": _of_type,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_match_regex": _regex,
    "expect_column_value_lengths_to_be_between": _length,
}


# ---- the suites of the repository -------------------------------------------------------


def load_suite(source: str, directory: Path | None = None) -> Suite:
    """The compiled suite of ``source``: ``<directory>/<source>.json`` when that file exists,
    else the repository's (a folder of edited suites need not copy the others)."""
    path = (directory or SUITES_DIR) / f"{source}.json"
    if directory is not None and not path.exists():
        path = SUITES_DIR / f"{source}.json"
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise SuiteError(f"no suite for {source!r}: {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"suite {path} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise SuiteError(f"suite {path} is not a JSON object")
    return compile_suite(document, name=source)


@cache
def repository_suite(source: str) -> Suite:
    """:func:`load_suite` of the repository's own suite (read once per process)."""
    return load_suite(source)


# ---- the Java gate's form ---------------------------------------------------------------


def _spec_value(value: Any) -> str:
    if isinstance(value, bool):
        return "b" + ("1" if value else "0")
    if isinstance(value, int):
        return "i" + str(value)
    if isinstance(value, float):
        return "f" + repr(value)
    return "s" + str(value)


def rules_spec(suite: Suite) -> str:
    """The suite's rules as the job's Java gate reads them (io.streamfeat.flink.RecordRules):
    rules separated by U+001E, fields by U+001F: reason, label, kind, column, then the
    kind's arguments; a value set's members separated by U+001D, each prefixed by its
    kind (``s`` string, ``i`` integer, ``f`` float, ``b`` boolean); an absent bound is
    empty. Contains no quote, so it embeds in an SQL literal as is."""
    rules = []
    for r in suite.rules:
        a = r.kwargs
        members = a.get("value_set", []) if r.expectation.endswith("_in_set") else []
        for f in [r.reason, r.column, a.get("regex", ""), *map(str, members)]:
            if any(sep in f for sep in (_SEP_RULE, _SEP_FIELD, _SEP_ITEM)) or "'" in f:
                raise SuiteError(
                    f"suite {suite.name!r}, {r.label}: {f!r} holds a quote or a control "
                    "separator (U+001D-U+001F), which the job's gate cannot carry"
                )
        if r.expectation == "expect_column_values_to_be_of_type":
            args = [a["type_"]]
        elif r.expectation == "expect_column_values_to_be_in_set":
            args = [_SEP_ITEM.join(_spec_value(m) for m in a["value_set"])]
        elif r.expectation in (
            "expect_column_values_to_be_between",
            "expect_column_value_lengths_to_be_between",
        ):
            args = [
                "" if a.get("min_value") is None else _spec_value(a["min_value"]),
                "" if a.get("max_value") is None else _spec_value(a["max_value"]),
                "1" if a.get("strict_min") else "0",
                "1" if a.get("strict_max") else "0",
            ]
        elif r.expectation == "expect_column_values_to_match_regex":
            args = [a["regex"]]
        else:
            args = []
        rules.append(_SEP_FIELD.join([r.reason, r.label, r.expectation, r.column, *args]))
    return _SEP_RULE.join(rules)


VALIDATIONS_PREFIX: Final = "dq-validations"
"""Where validation results are kept on the lake bucket:
``dq-validations/suite=<suite>/date=<YYYY-MM-DD>/<digest>.json``."""


def validation_key(suite: str, date_ms: int, batch_id: str) -> str:
    """The object of one batch's validation result (deterministic: validating the same batch
    again replaces it)."""
    day = datetime.fromtimestamp(date_ms / 1000, UTC).strftime("%Y-%m-%d")
    digest = hashlib.sha256(batch_id.encode()).hexdigest()[:16]
    return f"{VALIDATIONS_PREFIX}/suite={suite}/date={day}/{digest}.json"


# ---- Great Expectations itself ----------------------------------------------------------


def ge_suite(suite: Suite) -> Any:
    """The suite as a ``great_expectations.ExpectationSuite`` (GE imported here: ~3 s)."""
    import great_expectations as gx

    return gx.ExpectationSuite(**dict(suite.document))


def record_frame(records: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Any:
    """Records as a pandas DataFrame for Great Expectations, one object column per suite
    column (an absent key is None). JSON booleans become ``numpy.bool_`` and integers
    outside int64 floats, so GE's ``int`` type (Python's ``isinstance(v, int)``) means what
    the stream's does."""
    import numpy as np
    import pandas as pd

    def cell(value: Any) -> Any:
        if isinstance(value, bool):
            return np.bool_(value)
        if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            return float(value)
        return value

    data = {c: pd.Series([cell(r.get(c)) for r in records], dtype=object) for c in columns}
    return pd.DataFrame(data, index=range(len(records)))


@dataclass
class Validation:
    """Great Expectations' verdict on a batch of records: per record the labels of the
    expectations it fails (suite order), and GE's own validation result (JSON)."""

    failed: list[list[str]]
    result: dict[str, Any]

    @property
    def success(self) -> bool:
        return not any(self.failed)


class GreatExpectations:
    """One suite validated by Great Expectations itself on batches of records (an ephemeral
    data context, pandas). ``expect_column_to_exist`` is what GE makes of it, a statement
    about the batch's columns: every suite column is in the frame, so it holds; a record's
    absent key is a null to GE (the suites pair it with ``not_be_null``)."""

    def __init__(self, suite: Suite) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.suite = suite
        self._gx = gx
        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = self._context.data_sources.add_pandas("records").add_dataframe_asset("batch")
        self._batches = asset.add_batch_definition_whole_dataframe("whole")
        self._ge_suite = ge_suite(suite)
        self._order = {r.label: i for i, r in reversed(list(enumerate(suite.rules)))}
        self.last_result: dict[str, Any] = {}
        """GE's result of the last :meth:`validate` (JSON), to keep beside what it decided."""

    def rule(self, label: str) -> Rule:
        return self.suite.rules[self._order[label]]

    def _run(self, frame: Any, suite: Any, result_format: str = "COMPLETE") -> Any:
        batch = self._batches.get_batch(batch_parameters={"dataframe": frame})
        return batch.validate(suite, result_format={"result_format": result_format})

    def validate(self, records: Sequence[Mapping[str, Any]]) -> Validation:
        """Validate ``records`` as one batch. An expectation that raises on the batch (GE's
        range check refuses a column of mixed types) is asked again record by record, where
        raising means the record fails it."""
        failed: list[set[str]] = [set() for _ in records]
        if not records:
            self.last_result = {}
            return Validation([], {})
        frame = record_frame(records, self.suite.columns())
        # a clean batch (the common case) needs only GE's verdict: ~40 % cheaper than the
        # per-row result, which is asked for when something failed
        quick = self._run(frame, self._ge_suite, "BOOLEAN_ONLY")
        if quick.success:
            self.last_result = quick.to_json_dict()
            return Validation([[] for _ in records], self.last_result)
        result = self._run(frame, self._ge_suite)
        for outcome in result.results:
            config = outcome.expectation_config
            label = f"{config.type}({config.kwargs.get('column')})"
            if outcome.exception_info.get("raised_exception") or any(
                isinstance(v, dict) and v.get("raised_exception")
                for v in outcome.exception_info.values()
            ):
                rows = self._one_by_one(records, config)
            else:
                rows = outcome.result.get("unexpected_index_list") or []
            for row in rows:
                failed[int(row)].add(label)
        ordered = [
            sorted(labels, key=lambda x: self._order.get(x, len(self._order))) for labels in failed
        ]
        self.last_result = result.to_json_dict()
        return Validation(ordered, self.last_result)

    def _one_by_one(self, records: Sequence[Mapping[str, Any]], config: Any) -> list[int]:
        single = self._gx.ExpectationSuite(name="one", expectations=[config.to_json_dict()])
        rows = []
        for i, record in enumerate(records):
            outcome = self._run(record_frame([record], self.suite.columns()), single).results[0]
            if not outcome.success:
                rows.append(i)
        return rows
