"""The reference computation: raw records of every topic -> final features per view."""

from __future__ import annotations

import json
import random
from typing import TypedDict

from core.features import FEATURE_VIEWS
from flink_jobs.logic.reference import RawRecord, parse_all, reference_features
from tests.unit.flink_jobs.helpers import (
    HOUR,
    MINUTE,
    T0,
    click_value,
    customer_row,
    envelope,
    order_row,
)

KEY = "crm/exports/dt=2026-01-01/customers-20260101T040000Z-0000.csv"


def crm_value(customer_id: int, tier: str, event_time: int, row: int) -> bytes:
    return json.dumps(
        {
            "customer_id": customer_id, "email": "crm@example.com", "segment": "smb",
            "tier": tier, "updated_at": event_time, "event_time": event_time,
            "source": "s3_crm", "source_seq": [T0 + 4 * HOUR, KEY, row],
        }
    ).encode()  # fmt: skip


class Records(TypedDict):
    clickstream: list[RawRecord]
    cdc_customers: list[RawRecord]
    crm_customers: list[RawRecord]
    cdc_orders: list[RawRecord]


def records() -> Records:
    clicks = [
        RawRecord(click_value(event_id="a", event_time=T0, event_type="page_view"), b"17", 3, 10),
        RawRecord(click_value(event_id="b", event_time=T0 + MINUTE), b"17", 3, 11),
        RawRecord(click_value(event_id="b", event_time=T0 + MINUTE), b"17", 3, 15),  # retry
        RawRecord(
            click_value(event_id="c", event_time=T0 + 2 * HOUR, event_type="purchase"), b"17", 3, 12
        ),
        RawRecord(b'{"broken', b"17", 3, 13),
    ]
    ts = T0 + 10 * MINUTE
    cdc_customers = [
        RawRecord(envelope("customers", "r", before=None, after=customer_row(17), ts_ms=T0,
                           lsn=100, commit_lsn=100), b'{"id":17}'),
        RawRecord(envelope("customers", "u", before=customer_row(17),
                           after=customer_row(17, tier="platinum"), ts_ms=ts, lsn=300,
                           commit_lsn=290), b'{"id":17}'),
        RawRecord(envelope("customers", "c", before=None, after=customer_row(18), ts_ms=T0,
                           lsn=110, commit_lsn=110), b'{"id":18}'),
        RawRecord(envelope("customers", "d", before=customer_row(18), after=None, ts_ms=ts,
                           lsn=310, commit_lsn=305), b'{"id":18}'),
        RawRecord(None, b'{"id":18}'),
    ]  # fmt: skip
    crm = [
        RawRecord(crm_value(17, "bronze", ts, 1), b"17"),  # same time as the PG update: PG wins
        RawRecord(crm_value(17, "silver", ts - 1, 2), b"17"),  # older: loses
        RawRecord(crm_value(18, "silver", ts - 5, 3), b"18"),  # older than the delete: loses
        RawRecord(crm_value(19, "gold", ts, 4), b"19"),
    ]
    orders = [
        RawRecord(envelope("orders", "r", before=None, after=order_row(1, 17, 1000,
                  created_at="2026-01-01T00:00:00Z"), ts_ms=T0 + 5 * HOUR, lsn=400)),
        RawRecord(envelope("orders", "r", before=None, after=order_row(2, 17, 2500,
                  created_at="2026-01-01T00:30:00Z"), ts_ms=T0 + 5 * HOUR, lsn=401)),
        RawRecord(envelope("orders", "u", before=order_row(2, 17, 2500), after=order_row(
                  2, 17, 2500, status="paid", created_at="2026-01-01T00:30:00Z"),
                  ts_ms=T0 + 6 * HOUR, lsn=500)),
        RawRecord(None),
    ]  # fmt: skip
    return Records(clickstream=clicks, cdc_customers=cdc_customers, crm_customers=crm,
                   cdc_orders=orders)  # fmt: skip


def test_reference_features_end_to_end() -> None:
    features = reference_features(**records())
    assert list(features) == [v.name for v in FEATURE_VIEWS]
    for view in FEATURE_VIEWS:
        for values in features[view.name].values():
            assert set(values) == {*view.names, "_event_time"}
    ts = T0 + 10 * MINUTE
    assert features["customer_profile"] == {
        17: {"email": "a@example.com", "segment": "smb", "tier": "platinum", "_event_time": ts},
        18: {"email": None, "segment": None, "tier": None, "_event_time": ts},
        19: {"email": "crm@example.com", "segment": "smb", "tier": "gold", "_event_time": ts},
    }
    activity = features["user_activity"][17]
    assert activity["_event_time"] == T0 + 2 * HOUR
    assert (activity["clicks_1h"], activity["clicks_24h"], activity["purchases_24h"]) == (1, 3, 1)
    assert features["user_lags"][17] == {
        "last_event_type": "purchase",
        "prev_event_type": "add_to_cart",
        "ms_since_prev_event": 2 * HOUR - MINUTE,
        "_event_time": T0 + 2 * HOUR,
    }
    assert features["user_session_counts"][17] == {"sessions_24h": 2, "_event_time": T0 + 2 * HOUR}
    assert features["user_sessions"][17] == {
        "last_session_duration_s": 0,
        "last_session_events": 1,
        "last_session_pages": 1,
        "last_session_converted": True,
        "_event_time": T0 + 2 * HOUR,
    }
    assert features["customer_orders"][17]["orders_1h"] == 2
    assert features["customer_orders"][17]["spend_cents_7d"] == 3500
    assert features["customer_orders"][17]["_event_time"] == T0 + 30 * MINUTE
    assert features["order_lags"][17] == {
        "last_order_cents": 2500,
        "prev_order_cents": 1000,
        "order_delta_cents": 1500,
        "ms_since_prev_order": 30 * MINUTE,
        "_event_time": T0 + 30 * MINUTE,
    }


def test_rejections_are_kept_with_their_topic() -> None:
    parsed = parse_all(**records())
    assert [(topic, r.offset, rej.reason) for topic, r, rej in parsed.rejections] == [
        ("clickstream", 13, "invalid_json")
    ]


def test_reference_does_not_depend_on_record_order() -> None:
    expected = reference_features(**records())
    rnd = random.Random(7)
    for _ in range(5):
        r = records()
        shuffled = Records(
            clickstream=rnd.sample(r["clickstream"], len(r["clickstream"])),
            cdc_customers=rnd.sample(r["cdc_customers"], len(r["cdc_customers"])),
            crm_customers=rnd.sample(r["crm_customers"], len(r["crm_customers"])),
            cdc_orders=rnd.sample(r["cdc_orders"], len(r["cdc_orders"])),
        )
        assert reference_features(**shuffled) == expected


def test_empty_input_gives_every_view_empty() -> None:
    assert reference_features() == {v.name: {} for v in FEATURE_VIEWS}
