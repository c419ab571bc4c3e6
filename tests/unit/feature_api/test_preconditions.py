"""If-Match parsing and the strong comparison against a definition's ETag (RFC 9110 §13.1.1)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feature_api.preconditions import IF_MATCH_PATTERN, etag, parse_if_match

STATUS = st.sampled_from(["active", "deprecated"])
VERSIONS = st.integers(1, 2**31 - 1)


def test_etags_name_the_version_and_the_status() -> None:
    assert etag(3, "active") == '"v3"'
    assert etag(3, "deprecated") == '"v3-deprecated"'


@given(VERSIONS, STATUS, VERSIONS, STATUS)
def test_a_tag_matches_exactly_its_own_state(v1: int, s1: str, v2: int, s2: str) -> None:
    cond = parse_if_match(etag(v1, s1))
    assert cond is not None
    assert cond.matches(etag(v2, s2)) == ((v1, s1) == (v2, s2))
    assert re.fullmatch(IF_MATCH_PATTERN, etag(v1, s1))  # what we send, we accept


@given(st.lists(st.tuples(VERSIONS, STATUS), min_size=1, max_size=5), VERSIONS, STATUS)
def test_a_list_matches_any_of_its_tags(
    tags: list[tuple[int, str]], version: int, status: str
) -> None:
    header = " , ".join(etag(v, s) for v, s in tags)
    cond = parse_if_match(header)
    assert cond is not None
    assert cond.matches(etag(version, status)) == ((version, status) in tags)


def test_star_matches_any_state_and_weak_tags_never_match() -> None:
    star = parse_if_match(" * ")
    assert star is not None and star.matches('"v1"') and star.matches('"v9-deprecated"')
    weak = parse_if_match('W/"v3"')
    assert weak is not None and not weak.matches('"v3"')
    mixed = parse_if_match('W/"v3", "v4"')
    assert mixed is not None and mixed.matches('"v4"') and not mixed.matches('"v3"')


def test_absent_is_none() -> None:
    assert parse_if_match(None) is None


@pytest.mark.parametrize("bad", ["v3", '"v3', "", '"v 3"', '"v3";"v4"', "**", '"v3",'])
def test_malformed_headers_are_refused(bad: str) -> None:
    assert re.fullmatch(IF_MATCH_PATTERN, bad) is None
    with pytest.raises(ValueError, match="quoted entity tags"):
        parse_if_match(bad)
