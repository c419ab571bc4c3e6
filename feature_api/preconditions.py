"""HTTP preconditions on registry definitions: ``ETag`` out, ``If-Match`` in (RFC 9110 §13).

A definition's entity tag names its *current state* — latest version and status — not the
version a ``GET ?version=N`` happens to show: it is what a writer read before editing, and
what ``If-Match`` compares against when the edit comes back. ``"v3"`` is an active
definition at version 3, ``"v3-deprecated"`` the same after deprecation (its representation
changed, so its tag must). Tags are strong; ``If-Match`` uses the strong comparison, so a
weak tag (``W/"v3"``) never matches.

The comparison itself runs in the store, inside the transaction that holds the definition's
row lock (:meth:`feature_api.registry_store.RegistryStore.update`): between the check and the
write no other update can commit. Parsing lives here, pure, so the rules are unit-tested.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ETAG_HEADER = "ETag"
IF_MATCH_HEADER = "If-Match"

_TAG = r'(?:W/)?"[!#-~]*"'
IF_MATCH_PATTERN = rf"^[ \t]*(?:\*|{_TAG}(?:[ \t]*,[ \t]*{_TAG})*)[ \t]*$"
"""``*`` or a comma-separated list of entity tags (RFC 9110 §8.8.3, ``etagc`` = ``!`` and
``#``-``~``). Anything else is refused as an invalid request before any work is done."""
_ONE_TAG = re.compile(r'(W/)?"([!#-~]*)"')


def etag(latest_version: int, status: str) -> str:
    """The quoted, strong entity tag of a definition's current state."""
    suffix = "" if status == "active" else f"-{status}"
    return f'"v{latest_version}{suffix}"'


@dataclass(frozen=True, slots=True)
class IfMatch:
    """A parsed ``If-Match``: ``any_`` for ``*``, else the strong tags it lists (quoted);
    weak tags are kept out since they can never match."""

    any_: bool
    tags: frozenset[str]
    raw: str

    def matches(self, current: str) -> bool:
        """Strong comparison against ``current`` (a quoted tag from :func:`etag`); ``*``
        matches any existing definition — the store answers 404 for a missing one first."""
        return self.any_ or current in self.tags


def parse_if_match(value: str | None) -> IfMatch | None:
    """``None`` when the header is absent; :class:`ValueError` when it is not the RFC
    syntax (the route's pattern refuses that earlier; this guards direct callers)."""
    if value is None:
        return None
    if not re.fullmatch(IF_MATCH_PATTERN, value):
        raise ValueError(f'If-Match {value!r}: expected * or quoted entity tags such as "v3"')
    text = value.strip(" \t")
    if text == "*":
        return IfMatch(True, frozenset(), text)
    strong = frozenset(f'"{m.group(2)}"' for m in _ONE_TAG.finditer(text) if not m.group(1))
    return IfMatch(False, strong, text)
