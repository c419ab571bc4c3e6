"""Waiting on the real stack: poll a condition, never sleep as synchronisation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    what: str, check: Callable[[], T | None], timeout_s: float = 180.0, poll_s: float = 0.5
) -> T:
    """``check()``'s first truthy answer, polled every ``poll_s``; an AssertionError naming
    ``what`` when none came within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(poll_s)
    raise AssertionError(f"not reached in {timeout_s:.0f}s: {what}")
