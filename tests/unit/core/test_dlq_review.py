"""Reading the DLQ as stored (core/dlq.py): partitions from paths, the job's and the
bridge's entries, hidden in-progress files, unreadable lines kept for review."""

from __future__ import annotations

import base64
import json

from core.dlq import DlqEntry, parse_lines, partition_of, replay_key


def test_partitions_and_hidden_files() -> None:
    key = "dlq/date=2026-12-05/source=clickstream/reason=late/part-0-1.json"
    assert partition_of(key) == {"date": "2026-12-05", "source": "clickstream", "reason": "late"}
    assert (
        partition_of("dlq/date=2026-12-05/source=clickstream/reason=late/.part-0-1.inprogress")
        is None
    )
    assert partition_of("dlq-replays/abc.json") is None
    assert partition_of("dlq/date=2026-12-05/source=clickstream/reason=late/") is None  # marker
    assert partition_of("dlq/date=2026-12-05/x.json") is None


def test_job_and_bridge_entries_parse_with_their_ids() -> None:
    job = {
        "detail": "failed clickstream expectation: invalid_json",
        "coordinates": {"topic": "clickstream", "partition": 3, "offset": 42, "timestamp": 1},
        "original_key_b64": base64.b64encode(b"\x00k").decode(),
        "original_b64": base64.b64encode(b"{broken").decode(),
    }
    key = "dlq/date=2026-12-05/source=clickstream/reason=invalid_json/part-1.json"
    body = json.dumps(job).encode() + b"\n\nnot json\n"
    first, second = parse_lines(key, body)
    assert (first.entry_id, first.original, first.original_key) == (
        "clickstream/3/42",
        b"{broken",
        b"\x00k",
    )
    assert first.kafka and first.reason == "invalid_json"
    assert not second.kafka and second.detail.startswith("unreadable DLQ line")
    bridge = DlqEntry(
        "s3_crm", "bad_email", "no @", b"1,x", 0, {"bucket": "b", "object_key": "k.csv", "row": 7}
    )
    (row,) = parse_lines(f"{bridge.partition()}/abc.jsonl", bridge.to_json().encode())
    assert row.entry_id == "s3://b/k.csv#7" and not row.kafka and row.original == b"1,x"
    assert replay_key(first.entry_id) != replay_key(row.entry_id)
