"""Redis bytes per entity for the feature-job benchmark (see feature_job.py).

MEMORY USAGE (exact for listpack hashes) of sampled hashes of each view the job wrote, and
of a scratch copy of the median one padded to 20 features shaped like the view's own (the
extrapolation a 20-feature view of this layout would cost); baseline: a plain 20-field
hash with short names and small values, no version fields. MEMORY USAGE counts the key, the
value and the main dict entry, not the expiry entry every feature hash also has.

Also the deletion of the scratch entities' hashes (ids in feature_job_data.SCRATCH_IDS).
"""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Sequence
from typing import Any

from core.features import (
    CUSTOMER_PROFILE,
    FEATURE_VIEWS,
    USER_ACTIVITY,
    USER_LAGS,
    USER_SESSION_COUNTS,
    USER_SESSIONS,
    FeatureView,
)
from core.online import RedisOnlineStore, TileWrite, entity_key
from core.settings import StackSettings
from core.windows import HOUR_MS, pack, tiles_of
from streamfeat.bench.baselines import REDIS_SCRATCH_PREFIX
from streamfeat.bench.feature_job_data import SCRATCH_IDS, in_scratch, padded
from streamfeat.bench.scratch import failing, redis_client
from streamfeat.bench.stats import Measurement

TARGET_FEATURES = 20


def _usage(r: Any, key: str) -> tuple[int, str, int]:
    enc = r.object("encoding", key)
    return int(r.memory_usage(key, samples=0)), enc.decode() if enc else "?", int(r.hlen(key))


def _copy_usage(r: Any, like: str, fields: dict[bytes, bytes]) -> int:
    """MEMORY USAGE of ``fields`` written in one HSET under a scratch key as long as ``like``."""
    key = (REDIS_SCRATCH_PREFIX + uuid.uuid4().hex * 2)[: len(like)]
    try:
        r.hset(key, mapping=fields)
        r.expire(key, 600)
        return int(r.memory_usage(key, samples=0))
    finally:
        r.delete(key)


def _view_rows(r: Any, view: FeatureView, ids: Sequence[int]) -> list[Measurement]:
    keys = [entity_key(view, i) for i in ids]
    sizes = [(_usage(r, k), k) for k in keys if r.exists(k)]
    if not sizes:
        return []
    usage = sorted(s[0][0] for s in sizes)
    median = statistics.median_low(usage)
    key = next(k for (u, _, _), k in sizes if u == median)
    raw = {k.decode(): v.decode() for k, v in r.hgetall(key).items()}
    encodings = sorted({e for (_, e, _), _ in sizes})
    fields = statistics.median_low(h for (_, _, h), _ in sizes)
    n = len(view.features)
    copy = _copy_usage(r, key, {k.encode(): v.encode() for k, v in raw.items()})
    wide = padded(raw, view, TARGET_FEATURES)
    wide_usage = (
        _copy_usage(r, key, {k.encode(): v.encode() for k, v in wide.items()}) if wide else copy
    )
    extra = "+ its '@' version field" if view.version_scope == "attribute" else "values only"
    detail = (
        f"median of {len(sizes)} sampled entities (min {usage[0]}, max {usage[-1]}); {n} features, "
        f"{fields} fields (HLEN); encoding {', '.join(encodings)}; {median / n:.0f} B/feature; "
        f"the median hash rewritten in one HSET: {copy} B"
    )
    wide_detail = (
        f"that copy padded to {TARGET_FEATURES} features, each added one shaped like an existing "
        f"feature ({extra}): {(wide_usage - copy) / max(TARGET_FEATURES - n, 1):.1f} B per added "
        f"feature; goal <= 150 B"
    )
    return [
        Measurement(f"redis bytes/entity {view.name}", median, "B", detail),
        Measurement(
            f"redis bytes/entity {view.name} at {TARGET_FEATURES} features",
            wide_usage,
            "B",
            wide_detail,
        ),
    ]


def redis_bytes(
    settings: StackSettings, users: Sequence[int], customers: Sequence[int]
) -> list[Measurement]:
    """Bytes per entity per view (median of the samples), the 20-feature extrapolation, and
    the plain 20-field hash baseline (the shape baselines.redis_hgetall reads)."""
    r = redis_client(settings)
    out: list[Measurement] = []
    with failing(settings, "redis", "MEMORY USAGE of the scratch entities"):
        for view, ids in (
            (USER_ACTIVITY, users),
            (USER_SESSIONS, users),
            (USER_SESSION_COUNTS, users),
            (USER_LAGS, users),
            (CUSTOMER_PROFILE, customers),
        ):
            out += _view_rows(r, view, ids)
        like = entity_key(USER_ACTIVITY, users[0])
        plain = {f"f{i:02d}".encode(): f"{i * 37 % 1000}.{i:02d}".encode() for i in range(20)}
        size = _copy_usage(r, like, plain)
    out.append(
        Measurement(
            "redis bytes, plain 20-field hash",
            size,
            "B",
            f"f00..f19 = small decimals (as baselines.redis_hgetall), key of {len(like)} "
            "chars, no version fields",
            "redis bytes/entity per view",
        )
    )
    r.close()
    return out


ACTIVE_HOURS = (1, 20, 168)
"""Users active in this many hours of the last week (the issue's 1, 20 and 168)."""
CLICK_MINUTES = (0, 10, 20, 30, 40, 50)
"""Minutes of an active hour with a click (six minute tiles per active hour)."""
CLICK_TYPES = ("page_view", "page_view", "add_to_cart", "page_view", "purchase", "page_view")
TILE_GOAL_B = 16


def active_user_clicks(hours: int, now_ms: int) -> list[dict[str, object]]:
    """Clicks of a user active in ``hours`` hours of the week before ``now_ms``, the hours
    spread evenly with the current one first, six clicks in each (none after now)."""
    step = 168 // hours
    top = now_ms // HOUR_MS * HOUR_MS
    return [
        {"user_id": 0, "event_time": t, "event_type": kind}
        for i in range(hours)
        for minute, kind in zip(CLICK_MINUTES, CLICK_TYPES, strict=True)
        if (t := top - i * step * HOUR_MS + minute * 60_000 + 5_000) <= now_ms
    ]


def tile_bytes(settings: StackSettings, now_ms: int) -> list[Measurement]:
    """MEMORY USAGE of user_activity hashes of users active in 1, 20 and 168 hours of the
    week, written through the job's own tile path (core.online.TileWrite: the version-guarded
    script that also drops the tiles no window reads any more), and the bytes each non-empty
    tile adds over the hash holding only ``_t``. Baseline: the plain 20-field hash of
    :func:`redis_bytes`."""
    r = redis_client(settings)
    store = RedisOnlineStore(r)
    aggs = USER_ACTIVITY.aggregations
    assert aggs is not None
    out: list[Measurement] = []
    with failing(settings, "redis", "writing and measuring scratch tiles"):
        for i, hours in enumerate(ACTIVE_HOURS):
            user = SCRATCH_IDS[-1] - i
            key = entity_key(USER_ACTIVITY, user)
            r.delete(key)
            clicks = active_user_clicks(hours, now_ms)
            newest = max(int(c["event_time"]) for c in clicks)  # type: ignore[call-overload]
            tiles = tiles_of(aggs, clicks)
            store.write(
                TileWrite(USER_ACTIVITY, user, f, v[0] or 0, pack(v), newest)
                for f, v in tiles.items()
            )
            usage, encoding, fields = _usage(r, key)
            empty = _copy_usage(r, key, {b"_t": str(newest).encode()})
            per_tile = (usage - empty) / max(fields - 1, 1)
            out.append(
                Measurement(
                    f"redis bytes/user user_activity, active {hours} h of the week",
                    usage,
                    "B",
                    f"{len(clicks)} clicks in {hours} hour(s); {fields - 1} tiles kept of "
                    f"{len(tiles)} written (minute tiles older than the 1 h window + the "
                    f"as_of hour are dropped); encoding {encoding}; {per_tile:.1f} B per "
                    f"non-empty tile with its 3 measures over the hash with only _t "
                    f"({empty} B); goal <= {TILE_GOAL_B} B per tile",
                )
            )
            r.delete(key)
    r.close()
    return out


def delete_scratch_keys(settings: StackSettings) -> int:
    """Delete every feature-view hash of a scratch entity (SCAN per view, id range checked)."""
    r, n = redis_client(settings), 0
    with failing(settings, "redis", "deleting scratch keys"):
        for view in FEATURE_VIEWS:
            pattern = entity_key(view, "5*")
            keys = [k for k in r.scan_iter(match=pattern, count=1000) if in_scratch(k, view)]
            for i in range(0, len(keys), 1000):
                n += r.delete(*keys[i : i + 1000])
    return n
