"""Pure parts of the online store contract: the encoded payload and the batch pruning.

``apply`` below models the Lua upsert (core.online.UPSERT_LUA) on a dict, from the script's
own arguments, so the property "writing only the newest write per group equals applying
every write one by one, in any order" is checked without Redis. The same behaviour on the
real Redis is in tests/integration/test_online_store.py."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.features import USER_LAGS
from core.online import (
    PAYLOAD_SEPARATOR,
    EncodedRow,
    Write,
    newest_per_field,
    parse_payload,
    upsert_args,
)
from core.version import click_version
from tests.grouped_view import GROUPED_ACTIVITY

SHORTS = [f.short for f in USER_LAGS.features]


def apply(state: dict[str, str], args: list[str]) -> None:
    """The Lua upsert on a dict (no expiry): per group, set it only if its version is
    strictly greater than the stored one."""
    groups, i, changed = int(args[2]), 3, 0
    for _ in range(groups):
        vfield, version, nset, ndel = args[i], args[i + 1], int(args[i + 2]), int(args[i + 3])
        i += 4
        if vfield not in state or version > state[vfield]:
            state[vfield] = version
            for j in range(nset):
                state[args[i + 2 * j]] = args[i + 2 * j + 1]
            for j in range(ndel):
                state.pop(args[i + 2 * nset + j], None)
            changed += 1
        i += 2 * nset + ndel
    if changed and args[1] and int(args[1]) > int(state.get("_t", "0")):
        state["_t"] = args[1]


def run(writes: list[Write], *, pruned: bool) -> dict[str, dict[str, str]]:
    hashes: dict[str, dict[str, str]] = {}
    batches = newest_per_field(writes).values() if pruned else [[w] for w in writes]
    for batch in batches:
        key, args = upsert_args(batch)
        apply(hashes.setdefault(key, {}), args)
    return hashes


def test_payload_round_trip_and_absent_fields() -> None:
    text = PAYLOAD_SEPARATOR.join(["lt=purchase", "ms=1500"])
    assert parse_payload(text) == {"lt": "purchase", "ms": "1500"}
    assert parse_payload("") == {} and parse_payload(None) == {}
    assert parse_payload("x=a=b") == {"x": "a=b"}  # only the first '=' separates


def test_absent_declared_field_is_removed() -> None:
    old = EncodedRow(USER_LAGS, 1, {"lt": "view", "pt": "click", "ms": "5"}, click_version(1, 0, 1))
    new = EncodedRow(USER_LAGS, 1, {"lt": "click"}, click_version(2, 0, 2))
    state = run([old, new], pruned=False)
    (row,) = state.values()
    assert row["lt"] == "click" and "pt" not in row and "ms" not in row and row["_t"] == "2"


def lag_values(t: int, offset: int) -> dict[str, str]:
    """A row's values are a function of its version: one record (one version) has one value
    set, redelivered or not. Some fields are absent (removed by the write)."""
    code = t * 31 + offset
    return {s: str((code >> i) % 3) for i, s in enumerate(SHORTS) if (code >> i) & 1}


lag_rows = st.builds(
    lambda entity, t, offset: EncodedRow(
        USER_LAGS, entity, lag_values(t, offset), click_version(t, offset % 3, offset)
    ),
    st.integers(1, 3),
    st.integers(0, 50),
    st.integers(0, 1000),
)
activity_rows = st.builds(
    lambda entity, window, t, offset: EncodedRow(
        GROUPED_ACTIVITY,
        entity,
        {f.short: str((t + offset) % 7) for f in GROUPED_ACTIVITY.group(window)},
        click_version(t, 0, offset),
        window,
    ),
    st.integers(1, 3),
    st.sampled_from([g for g, _ in GROUPED_ACTIVITY.groups]),
    st.integers(0, 50),
    st.integers(0, 1000),
)


@given(st.lists(st.one_of(lag_rows, activity_rows), max_size=30), st.randoms())
def test_newest_per_group_equals_every_write_in_any_order(writes: list[Write], rnd) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(writes)
    rnd.shuffle(shuffled)
    assert run(shuffled, pruned=True) == run(writes, pruned=False)
