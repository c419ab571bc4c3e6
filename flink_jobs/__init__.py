"""The one PyFlink feature job; pure logic lives in flink_jobs.logic (no pyflink import)."""
