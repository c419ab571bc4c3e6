"""The job's Java tile aggregates for `last` and `approx_distinct` (flink_jobs/jvm
LatestValue, ApproxDistinct) against their Python twins in core.windows (which the API and
the offline join combine): whatever the arrival order, however the events are split between
local accumulators and merged (the two-phase aggregation), and with events read twice, the
same tile value.

The Java side runs as one JVM per function (ClickParserCheck --latest / --sketch), built by
`make install` like the job that uses it.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator, Sequence
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.windows import item_hash, sketch_of
from tests.unit.flink_jobs.jvm_check import JvmCheck

T = TypeVar("T")


class JavaLatest(JvmCheck):
    def __init__(self) -> None:
        super().__init__("--latest", flink=True)

    def answer(self, groups: Sequence[Sequence[tuple[int, int]]]) -> str:
        return self.ask("|".join(";".join(f"{t},{v}" for t, v in g) for g in groups))


class JavaSketch(JvmCheck):
    def __init__(self) -> None:
        super().__init__("--sketch", flink=True)

    def answer(self, groups: Sequence[Sequence[str]]) -> str:
        return self.ask(
            "|".join(
                ";".join("x" + base64.b64encode(i.encode()).decode() for i in g) for g in groups
            )
        )


@pytest.fixture(scope="module")
def latest() -> Iterator[JavaLatest]:
    f = JavaLatest()
    yield f
    f.close()


@pytest.fixture(scope="module")
def sketch() -> Iterator[JavaSketch]:
    f = JavaSketch()
    yield f
    f.close()


def arrivals(items: list[T], rnd: random.Random) -> list[list[T]]:
    """``items`` with some read twice, shuffled, cut into up to 4 local accumulators."""
    arrived = items + rnd.sample(items, len(items) // 3)
    rnd.shuffle(arrived)
    cuts = sorted(rnd.sample(range(len(arrived) + 1), min(3, len(arrived) + 1)))
    return [arrived[i:j] for i, j in zip([0, *cuts], [*cuts, len(arrived)], strict=True)]


def python_sketch(items: list[str]) -> str:
    cols = sketch_of(items)
    return " ".join(str(c) for c in cols)


def test_latest_hand_computed(latest: JavaLatest) -> None:
    assert latest.answer([[(5, 7), (9, -3), (2, 100)]]) == "-3"  # the latest event's value
    assert latest.answer([[(9, 4)], [(9, 11), (9, -2)]]) == "11"  # a tie: the greater value
    assert latest.answer([[]]) == "-"


@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(-(2**63), 2**63 - 1)), max_size=25),
    st.randoms(use_true_random=False),
)
def test_latest_is_the_value_of_the_greatest_time_then_value(
    latest: JavaLatest, events: list[tuple[int, int]], rnd: random.Random
) -> None:
    want = str(max(events)[1]) if events else "-"
    assert latest.answer(arrivals(events, rnd)) == want


def test_sketch_hand_computed(sketch: JavaSketch) -> None:
    # pinned: stored sketches (Redis, the offline table) stay readable only with this hash
    assert item_hash("a") == 0x02C0BDBF481420F8
    assert sketch.answer([[]]) == "0 0 0 0"
    one = sketch.answer([["/p/1"]])
    assert sum(c != "0" for c in one.split()) == 1  # one register set
    assert sketch.answer([["/p/1", "/p/1"], ["/p/1"]]) == one  # seen again: unchanged


@given(
    st.lists(st.text(max_size=12), max_size=40),
    st.randoms(use_true_random=False),
)
def test_sketch_equals_the_python_twin_in_any_order_and_split(
    sketch: JavaSketch, items: list[str], rnd: random.Random
) -> None:
    assert sketch.answer(arrivals(items, rnd)) == python_sketch(items)
