"""Pure helpers of the feature-job benchmark (no stack, no clock): the scratch click events
and what the job must make of them, CRM records, Flink vertex labels, padded hashes.

Scratch entities: every id the benchmark writes lies in :data:`SCRATCH_IDS`, so its Redis
keys can be told apart from real ones (``in_scratch``) and deleted afterwards.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import orjson

from connectors.crm.bridge import record_value
from connectors.crm.rows import CrmRow
from core.domain import SEGMENTS, TIERS
from core.features import FeatureView
from core.online import entity_key
from core.windows import MINUTE_MS
from flink_jobs.logic.events import Rejection
from flink_jobs.logic.records import parse_click

USER_BASE = 50_000_000
"""Click users are ``USER_BASE + demo user id`` (demo ids start at 1; USER_BASE itself is the
user of the watermark-flush events)."""
PROFILE_BASE = 51_000_000
"""Customers of the CRM records (burst and freshness)."""
SCRATCH_IDS = range(USER_BASE, 52_000_000)
ONLINE_SINK = "online sink (Redis scripts, pipelined)"
OFFLINE_SINK = "offline writer (feature rows)"
FLUSH_AHEAD_MS = 60_000
"""Flush events are this much later than the last session's window end (see flush_records)."""


def count_sessions(times: Iterable[int], gap_ms: int) -> int:
    """Sessions of one user's event times: a new one starts when the gap to the previous
    event is ``gap_ms`` or more (the job splits at exactly the gap, flink_jobs.sql.sessions)."""
    ordered = sorted(times)
    if not ordered:
        return 0
    return 1 + sum(b - a >= gap_ms for a, b in itertools.pairwise(ordered))


@dataclass(frozen=True)
class ScratchClicks:
    """Valid, on-time click records with scratch user ids, in demo emit order."""

    records: list[tuple[bytes, bytes]]
    last_time: dict[int, int]
    """user -> greatest event_time: what the user's hashes hold once every event is in."""
    sessions: int
    minute_tiles: int
    """Distinct (user, minute) of the events: user_activity's smallest tiles."""
    malformed: int
    late: int

    @property
    def events(self) -> int:
        return len(self.records)

    @property
    def max_time(self) -> int:
        return max(self.last_time.values())

    def expected_rows(self) -> int:
        """Feature rows each sink receives at least: a row per (closed) session,
        user_activity's tiles -- online, at least one update per (user, minute tile), more
        when a tile's events span mini-batches; offline, every minute tile (all closed: the
        flush events are later) plus the closed hour tiles -- and user_lags: online at
        least one row per user (one per mini-batch the user has events in), offline one
        per event."""
        return len(self.last_time) + self.sessions + self.minute_tiles


def scratch_clicks(
    raw: Iterable[tuple[bytes, bytes]], *, user_base: int, bound_ms: int, gap_ms: int
) -> ScratchClicks:
    """Drop malformed records (``parse_click`` rejects them; it is at least as strict as the
    job's SQL gate) and every record that could arrive behind the watermark: one not newer
    than (greatest event_time before it - ``bound_ms``). The watermark of any partition can
    only be lower, so every kept record is valid and on time whatever the partitioning.
    User ids become ``user_base + id`` (value and key)."""
    records: list[tuple[bytes, bytes]] = []
    times: dict[int, list[int]] = {}
    malformed = late = 0
    newest = None
    for _key, value in raw:
        event = parse_click(value, 0, 0)
        if isinstance(event, Rejection):
            malformed += 1
            continue
        if newest is not None and event.event_time <= newest - bound_ms:
            late += 1
            continue
        newest = event.event_time if newest is None else max(newest, event.event_time)
        obj = orjson.loads(value)
        user = obj["user_id"] = user_base + event.user_id
        records.append((b"%d" % user, orjson.dumps(obj)))
        times.setdefault(user, []).append(event.event_time)
    sessions = sum(count_sessions(t, gap_ms) for t in times.values())
    minutes = sum(len({x // MINUTE_MS for x in t}) for t in times.values())
    last = {user: max(t) for user, t in times.items()}
    return ScratchClicks(records, last, sessions, minutes, malformed, late)


def flush_records(
    partitions: int, *, after_ms: int, gap_ms: int, bound_ms: int, user: int = USER_BASE
) -> list[tuple[int, bytes, bytes]]:
    """One valid event per partition, so late that every partition's watermark passes the
    window end of every session ending at ``after_ms``: all rows are emitted and all
    sessions close. They are held by the job themselves. (partition, key, value)."""
    at = after_ms + gap_ms + bound_ms + FLUSH_AHEAD_MS
    return [
        (
            p,
            b"%d" % user,
            orjson.dumps(
                {
                    "event_id": f"bench-flush-{p}",
                    "user_id": user,
                    "event_type": "page_view",
                    "page": "/",
                    "event_time": at,
                    "properties": {},
                }
            ),
        )
        for p in range(partitions)
    ]


def crm_record(entity: int, number: int, *, now_ms: int, token: str) -> tuple[bytes, bytes, str]:
    """A ``crm.customers`` record (connectors.crm.bridge.record_value) of ``entity`` with a
    unique email, event_time = updated_at = export_ts = ``now_ms``. (key, value, email)."""
    email = f"b{number}.{token}@bench.invalid"
    row = CrmRow(entity, email, SEGMENTS[number % 3], TIERS[number % 4], now_ms)
    value = record_value(row, export_ts=now_ms, object_key="_bench/job-freshness", number=number)
    return b"%d" % entity, value, email


def spread(items: Sequence[int], n: int) -> list[int]:
    """About ``n`` of ``items`` (at least ``n`` when there are that many), evenly spaced."""
    return list(items[:: max(len(items) // n, 1)])


def in_scratch(key: bytes | str, view: FeatureView) -> bool:
    """Whether ``key`` is ``view``'s hash of an entity in :data:`SCRATCH_IDS`."""
    text = key.decode() if isinstance(key, bytes) else key
    digits = text.rsplit(":", 1)[-1].rstrip("}")
    if not digits.isdigit() or int(digits) not in SCRATCH_IDS:
        return False
    return entity_key(view, int(digits)) == text


_TABLE = re.compile(r"default_database, (\w+)")


def vertex_role(description: str, inputs: Sequence[str] = ()) -> str:
    """A short label for a feature-job vertex from its REST plan ``description`` (and its
    inputs' descriptions, which tell the two sinks of each file writer apart)."""
    text = html.unescape(description).replace("<br/>", " ")
    python = "PythonCorrelate" in text or "PythonCalc" in text
    if "WindowAggregate" in text and "SESSION" in text:
        return "session windows"
    if "Deduplicate" in text:
        return "orders: first copy per order id (Deduplicate)"
    if "TableSourceScan" in text:
        table = _TABLE.search(text)
        name = table.group(1) if table else "?"
        return f"source {name}" + (" + ingest_profile (Python)" if python else "")
    if "last_two(" in text:
        return "lags (LAST_TWO)"
    if "GroupAggregate" in text and "tile" in text:
        return "tiles (both stores)"
    if "ProcessTableFunction" in text and "updated_rows" in text:
        return "offline tile rows (updated_rows)"
    if "online_store" in text or "online_writes" in text:
        return ONLINE_SINK
    if "StreamingFileWriter" in text:
        profile = any("PythonCorrelate" in i for i in inputs)  # ingest_profile's rows
        # the DLQ commits no partitions; an offline writer's committer is chained to it at
        # parallelism 1 and a vertex of its own (parallelism 1) above
        if "PartitionCommitter" not in text and "end: Writer" in text:
            return "DLQ writer (profile)" if profile else "DLQ writer"
        return "offline writer (profile)" if profile else OFFLINE_SINK
    return text.split(" ", 1)[0][:60]


def padded(fields: Mapping[str, str], view: FeatureView, target: int) -> dict[str, str] | None:
    """``fields`` (one stored hash of ``view``) plus features up to ``target``, each new one
    shaped like an existing one (same name length, same value), and, for an
    attribute-scoped view, with its own ``<name>@`` version field copied too. None when the
    hash holds none of the view's features or already has ``target``."""
    present = [f.short for f in view.features if f.short in fields]
    if not present or len(view.features) >= target:
        return None
    out = dict(fields)
    taken = set(out)
    for n in range(target - len(view.features)):
        model = present[n % len(present)]
        name = _fresh_name(len(model), taken)
        taken.add(name)
        out[name] = fields[model]
        version = f"{model}@"
        if view.version_scope == "attribute" and version in fields:
            taken.add(f"{name}@")
            out[f"{name}@"] = fields[version]
    return out


def _fresh_name(length: int, taken: set[str]) -> str:
    alphabet = "zyxwvutsrqponmlkjihgfedcba0123456789"
    for n in range(len(alphabet) ** length):
        name, k = "", n
        for _ in range(length):
            k, digit = divmod(k, len(alphabet))
            name += alphabet[digit]
        if name not in taken and f"{name}@" not in taken:
            return name
    raise ValueError(f"no free field name of length {length}")
