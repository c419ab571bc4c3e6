"""Poison clicks: records broken in every way the gate must survive, each with the DLQ reason
the Python reference gives it (records.parse_click, then the plausibility rule)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from core.events import plausible_event_time
from flink_jobs.logic.events import Rejection
from flink_jobs.logic.records import parse_click

HOUR = 3_600_000


def _click(n: int, now_ms: int, **fields: Any) -> dict[str, Any]:
    click = {
        "event_id": f"poison-{n}",
        "user_id": 7_000_000 + n,
        "event_type": "search",
        "page": f"/poison/{n}",
        "event_time": now_ms,
        "properties": {},
    }
    click.update(fields)
    return {k: v for k, v in click.items() if v is not ...}


def _kinds(n: int, now_ms: int, rng: random.Random) -> list[Callable[[], bytes | None]]:
    """Every kind of poison for record ``n``, each built only when chosen."""
    good = json.dumps(_click(n, now_ms)).encode()
    page = f"/poison/{n}".encode()

    def with_(**fields: Any) -> Callable[[], bytes]:
        return lambda: json.dumps(_click(n, now_ms, **fields)).encode()

    return [
        lambda: None,  # a tombstone
        lambda: b"",
        lambda: good[: rng.randrange(1, len(good) - 1)],  # cut short
        lambda: good + b" trailing",
        lambda: good + good,
        lambda: good.replace(page, page + b"\xff\xfe\xc3"),  # not UTF-8
        lambda: good.replace(page, page + b"\\ud800"),  # a lone surrogate
        lambda: b"\xef\xbb\xbf" + good,  # a byte order mark
        lambda: good.replace(b'"search"', b"NaN"),
        lambda: json.dumps([n, "not an object"]).encode(),
        with_(user_id=...),
        with_(user_id=None),
        with_(user_id=str(n)),
        with_(user_id=2**64),
        with_(event_type=None),
        with_(event_type="dance"),
        with_(event_time=float(now_ms)),
        with_(event_time=...),
        with_(event_time=4_102_444_800_000),  # 2100
        with_(event_time=2**63 - 1),
        with_(event_time=5_000),  # 1970
        with_(properties=[1]),
        with_(event_id=""),
        with_(event_id="e" * 129),
        with_(page="/" + "p" * 4096),  # longer than the suite allows
        with_(event_type="dance", page="/" + "x" * 200_000),  # huge
        lambda: rng.randbytes(rng.randrange(1, 300_000)),  # noise, up to 300 KB
    ]


def expected_reason(
    value: bytes | None, produced_ms: int, ahead_ms: int
) -> tuple[str, str | None] | None:
    """The reason the job must file ``value`` under and the clickstream suite's expectation
    it names (None for the job's own rules), or None for a valid click."""
    parsed = parse_click(value, 0, 0)
    if isinstance(parsed, Rejection):
        return parsed.reason, parsed.expectation
    if not plausible_event_time(parsed.event_time, produced_ms, ahead_ms=ahead_ms):
        return "implausible_event_time", None
    return None


def poison(
    count: int, *, now_ms: int, ahead_ms: int, seed: int = 5
) -> list[tuple[bytes, bytes | None, str, str | None]]:
    """``count`` poison records (key, value, reason, expectation), cycling through every
    kind."""
    rng = random.Random(seed)
    out: list[tuple[bytes, bytes | None, str, str | None]] = []
    for n in range(count):
        kinds = _kinds(n, now_ms, rng)
        value = kinds[n % len(kinds)]()
        verdict = expected_reason(value, now_ms, ahead_ms)
        assert verdict is not None, f"poison kind {n % len(kinds)} is a valid click"
        out.append((b"poison-%d" % n, value, *verdict))
    return out
