"""Benchmarks on the running local stack.

The box is shared and noisy, so every run measures its own baselines (raw Redis, Kafka and
Flink SQL figures) beside the platform's figures; compare within one report, never across
runs. Speed is reported, never asserted in tests.
"""
