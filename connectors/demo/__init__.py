"""The deterministic demo domain (e-commerce) that seeds the pipeline.

Everything here is generated from :class:`connectors.demo.config.DemoConfig`: the same
config (seed, sizes, ``start_ms``) gives byte-identical customers, orders, clickstream
records and CRM export files on every run and machine. No wall clock, no global random.
``generator`` is pure (no I/O); ``migrate`` and ``seed`` write to PostgreSQL.
"""
