"""One router per resource: ``features`` (retrieval), ``health`` (probes and metrics).
Registration and lineage come as ``registry`` and ``lineage`` routers."""
