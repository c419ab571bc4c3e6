"""The feature job on the real cluster: Kafka in, Redis (online) and S3 (DLQ) out.

Inputs are crafted records with hand-computed expectations. One job serves the module; it
runs with a 1 s bounded out-of-orderness and a 1 s idle timeout so the tests stay short, at
parallelism 2 (``STREAMFEAT_TEST_JOB_PARALLELISM`` sets another; docs/operations.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest

from batch.point_in_time import Requested, join
from connectors.kafka_clients import producer
from core.features import (
    CLICK_AGGREGATIONS,
    CUSTOMER_PROFILE,
    USER_ACTIVITY,
    USER_LAGS,
    USER_SESSION_COUNTS,
    USER_SESSIONS,
)
from core.objectstore import s3_client
from core.offline import latest, read_rows
from core.online import SCRIPTS, RedisOnlineStore
from core.settings import StackSettings
from core.topics import CDC_CUSTOMERS, CLICKSTREAM, CRM_CUSTOMERS
from core.version import decode_event_time
from core.windows import split_field, tiles_of
from flink_jobs.config import JobConfig
from streamfeat.job import cancel, deploy, job_config, stop
from tests.integration import JOB_PARALLELISM
from tests.waiting import wait_for

HOUR = 3_600_000


@pytest.fixture(scope="module")
def feature_job(ingestion: StackSettings) -> Iterator[StackSettings]:
    cfg = _job_cfg(ingestion)
    deploy(ingestion, cfg)
    try:
        yield ingestion
    finally:
        cancel(ingestion)


_CFGS: dict[str, JobConfig] = {}
SESSIONS_LATENESS_MS = 60_000


def _job_cfg(ingestion: StackSettings) -> JobConfig:
    """The module's one job configuration (a resumed job must keep the consumer group)."""
    if "cfg" in _CFGS:
        return _CFGS["cfg"]
    cfg = _CFGS["cfg"] = job_config(
        ingestion,
        group_id=f"test-features-{uuid.uuid4().hex[:6]}",
        max_out_of_orderness_ms=1000,
        # user_sessions waits longer for stragglers: a read of the clickstream of its own
        allowed_lateness_ms={USER_SESSIONS.name: SESSIONS_LATENESS_MS},
        idle_timeout_ms=1000,
        orders_idle_timeout_ms=20_000,
        parallelism=JOB_PARALLELISM,
        checkpoint_interval_ms=2000,
    )
    return cfg


def _send(
    settings: StackSettings, topic: str, records: list[tuple[bytes, bytes]]
) -> list[tuple[int, int]]:
    """Produce in order; returns (partition, offset) of each record."""
    coords: list[tuple[int, int]] = []
    p = producer(settings)
    for key, value in records:
        p.produce(
            topic,
            key=key,
            value=value,
            on_delivery=lambda err, msg: coords.append((msg.partition(), msg.offset())),
        )
        p.flush(30)  # one by one: the order on the partition is the order given
    assert len(coords) == len(records)
    return coords


def _sessions_24h(store: RedisOnlineStore, user: int) -> int | None:
    value = store.read(USER_SESSION_COUNTS, [user])[0].get("sessions_24h")
    return None if value is None else int(value)


def _end_offsets(s: StackSettings, topic: str) -> list[int]:
    from confluent_kafka import TopicPartition

    from connectors.kafka_clients import consumer

    c = consumer(s, group=f"offsets-{uuid.uuid4().hex[:6]}")
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return [
            c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in sorted(parts)
        ]
    finally:
        c.close()


def _checkpointed_through(s: StackSettings, group: str, topic: str, ends: list[int]) -> bool:
    """The job's consumer group committed offsets >= ``ends`` on every partition of ``topic``.
    The Kafka source commits at a completed checkpoint, whose barrier has flushed every
    operator and sink before it: Redis then holds all the job made of those records."""
    from confluent_kafka import TopicPartition

    from connectors.kafka_clients import consumer

    c = consumer(s, group=group)
    try:
        parts = [TopicPartition(topic, p) for p in range(len(ends))]
        done = c.committed(parts, timeout=10)
        return all(tp.offset >= end for tp, end in zip(done, ends, strict=True))
    finally:
        c.close()


def _time_of(row: dict[str, Any], field: str) -> int | None:
    return decode_event_time(row[field]) if field in row else None


def _offline_matches(
    s: StackSettings, view: str, entity: int, online: dict[str, Any], groups: dict[str, str]
) -> bool:
    """The offline table's last-writer-wins row per group equals what Redis holds.
    ``groups``: offline group name -> the online version field of that group."""
    best = latest(read_rows(s, view=view, entity_id=entity).to_pylist())
    for grp, version_field in groups.items():
        row = best.get((view, entity, grp))
        if row is None or row["version"] != online[version_field]:
            return False
        for name, value in dict(row["features"]).items():
            if value != (str(online[name]) if name in online else None):
                return False
    return True


_MEASURES = ("clicks", "carts", "purchases")


def _event_of(value: bytes) -> dict[str, Any]:
    """A click as the tile rules read it (core.windows.tiles_of)."""
    return dict(json.loads(value))


def _click(user: int, t: int, event_type: str) -> tuple[bytes, bytes]:
    value = {
        "event_id": uuid.uuid4().hex,
        "user_id": user,
        "event_type": event_type,
        "page": "/cart",
        "event_time": t,
        "properties": {},
    }
    return str(user).encode(), json.dumps(value).encode()


def test_rolling_windows_match_hand_computed_counts_and_late_events_reach_the_dlq(
    feature_job: StackSettings,
) -> None:
    """Tiles from the job equal the pure tiles of the same events (core.windows.tiles_of),
    and the windows combined from them at chosen instants equal hand-computed counts: inside
    a tile, on a tile boundary, after the 1 h window has emptied (0, not the count as of the
    last event)."""
    s = feature_job
    user = 700_000 + int(uuid.uuid4().int % 100_000)
    hour = (int(time.time() * 1000) - 25 * 60_000) // HOUR * HOUR  # <= now - 25 min
    t0 = hour - 3 * HOUR + 10 * 60_000  # on a minute boundary, 10 min into its hour
    events = [
        _click(user, t0, "page_view"),
        _click(user, t0 + HOUR // 2, "add_to_cart"),
        _click(user, t0 + HOUR, "purchase"),
        _click(user, t0 + HOUR + 1, "page_view"),  # the same minute tile as the one above
        _click(user, t0 + 2 * HOUR, "page_view"),
    ]
    crm_before = _end_offsets(s, CRM_CUSTOMERS)
    _send(s, CLICKSTREAM, events)
    store = RedisOnlineStore.from_url(s.redis_url)
    last = t0 + 2 * HOUR
    want_tiles = tiles_of(CLICK_AGGREGATIONS, [_event_of(v) for _, v in events])

    def settled() -> dict[int, Any] | None:
        tiles = store.raw_tiles(USER_ACTIVITY, user)
        return tiles if tiles == want_tiles else None

    wait_for("user_activity's tiles in Redis equal to the pure tiles", settled)
    # the tiles were written while the CRM topic stayed idle: an idle source stalls nothing
    assert _end_offsets(s, CRM_CUSTOMERS) == crm_before

    def at(t: int, *, live: bool) -> tuple[int, ...]:
        row = store.read(USER_ACTIVITY, [user], **({"now_ms": t} if live else {"as_of": t}))[0]
        return tuple(row[f"{m}_{w}"] for w in ("1h", "24h", "7d") for m in _MEASURES)

    # as of t0 + 61 min (a minute boundary): 1 h = the minute tiles from t0 + 1 min (t0's
    # click is 1 tile outside); 24 h = t0's hour tile (2 clicks) + this hour's minute tiles
    assert at(t0 + HOUR + 60_000, live=False) == (3, 1, 1, 4, 1, 1, 4, 1, 1)
    # as of t0 + 2 h exactly: the click at t0 + 2 h is in the open tile, not counted as of
    assert at(last, live=False) == (2, 0, 1, 4, 1, 1, 4, 1, 1)
    # live 20 s into that tile: it counts; the clicks of t0 + 60 min are 1 tile too old
    assert at(last + 20_000, live=True) == (1, 0, 0, 5, 1, 1, 5, 1, 1)
    # 61 min after the last click the 1 h window is empty: 0, never the count at the event
    assert at(last + HOUR + 60_000, live=True) == (0, 0, 0, 5, 1, 1, 5, 1, 1)
    # a day later only the 7 d window holds them
    assert at(t0 + 25 * HOUR + 60_000, live=True) == (0, 0, 0, 1, 0, 0, 5, 1, 1)
    row = store.read(USER_ACTIVITY, [user])[0]
    assert row["_t"] == str(last)

    # sessions: gaps of exactly 30 min split (t0 | t0+30m | t0+60m, t0+60m+1ms | t0+2h open)
    def closed_third() -> dict[str, Any] | None:
        got = store.read(USER_SESSIONS, [user])[0]
        return got if got.get("_t") == str(last) else None

    last = t0 + HOUR + 1  # the newest event of the closed sessions and of the lags below
    sess = wait_for("the third session closed in Redis", closed_third)
    # the sessions ended in the last 24 h, as of now (hour tiles of their ends): 3 -- Flink's
    # touching-window merge would give 1 session
    wait_for("user_session_counts at 3", lambda: _sessions_24h(store, user) == 3)
    assert (sess["last_session_events"], sess["last_session_pages"]) == (2, 1)
    assert sess["last_session_duration_s"] == 0 and sess["last_session_converted"] is True
    # lags: the two latest events received, at once (no watermark to wait for): the 5th
    # event, the 4th before it
    lag = wait_for(
        "user_lags of the 5th event",
        lambda: (
            r if (r := store.read(USER_LAGS, [user])[0]).get("_t") == str(t0 + 2 * HOUR) else None
        ),
    )
    assert (lag["last_event_type"], lag["prev_event_type"], lag["ms_since_prev_event"]) == (
        "page_view",
        "page_view",
        HOUR - 1,
    )

    # an event far behind the watermark: to the DLQ with reason `late`, never dropped
    late_t = t0 + 10 * 60_000
    [late_at] = _send(s, CLICKSTREAM, [_click(user, late_t, "page_view")])
    client = s3_client(s)

    def dlq_entries(at: tuple[int, int], t: int, n: int) -> list[dict[str, Any]] | None:
        """The committed `late` entries of the record at (partition, offset) with event
        time t, once there are n."""
        day = time.strftime("%Y-%m-%d", time.gmtime(t / 1000))
        prefix = f"dlq/date={day}/source=clickstream/reason=late/"
        found = []
        listed = client.list_objects_v2(Bucket=s.s3.lake_bucket, Prefix=prefix)
        for obj in listed.get("Contents", []):
            name = obj["Key"].rsplit("/", 1)[-1]
            if name.startswith(("_", ".")):  # in-progress parts are hidden, never read
                continue
            body = client.get_object(Bucket=s.s3.lake_bucket, Key=obj["Key"])["Body"].read()
            for line in body.decode().splitlines():
                entry = json.loads(line)
                coords = (entry["coordinates"]["partition"], entry["coordinates"]["offset"])
                if entry["coordinates"]["topic"] == CLICKSTREAM and coords == at:
                    found.append(entry)
        return found if len(found) == n else None

    # late for both lateness classes (1 s: the chain; 60 s: the sessions): an entry each
    entries = wait_for(
        "the late event in the DLQ (committed by a checkpoint)",
        lambda: dlq_entries(late_at, late_t, 2),
    )
    assert all(
        json.loads(base64.b64decode(e["original_b64"]))["event_time"] == late_t for e in entries
    )
    assert sorted(e["detail"].split(": not counted in ")[1] for e in entries) == [
        "user_activity, user_lags (allowed lateness 1000 ms)",
        f"user_sessions, user_session_counts (allowed lateness {SESSIONS_LATENESS_MS} ms)",
    ]
    assert all("watermark" in e["detail"] for e in entries)
    # and the late event changed no tile
    assert store.raw_tiles(USER_ACTIVITY, user) == want_tiles

    # allowed lateness per view: 30 s behind the newest event is late for the windows and
    # lags (1 s) but on time for the sessions (60 s)
    mid_t = t0 + 2 * HOUR - 30_000
    [mid_at] = _send(s, CLICKSTREAM, [_click(user, mid_t, "search")])
    (entry,) = wait_for(
        "the event late for the chain in the DLQ", lambda: dlq_entries(mid_at, mid_t, 1)
    )
    assert entry["detail"].endswith("user_activity, user_lags (allowed lateness 1000 ms)")
    # 40 min later: closes the session that holds it and fires the windows at t0 + 2 h
    _send(s, CLICKSTREAM, [_click(user, t0 + 2 * HOUR + 40 * 60_000, "page_view")])

    def closed_fourth() -> dict[str, Any] | None:
        got = store.read(USER_SESSIONS, [user])[0]
        return got if got.get("_t") == str(t0 + 2 * HOUR) else None

    sess = wait_for("the fourth session closed in Redis", closed_fourth)
    assert sess["last_session_events"] == 2  # it counts there
    wait_for("user_session_counts at 4", lambda: _sessions_24h(store, user) == 4)
    assert sess["last_session_duration_s"] == 30
    # ... and not in the windows: the tiles are the 5 first clicks' plus the one 40 min on
    later = _click(user, t0 + 2 * HOUR + 40 * 60_000, "page_view")
    want_tiles = tiles_of(CLICK_AGGREGATIONS, [_event_of(v) for _, v in [*events, later]])
    # online, a new tile drops the tiles no window reads any more (the minute tiles of t0
    # and t0 + 30 min are over 2 h 1 min behind the newest click)
    newest = t0 + 2 * HOUR + 40 * 60_000
    kept = {
        f: v
        for f, v in want_tiles.items()
        if split_field(CLICK_AGGREGATIONS, f)[1]
        >= (newest - CLICK_AGGREGATIONS.retention_ms(size := split_field(CLICK_AGGREGATIONS, f)[0]))
        // size
    }
    assert len(kept) == len(want_tiles) - 2
    wait_for(
        "the tiles with the click 40 min on",
        lambda: store.raw_tiles(USER_ACTIVITY, user) == kept,
    )
    # the lags stand at the click 40 min on; the search 30 s before t0 + 2 h was late for
    # them (1 s) and is not their previous event
    lag = wait_for(
        "user_lags at the click 40 min on",
        lambda: r if (r := store.read(USER_LAGS, [user])[0]).get("_t") == str(newest) else None,
    )
    assert (lag["prev_event_type"], lag["ms_since_prev_event"]) == ("page_view", 40 * 60_000)
    # offline: each tile's greatest version equal to the pure tile (a later click from
    # another user moves the watermark past the hour of the last ones)
    flusher = user + 1
    _send(s, CLICKSTREAM, [_click(flusher, hour + 1000, "page_view")])

    def offline_tiles() -> dict[int, tuple[int | None, ...]]:
        """Per tile, the offline row of the greatest version (every value a tile took is a
        row; its version is its encoded event count)."""
        best: dict[int, dict[str, Any]] = {}
        for r in read_rows(s, view=USER_ACTIVITY.name, entity_id=user).to_pylist():
            f = int(r["grp"])
            if f not in best or r["version"] > best[f]["version"]:
                best[f] = r
        names = ["n", "carts", "purchases"]
        return {f: tuple(int(dict(r["features"])[k]) for k in names) for f, r in best.items()}

    try:
        wait_for("the final tiles in the offline table", lambda: offline_tiles() == want_tiles)
    except AssertionError:
        raise AssertionError(f"{offline_tiles()} != {want_tiles}") from None

    # online == offline: at instants the API answers as of (from the newest click - 1 h on:
    # the online store keeps every tile those read), sampled and on tile boundaries, the
    # read the API serves equals the training-set join over the offline tiles
    rng = random.Random(user)
    now = int(time.time() * 1000)
    instants = sorted(
        {newest - HOUR, t0 + 2 * HOUR, t0 + 2 * HOUR + 1, hour - HOUR, hour, newest, newest + 1}
        | {rng.randrange(newest - HOUR, now) for _ in range(24)}
    )
    spine = pa.table({"user": [user] * len(instants), "at": instants})
    requested = [Requested(USER_ACTIVITY, f) for f in USER_ACTIVITY.features]
    offline = join(
        spine,
        read_rows(s, view=USER_ACTIVITY.name, entity_id=user),
        requested,
        entity_column="user",
        timestamp_column="at",
    )
    for i, t in enumerate(instants):
        online = store.read(USER_ACTIVITY, [user], as_of=t)[0]
        joined = {r.feature.name: offline[r.column][i].as_py() for r in requested}
        assert joined == {f.name: online[f.name] for f in USER_ACTIVITY.features}, t
    assert {offline[r.column][0].as_py() for r in requested} != {0}  # the samples see clicks


def _cdc(
    customer: int, t: int, lsn: int, email: str, segment: str, tier: str
) -> tuple[bytes, bytes]:
    row = {
        "id": customer,
        "email": email,
        "full_name": "Test",
        "segment": segment,
        "tier": tier,
        "country": "DE",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    value = {
        "before": None,
        "after": row,
        "op": "u",
        "ts_ms": t,
        "source": {
            "connector": "postgresql",
            "table": "customers",
            "ts_ms": t,
            "lsn": lsn,
            "sequence": json.dumps([str(lsn - 10), str(lsn)]),
        },
    }
    return json.dumps({"id": customer}).encode(), json.dumps(value).encode()


def _crm(
    customer: int, t: int, row: int, email: str, segment: str, tier: str
) -> tuple[bytes, bytes]:
    value = {
        "customer_id": customer,
        "email": email,
        "segment": segment,
        "tier": tier,
        "updated_at": t,
        "event_time": t,
        "source": "s3_crm",
        "source_seq": [t + 60_000, "crm/exports/test-conflicts.csv", row],
    }
    return str(customer).encode(), json.dumps(value).encode()


def test_conflicting_sources_resolve_identically_in_either_arrival_order(
    feature_job: StackSettings,
) -> None:
    s = feature_job
    t = int(time.time() * 1000) - HOUR
    a, b = (900_000 + int(uuid.uuid4().int % 50_000) * 2 + i for i in (0, 1))

    def conflict_set(c: int) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
        cdc = [
            _cdc(c, t - 3000, 1000, "old-pg@example.com", "smb", "bronze"),
            _cdc(c, t, 2000, "pg@example.com", "enterprise", "gold"),
        ]
        crm = [
            _crm(c, t - 5000, 1, "old-crm@example.com", "consumer", "silver"),
            _crm(c, t, 2, "crm@example.com", "consumer", "platinum"),
        ]  # ties: PG wins
        return cdc, crm

    cdc_a, crm_a = conflict_set(a)
    cdc_b, crm_b = conflict_set(b)
    _send(s, CDC_CUSTOMERS, cdc_a)
    _send(s, CRM_CUSTOMERS, crm_a)
    _send(s, CRM_CUSTOMERS, crm_b[::-1])  # the other entity sees every record in reverse
    _send(s, CDC_CUSTOMERS, cdc_b[::-1])
    store = RedisOnlineStore.from_url(s.redis_url)

    def both() -> list[dict[str, Any]] | None:
        rows = store.read(CUSTOMER_PROFILE, [a, b])
        return (
            rows
            if all(_time_of(r, "e@") == t and r.get("email") == "pg@example.com" for r in rows)
            else None
        )

    row_a, row_b = wait_for("both profiles resolved", both)
    assert row_a == row_b  # values and per-attribute versions, byte for byte
    assert (row_a["email"], row_a["segment"], row_a["tier"]) == (
        "pg@example.com",
        "enterprise",
        "gold",
    )
    attributes = {"email": "e@", "segment": "s@", "tier": "t@"}
    for entity, row in ((a, row_a), (b, row_b)):  # offline LWW result == online, both orders
        wait_for(
            f"offline profile of {entity} equal to the online one",
            lambda e=entity, r=row: _offline_matches(s, "customer_profile", e, r, attributes),
        )


def test_lags_at_a_users_first_event_are_absent(feature_job: StackSettings) -> None:
    """Lags stand at the user's latest event as soon as it is read (the first: no previous
    event), and offline the point-in-time join derives the same from the event rows."""
    from batch.point_in_time import join, parse_features

    s = feature_job
    user = 800_000 + int(uuid.uuid4().int % 100_000)
    # later than every event of the tests before (else behind the watermark: late)
    t0 = int(time.time() * 1000) - 20 * 60_000
    t1 = t0 + 15 * 60_000
    store = RedisOnlineStore.from_url(s.redis_url)

    def lags_at(t: int) -> Any:
        return lambda: r if (r := store.read(USER_LAGS, [user])[0]).get("_t") == str(t) else None

    _send(s, CLICKSTREAM, [_click(user, t0, "search")])
    lag = wait_for("user_lags of the first event", lags_at(t0))
    assert lag["last_event_type"] == "search"
    assert "prev_event_type" not in lag and "ms_since_prev_event" not in lag
    _send(s, CLICKSTREAM, [_click(user, t1, "page_view")])
    lag = wait_for("user_lags of the second event", lags_at(t1))
    assert (lag["last_event_type"], lag["prev_event_type"]) == ("page_view", "search")
    assert lag["ms_since_prev_event"] == 15 * 60_000

    def offline() -> Any:
        rows = read_rows(s, view=USER_LAGS.name, entity_id=user)
        return rows if rows.num_rows == 2 else None

    spine = pa.table({"entity_id": [user] * 4, "ts": [t0 - 1, t0, t1 - 1, t1]})
    got = join(
        spine,
        wait_for("both events' offline rows", offline),
        parse_features([USER_LAGS.name]),
        entity_column="entity_id",
        timestamp_column="ts",
    ).to_pylist()
    names = [f"{USER_LAGS.name}__{n}" for n in USER_LAGS.names]
    assert [tuple(r[n] for n in names) for r in got] == [
        (None, None, None),
        ("search", None, None),
        ("search", None, None),
        ("page_view", "search", 15 * 60_000),
    ]
    assert tuple(got[-1][n] for n in names) == tuple(lag[n] for n in USER_LAGS.names)


def _insert_customers(
    s: StackSettings, ids: list[int], name: str, tier: str, *, keep_existing: bool = False
) -> None:
    """New customers in PostgreSQL, one transaction each: email
    ``<name lowercased><id>@example.com``, segment smb, country DE. An id that exists is an
    error, or kept as it is with ``keep_existing``."""
    import psycopg

    with psycopg.connect(s.postgres_dsn(), autocommit=True) as conn:
        for c in ids:
            conn.execute(
                "INSERT INTO public.customers (id, email, full_name, segment, tier, country, "
                "created_at, updated_at) VALUES (%s, %s, %s, 'smb', %s, 'DE', now(), now())"
                + (" ON CONFLICT (id) DO NOTHING" if keep_existing else ""),
                (c, f"{name.lower()}{c}@example.com", name, tier),
            )


def _job_restarts(settings: StackSettings) -> Callable[[], int]:
    """The running feature job's restart count (Flink's ``numRestarts``), read at each call."""
    from streamfeat.flink_client import FlinkClient
    from streamfeat.job import running_job
    from streamfeat.stack.base import StackContext

    client = FlinkClient(StackContext(settings))
    job_id = running_job(settings)
    assert job_id
    return lambda: client.restarts(job_id)


def _watermark_of(settings: StackSettings, vertex: str) -> Callable[[], int | None]:
    """The least input watermark (epoch ms) over the subtasks of the running job's vertex
    named with ``vertex``, read at each call; None before every subtask has one."""
    from streamfeat.flink_client import FlinkClient
    from streamfeat.job import running_job
    from streamfeat.stack.base import StackContext

    client = FlinkClient(StackContext(settings))
    job_id = running_job(settings)
    assert job_id

    def least() -> int | None:
        marks = client.input_watermarks(job_id, vertex)
        return min(marks) if marks else None

    return least


def _lags_at(store: RedisOnlineStore, user: int, t: int) -> Callable[[], Any]:
    """A wait_for check: the user's lags once they stand at the event of time ``t``."""
    return lambda: r if (r := store.read(USER_LAGS, [user])[0]).get("_t") == str(t) else None


def test_the_online_sink_reloads_its_scripts_when_redis_lost_them(
    feature_job: StackSettings,
) -> None:
    """A Redis restarted (or failed over) forgets its scripts and answers NOSCRIPT: the job's
    sink loads them and resends, without a restart, and the write lands."""
    s = feature_job
    restarts = _job_restarts(s)
    before = restarts()
    user = 700_000 + int(uuid.uuid4().int % 100_000)
    # after the lags test's events, before the savepoint test's: not late for either
    t0 = int(time.time() * 1000) - 270_000
    store = RedisOnlineStore.from_url(s.redis_url)
    store.client.script_flush()
    shas = [hashlib.sha1(lua.encode()).hexdigest() for lua in SCRIPTS.values()]
    assert store.client.script_exists(*shas) == [False] * len(shas)

    _send(s, CLICKSTREAM, [_click(user, t0, "search")])
    lag = wait_for("user_lags written after SCRIPT FLUSH", _lags_at(store, user, t0))
    assert lag["last_event_type"] == "search"
    assert restarts() == before


def test_the_online_sink_rides_out_a_redis_stall(feature_job: StackSettings) -> None:
    """Redis stops answering for longer than the sink's socket timeout (2 s): the sink
    resends its batch with backoff instead of failing, the job does not restart, and the
    write lands once Redis answers again."""
    s = feature_job
    restarts = _job_restarts(s)
    before = restarts()
    user = 600_000 + int(uuid.uuid4().int % 100_000)
    t0 = int(time.time() * 1000) - 260_000  # after the script test's click, before later ones
    store = RedisOnlineStore.from_url(s.redis_url)
    store.client.execute_command("CLIENT", "PAUSE", 5000, "ALL")
    paused = time.monotonic()
    _send(s, CLICKSTREAM, [_click(user, t0, "search")])
    lag = wait_for("user_lags written after the stall", _lags_at(store, user, t0))
    assert time.monotonic() - paused >= 5  # it could only land once Redis answered again
    assert lag["last_event_type"] == "search"
    assert restarts() == before


def test_profile_updates_committed_during_a_redis_stall_land_after_it(
    feature_job: StackSettings,
) -> None:
    """The CDC path through the same sink: a customer updated 20 times in PostgreSQL while
    Redis does not answer (5 s); the sink holds the stream, the job does not restart, and
    Redis then holds PostgreSQL's final row."""
    import psycopg

    from core.domain import SEGMENTS, TIERS

    s = feature_job
    restarts = _job_restarts(s)
    before = restarts()
    customer = 820_000 + int(uuid.uuid4().int % 50_000)
    store = RedisOnlineStore.from_url(s.redis_url)
    _insert_customers(s, [customer], "Stall", "bronze")
    with psycopg.connect(s.postgres_dsn(), autocommit=True) as conn:
        wait_for("the new customer online", lambda: store.read(CUSTOMER_PROFILE, [customer])[0])
        store.client.execute_command("CLIENT", "PAUSE", 5000, "ALL")
        paused = time.monotonic()
        for i in range(20):  # one transaction each, all while Redis is paused
            conn.execute(
                "UPDATE public.customers SET email = %s, segment = %s, tier = %s, "
                "updated_at = clock_timestamp() WHERE id = %s",
                (f"s{customer}-{i}@example.com", SEGMENTS[i % 3], TIERS[i % 4], customer),
            )
        final = conn.execute(
            "SELECT email, segment, tier FROM public.customers WHERE id = %s", (customer,)
        ).fetchone()
    assert time.monotonic() - paused < 5, "the updates took longer than the stall"

    def landed() -> dict[str, Any] | None:
        row = store.read(CUSTOMER_PROFILE, [customer])[0]
        return row if (row.get("email"), row.get("segment"), row.get("tier")) == final else None

    wait_for("PostgreSQL's final row online after the stall", landed)
    assert time.monotonic() - paused >= 5  # it could only land once Redis answered again
    assert restarts() == before


def test_offline_files_commit_to_iceberg_once(feature_job: StackSettings) -> None:
    """The job's finished Parquet files become an Iceberg snapshot; a second commit adds
    nothing; the Iceberg scan returns exactly the committed rows."""
    import pyarrow.parquet as pq

    from batch.iceberg import commit, table
    from core.objectstore import arrow_fs
    from core.offline import committed_files

    s = feature_job
    files = committed_files(s)  # one listing: the running job keeps committing more
    first = commit(s, files)
    assert first.added >= 1 and first.skipped == ()
    second = commit(s, files)
    assert second.added == 0 and second.snapshot_id == first.snapshot_id
    scanned = table(s).scan().to_arrow()
    offline = pq.ParquetDataset(files, filesystem=arrow_fs(s)).read()
    assert scanned.num_rows == offline.num_rows
    key = ["view", "entity_id", "grp", "version"]
    assert sorted(tuple(r[k] for k in key) for r in scanned.select(key).to_pylist()) == sorted(
        tuple(r[k] for k in key) for r in offline.select(key).to_pylist()
    )
    partitions = table(s).inspect.files().column("partition").to_pylist()
    assert all(p["event_date"] and p["entity"] == "customer" for p in partitions)


def _read_topic(s: StackSettings, topic: str, ends: list[int]) -> list[bytes | None]:
    """Values of ``topic`` from the start up to ``ends`` (per partition)."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from connectors.kafka_clients import consumer

    c = consumer(s, group=f"read-{uuid.uuid4().hex[:6]}")
    left = {p: end for p, end in enumerate(ends) if end > 0}
    values: list[bytes | None] = []
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in left])
        deadline = time.monotonic() + 60
        while left and time.monotonic() < deadline:
            msg = c.poll(1.0)
            if msg is None or msg.error():
                continue
            if msg.offset() < left.get(msg.partition(), -1):
                values.append(msg.value())
            if msg.offset() + 1 >= left.get(msg.partition(), 0):
                left.pop(msg.partition(), None)
    finally:
        c.close()
    assert not left, f"partitions not read to their end: {left}"
    return values


def _insert_orders(
    s: StackSettings, customer: int, orders: list[tuple[int, int]], pace_s: float = 0.0
) -> None:
    """A customer, then each (created_at ms, amount) order in its own transaction, one every
    ``pace_s`` at most (the pace of a stream, not a wait for anything)."""
    import psycopg

    from core.events import format_iso_ms

    _insert_customers(s, [customer], "Test", "gold", keep_existing=True)
    with psycopg.connect(s.postgres_dsn(), autocommit=True) as conn:
        for created, amount in orders:
            conn.execute(
                "INSERT INTO public.orders (id, customer_id, status, amount_cents, currency, "
                "created_at, updated_at) VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM "
                "public.orders), %s, 'created', %s, 'EUR', %s, %s)",
                (customer, amount, format_iso_ms(created), format_iso_ms(created)),
            )
            time.sleep(pace_s)


def test_order_features_snapshot_and_live_match_hand_computed_and_pure_rules(
    feature_job: StackSettings,
) -> None:
    """Live orders: rolling counts/spend and lags against hand-computed values. Every
    customer, including the seeded ones that arrived through Debezium's snapshot (counted at
    their created_at, not the snapshot's time): Redis equals flink_jobs.logic over the very
    same CDC records."""
    from core.features import CUSTOMER_ORDERS, ORDER_AGGREGATIONS, ORDER_LAGS
    from core.topics import CDC_ORDERS
    from flink_jobs.logic.events import OrderEvent, order_creations
    from flink_jobs.logic.lags import offline_row, order_lags
    from flink_jobs.logic.records import parse_cdc_order
    from flink_jobs.logic.rows import latest_per_entity

    s = feature_job
    customer, flusher = (700_000 + int(uuid.uuid4().int % 50_000) * 2 + i for i in (0, 1))
    now = int(time.time() * 1000)
    t3 = now - HOUR // 2
    _insert_orders(s, customer, [(now - 3 * HOUR, 1000), (now - 5 * HOUR // 2, 2500), (t3, 400)])
    _insert_orders(s, flusher, [(now, 1)])  # moves the orders' watermark past t3
    store = RedisOnlineStore.from_url(s.redis_url)

    def landed() -> tuple[dict[str, Any], dict[str, Any]] | None:
        orders, lags = (
            store.read(CUSTOMER_ORDERS, [customer], now_ms=now)[0],
            store.read(ORDER_LAGS, [customer])[0],
        )
        done = orders.get("orders_7d") == 3 and lags.get("_t") == str(t3)
        return (orders, lags) if done else None

    orders, lags = wait_for("customer_orders and order_lags at the third order", landed)
    assert orders["_t"] == str(t3)
    assert (orders["orders_1h"], orders["spend_cents_1h"]) == (1, 400)  # the 2nd is 2 h earlier
    assert (orders["orders_24h"], orders["spend_cents_24h"]) == (3, 3900)
    assert (orders["orders_7d"], orders["spend_cents_7d"]) == (3, 3900)
    assert (lags["last_order_cents"], lags["prev_order_cents"]) == (400, 2500)
    assert (lags["order_delta_cents"], lags["ms_since_prev_order"]) == (-2100, 2 * HOUR)

    parsed = [parse_cdc_order(v) for v in _read_topic(s, CDC_ORDERS, _end_offsets(s, CDC_ORDERS))]
    events = [e for e in parsed if isinstance(e, OrderEvent) and e.customer_id != flusher]
    assert sum(e.op == "r" for e in events) > 50  # the seeded orders came as snapshot reads
    want_lags = latest_per_entity(offline_row(r) for r in order_lags(events))
    want = {(ORDER_LAGS.name, cid, ""): row for cid, row in want_lags.items()}
    # the closed tiles (the orders' watermark is at the flusher's order, now - 1 s)
    created = order_creations(events)
    want_tiles = {
        (cid, f): v
        for cid in {e.customer_id for e in created}
        for f, v in tiles_of(
            ORDER_AGGREGATIONS,
            [_order_event(e) for e in created if e.customer_id == cid],
        ).items()
        if _tile_end(ORDER_AGGREGATIONS, f) <= now - 1000
    }

    def offline_mismatches() -> list[str]:
        """Offline LWW rows (the seeded orders are months old: expired online by event-time
        TTL, as they should be) and final tiles against the pure rules; [] when all agree."""
        rows = read_rows(s, entity="customer").to_pylist()
        best = latest([r for r in rows if r["view"] in (CUSTOMER_ORDERS.name, ORDER_LAGS.name)])
        tiles = {  # per tile the row of the greatest version: its final value
            (entity, int(grp)): (
                int(dict(r["features"])["n"]),
                int(dict(r["features"])["spend_cents"]),
            )
            for (view_name, entity, grp), r in best.items()
            if view_name == CUSTOMER_ORDERS.name
        }
        bad = [
            f"tile {k}: {tiles.get(k)} != {v}" for k, v in want_tiles.items() if tiles.get(k) != v
        ]
        for key, row in want.items():
            got = best.get(key)
            names = list(row.values)
            expected = {n: None if row.values[n] is None else str(row.values[n]) for n in names}
            if got is None or got["version"] != row.version.encode():
                bad.append(f"{key}: version {got and got['version']} != {row.version.encode()}")
            elif {n: dict(got["features"]).get(n) for n in names} != expected:
                bad.append(f"{key}: {dict(got['features'])} != {expected}")
        return bad

    try:
        wait_for("offline order rows equal to the pure rules", lambda: not offline_mismatches())
    except AssertionError:
        raise AssertionError("\n".join(offline_mismatches()[:10])) from None
    assert len({cid for cid, _ in want_tiles}) > 40  # with orders: seeded (snapshot) and live


def _order_event(e: Any) -> dict[str, Any]:
    """An order creation as the tile rules read it (core.windows.tiles_of)."""
    return {
        "customer_id": e.customer_id,
        "order_ms": e.order_time_ms,
        "amount_cents": e.amount_cents,
    }


def _n_spend(row: dict[str, Any]) -> tuple[int, int]:
    """(n, spend_cents) of an offline customer_orders tile row."""
    features = dict(row["features"])
    return int(features["n"]), int(features["spend_cents"])


def _tile_end(aggs: Any, field: int) -> int:
    size, index = split_field(aggs, field)
    return (index + 1) * size


def _order_change(
    order_id: int,
    customer: int,
    created: int,
    amount: int,
    *,
    op: str,
    commit_ms: int,
    lsn: int,
) -> bytes:
    """A Debezium change of an orders row as the connector writes it (schemas off)."""
    from core.events import format_iso_ms

    row = {
        "id": order_id,
        "customer_id": customer,
        "status": "created",
        "amount_cents": amount,
        "currency": "EUR",
        "created_at": format_iso_ms(created),
        "updated_at": format_iso_ms(created),
    }
    source = {
        "connector": "postgresql",
        "table": "orders",
        "ts_ms": commit_ms,
        "lsn": lsn,
        "sequence": json.dumps([str(lsn - 8), str(lsn)]),
    }
    value = {"before": None, "after": row, "source": source, "op": op, "ts_ms": commit_ms}
    return json.dumps(value).encode()


def test_a_redelivered_order_counts_once(feature_job: StackSettings) -> None:
    """An order Kafka Connect writes twice (the same record: redelivery after a crash) and
    one streamed as an insert and read again by a snapshot count once each, as the first
    copy on their partition, whatever the later copy says; a copy arriving after the watermark
    passed the order's created_at reaches the DLQ as ``late``. (After the order test above:
    these created_at times are 'now' and later, they move the orders' watermark.)"""
    from core.features import CUSTOMER_ORDERS, ORDER_AGGREGATIONS, ORDER_LAGS
    from core.topics import CDC_ORDERS
    from flink_jobs.logic.events import OrderEvent, order_creations
    from flink_jobs.logic.lags import offline_row, order_lags
    from flink_jobs.logic.records import parse_cdc_order
    from flink_jobs.sql import orders_lateness_ms

    s = feature_job
    customer, flusher = (500_000 + int(uuid.uuid4().int % 50_000) * 2 + i for i in (0, 1))
    a, b, f = (10**12 + int(uuid.uuid4().int % 10**9) * 3 + i for i in (0, 1, 2))
    t1 = int(time.time() * 1000)  # after the orders of the test above: not late
    t2 = t1 + 10 * 60_000
    first_a = _order_change(a, customer, t1, 1000, op="c", commit_ms=t1, lsn=5000)
    # b: the insert, then a snapshot's read of the row (a later commit, another amount);
    # the insert, first on the partition, is the copy that counts
    b_insert = _order_change(b, customer, t2, 700, op="c", commit_ms=t2, lsn=6000)
    b_read = _order_change(b, customer, t2, 999, op="r", commit_ms=t2 + 60_000, lsn=9000)
    flush = _order_change(f, flusher, t2 + 10 * 60_000, 1, op="c", commit_ms=t2, lsn=7000)
    key = json.dumps({"id": a}).encode()  # one partition: the order given is the order read
    records = [first_a, first_a, b_insert, b_read, flush]
    _send(s, CDC_ORDERS, [(key, v) for v in records])
    store = RedisOnlineStore.from_url(s.redis_url)

    def landed() -> tuple[dict[str, Any], dict[str, Any]] | None:
        orders, lags = (
            store.read(CUSTOMER_ORDERS, [customer], now_ms=t2 + 1)[0],
            store.read(ORDER_LAGS, [customer])[0],
        )
        done = orders.get("_t") == str(t2) and lags.get("_t") == str(t2)
        return (orders, lags) if done and orders["orders_7d"] >= 2 else None

    orders, lags = wait_for("customer_orders and order_lags at the second order", landed)
    for window in ("1h", "24h", "7d"):  # 4 orders and 3698 cents if copies counted
        assert (orders[f"orders_{window}"], orders[f"spend_cents_{window}"]) == (2, 1700)
    assert (lags["last_order_cents"], lags["prev_order_cents"]) == (700, 1000)
    assert (lags["order_delta_cents"], lags["ms_since_prev_order"]) == (-300, 10 * 60_000)

    # the same order again, once behind the watermark: rejected as late, counted nowhere.
    # The features above land without waiting for a watermark, so wait for the one the
    # flusher's order makes (at the deduplication, after every source subtask's)
    flushed = t2 + 10 * 60_000 - orders_lateness_ms(_CFGS["cfg"])
    watermark = _watermark_of(s, "Deduplicate")
    wait_for("the orders' watermark at the flusher's order", lambda: (watermark() or 0) >= flushed)
    _send(s, CDC_ORDERS, [(key, first_a)])
    day = time.strftime("%Y-%m-%d", time.gmtime(t1 / 1000))
    wait_for(
        "the late copy in the DLQ", lambda: first_a in _dlq_originals(s, "pg_cdc", "late", day)
    )
    assert _dlq_originals(s, "pg_cdc", "late", day).count(first_a) == 1

    # offline: one lag row per order (not one per copy), equal to the pure rules; each tile's
    # greatest version counts each order once
    events = [e for v in (*records[:4], first_a) if isinstance(e := parse_cdc_order(v), OrderEvent)]
    assert len(events) == 5
    want = {
        (r.view, r.event_time): (r.version.encode(), offline_row(r).values)
        for r in order_lags(events)
    }
    assert len(want) == 2
    # the tiles the flusher's order closed (the watermark: its created_at - 1 s): the minute
    # tiles always, the hour tile only when the hour ended in between (time of day decides)
    want_tiles = {
        f: v
        for f, v in tiles_of(
            ORDER_AGGREGATIONS, [_order_event(e) for e in order_creations(events)]
        ).items()
        if _tile_end(ORDER_AGGREGATIONS, f) <= t2 + 10 * 60_000 - 1000
    }
    assert len(want_tiles) >= 2  # the minute tiles of a and b

    def final_tiles(rows: list[dict[str, Any]]) -> dict[int, tuple[int, int]]:
        """Per closed tile the row of the greatest version (every value a tile took is a
        row, its version the encoded event count)."""
        best = latest([r for r in rows if r["view"] == CUSTOMER_ORDERS.name])
        return {int(g): _n_spend(r) for (_, _, g), r in best.items() if int(g) in want_tiles}

    def offline() -> list[dict[str, Any]] | None:
        rows = read_rows(s, entity="customer", entity_id=customer).to_pylist()
        mine = [r for r in rows if r["view"] in (CUSTOMER_ORDERS.name, ORDER_LAGS.name)]
        lags_in = sum(r["view"] == ORDER_LAGS.name for r in mine) >= len(want)
        return mine if lags_in and final_tiles(mine) == want_tiles else None

    try:
        rows = wait_for("the offline order rows", offline)
    except AssertionError:
        got = read_rows(s, entity="customer", entity_id=customer).to_pylist()
        raise AssertionError(f"tiles {final_tiles(got)} != {want_tiles}") from None
    lag_rows = {
        (r["view"], r["event_time"]): (r["version"], dict(r["features"]))
        for r in rows
        if r["view"] == ORDER_LAGS.name
    }
    assert lag_rows == {
        k: (version, {n: None if v is None else str(v) for n, v in values.items()})
        for k, (version, values) in want.items()
    }
    assert sum(r["view"] == ORDER_LAGS.name for r in rows) == len(want)  # one per order


def test_implausible_order_times_reach_the_dlq_and_never_move_the_watermark(
    feature_job: StackSettings,
) -> None:
    """Orders created in 2100 or in 1999 go to the DLQ as ``implausible_event_time`` and
    count nowhere; a valid order after them is counted once a later order passes it (with a
    watermark moved to 2100 it would be late). (After the redelivery test: its orders reach
    'now' + 20 min.)"""
    from core.features import CUSTOMER_ORDERS
    from core.topics import CDC_ORDERS

    s = feature_job
    customer, flusher = (600_000 + int(uuid.uuid4().int % 50_000) * 2 + i for i in (0, 1))
    ids = [10**12 + int(uuid.uuid4().int % 10**9) * 4 + i for i in range(4)]
    now = int(time.time() * 1000)
    future = _order_change(
        ids[0], customer, 4_102_444_800_000, 500, op="c", commit_ms=now, lsn=1001
    )
    ancient = _order_change(ids[1], customer, 915_148_800_000, 600, op="c", commit_ms=now, lsn=1002)
    created = now + 30 * 60_000  # after the redelivery test's orders, within the hour ahead
    valid = _order_change(ids[2], customer, created, 700, op="c", commit_ms=now, lsn=1003)
    later = _order_change(ids[3], flusher, created + 5 * 60_000, 1, op="c", commit_ms=now, lsn=1004)
    key = json.dumps({"id": ids[0]}).encode()  # one partition: the order given is the order read
    _send(s, CDC_ORDERS, [(key, v) for v in (future, ancient, valid, later)])
    store = RedisOnlineStore.from_url(s.redis_url)

    def counted() -> dict[str, Any] | None:
        """Each tile size of an event is a write of its own (at parallelism > 1 perhaps
        through another sink subtask): the row once both windows hold the order."""
        row = store.read(CUSTOMER_ORDERS, [customer], now_ms=created + 1)[0]
        landed = row.get("_t") == str(created) and min(row["orders_1h"], row["orders_7d"]) > 0
        return row if landed else None

    row = wait_for("the valid order after the implausible ones, counted", counted)
    assert (row["orders_7d"], row["spend_cents_7d"]) == (1, 700)
    day = time.strftime("%Y-%m-%d", time.gmtime(now / 1000))  # filed under the Kafka time

    def filed() -> list[bytes] | None:
        got = _dlq_originals(s, "pg_cdc", "implausible_event_time", day)
        mine = [v for v in got if v in (future, ancient)]
        return mine if len(mine) == 2 else None

    wait_for("the implausible orders in the DLQ", filed)


def test_stop_with_savepoint_and_resume_keeps_window_state_and_offsets(
    feature_job: StackSettings,
) -> None:
    """Clicks before the stop, more while stopped; resumed from the savepoint the 1 h count
    is 4. A restart without the window state would count 2 (only the clicks after the
    stop), a replay without the offsets would count clicks twice. The savepoints are
    Flink's canonical format, so the state backend may change at a resume: the job resumes
    on the heap backend (with its Python function in process mode), then stops and resumes
    on RocksDB again (the upgrade from a job deployed before RocksDB became the default),
    and a fifth click counts 5."""
    s = feature_job
    user, other = (600_000 + int(uuid.uuid4().int % 50_000) * 2 + i for i in (0, 1))
    t0 = int(time.time() * 1000) - 4 * 60_000  # after every click of the tests before
    store = RedisOnlineStore.from_url(s.redis_url)

    def clicks_at(t: int) -> int | None:
        row = store.read(USER_ACTIVITY, [user], now_ms=t + 1)[0]
        return row["clicks_1h"] if row.get("_t") == str(t) else None

    _send(s, CLICKSTREAM, [_click(user, t0, "page_view"), _click(user, t0 + 30_000, "search")])
    _send(s, CLICKSTREAM, [_click(other, t0 + 35_000, "page_view")])  # watermark past t0+30s
    assert wait_for("2 clicks before the stop", lambda: clicks_at(t0 + 30_000) == 2)
    location = stop(s)
    assert "savepoint" in location
    while_stopped = [_click(user, t0 + 60_000, "search"), _click(user, t0 + 90_000, "purchase")]
    _send(s, CLICKSTREAM, while_stopped)
    cfg = _job_cfg(s)
    assert cfg.state_backend == "rocksdb"
    # on the heap backend, and with the profile path's Python function in process mode
    # (separate Python workers) instead of the default thread mode: a customer inserted
    # now must reach Redis through it
    deploy(
        s,
        cfg.model_copy(update={"state_backend": "hashmap", "python_execution_mode": "process"}),
        from_savepoint="last",
    )
    _send(s, CLICKSTREAM, [_click(other, t0 + 150_000, "page_view")])
    assert wait_for("4 clicks after the resume", lambda: clicks_at(t0 + 90_000) == 4)
    row = store.read(USER_ACTIVITY, [user], now_ms=t0 + 90_001)[0]
    assert (row["purchases_1h"], row["carts_1h"]) == (1, 0)
    customer = 9_000_000 + int(uuid.uuid4().int % 100_000)
    _insert_customers(s, [customer], "Mode", "gold")
    wait_for(
        "the customer online through the process-mode Python function",
        lambda: store.read(CUSTOMER_PROFILE, [customer])[0].get("tier") == "gold",
    )
    assert "savepoint" in stop(s)
    deploy(s, cfg, from_savepoint="last")  # back on RocksDB, from the heap backend's state
    _send(s, CLICKSTREAM, [_click(user, t0 + 120_000, "page_view")])
    _send(s, CLICKSTREAM, [_click(other, t0 + 160_000, "page_view")])
    assert wait_for("5 clicks after the second resume", lambda: clicks_at(t0 + 120_000) == 5)


def _dlq_entries(s: StackSettings, source: str, reason: str, day: str) -> list[dict[str, Any]]:
    """The committed DLQ entries under date/source/reason."""
    client = s3_client(s)
    prefix = f"dlq/date={day}/source={source}/reason={reason}/"
    found = []
    for obj in client.list_objects_v2(Bucket=s.s3.lake_bucket, Prefix=prefix).get("Contents", []):
        if obj["Key"].rsplit("/", 1)[-1].startswith(("_", ".")):  # in progress: hidden
            continue
        body = client.get_object(Bucket=s.s3.lake_bucket, Key=obj["Key"])["Body"].read()
        found += [json.loads(line) for line in body.splitlines()]
    return found


def _gate_verdicts_reach(s: StackSettings, source: str, at_least: int) -> dict[str, int]:
    """The running job's gate counters of ``source`` (Flink metrics, reported every few
    seconds: verdict -> records), once their sum reaches ``at_least``."""
    from streamfeat.flink_client import FlinkClient
    from streamfeat.job import running_job
    from streamfeat.stack.base import StackContext

    client, job_id = FlinkClient(StackContext(s)), running_job(s)
    assert job_id
    seen: list[dict[str, int]] = []

    def reached() -> dict[str, int] | None:
        counts = client.quality_counts(job_id)
        seen[:] = [{v: n for (src, v), n in counts.items() if src == source}]
        return seen[0] if sum(seen[0].values()) >= at_least else None

    try:
        return wait_for(f"{at_least:,} {source} verdicts counted", reached, 60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the counters: {seen}") from None


def _b64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)


def _dlq_originals(s: StackSettings, source: str, reason: str, day: str) -> list[bytes | None]:
    """Original value bytes of the committed DLQ entries under date/source/reason."""
    return [_b64(e["original_b64"]) for e in _dlq_entries(s, source, reason, day)]


def test_malformed_clicks_reach_the_dlq_with_their_reason(feature_job: StackSettings) -> None:
    """Records broken in every way the gate knows, each in the DLQ under its reason with its
    key and value bytes exactly as sent and its Kafka coordinates, and the job never
    restarts. (Last in the module: these event times are 'now', they move the clicks'
    watermark.)"""
    from flink_jobs.logic.records import ClickEvent, parse_click
    from streamfeat.flink_client import FlinkClient
    from streamfeat.job import running_job
    from streamfeat.stack.base import StackContext

    s = feature_job
    client = FlinkClient(StackContext(s))
    job_id = running_job(s)
    assert job_id
    restarts = client.restarts(job_id)
    mark = uuid.uuid4().hex
    now = int(time.time() * 1000)

    def rec(**fields: Any) -> bytes:
        return json.dumps({"event_id": mark, "page": f"/{mark}", **fields}).encode()

    valid = rec(user_id=5, event_time=now, event_type="search")
    cases: dict[str, list[bytes | None]] = {
        "invalid_json": [
            b'{"user_id": 5, "page": "/' + mark.encode() + b'", broken',
            valid + b" trailing",  # one JSON value and nothing after it
            valid + valid,
            valid.replace(mark.encode(), mark.encode() + b"\xff\xfe\x80"),  # not UTF-8
            b"\xef\xbb\xbf" + valid,  # a byte order mark
            valid.replace(b'"search"', b"NaN"),
            valid.replace(f"/{mark}".encode(), f"/{mark}\\ud800".encode()),  # lone surrogate
            mark.encode() + b"\x00\x01\x02",
        ],
        "not_an_object": [json.dumps([mark, 5]).encode()],
        "missing_field": [rec(user_id=5, event_type="search")],
        "bad_type": [
            rec(user_id=5, event_time=now, event_type=None),  # null is not missing
            rec(user_id=5, event_time=now, event_type="search", properties=[mark]),
        ],
        "bad_user_id": [
            rec(user_id="17", event_time=now, event_type="search"),
            rec(user_id=None, event_time=now, event_type="search"),
            rec(user_id=2**64, event_time=now, event_type="search"),
        ],
        "bad_event_time": [
            rec(user_id=5, event_time=0, event_type="search"),
            rec(user_id=5, event_time=float(now), event_type="search"),
        ],
        "unknown_event_type": [rec(user_id=5, event_time=now, event_type="dance")],
        "bad_event_id": [json.dumps({"event_id": "", "user_id": 5, "event_time": now,
                                     "event_type": "search", "page": f"/{mark}"}).encode()],
        "bad_page": [rec(user_id=5, event_time=now, event_type="search", page="/" * 900_000)],
    }  # fmt: skip
    key = b"\x00\xffkey-" + mark.encode()  # a key that is not text either
    sent = [(key, value) for values in cases.values() for value in values]
    coords = _send(s, CLICKSTREAM, sent)
    tombstone_at = _send(s, CLICKSTREAM, [(key, None)])[0]  # type: ignore[list-item]
    day = time.strftime("%Y-%m-%d", time.gmtime(now / 1000))

    def missing() -> list[str]:
        return [
            f"{reason}: {value!r:.60}"
            for reason, values in cases.items()
            for value in values
            if value not in _dlq_originals(s, "clickstream", reason, day)
        ]

    wait_for("every malformed record under its reason", lambda: not missing())
    entries = {
        (e["coordinates"]["partition"], e["coordinates"]["offset"]): e
        for reason in cases
        for e in _dlq_entries(s, "clickstream", reason, day)
    }
    for (key_sent, value), at in zip(sent, coords, strict=True):
        entry = entries[at]  # filed once, at its own coordinates, with its exact bytes
        assert (_b64(entry["original_key_b64"]), _b64(entry["original_b64"])) == (key_sent, value)
        assert abs(entry["coordinates"]["timestamp"] - now) < 600_000
        assert entry["coordinates"]["topic"] == CLICKSTREAM
        # the clickstream suite's expectation it failed, as the reference names it
        reference = parse_click(value, 0, 0)
        assert not isinstance(reference, ClickEvent)
        assert entry["expectation"] == reference.expectation
        assert (entry["expectation"] is None) == (
            reference.reason in ("invalid_json", "not_an_object")
        ), reference
    empty = wait_for(
        "the tombstone as empty_value",
        lambda: [
            e for e in _dlq_entries(s, "clickstream", "empty_value", day)
            if (e["coordinates"]["partition"], e["coordinates"]["offset"]) == tombstone_at
        ],
    )  # fmt: skip
    assert empty[0]["original_b64"] is None and _b64(empty[0]["original_key_b64"]) == key
    assert client.restarts(job_id) == restarts
    # the gate counts its verdicts as Flink metrics (reported every few seconds)
    _send(s, CLICKSTREAM, [(key, valid)])
    verdicts = wait_for(
        "the gate's counters",
        lambda: (v := client.quality_counts(job_id)).get(("clickstream", "good")) and v,
    )
    for reason, values in cases.items():
        assert verdicts[("clickstream", reason)] >= len(values), reason


def test_implausible_event_times_reach_the_dlq_and_never_move_the_watermark(
    feature_job: StackSettings,
) -> None:
    """Clicks dated far ahead of their Kafka timestamp (up to 2^63 - 1 ms) or before 2000 go
    to the DLQ as ``implausible_event_time`` (the minimum int64 as ``bad_event_time``), the
    job never restarts, and a valid click sent after them is counted: the watermark did not
    follow them. (After the malformed test: its clicks are 'now'.)"""
    from streamfeat.flink_client import FlinkClient
    from streamfeat.job import running_job
    from streamfeat.stack.base import StackContext

    s = feature_job
    client = FlinkClient(StackContext(s))
    job_id = running_job(s)
    assert job_id
    restarts = client.restarts(job_id)
    mark, now = uuid.uuid4().hex, int(time.time() * 1000)
    user = 900_000 + int(uuid.uuid4().int % 50_000)

    def rec(t: int) -> bytes:
        return json.dumps(
            {
                "event_id": mark,
                "user_id": user,
                "event_type": "search",
                "page": "/",
                "event_time": t,
            }
        ).encode()

    implausible = [
        now + 2 * HOUR,  # a client clock two hours fast
        4_102_444_800_000,  # 2100-01-01
        253_402_300_799_999,  # 9999-12-31, the last instant a timestamp holds
        10**15,  # past what a timestamp holds
        2**63 - 1,
        5_000,  # 1970
        now // 1000,  # seconds, not milliseconds
    ]
    bad = rec(-(2**63))
    _send(s, CLICKSTREAM, [(str(user).encode(), rec(t)) for t in implausible] + [(b"1", bad)])
    valid_t = int(time.time() * 1000)
    _send(s, CLICKSTREAM, [(str(user).encode(), _click(user, valid_t, "page_view")[1])])
    store = RedisOnlineStore.from_url(s.redis_url)

    def counted() -> dict[str, Any] | None:
        """Once both windows hold the click (each tile size is a write of its own)."""
        row = store.read(USER_ACTIVITY, [user], now_ms=valid_t + 1)[0]
        landed = row.get("_t") == str(valid_t) and min(row["clicks_1h"], row["clicks_7d"]) > 0
        return row if landed else None

    row = wait_for("the valid click after the implausible ones, counted", counted)
    assert (row["clicks_1h"], row["clicks_7d"]) == (1, 1)  # the implausible ones count nowhere
    day = time.strftime("%Y-%m-%d", time.gmtime(now / 1000))  # filed under the Kafka time

    def filed() -> list[bytes] | None:
        got = _dlq_originals(s, "clickstream", "implausible_event_time", day)
        mine = [v for v in got if mark.encode() in v]
        return mine if len(mine) >= len(implausible) else None

    found = wait_for("the implausible clicks in the DLQ", filed)
    assert sorted(json.loads(v)["event_time"] for v in found) == sorted(implausible)
    wait_for(
        "the minimum int64 as bad_event_time",
        lambda: bad in _dlq_originals(s, "clickstream", "bad_event_time", day),
    )
    assert client.restarts(job_id) == restarts
    # and the operator sees it: `streamfeat job status` reports the restarts since deploy
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import stack_env

    cli = Path(sys.executable).with_name("streamfeat")
    done = subprocess.run(
        [str(cli), "job", "status"],
        env={**os.environ, **stack_env(s)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{job_id} RUNNING, {restarts} restart" in done.stdout


def test_offline_commit_every_keeps_committing(feature_job: StackSettings) -> None:
    """`streamfeat offline commit --every` commits round after round until stopped."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import stack_env

    cli = Path(sys.executable).with_name("streamfeat")
    env = {**os.environ, **stack_env(feature_job)}
    proc = subprocess.Popen(
        [str(cli), "offline", "commit", "--every", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    rounds: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while len(rounds) < 3 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if "file(s) added" in line:
                rounds.append(line)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert len(rounds) == 3, rounds


def test_connect_killed_mid_stream_counts_every_order_once(
    feature_job: StackSettings, supervisor: Any
) -> None:
    """Kafka Connect SIGKILLed while orders are committed in PostgreSQL, started again by
    `up`: Debezium resumes from the offsets it had flushed (every 5 s) and sends again what
    it had sent since, so the topic holds copies; every order counts once (the job's
    first-copy deduplication), online and in the lags, and the job never restarts. (Last in
    the module: these orders are 40 min ahead, after every order of the tests before.)"""
    import threading

    import psutil

    from core.features import CUSTOMER_ORDERS, ORDER_LAGS
    from core.topics import CDC_ORDERS
    from flink_jobs.logic.events import CREATE_OPS, OrderEvent
    from flink_jobs.logic.records import parse_cdc_order

    s = feature_job
    restarts = _job_restarts(s)
    before = restarts()
    customer = 760_000 + int(uuid.uuid4().int % 50_000)
    base = int(time.time() * 1000) + 40 * 60_000
    orders = [(base + i * 1000, 100 + i) for i in range(300)]  # 5 min of created_at
    inserted: list[str] = []

    def insert_paced() -> None:
        """~100 orders per second (the stream Connect dies in)."""
        try:
            _insert_orders(s, customer, orders, pace_s=0.01)
            inserted.append("ok")
        except Exception as exc:  # reported below, never lost in a thread
            inserted.append(repr(exc))

    store = RedisOnlineStore.from_url(s.redis_url)
    last = orders[-1][0]

    def counted() -> int:
        return int(store.read(CUSTOMER_ORDERS, [customer], now_ms=last + 1)[0]["orders_7d"])

    writer = threading.Thread(target=insert_paced, daemon=True)
    writer.start()
    wait_for("the first orders online", lambda: counted() > 0)
    connect = supervisor.table.alive("connect")
    assert connect is not None, "no Kafka Connect running"
    connect.kill()  # mid-stream: orders keep being committed while it is down
    psutil.wait_procs([connect], timeout=30)
    supervisor.up(["connect"], progress=lambda _line: None)
    writer.join(timeout=120)
    assert inserted == ["ok"], inserted

    def created() -> tuple[list[int], list[Any]]:
        """The CDC topic's end offsets and this customer's order creations up to them."""
        ends = _end_offsets(s, CDC_ORDERS)
        return ends, [
            e
            for v in _read_topic(s, CDC_ORDERS, ends)
            if isinstance(e := parse_cdc_order(v), OrderEvent)
            and e.customer_id == customer
            and e.op in CREATE_OPS
        ]

    def all_sent() -> tuple[list[int], list[Any]] | None:
        ends, events = created()
        return (ends, events) if len({e.order_id for e in events}) == len(orders) else None

    # Sync on the job's progress, not on one feature: the lags and the tiles are separate
    # writes (the tiles after a mini-batch), so the last lag online says nothing of the tiles.
    ends, events = wait_for("every order in the CDC topic (Connect resends)", all_sent, 240)
    wait_for(
        "a checkpoint through those offsets",
        lambda: _checkpointed_through(s, _job_cfg(s).group_id, CDC_ORDERS, ends),
        240,
    )
    row = store.read(CUSTOMER_ORDERS, [customer], now_ms=last + 1)[0]
    lags = store.read(ORDER_LAGS, [customer])[0]
    total = sum(amount for _, amount in orders)
    assert (row["orders_7d"], row["spend_cents_7d"]) == (len(orders), total)
    assert (row["orders_24h"], row["spend_cents_24h"]) == (len(orders), total)
    assert (lags["last_order_cents"], lags["prev_order_cents"]) == (orders[-1][1], orders[-2][1])
    assert restarts() == before
    # the orders gate counted each event (Flink metrics since the job started)
    # every copy got a verdict: good, or late when Connect resent it after the watermark
    verdicts = _gate_verdicts_reach(s, "orders", len(events))
    assert set(verdicts) <= {"good", "late"}, verdicts
    print(f"\nConnect kill: {len(events) - len(orders)} copies of {len(orders)} orders sent again")


CONNECT_KILLS = 5
CUSTOMER_UPDATES = int(os.environ.get("STREAMFEAT_FAULT_PG_UPDATES", "4000"))
"""PostgreSQL updates during the Connect kills (`make faults` runs 100k)."""
UPDATES_S = 90.0
"""The updates are spread over this long (as fast as PostgreSQL commits, if that is
slower): the stream lasts through the kills (~8 s each)."""


def test_connect_killed_five_times_during_customer_updates_loses_no_version(
    feature_job: StackSettings, supervisor: Any
) -> None:
    """Kafka Connect SIGKILLed 5 times while 100 customers are updated one transaction at a
    time, started again by `up` each time: Redis ends equal to PostgreSQL's final rows, the
    offline history holds every version Debezium committed to the topic (each update's
    attribute values at its commit LSN) exactly once although Debezium sent hundreds of
    events again (the job's first-copy deduplication, sql.profile_updates), and the job
    never restarts."""
    import threading

    import psutil
    import psycopg

    from core.domain import SEGMENTS, TIERS
    from flink_jobs.logic.events import Rejection
    from flink_jobs.logic.records import parse_cdc_customer

    s = feature_job
    restarts = _job_restarts(s)
    before = restarts()
    base = 840_000 + int(uuid.uuid4().int % 50_000) * 100
    customers = list(range(base, base + 100))
    store = RedisOnlineStore.from_url(s.redis_url)
    committed = [0]
    failed: list[str] = []

    def update_paced() -> None:
        """The updates over :data:`UPDATES_S` (open loop), each its own transaction, while
        Connect dies."""
        rng = random.Random(base)
        try:
            with psycopg.connect(s.postgres_dsn(), autocommit=True) as conn:
                t0 = time.monotonic()
                for i in range(CUSTOMER_UPDATES):
                    # the pace of a stream, not a wait for anything
                    time.sleep(max(t0 + i * UPDATES_S / CUSTOMER_UPDATES - time.monotonic(), 0))
                    c = rng.choice(customers)
                    conn.execute(
                        "UPDATE public.customers SET email = %s, segment = %s, tier = %s, "
                        "updated_at = clock_timestamp() WHERE id = %s",
                        (f"k{c}-{i}@example.com", rng.choice(SEGMENTS), rng.choice(TIERS), c),
                    )
                    committed[0] += 1
        except Exception as exc:  # reported below, never lost in a thread
            failed.append(repr(exc))

    _insert_customers(s, customers, "Kill", "bronze")
    writer = threading.Thread(target=update_paced, daemon=True)
    writer.start()
    back_s = []
    for k in range(CONNECT_KILLS):
        # each kill once a further sixth of the updates is committed in PostgreSQL
        wait_for(
            f"update {(k + 1) * CUSTOMER_UPDATES // 6:,} committed",
            lambda k=k: failed or committed[0] >= (k + 1) * CUSTOMER_UPDATES // 6,
            300,
        )
        assert not failed, failed
        connect = supervisor.table.alive("connect")
        assert connect is not None, "no Kafka Connect running"
        killed_at = time.monotonic()
        connect.kill()
        psutil.wait_procs([connect], timeout=30)
        supervisor.up(["connect"], progress=lambda _line: None)
        back_s.append(round(time.monotonic() - killed_at, 1))
    writer.join(timeout=CUSTOMER_UPDATES * 0.1 + 120)
    assert not failed and committed[0] == CUSTOMER_UPDATES, (committed, failed)

    with psycopg.connect(s.postgres_dsn()) as conn:
        final = {
            row[0]: tuple(row[1:])
            for row in conn.execute(
                "SELECT id, email, segment, tier FROM public.customers WHERE id = ANY(%s)",
                (customers,),
            )
        }

    def redis_equals_postgres() -> bool:
        rows = store.read(CUSTOMER_PROFILE, customers)
        return all(
            (r.get("email"), r.get("segment"), r.get("tier")) == final[c]
            for c, r in zip(customers, rows, strict=True)
        )

    wait_for("Redis equal to PostgreSQL's final rows", redis_equals_postgres, 300)
    assert restarts() == before

    wanted, sent = set(customers), 0
    versions: set[tuple[int, str, str]] = set()
    for value in _read_topic(s, CDC_CUSTOMERS, _end_offsets(s, CDC_CUSTOMERS)):
        updates = parse_cdc_customer(None, value)
        if isinstance(updates, Rejection) or not updates or updates[0].entity_id not in wanted:
            continue
        sent += 1
        versions |= {(u.entity_id, u.attribute, u.version.encode()) for u in updates}
    assert len({v[2] for v in versions}) == len(customers) + CUSTOMER_UPDATES  # none missing

    def offline_has_every_version() -> list[dict[str, Any]] | None:
        rows = read_rows(s, view=CUSTOMER_PROFILE.name).to_pylist()
        mine = [r for r in rows if r["entity_id"] in wanted]
        have = {(r["entity_id"], r["grp"], r["version"]) for r in mine}
        return mine if versions <= have else None

    rows = wait_for("every committed version offline", offline_has_every_version, 300)
    again = sent - len(customers) - CUSTOMER_UPDATES
    assert again > 0, "no copy was sent again: the kills tested nothing"
    # the profile path counted each event once (on its first attribute update)
    assert _gate_verdicts_reach(s, "customers", sent).get("good", 0) >= sent
    assert len(rows) == len(versions), f"{len(rows) - len(versions)} offline copies"
    print(
        f"\nConnect killed {CONNECT_KILLS}x during {CUSTOMER_UPDATES:,} updates: back after "
        f"{back_s} s; {again:,} events sent again, none twice offline"
    )


def test_dlq_review_lists_shows_replays_once_and_purges(feature_job: StackSettings) -> None:
    """`streamfeat dlq`'s review on what the real job filed: a rejected click is counted
    under its reason, replayed to its topic with its exact bytes once (a second replay is
    refused unless forced), rejected again by the job at its new offset, and purged."""
    from confluent_kafka import Consumer, TopicPartition

    from connectors.dlq_review import Filters, counts, entries, purge, replay

    s = feature_job
    mark = uuid.uuid4().hex
    now = int(time.time() * 1000)
    key = f"k-{mark}".encode()
    value = json.dumps(
        {"event_id": mark, "user_id": 5, "event_type": "dance", "page": "/", "event_time": now}
    ).encode()
    (at,) = _send(s, CLICKSTREAM, [(key, value)])
    day = time.strftime("%Y-%m-%d", time.gmtime(now / 1000))
    mine = Filters(day, "clickstream", "unknown_event_type")

    def filed() -> list[Any]:
        return [e for e in entries(s, mine) if e.original == value]

    (entry,) = wait_for("the rejected click in the DLQ", filed)
    assert (entry.coordinates["partition"], entry.coordinates["offset"]) == at
    assert entry.expectation == "expect_column_values_to_be_in_set(event_type)"
    by = (day, "clickstream", "unknown_event_type", entry.expectation)
    assert counts(s, Filters(day))[by] >= 1

    got = replay(s, mine, force=False)
    sent = [(p, o) for e, p, o in got.sent if e.original == value]
    assert len(sent) == 1
    ((partition, offset),) = sent
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": f"t-{mark}"})
    c.assign([TopicPartition(CLICKSTREAM, partition, offset)])
    msg = c.poll(30)
    c.close()
    assert msg is not None and (msg.key(), msg.value()) == (key, value)  # exact bytes

    again = replay(s, mine, force=False)
    assert [e for e, _, _ in again.sent if e.original == value] == []
    assert any(e.original == value and "already replayed" in why for e, why in again.refused)
    forced = replay(s, Filters(day, "clickstream", "unknown_event_type"), force=True)
    assert any(e.original == value for e, _, _ in forced.sent)
    # the job (not fixed for 'dance') rejects the replayed record again, at its new offset
    wait_for(
        "the replayed click filed again at its new coordinates",
        lambda: any(
            (e.coordinates["partition"], e.coordinates["offset"]) == (partition, offset)
            for e in filed()
        ),
    )
    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(now / 1000 + 86_400))
    assert purge(s, Filters(None, "clickstream", "unknown_event_type"), before=day) == 0
    assert purge(s, Filters(None, "clickstream", "unknown_event_type"), before=tomorrow) > 0
    assert filed() == []
