"""The job's Java lag aggregate (flink_jobs/jvm LastTwo) against the Python reference
(flink_jobs.logic.lags): whatever the arrival order, however the events are split between
local accumulators and merged (the two-phase aggregation), and with events read twice, it
holds the lags of the entity's latest event.

The Java side runs as one JVM for the module (ClickParserCheck --last-two: one line of
events in, one line out), built by `make install` like the job that uses it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.version import click_version
from flink_jobs.logic.lags import lags
from tests.unit.flink_jobs.jvm_check import JvmCheck

Event = tuple[int, int, str]
"""(event time, Kafka offset, event type) of one user's click."""


class JavaLastTwo(JvmCheck):
    def __init__(self) -> None:
        super().__init__("--last-two", flink=True)

    def answer(self, groups: list[list[Event]]) -> str:
        return self.ask(
            "|".join(
                ";".join(f"{t},{click_version(t, 0, o).encode()},{x}" for t, o, x in g)
                for g in groups
            )
        )


@pytest.fixture(scope="module")
def java() -> Iterator[JavaLastTwo]:
    agg = JavaLastTwo()
    yield agg
    agg.close()


def reference(events: list[Event], taken: int | None = None) -> str:
    """What the check prints: the latest event's time, version and value, then the
    previous event's (``-`` when absent), from flink_jobs.logic.lags, and the events taken
    in (``taken``, default one each)."""
    if not events:
        return "-"
    n = str(len(events) if taken is None else taken)
    got = lags(
        set(events),
        entity_of=lambda e: 1,
        time_of=lambda e: e[0],
        version_of=lambda e: click_version(e[0], 0, e[1]),
        value_of=lambda e: e[2],
    )
    last = got[-1]
    t, o, x = last.event
    out = [str(t), click_version(t, 0, o).encode(), x]
    if last.prev_value is None or last.ms_since_prev is None:
        return " ".join([*out, "-", "-", "-", n])
    prev = got[-2].event
    previous = [str(prev[0]), click_version(prev[0], 0, prev[1]).encode(), prev[2]]
    return " ".join([*out, *previous, n])


def test_hand_computed(java: JavaLastTwo) -> None:
    a, b, c = (5, 1, "view"), (5, 2, "cart"), (3, 9, "search")
    assert java.answer([[a]]) == reference([a])
    assert java.answer([[b, a, c]]).split()[2::3] == ["cart", "view"]  # a tie: by offset
    assert java.answer([[c], [b], [a, a]]) == reference([a, b, c], taken=4)  # n: 4 taken in
    assert java.answer([[]]) == "-"


@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 4), st.sampled_from(["view", "cart"])),
        max_size=25,
    ),
    st.randoms(use_true_random=False),
)
def test_any_order_and_any_split_give_the_latest_events_lags(
    java: JavaLastTwo, events: list[Event], rnd: random.Random
) -> None:
    unique = list({(t, o): (t, o, x) for t, o, x in events}.values())  # one value per version
    arrived = unique + rnd.sample(unique, len(unique) // 3)  # some read twice
    rnd.shuffle(arrived)
    cuts = sorted(rnd.sample(range(len(arrived) + 1), min(3, len(arrived) + 1)))
    groups = [arrived[i:j] for i, j in zip([0, *cuts], [*cuts, len(arrived)], strict=True)]
    assert java.answer(groups) == reference(unique, taken=len(arrived))
