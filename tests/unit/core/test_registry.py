"""Pure registry rules: specs from the code declarations, short names, compatibility."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.features import CUSTOMER, FEATURE_VIEWS, USER_ACTIVITY
from core.registry import (
    EntitySpec,
    FeatureSpec,
    FeatureViewSpec,
    derive_short,
    diff_entities,
    diff_views,
    entity_spec,
    fill_shorts,
    incompatible,
    to_feature_view,
    view_spec,
)


def _view(**over: Any) -> FeatureViewSpec:
    data: dict[str, Any] = {
        "name": "v",
        "entity": "customer",
        "features": [
            {"name": "a", "dtype": "int64", "short": "a"},
            {"name": "b", "dtype": "string", "short": "b"},
        ],
        "sources": ["clickstream"],
        "short": "v",
        "ttl_s": 3600,
    }
    data.update(over)
    return FeatureViewSpec.model_validate(data)


@pytest.mark.parametrize("view", FEATURE_VIEWS, ids=lambda v: v.name)
def test_code_declarations_round_trip(view: Any) -> None:
    spec = view_spec(view)
    assert fill_shorts(spec) == spec  # code declarations carry every short name
    assert to_feature_view(spec, entity_spec(CUSTOMER)) == view
    assert diff_views(spec, view_spec(view)) == []


def test_allowed_lateness_round_trips() -> None:
    declared = USER_ACTIVITY.__class__(**{**USER_ACTIVITY.__dict__, "allowed_lateness_ms": 5})
    spec = view_spec(declared)
    assert spec.allowed_lateness_ms == 5
    assert to_feature_view(spec, entity_spec(CUSTOMER)) == declared
    assert [c.what for c in diff_views(view_spec(USER_ACTIVITY), spec)] == ["allowed_lateness_ms"]


def test_spec_survives_json() -> None:
    spec = view_spec(USER_ACTIVITY)
    assert FeatureViewSpec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize(
    ("new", "needle"),
    [
        (_view(features=[{"name": "a", "dtype": "int64", "short": "a"}]), "'b' removed"),
        (
            _view(
                features=[
                    {"name": "a", "dtype": "float64", "short": "a"},
                    {"name": "b", "dtype": "string", "short": "b"},
                ]
            ),
            "feature a dtype",
        ),
        (_view(entity="account"), "entity"),
        (_view(short="w"), "short"),
        (_view(version_scope="attribute"), "version_scope"),
        (
            _view(
                features=[
                    {"name": "a", "dtype": "int64", "short": "x"},
                    {"name": "b", "dtype": "string", "short": "b"},
                ]
            ),
            "feature a short",
        ),
        (_view(groups=[{"name": "g", "features": ["a"]}]), "feature a group"),
    ],
)
def test_incompatible_view_changes(new: FeatureViewSpec, needle: str) -> None:
    reasons = incompatible(diff_views(_view(), new))
    assert reasons and any(needle in r for r in reasons), reasons


@pytest.mark.parametrize(
    "new",
    [
        _view(
            features=[
                {"name": "a", "dtype": "int64", "short": "a"},
                {"name": "b", "dtype": "string", "short": "b"},
                {"name": "c", "dtype": "bool", "short": "c"},
            ]
        ),
        _view(description="new words"),
        _view(owner="someone"),
        _view(tags={"k": "v"}),
        _view(ttl_s=7200),
        _view(allowed_lateness_ms=60_000),
        _view(sources=["clickstream", "pg_cdc"]),
        _view(transformation="sum(x)"),
        _view(
            features=[
                {"name": "a", "dtype": "int64", "short": "a", "description": "better"},
                {"name": "b", "dtype": "string", "short": "b"},
            ]
        ),
    ],
)
def test_compatible_view_changes(new: FeatureViewSpec) -> None:
    changes = diff_views(_view(), new)
    assert changes and incompatible(changes) == []


def test_entity_rules() -> None:
    old = EntitySpec(name="e", join_key="id", short="e")
    assert diff_entities(old, old) == []
    ok = diff_entities(old, old.model_copy(update={"description": "d", "owner": "o"}))
    assert len(ok) == 2 and incompatible(ok) == []
    assert incompatible(diff_entities(old, old.model_copy(update={"join_key": "other"})))
    assert incompatible(diff_entities(old, old.model_copy(update={"short": "x"})))


@pytest.mark.parametrize(
    "bad",
    [
        {"features": [{"name": "a", "dtype": "int64"}] * 2},
        {"features": [{"name": "a", "dtype": "int64", "short": "s"},
                      {"name": "b", "dtype": "int64", "short": "s"}]},
        {"version_scope": "attribute", "groups": [{"name": "g", "features": ["a"]}]},
        {"groups": [{"name": "g", "features": ["zzz"]}]},
        {"groups": [{"name": "g", "features": ["a"]}, {"name": "h", "features": ["a"]}]},
        {"sources": []},
        {"sources": ["kafka_somewhere"]},
        {"ttl_s": 0},
        {"allowed_lateness_ms": -1},
        {"allowed_lateness_ms": 8 * 86_400_000},  # longer than the clickstream is kept
        {"name": "Bad-Name"},
        {"features": [{"name": "a", "dtype": "decimal"}]},
        {"features": [{"name": "a", "dtype": "int64", "short": "a@"}]},
        {"features": [{"name": "a", "dtype": "int64", "short": "_v"}]},
        {"unknown": 1},
        {"description": "nul \x00 inside"},  # PostgreSQL text cannot hold NUL
        {"tags": {"k": "\x00"}},
    ],
)  # fmt: skip
def test_invalid_specs_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _view(**bad)


def test_derive_short_examples() -> None:
    assert derive_short("clicks_1h", []) == "c1h"
    assert derive_short("last_session_duration_s", []) == "lsds"
    assert derive_short("clicks_1h", ["c1h", "c1h2"]) == "c1h3"


NAMES = st.lists(
    st.from_regex(r"[a-z][a-z0-9]{0,6}(_[a-z0-9]{1,6}){0,3}", fullmatch=True),
    min_size=1,
    max_size=25,
    unique=True,
)


def _spec(names: list[str]) -> FeatureViewSpec:
    return _view(features=[FeatureSpec(name=n, dtype="int64") for n in names], short=None)


@given(NAMES)
def test_filled_shorts_are_unique_valid_and_deterministic(names: list[str]) -> None:
    filled = fill_shorts(_spec(names))
    shorts = [f.short for f in filled.features]
    assert len(set(shorts)) == len(shorts)
    assert all(s and re.fullmatch(r"[a-z0-9]{1,16}", s) for s in shorts)  # no "_": compact
    assert fill_shorts(_spec(names)) == filled
    assert filled.short == "v"


@given(NAMES, NAMES)
def test_an_update_keeps_every_existing_short_and_adds_compatibly(
    old_names: list[str], extra: list[str]
) -> None:
    old = fill_shorts(_spec(old_names))
    new_names = old_names + [n for n in extra if n not in old_names]
    new = fill_shorts(_spec(new_names), old)
    before = {f.name: f.short for f in old.features}
    after = {f.name: f.short for f in new.features}
    assert all(after[n] == s for n, s in before.items())
    assert len(set(after.values())) == len(after)
    assert incompatible(diff_views(old, new)) == []


@given(NAMES, st.data())
def test_removing_any_feature_is_incompatible(names: list[str], data: st.DataObject) -> None:
    assume(len(names) > 1)  # a view keeps at least one feature
    old = fill_shorts(_spec(names))
    gone = data.draw(st.sampled_from(names))
    kept = [f for f in old.features if f.name != gone]
    new = old.model_copy(update={"features": kept})
    reasons = incompatible(diff_views(old, new))
    assert reasons == [f"feature {gone!r} removed: readers of it would break "
                       "(deprecate the view and register a new one instead)"]  # fmt: skip


SHORTS = st.from_regex(r"[a-z0-9]{1,4}", fullmatch=True)


def _feature(name: str, short: str | None) -> FeatureSpec:
    return FeatureSpec(name=name, dtype="int64", short=short)


@settings(max_examples=50)  # each example is up to 6 versions
@given(NAMES, st.data())
def test_any_sequence_of_updates_keeps_every_short_and_never_collides(
    first: list[str], data: st.DataObject
) -> None:
    """Versions 1..n of a view, each adding features anywhere in the list, some with an
    explicit short (which may hit a stored one: that update must be refused and change
    nothing), kept features sometimes restating their short: every short once stored stays
    with its feature, and no two features ever share one."""
    given: list[str] = []  # a repeated explicit short is a validation error: not drawn
    initial = []
    for name in first:
        short = data.draw(st.one_of(st.none(), SHORTS))
        short = None if short in given else short
        given += [short] if short else []
        initial.append(_feature(name, short))
    current = fill_shorts(_view(features=initial, short=None))
    stored = {f.name: f.short for f in current.features}  # every short ever stored
    for _ in range(data.draw(st.integers(1, 6))):
        features = [
            _feature(f.name, f.short if data.draw(st.booleans()) else None)
            for f in current.features
        ]
        extra = [n for n in data.draw(NAMES) if n not in stored][:5]
        wanted = [f.short for f in features if f.short]  # a repeat is a validation error
        for name in extra:
            short = data.draw(st.one_of(st.none(), SHORTS))
            if short in wanted:
                short = None
            wanted += [short] if short else []
            features.insert(data.draw(st.integers(0, len(features))), _feature(name, short))
        proposed = _view(features=features, short=None)
        new = fill_shorts(proposed, current)
        assert fill_shorts(proposed, current) == new  # deterministic
        reasons = incompatible(diff_views(current, new))
        hits = {f.short for f in proposed.features if f.name not in stored} & set(stored.values())
        if hits:  # an explicit short on a stored field: refused, with the reason
            assert reasons and all("would be stored under" in r for r in reasons), reasons
            continue
        assert reasons == []
        shorts = [f.short for f in new.features]
        assert len(set(shorts)) == len(shorts)
        assert all(s and re.fullmatch(r"[a-z0-9][a-z0-9_]*", s) for s in shorts)
        after = {f.name: f.short for f in new.features}
        assert all(after[n] == s for n, s in stored.items())
        stored, current = after, new


def test_a_feature_added_before_an_existing_one_does_not_take_its_short() -> None:
    old = fill_shorts(_view(features=[_feature("b_c", None)], short=None))
    assert [f.short for f in old.features] == ["bc"]
    new = fill_shorts(_view(features=[_feature("bar_cat", None), _feature("b_c", None)]), old)
    assert [f.short for f in new.features] == ["bc2", "bc"]
    assert incompatible(diff_views(old, new)) == []


def test_an_explicit_short_on_a_stored_field_is_refused() -> None:
    old = fill_shorts(_view(features=[_feature("b_c", None)], short=None))
    new = fill_shorts(_view(features=[_feature("b_c", None), _feature("zz", "bc")]), old)
    assert incompatible(diff_views(old, new)) == [
        "feature 'zz' would be stored under short name 'bc', the field of feature 'b_c': "
        "omit `short` to get a free one"
    ]
