"""The offline suite and the partition bookkeeping of batch/quality.py (the validation
itself runs on the stack: tests/integration/test_training_set.py)."""

from __future__ import annotations

import json

import great_expectations as gx

from batch.quality import SUITE, SUITE_PATH, partitions_of, result_key


def test_the_offline_suite_is_a_great_expectations_suite_with_a_warning() -> None:
    document = json.loads(SUITE_PATH.read_text())
    suite = gx.ExpectationSuite(**document)
    assert suite.name == SUITE
    severities = {e.expectation_type: str(e.severity.value) for e in suite.expectations}
    assert severities["expect_compound_columns_to_be_unique"] == "warning"
    assert severities["expect_table_row_count_to_be_between"] == "critical"


def test_partitions_of_part_files() -> None:
    files = [
        "lake/offline/feature_rows/dt=2026-03-01/entity_type=customer/part-a-0-1",
        "lake/offline/feature_rows/dt=2026-03-01/entity_type=customer/part-b-0-2",
        "lake/offline/feature_rows/dt=2026-03-02/entity_type=order/part-c-0-1",
        "lake/offline/feature_rows/elsewhere/part-d",
    ]
    assert partitions_of(files) == [("2026-03-01", "customer"), ("2026-03-02", "order")]
    assert result_key("2026-03-01", "customer") == (
        "dq-validations/suite=offline_feature_rows/date=2026-03-01/entity=customer.json"
    )
