"""The online store contract on the real Redis: version-guarded upserts, LWW per attribute,
TTL counted from event time, tombstones."""

from __future__ import annotations

import itertools
import time
import uuid

import pytest

from core.features import CUSTOMER_PROFILE
from core.online import AttributeWrite, RedisOnlineStore, RowWrite, entity_key
from core.settings import StackSettings
from core.version import cdc_version, click_version, crm_version
from tests.grouped_view import GROUPED_ACTIVITY
from tests.grouped_view import PLAIN_ACTIVITY as USER_ACTIVITY


@pytest.fixture
def store(supervisor: object, stack_settings: StackSettings) -> RedisOnlineStore:
    return RedisOnlineStore.from_url(stack_settings.redis_url)


def _entity() -> int:
    return int(uuid.uuid4().int % 10**9)


def _activity(clicks: int) -> dict[str, int]:
    return {f.name: clicks for f in USER_ACTIVITY.features}


def test_newer_row_wins_and_older_or_equal_changes_nothing(store: RedisOnlineStore) -> None:
    now = int(time.time() * 1000)
    uid = _entity()
    v1, v2 = click_version(now - 1000, 3, 10), click_version(now, 3, 11)
    assert store.write([RowWrite(USER_ACTIVITY, uid, _activity(5), v2)]) == 1
    assert store.write([RowWrite(USER_ACTIVITY, uid, _activity(1), v1)]) == 0  # older
    assert store.write([RowWrite(USER_ACTIVITY, uid, _activity(9), v2)]) == 0  # redelivered
    row = store.read(USER_ACTIVITY, [uid])[0]
    assert row["clicks_1h"] == 5 and row["_t"] == str(now)


def test_profile_conflicts_resolve_the_same_in_every_arrival_order(store: RedisOnlineStore) -> None:
    t = int(time.time() * 1000)
    cdc = cdc_version({"ts_ms": t, "lsn": 500, "sequence": '["400","500"]'})
    crm_equal_time = crm_version(t, t + 60_000, "crm/exports/a.csv", 7)  # loses: priority
    crm_later = crm_version(t + 1, t + 60_000, "crm/exports/a.csv", 8)  # wins: later time
    writes = [
        AttributeWrite(CUSTOMER_PROFILE, 0, "email", "pg@example.com", cdc),
        AttributeWrite(CUSTOMER_PROFILE, 0, "email", "crm@example.com", crm_equal_time),
        AttributeWrite(CUSTOMER_PROFILE, 0, "tier", "gold", cdc),
        AttributeWrite(CUSTOMER_PROFILE, 0, "tier", "silver", crm_later),
    ]
    results = []
    for order in itertools.permutations(writes):
        cid = _entity()
        for w in order:  # one write per call: arrival order matters only if the rule is wrong
            store.write([AttributeWrite(w.view, cid, w.attribute, w.value, w.version)])
        row = store.read(CUSTOMER_PROFILE, [cid])[0]
        results.append((row["email"], row["tier"], row["e@"], row["t@"]))
    assert set(results) == {("pg@example.com", "silver", cdc.encode(), crm_later.encode())}


def test_ttl_counts_from_event_time(store: RedisOnlineStore, stack_settings: StackSettings) -> None:
    import redis

    client = redis.Redis.from_url(stack_settings.redis_url)
    now = int(time.time() * 1000)
    uid = _entity()
    store.write(
        [RowWrite(USER_ACTIVITY, uid, _activity(1), click_version(now - 23 * 3600_000, 0, 1))]
    )
    ttl = client.pttl(entity_key(USER_ACTIVITY, uid))
    assert 3_500_000 < ttl <= 3_600_000  # about 1 h left of the 24 h
    # a replayed event older than the TTL expires at once, as it would have originally
    old = _entity()
    store.write(
        [RowWrite(USER_ACTIVITY, old, _activity(1), click_version(now - 25 * 3600_000, 0, 1))]
    )
    assert client.exists(entity_key(USER_ACTIVITY, old)) == 0
    # an older write never shortens the expiry a newer one set
    store.write([RowWrite(USER_ACTIVITY, uid, _activity(2), click_version(now, 0, 2))])
    before = client.pttl(entity_key(USER_ACTIVITY, uid))
    store.write([RowWrite(USER_ACTIVITY, uid, _activity(3), click_version(now - 1, 0, 3))])
    assert client.pttl(entity_key(USER_ACTIVITY, uid)) <= before
    assert client.pttl(entity_key(USER_ACTIVITY, uid)) > 86_000_000


def test_a_delete_is_a_versioned_tombstone(store: RedisOnlineStore) -> None:
    t = int(time.time() * 1000)
    cid = _entity()
    put = cdc_version({"ts_ms": t, "lsn": 10, "sequence": '["9","10"]'})
    delete = cdc_version({"ts_ms": t + 5, "lsn": 20, "sequence": '["19","20"]'})
    older_crm = crm_version(t + 2, t + 9, "crm/exports/b.csv", 1)
    store.write([AttributeWrite(CUSTOMER_PROFILE, cid, "segment", "smb", put)])
    store.write([AttributeWrite(CUSTOMER_PROFILE, cid, "segment", None, delete)])
    store.write([AttributeWrite(CUSTOMER_PROFILE, cid, "segment", "enterprise", older_crm)])
    row = store.read(CUSTOMER_PROFILE, [cid])[0]
    assert "segment" not in row and row["s@"] == delete.encode()


def test_hashes_stay_compact(store: RedisOnlineStore, stack_settings: StackSettings) -> None:
    import redis

    client = redis.Redis.from_url(stack_settings.redis_url)
    uid = _entity()
    now = int(time.time() * 1000)
    store.write([RowWrite(USER_ACTIVITY, uid, _activity(12345), click_version(now, 11, 99999))])
    key = entity_key(USER_ACTIVITY, uid)
    assert client.object("encoding", key) == b"listpack"
    assert key.endswith(f"{{c:{uid}}}")  # hash tag: all views of an entity on one shard


def test_window_groups_keep_their_own_versions(store: RedisOnlineStore) -> None:
    """Each version group (a view may declare one per operator that writes it) is
    written independently: a group lagging behind another
    must still land, and an older write to a group never overwrites a newer one."""
    now = int(time.time() * 1000)
    uid = _entity()
    new, old = click_version(now, 1, 20), click_version(now - 10, 1, 10)

    def group(window: str, n: int, version: object) -> RowWrite:
        values = {f"{p}_{window}": n for p in ("clicks", "carts", "purchases")}
        return RowWrite(GROUPED_ACTIVITY, uid, values, version, group=window)  # type: ignore[arg-type]

    assert store.write([group("1h", 5, new)]) == 1
    assert store.write([group("24h", 7, old)]) == 1  # another group: lands although older
    assert store.write([group("1h", 3, old)]) == 0  # older write to the same group: ignored
    row = store.read(GROUPED_ACTIVITY, [uid])[0]
    assert (row["clicks_1h"], row["clicks_24h"]) == (5, 7)
    assert row["1h@"] == new.encode() and row["24h@"] == old.encode()
    assert row["_t"] == str(now)  # the newest event time of any group
