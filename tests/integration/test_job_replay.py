"""`streamfeat job deploy --replay`: a job started without state (as after a changed SQL plan)
rebuilds its windows from the topics' retained records under a new consumer group — the
count continues where it was, neither reset nor doubled."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka_clients import producer
from core.features import USER_ACTIVITY
from core.online import RedisOnlineStore
from core.settings import StackSettings
from core.topics import CLICKSTREAM
from streamfeat.job import cancel, deploy, job_config
from tests.integration import JOB_PARALLELISM
from tests.waiting import wait_for

pytestmark = pytest.mark.stack
MINUTE = 60_000


def _clicks(settings: StackSettings, clicks: list[tuple[int, int]]) -> None:
    p = producer(settings)
    for user, t in clicks:
        value = {
            "event_id": uuid.uuid4().hex,
            "user_id": user,
            "event_type": "page_view",
            "page": "/p",
            "event_time": t,
            "properties": {},
        }
        p.produce(CLICKSTREAM, key=str(user).encode(), value=json.dumps(value).encode())
    assert p.flush(30) == 0


def test_a_replay_rebuilds_window_state_from_the_topics(ingestion: StackSettings) -> None:
    s = ingestion
    cfg = job_config(
        s,
        group_id=f"test-replay-{uuid.uuid4().hex[:6]}",
        max_out_of_orderness_ms=1000,
        idle_timeout_ms=1000,
        orders_idle_timeout_ms=20_000,
        checkpoint_interval_ms=2000,
        parallelism=JOB_PARALLELISM,
    )
    user, other = (800_000 + int(uuid.uuid4().int % 50_000) * 2 + i for i in (0, 1))
    # after every click produced before (the replay reads them all again; earlier ones
    # would be behind their watermark)
    t0 = int(time.time() * 1000) + 10 * MINUTE
    store = RedisOnlineStore.from_url(s.redis_url)

    def clicks_7d_at(t: int) -> int | None:
        row = store.read(USER_ACTIVITY, [user], now_ms=t + 1)[0]  # the clicks are ahead of now
        return row["clicks_7d"] if row.get("_t") == str(t) else None

    deploy(s, cfg)
    try:
        _clicks(s, [(user, t0), (user, t0 + MINUTE), (user, t0 + 2 * MINUTE)])
        _clicks(s, [(other, t0 + 3 * MINUTE)])  # moves the watermark past the user's clicks
        assert wait_for("3 clicks before the replay", lambda: clicks_7d_at(t0 + 2 * MINUTE)) == 3
        cancel(s)

        replayed = deploy(s, cfg, replay=True)
        group = job_config(s).group_id  # what the replay recorded, for later deploys
        assert group.startswith(f"{cfg.group_id}-r") and group != cfg.group_id
        # alone: the tile needs no watermark, and another user's later click sent with it
        # could be read first and, with the other partitions idle, make this one late
        _clicks(s, [(user, t0 + 4 * MINUTE)])
        # without state the count would restart at 1; a replay of old offsets would add 3 more
        assert (
            wait_for("the 4th click after the replay", lambda: clicks_7d_at(t0 + 4 * MINUTE)) == 4
        )
        assert replayed.job_id
    finally:
        cancel(s)


def test_a_suite_edit_changes_what_the_gate_rejects_after_a_redeploy(
    ingestion: StackSettings, tmp_path: Path
) -> None:
    """The gate is compiled from the clickstream suite at deploy: with ``page`` limited to 10
    characters, a click with a longer page goes to the DLQ under that expectation and a
    shorter one is counted; a suite with an expectation the stream cannot enforce is refused
    before anything is deployed."""
    from connectors.dlq_review import Filters, entries, replay
    from core.quality import SUITES_DIR, repository_suite
    from flink_jobs.logic.records import CLICKSTREAM_SUITE
    from streamfeat.job import running_job
    from streamfeat.stack.errors import StackError

    suite = json.loads((SUITES_DIR / "clickstream.json").read_text())
    for e in suite["expectations"]:
        if e["kwargs"]["column"] == "page" and e["type"].endswith("lengths_to_be_between"):
            e["kwargs"]["max_value"] = 10
    (tmp_path / "clickstream.json").write_text(json.dumps(suite))
    edited = ingestion.model_copy(update={"quality_suites_dir": tmp_path})

    unenforceable = tmp_path / "unenforceable"
    unenforceable.mkdir()
    suite["expectations"].append(
        {
            "type": "expect_column_mean_to_be_between",
            "kwargs": {"column": "user_id", "max_value": 9},
        }
    )
    (unenforceable / "clickstream.json").write_text(json.dumps(suite))
    refused = ingestion.model_copy(update={"quality_suites_dir": unenforceable})
    before = running_job(ingestion)
    with pytest.raises(StackError, match=r"expect_column_mean_to_be_between\): a record-level"):
        deploy(refused)
    assert running_job(ingestion) == before  # refused before anything was submitted

    cfg = job_config(
        edited,
        group_id=f"test-suite-{uuid.uuid4().hex[:6]}",
        idle_timeout_ms=1000,
        checkpoint_interval_ms=2000,
        parallelism=JOB_PARALLELISM,
    )
    long_user, short_user = (850_000 + int(uuid.uuid4().int % 40_000) * 2 + i for i in (0, 1))
    # just ahead of every click sent before (the replay test's are 10-14 min ahead): a new group
    # reads the topic from its start, and behind that watermark these would be late
    now = int(time.time() * 1000) + 15 * MINUTE
    mark = uuid.uuid4().hex
    store = RedisOnlineStore.from_url(ingestion.redis_url)
    deploy(edited, cfg)
    try:
        p = producer(ingestion)
        for user, page in ((long_user, f"/{mark}"), (short_user, "/short")):
            value = {"event_id": mark, "user_id": user, "event_type": "page_view",
                     "page": page, "event_time": now, "properties": {}}  # fmt: skip
            p.produce(CLICKSTREAM, key=str(user).encode(), value=json.dumps(value).encode())
        assert p.flush(30) == 0
        day = time.strftime("%Y-%m-%d", time.gmtime(now / 1000))

        def filed() -> list[Any]:
            return [
                e
                for e in entries(ingestion, Filters(day, "clickstream", "bad_page"))
                if e.original is not None and mark.encode() in e.original
            ]

        (entry,) = wait_for("the long page in the DLQ under the edited suite", filed)
        assert entry.expectation == "expect_column_value_lengths_to_be_between(page)"
        assert "length 33" in entry.detail

        def counted(user: int) -> Any:
            row = store.read(USER_ACTIVITY, [user], now_ms=now + 1)[0]
            return row.get("clicks_1h") or None

        assert wait_for("the short page counted", lambda: counted(short_user)) == 1
        assert counted(long_user) is None

        # the fix (the repository's suite again: pages up to 2,048) deployed, then the entry
        # replayed from the DLQ: counted once, as in a run where it was never rejected
        cancel(ingestion)
        fixed = repository_suite(CLICKSTREAM_SUITE).document
        deploy(ingestion, cfg.model_copy(update={"clickstream_suite": dict(fixed)}))
        got = replay(ingestion, Filters(day, "clickstream", "bad_page"), ids={entry.entry_id})
        assert [e.entry_id for e, _, _ in got.sent] == [entry.entry_id]
        assert wait_for("the replayed click counted", lambda: counted(long_user)) == 1
        assert counted(short_user) == 1  # the redeploy read it again: counted once still
    finally:
        cancel(ingestion)
