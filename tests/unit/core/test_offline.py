"""Which objects under the offline prefix are committed part files (core.offline.PART_FILE)."""

from __future__ import annotations

import pytest

from core.offline import PART_FILE

PART = "part-6bf13e7e-8cf7-4028-981c-4fe159d31323-0-3"


@pytest.mark.parametrize("name", [PART, PART.replace("-0-3", "-12-40") + ".parquet"])
def test_committed_part_files_match(name: str) -> None:
    assert PART_FILE.fullmatch(name)


@pytest.mark.parametrize(
    "name",
    [
        PART + "-9ec3975b-1e34-41b6-b66c-0c17396dc4ca",  # S3 writer's in-flight object
        PART + "-stub",
        "_" + PART + "_tmp_9ec3975b-1e34-41b6-b66c-0c17396dc4ca",
        "." + PART + ".inprogress",
        "_SUCCESS",
    ],
)
def test_transient_and_marker_objects_do_not(name: str) -> None:
    assert not PART_FILE.fullmatch(name)
