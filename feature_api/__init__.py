"""The FastAPI Feature Store API: retrieval, registration, lineage."""
