"""The online store contract: Redis key layout and the version-guarded read/write.

Layout (ARCHITECTURE.md, "Online store"): one hash per (feature view, entity), key
``sf:<view>:{<entity type>:<id>}`` — the braces are a Redis Cluster hash tag, so every view
of one entity lives on one shard. Fields are the features' short names plus:

- view-scoped views: ``_v`` (encoded version of the row) and ``_t`` (its event_time, ms);
  a view with declared groups (one per window) has ``<group>@`` per group instead of ``_v``;
- attribute-scoped views (last-writer-wins per attribute): ``<short>@`` per attribute
  (encoded version; its first component is the attribute's event_time).

Windowed views (core.windows) keep tiles instead: one field per tile, named by the integer
``tile_index * 8 + slot`` (a compact listpack integer), its value ``n[,measure...]``
(core.windows.pack), plus ``_t`` (the newest event time). :data:`TILE_LUA` writes a tile only
if its ``n`` is greater than the stored one and some window still reads it; when the newest
event time advances it deletes exactly the tiles that fell out of their retention since
(one HDEL; a scan of the hash only after a gap of more than 64 tiles of a size), and
expires the key a window horizon after its newest event.

Writes run one Lua script per hash: a group (the row, or one attribute) is applied only if
its version is strictly greater than the stored one, so redelivery and replay change
nothing. The key expires at ``event_time + ttl`` (never earlier than it already would), so a
replayed old event expires as it would have originally. A deleted attribute keeps its
version field (a tombstone): an older value cannot resurrect it.

Two writers call the same scripts: :class:`RedisOnlineStore` (Python: profile updates,
tests, tools) and the feature job's Java sink (flink_jobs/jvm ``RedisScriptSink``), whose
rows flink_jobs.sql derives from the feature views (one script call per row, ARGV as
:func:`upsert_args` and :func:`tile_args` build them).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.features import Feature, FeatureView
from core.version import EncodedVersion, Version
from core.windows import SLOTS, Aggregations, hash_combiner, unpack

KEY_PREFIX = "sf"
ROW_VERSION = "_v"
ROW_EVENT_TIME = "_t"

UPSERT_LUA = """
local key = KEYS[1]
local expire_at = tonumber(ARGV[1])
local event_time = ARGV[2]
local groups = tonumber(ARGV[3])
local i = 4
local changed = 0
for _ = 1, groups do
  local vfield, version, nfields = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local current = redis.call('HGET', key, vfield)
  if (not current) or version > current then
    local sets, dels = {vfield, version}, {}
    for j = 0, nfields - 1 do
      local field, marked = ARGV[i + 2 * j], ARGV[i + 2 * j + 1]
      if marked == '' then
        dels[#dels + 1] = field
      else
        sets[#sets + 1] = field
        sets[#sets + 1] = string.sub(marked, 2)
      end
    end
    redis.call('HSET', key, unpack(sets))
    if #dels > 0 then redis.call('HDEL', key, unpack(dels)) end
    changed = changed + 1
  end
  i = i + 2 * nfields
end
if changed > 0 and event_time ~= '' then
  local t = redis.call('HGET', key, '_t')
  if (not t) or tonumber(event_time) > tonumber(t) then
    redis.call('HSET', key, '_t', event_time)
  end
end
if changed > 0 then
  local current_expiry = redis.call('PEXPIRETIME', key)
  if current_expiry < 0 or expire_at > current_expiry then
    redis.call('PEXPIREAT', key, expire_at)
  end
end
return changed
"""
"""ARGV: expire_at, event_time ('' for attributes: no ``_t``), the number of groups, then per
group its version field, version, the number of fields and per field its name and
:func:`marked` value."""

SET_MARK = "="


def marked(encoded: str | None) -> str:
    """A field's value as :data:`UPSERT_LUA` takes it: :data:`SET_MARK` then the encoded
    value, or ``''`` to delete the field. In band yet unambiguous, whatever bytes the value
    holds (a CRM text may hold any)."""
    return "" if encoded is None else SET_MARK + encoded


TILE_LUA = """
local key = KEYS[1]
local expire_at = tonumber(ARGV[1])
local event_time = tonumber(ARGV[2])
local nslots = tonumber(ARGV[3])
local size, retention = {}, {}
for s = 0, nslots - 1 do
  size[s], retention[s] = tonumber(ARGV[4 + 2 * s]), tonumber(ARGV[5 + 2 * s])
end
local stored = tonumber(redis.call('HGET', key, '_t'))
local newest = event_time
if stored and stored > newest then newest = stored end
local function keep(t, s) return math.floor((t - retention[s]) / size[s]) end
local i = 4 + 2 * nslots
local ntiles = tonumber(ARGV[i])
i = i + 1
local changed = 0
for _ = 1, ntiles do
  local field, n, packed = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  i = i + 3
  local v = tonumber(field)
  local slot = v % SLOTS
  if (v - slot) / SLOTS >= keep(newest, slot) then
    local current = redis.call('HGET', key, field)
    local held = current and tonumber(string.match(current, '^[0-9]+'))
    if (not held) or n > held then
      redis.call('HSET', key, field, packed)
      changed = changed + 1
    end
  end
end
if stored and event_time > stored then
  local dead, scan = {}, false
  for s = 0, nslots - 1 do
    local from, to = keep(stored, s), keep(event_time, s)
    if to - from > PRUNE_RANGE then scan = true break end
    for t = from, to - 1 do dead[#dead + 1] = string.format('%d', t * SLOTS + s) end
  end
  if scan then
    dead = {}
    for _, f in ipairs(redis.call('HKEYS', key)) do
      local v = tonumber(f)
      if v then
        local slot = v % SLOTS
        if size[slot] and (v - slot) / SLOTS < keep(event_time, slot) then
          dead[#dead + 1] = f
        end
      end
    end
  end
  if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
end
if changed > 0 and ((not stored) or event_time > stored) then
  redis.call('HSET', key, '_t', ARGV[2])
  redis.call('PEXPIREAT', key, expire_at)
end
return changed
""".replace("SLOTS", str(SLOTS)).replace("PRUNE_RANGE", "64")


SCRIPTS = {"upsert": UPSERT_LUA, "tiles": TILE_LUA}
"""The store's scripts by the names the feature job's writes call them
(flink_jobs.sql.online_store_sink)."""


def key_parts(view: FeatureView) -> tuple[str, str]:
    """A view's hash key is ``prefix + str(entity_id) + suffix``."""
    return f"{KEY_PREFIX}:{view.short}:{{{view.entity.short}:", "}"


def entity_key(view: FeatureView, entity_id: object) -> str:
    prefix, suffix = key_parts(view)
    return f"{prefix}{entity_id}{suffix}"


def attribute_version_field(feature: Feature) -> str:
    return f"{feature.short}@"


def group_version_field(group: str) -> str:
    return f"{group}@"


def encode_value(feature: Feature, value: Any) -> str:
    if feature.dtype == "bool":
        return "1" if value else "0"
    if feature.dtype == "int64":
        return str(int(value))
    if feature.dtype == "float64":
        return repr(float(value))
    return str(value)


def _encoded(feature: Feature, value: Any) -> str | None:
    return None if value is None else encode_value(feature, value)


def _decode_bool(raw: bytes | str) -> bool:
    return raw in (b"1", "1")


def _decode_text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


_DECODERS: dict[str, Any] = {
    "bool": _decode_bool,
    "int64": int,  # int() and float() take the stored bytes as they are
    "float64": float,
    "string": _decode_text,
}


FieldDecoders = dict[bytes, tuple[str, Any]]


def field_decoders(view: FeatureView) -> FieldDecoders:
    """Stored field name (bytes, as redis-py returns it) -> (long name, decoder), once per
    read: the per-field work of :func:`decode_row` is then one lookup and one call."""
    return {f.short.encode(): (f.name, _DECODERS[f.dtype]) for f in view.features}


def decode_row(decoders: FieldDecoders, raw: Mapping[bytes, bytes]) -> dict[str, Any]:
    """One stored hash as long feature names -> decoded values; the other fields (versions,
    ``_t``) as text under their stored names."""
    row: dict[str, Any] = {}
    for field, value in raw.items():
        known = decoders.get(field)
        if known is None:
            row[_decode_text(field)] = _decode_text(value)
        else:
            row[known[0]] = known[1](value)
    return row


@dataclass(frozen=True)
class RowWrite:
    """A row (or one declared group of it) of a view-scoped view at one version;
    None values are removed."""

    view: FeatureView
    entity_id: object
    values: Mapping[str, Any]  # long feature names
    version: Version | EncodedVersion
    group: str | None = None


@dataclass(frozen=True)
class AttributeWrite:
    """One attribute of an attribute-scoped view; ``value=None`` is a versioned delete."""

    view: FeatureView
    entity_id: object
    attribute: str  # long feature name
    value: Any
    version: Version | EncodedVersion


@dataclass(frozen=True, slots=True)
class TileWrite:
    """One tile of a windowed view (core.windows): its stored field, ``n`` (the events in
    it: the tile's version) and its packed value, at the newest event time in it."""

    view: FeatureView
    entity_id: object
    field: int
    n: int
    packed: str
    event_time: int


Write = RowWrite | AttributeWrite
AnyWrite = Write | TileWrite


def tile_args(aggs: Aggregations, ttl_s: int, writes: Sequence[TileWrite]) -> list[str]:
    """ARGV of :data:`TILE_LUA` for tiles of one hash (the greatest ``n`` per field): the
    expiry, the newest event time, each tile size with its retention (core.windows), then
    the tiles."""
    best: dict[int, TileWrite] = {}
    for w in writes:
        held = best.get(w.field)
        if held is None or w.n > held.n:
            best[w.field] = w
    newest = max(w.event_time for w in writes)
    keep = [(newest - aggs.retention_ms(size)) // size for size in aggs.tile_sizes]
    # a tile the script would drop at once is not sent: a replay's batch may carry a week of
    # one entity's minute tiles
    live = [w for w in best.values() if w.field // SLOTS >= keep[w.field % SLOTS]]
    args = [str(newest + ttl_s * 1000), str(newest), str(len(aggs.tile_sizes))]
    for size in aggs.tile_sizes:
        args += [str(size), str(aggs.retention_ms(size))]
    args.append(str(len(live)))
    for w in live:
        args += [str(w.field), str(w.n), w.packed]
    return args


def version_field(w: Write) -> str:
    """The hash field holding the version this write is guarded by."""
    if isinstance(w, AttributeWrite):
        return attribute_version_field(w.view.feature(w.attribute))
    return group_version_field(w.group) if w.group else ROW_VERSION


def newest_per_field(writes: Iterable[Write]) -> dict[str, list[Write]]:
    """Writes grouped by hash key, keeping per (key, version field) only the greatest
    version. Every write sets its whole group (or attribute), so applying only the newest
    gives the same hash as applying all of them in any order — and the batch costs one
    script call per key instead of one per write."""
    best: dict[tuple[str, str], Write] = {}
    for w in writes:
        slot = (entity_key(w.view, w.entity_id), version_field(w))
        held = best.get(slot)
        if held is None or w.version.encode() > held.version.encode():
            best[slot] = w
    by_key: dict[str, list[Write]] = {}
    for (key, _), w in best.items():
        by_key.setdefault(key, []).append(w)
    return by_key


def upsert_args(writes: Sequence[Write]) -> tuple[str, list[str]]:
    """Key and ARGV for the Lua script, for writes that all target one hash."""
    first = writes[0]
    key = entity_key(first.view, first.entity_id)
    groups: list[str] = []
    newest = 0
    for w in writes:
        if entity_key(w.view, w.entity_id) != key:
            raise ValueError("upsert_args: writes for different hashes")
        newest = max(newest, w.version.event_time)
        if isinstance(w, RowWrite):
            features = w.view.group(w.group) if w.group else w.view.features
            fields = {
                f.short: marked(_encoded(f, w.values[f.name]))
                for f in features
                if f.name in w.values
            }
        else:
            feature = w.view.feature(w.attribute)
            fields = {feature.short: marked(_encoded(feature, w.value))}
        groups += [version_field(w), w.version.encode(), str(len(fields))]
        for field, value in fields.items():
            groups += [field, value]
    expire_at = newest + first.view.ttl_s * 1000
    row_time = "" if all(isinstance(w, AttributeWrite) for w in writes) else str(newest)
    return key, [str(expire_at), row_time, str(len(writes)), *groups]


class RedisOnlineStore:
    """The online store on Redis or Redis Cluster (every write touches one hash-tagged key)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._upsert = client.register_script(UPSERT_LUA)
        self._tiles = client.register_script(TILE_LUA)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisOnlineStore:
        import redis

        return cls(redis.Redis.from_url(url, **kwargs))

    def write(self, writes: Iterable[AnyWrite]) -> int:
        """Apply writes in one pipeline (one script call per hash, only the newest write per
        group: :func:`newest_per_field`; tiles: one :data:`TILE_LUA` call per hash); returns
        groups (tiles) changed."""
        tiles: dict[str, list[TileWrite]] = {}
        rest: list[Write] = []
        for w in writes:
            if isinstance(w, TileWrite):
                tiles.setdefault(entity_key(w.view, w.entity_id), []).append(w)
            else:
                rest.append(w)
        by_key = newest_per_field(rest)
        if not by_key and not tiles:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for batch in by_key.values():
            key, args = upsert_args(batch)
            self._upsert(keys=[key], args=args, client=pipe)
        for key, tile_batch in tiles.items():
            view = tile_batch[0].view
            assert view.aggregations is not None
            args = tile_args(view.aggregations, view.ttl_s, tile_batch)
            self._tiles(keys=[key], args=args, client=pipe)
        return sum(int(n) for n in pipe.execute())

    def read(
        self,
        view: FeatureView,
        entity_ids: Sequence[object],
        *,
        now_ms: int | None = None,
        as_of: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stored fields per entity (:func:`decode_row`; {} when absent). A windowed view
        answers its features at the read (:func:`decode_rows`)."""
        pipe = self.client.pipeline(transaction=False)
        for entity_id in entity_ids:
            pipe.hgetall(entity_key(view, entity_id))
        return decode_rows(view, pipe.execute(), now_ms=now_ms, as_of=as_of)

    def raw_tiles(self, view: FeatureView, entity_id: object) -> dict[int, tuple[int | None, ...]]:
        """The stored tiles of one entity (field -> unpacked values)."""
        return stored_tiles(self.client.hgetall(entity_key(view, entity_id)))


def stored_tiles(raw: Mapping[bytes, bytes]) -> dict[int, tuple[int | None, ...]]:
    """The tile fields of a stored windowed hash (integer names), unpacked."""
    return {int(f): unpack(v) for f, v in raw.items() if f[:1].isdigit()}


def decode_windowed(
    view: FeatureView, raw: Mapping[bytes, bytes], *, at_ms: int, open_head: bool
) -> dict[str, Any]:
    """A windowed view's stored hash as its features at ``at_ms`` (core.windows.combine),
    plus ``_t`` (the newest event time, text) when stored. No hash: no event within the
    longest window, so counts and sums are 0."""
    assert view.aggregations is not None
    (row,) = _decode_windowed(view.aggregations, [raw], at_ms=at_ms, open_head=open_head)
    return row


def _decode_windowed(
    aggs: Aggregations, raws: Sequence[Mapping[bytes, bytes]], *, at_ms: int, open_head: bool
) -> list[dict]:
    rows = hash_combiner(aggs, at_ms, open_head=open_head)(raws)
    t_field = ROW_EVENT_TIME.encode()
    for row, raw in zip(rows, raws, strict=True):
        t = raw.get(t_field)
        if t is not None:
            row[ROW_EVENT_TIME] = _decode_text(t)
    return rows


def decode_rows(
    view: FeatureView,
    raws: Sequence[Mapping[bytes, bytes]],
    *,
    now_ms: int | None = None,
    as_of: int | None = None,
) -> list[dict[str, Any]]:
    """Stored hashes as rows: a windowed view combined live at ``now_ms`` (default: the
    clock), counting the open head tile, or as of the past instant ``as_of`` (complete tiles
    only: core.windows); any other view by :func:`decode_row`."""
    if view.aggregations is not None:
        if as_of is not None:
            return _decode_windowed(view.aggregations, raws, at_ms=as_of, open_head=False)
        t = int(time.time() * 1000) if now_ms is None else now_ms
        return _decode_windowed(view.aggregations, raws, at_ms=t, open_head=True)
    decoders = field_decoders(view)
    return [decode_row(decoders, raw) for raw in raws]


class AsyncOnlineReader:
    """The read side of the online store on ``redis.asyncio``: the feature API reads on its
    event loop (no thread-pool hop per request); one entity is one HGETALL, a batch one
    pipelined round trip."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def read(
        self,
        view: FeatureView,
        entity_ids: Sequence[object],
        *,
        now_ms: int | None = None,
        as_of: int | None = None,
    ) -> list[dict[str, Any]]:
        """As :meth:`RedisOnlineStore.read`."""
        if len(entity_ids) == 1:
            raws = [await self.client.hgetall(entity_key(view, entity_ids[0]))]
        else:
            async with self.client.pipeline(transaction=False) as pipe:
                for entity_id in entity_ids:
                    pipe.hgetall(entity_key(view, entity_id))
                raws = await pipe.execute()
        return decode_rows(view, raws, now_ms=now_ms, as_of=as_of)

    async def read_views(
        self,
        wanted: Sequence[tuple[FeatureView, Sequence[object]]],
        *,
        now_ms: int | None = None,
    ) -> list[list[dict[str, Any]]]:
        """Several views' rows (:meth:`read` each) in one pipelined round trip: per view,
        its entities' rows in order (a model's inputs from several views)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for view, entity_ids in wanted:
                for entity_id in entity_ids:
                    pipe.hgetall(entity_key(view, entity_id))
            raws = await pipe.execute()
        out, at = [], 0
        for view, entity_ids in wanted:
            out.append(decode_rows(view, raws[at : at + len(entity_ids)], now_ms=now_ms))
            at += len(entity_ids)
        return out

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()
        await self.client.connection_pool.disconnect()
