"""`streamfeat job deploy --replay`: a job started without state (as after a changed SQL plan)
rebuilds its windows from the topics' retained records under a new consumer group — the
count continues where it was, neither reset nor doubled."""

from __future__ import annotations

import json
import time
import uuid

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
