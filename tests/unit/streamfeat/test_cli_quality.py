"""The gate counts as `streamfeat job status` and `dlq ls` print them."""

from __future__ import annotations

from streamfeat.cli_ingest import quality_lines


def test_quality_lines_put_good_first_then_reasons_by_count() -> None:
    lines = quality_lines(
        {
            ("clickstream", "good"): 1200,
            ("clickstream", "late"): 3,
            ("clickstream", "invalid_json"): 7,
            ("orders", "good"): 5,
        }
    )
    assert lines == [
        "  clickstream: 1,200 good, 10 to the DLQ (invalid_json 7, late 3)",
        "  orders: 5 good, 0 to the DLQ",
    ]
