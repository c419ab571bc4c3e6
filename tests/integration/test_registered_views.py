"""Windowed feature views registered through the API (no code in core/features.py) are
computed by the feature job `streamfeat job deploy` starts, and served by the API as of the
request, their tiles in the offline table under their entity: counts with filters and a
distinct count over clicks, the latest value and a distinct count over CDC orders."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from connectors.kafka_clients import producer
from core.features import CUSTOMER, windowed_features
from core.offline import read_rows
from core.registry import AggregationsSpec, entity_spec
from core.settings import StackSettings
from core.topics import CLICKSTREAM
from core.windows import sketch_estimate, sketch_of, tiles_of
from feature_api.settings import Role, dev_key
from streamfeat.flink_client import FlinkClient
from streamfeat.job import cancel, deploy, job_config, registered_views
from streamfeat.stack.base import StackContext
from tests.faults.stream import checkpointed_since
from tests.integration import JOB_PARALLELISM
from tests.integration.test_feature_job import _insert_orders
from tests.waiting import wait_for

pytestmark = pytest.mark.stack
MINUTE = 60_000


SEARCHES = {
    "source": "clickstream",
    "where": {"field": "event_type", "values": ["search"]},
    "measures": [
        {"name": "searches", "short": "s", "function": "count"},
        {
            "name": "help_searches",
            "short": "h",
            "function": "count",
            "where": {"field": "page", "values": ["/help"]},
        },
        {"name": "pages", "short": "p", "function": "approx_distinct", "column": "page"},
    ],
    "windows": [{"name": "30m", "length_ms": 30 * MINUTE, "tile_ms": MINUTE}],
}
"""Each customer's searches, search pages and distinct search pages over 30 minutes."""
ORDERS = {
    "source": "orders",
    "measures": [
        {"name": "last_cents", "short": "l", "function": "last", "column": "amount_cents"},
        {"name": "amounts", "short": "a", "function": "approx_distinct", "column": "amount_cents"},
    ],
    "windows": [{"name": "2h", "length_ms": 120 * MINUTE, "tile_ms": MINUTE}],
}
"""Each customer's latest order amount and distinct amounts over 2 hours."""


def _register(api: httpx.Client, name: str, spec: dict[str, Any], source: str) -> None:
    """The customer entity (as the code declares it, if nobody registered it yet) and a
    windowed view of ``spec`` (AggregationsSpec) in minute tiles."""
    body = entity_spec(CUSTOMER).model_dump(mode="json")
    r = api.post("/v1/entities", json=body)
    assert r.status_code in (201, 409), r.text
    aggs = AggregationsSpec.model_validate(spec)
    features = [{"name": f.name, "dtype": f.dtype} for f in windowed_features(aggs.declaration())]
    view = {
        "name": name,
        "entity": CUSTOMER.name,
        "features": features,
        "sources": [source],
        "aggregations": aggs.model_dump(mode="json"),
        "ttl_s": 3600,
    }
    r = api.post("/v1/feature-views", json=view)
    assert r.status_code == 201, r.text


def _clicks(s: StackSettings, clicks: list[tuple[int, int, str, str]]) -> None:
    p = producer(s)
    for user, t, event_type, page in clicks:
        value = {
            "event_id": uuid.uuid4().hex,
            "user_id": user,
            "event_type": event_type,
            "page": page,
            "event_time": t,
            "properties": {},
        }
        p.produce(CLICKSTREAM, key=str(user).encode(), value=json.dumps(value).encode())
    assert p.flush(30) == 0


def test_a_view_registered_through_the_api_is_computed_and_served(
    ingestion: StackSettings,
) -> None:
    s = ingestion
    name, orders_name = (f"{kind}_{uuid.uuid4().hex[:8]}" for kind in ("searches", "orders"))
    base = f"http://{s.host}:{s.ports.api}"
    with httpx.Client(base_url=base, headers={"X-API-Key": dev_key(Role.WRITER)}) as api:
        _register(api, name, SEARCHES, "clickstream")
        _register(api, orders_name, ORDERS, "pg_cdc")
    registered = registered_views(s)
    assert {name, orders_name} <= {r.view.name for r in registered}
    # a new group that starts at the topics' ends: only this test's clicks, so no click of
    # the tests before moves the watermark past them
    cfg = job_config(
        s,
        group_id=f"test-registered-{uuid.uuid4().hex[:6]}",
        start_from_earliest=False,
        checkpoint_interval_ms=2000,
        parallelism=JOB_PARALLELISM,
        registered_views=registered,
    )
    user = 9_200_000 + int(uuid.uuid4().int % 100_000)
    job_id = deploy(s, cfg).job_id
    try:
        flink = FlinkClient(StackContext(s))
        # the sources hold their start offsets once a checkpoint completed
        wait_for("the job's first checkpoint", lambda: checkpointed_since(flink, job_id, 0), 120)
        now = int(time.time() * 1000)
        t0 = now - 10 * MINUTE
        _clicks(
            s,
            [
                (user, now - 40 * MINUTE, "search", "/help"),  # before the window
                (user, t0, "search", "/help"),
                (user, t0 + MINUTE, "search", "/shoes"),
                (user, t0 + 2 * MINUTE, "page_view", "/help"),  # not a search: not counted
                (user, t0 + 3 * MINUTE, "search", "/help"),
            ],
        )
        # orders through PostgreSQL and Debezium: the latest order (two at the same instant:
        # the greater amount, although it was committed first) and the distinct amounts of
        # the last 2 h (not the one 3 h old)
        _insert_orders(
            s,
            user,
            [
                (now - 180 * MINUTE, 999),
                (t0, 500),
                (t0 + MINUTE // 2, 500),
                (t0 + MINUTE, 700),
                (t0 + MINUTE, 300),
            ],
        )
        pages = sketch_estimate(sketch_of(["/help", "/shoes"]))
        distinct = sketch_estimate(sketch_of(["500", "700", "300"]))
        want = {
            name: {"searches_30m": 3, "help_searches_30m": 2, "pages_30m": pages},
            orders_name: {"last_cents_2h": 700, "amounts_2h": distinct},
        }
        with httpx.Client(base_url=base, headers={"X-API-Key": dev_key(Role.READER)}) as api:

            def served() -> dict[str, Any] | None:
                got = {}
                for view in want:
                    r = api.get(f"/v1/features/{view}/{user}")
                    if r.status_code != 200:
                        return None  # the API's registry snapshot may not hold the view yet
                    got[view] = {k: v["value"] for k, v in r.json()["features"].items()}
                return got if got == want else None

            wait_for("the registered views' features served by the API", served, 120)

        # the job's sketches (Java) equal the Python twin's, tile by tile, in the offline
        # table (each tile's final value: the row of its greatest version)
        aggs = AggregationsSpec.model_validate(SEARCHES).declaration()
        searches = [
            {"event_time": t, "event_type": "search", "page": page}
            for t, page in (
                (now - 40 * MINUTE, "/help"),
                (t0, "/help"),
                (t0 + MINUTE, "/shoes"),
                (t0 + 3 * MINUTE, "/help"),
            )
        ]
        want_tiles = tiles_of(aggs, searches)
        columns = ["n", *(m.stored_name(part) for m, part in aggs.stored_columns)]

        def offline() -> Any:
            rows = read_rows(s, view=name, entity_id=user).to_pylist()
            final: dict[int, tuple[int, dict[str, str]]] = {}
            for r in rows:
                held = final.get(int(r["grp"]))
                if held is None or r["version"] > held[0]:
                    final[int(r["grp"])] = (r["version"], dict(r["features"]))
            got = {f: tuple(int(v[1][c]) for c in columns) for f, v in final.items()}
            return rows if got == want_tiles else None

        rows = wait_for("the view's tiles in the offline table", offline, 120)
        assert {r["entity_type"] for r in rows} == {CUSTOMER.name}
        assert {r["source"] for r in rows} == {"clickstream"}
    finally:
        cancel(s)
