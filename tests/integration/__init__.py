import os

JOB_PARALLELISM = int(os.environ.get("STREAMFEAT_TEST_JOB_PARALLELISM", "2"))
"""The parallelism of the feature job in the integration tests (docs/operations.md)."""
