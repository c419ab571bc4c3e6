"""Pure parts of the online store contract: the script's arguments and the batch pruning.

``apply`` below models the Lua upsert (core.online.UPSERT_LUA) on a dict, from the script's
own arguments, so the property "writing only the newest write per group equals applying
every write one by one, in any order" is checked without Redis. The same behaviour on the
real Redis is in tests/integration/test_online_store.py."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.features import CUSTOMER_PROFILE, USER_LAGS
from core.online import (
    SET_MARK,
    AttributeWrite,
    RowWrite,
    Write,
    marked,
    newest_per_field,
    upsert_args,
)
from core.version import click_version
from tests.grouped_view import GROUPED_ACTIVITY

NAMES = [f.name for f in USER_LAGS.features]


def apply(state: dict[str, str], args: list[str]) -> None:
    """The Lua upsert on a dict (no expiry): per group, set it only if its version is
    strictly greater than the stored one."""
    groups, i, changed = int(args[2]), 3, 0
    for _ in range(groups):
        vfield, version, nfields = args[i], args[i + 1], int(args[i + 2])
        i += 3
        if vfield not in state or version > state[vfield]:
            state[vfield] = version
            for j in range(nfields):
                field, value = args[i + 2 * j], args[i + 2 * j + 1]
                if value:
                    state[field] = value[1:]
                else:
                    state.pop(field, None)
            changed += 1
        i += 2 * nfields
    if changed and args[1] and int(args[1]) > int(state.get("_t", "0")):
        state["_t"] = args[1]


def run(writes: list[Write], *, pruned: bool) -> dict[str, dict[str, str]]:
    hashes: dict[str, dict[str, str]] = {}
    batches = newest_per_field(writes).values() if pruned else [[w] for w in writes]
    for batch in batches:
        key, args = upsert_args(batch)
        apply(hashes.setdefault(key, {}), args)
    return hashes


def test_marked_values_set_or_delete_whatever_their_bytes() -> None:
    assert marked(None) == "" and marked("") == SET_MARK
    assert marked("a\x1f=b") == SET_MARK + "a\x1f=b"


def test_a_none_value_removes_its_field() -> None:
    values = {"last_event_type": "view", "prev_event_type": "click", "ms_since_prev_event": 5}
    old = RowWrite(USER_LAGS, 1, values, click_version(1, 0, 1))
    new = RowWrite(
        USER_LAGS,
        1,
        {**values, "last_event_type": "click", "prev_event_type": None},
        click_version(2, 0, 2),
    )
    (row,) = run([old, new], pruned=False).values()
    assert row["lt"] == "click" and "pt" not in row and row["dt"] == "5" and row["_t"] == "2"


def test_an_attribute_value_keeps_any_bytes() -> None:
    text = "=odd\x1fname="
    w = AttributeWrite(CUSTOMER_PROFILE, 7, "segment", text, click_version(3, 0, 0))
    (row,) = run([w], pruned=False).values()
    assert row[CUSTOMER_PROFILE.feature("segment").short] == text


def lag_values(t: int, offset: int) -> dict[str, object]:
    """A row's values are a function of its version: one record (one version) has one value
    set, redelivered or not. Some values are None (removed by the write)."""
    code = t * 31 + offset
    return {n: (code >> i) % 3 if (code >> i) & 1 else None for i, n in enumerate(NAMES)}


lag_rows = st.builds(
    lambda entity, t, offset: RowWrite(
        USER_LAGS, entity, lag_values(t, offset), click_version(t, offset % 3, offset)
    ),
    st.integers(1, 3),
    st.integers(0, 50),
    st.integers(0, 1000),
)
activity_rows = st.builds(
    lambda entity, window, t, offset: RowWrite(
        GROUPED_ACTIVITY,
        entity,
        {f.name: (t + offset) % 7 for f in GROUPED_ACTIVITY.group(window)},
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
