"""Offline rows as the feature job writes them (core/offline.py's columns), for batch tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from core.features import FEATURE_VIEWS
from core.version import click_version
from tests.grouped_view import GROUPED_ACTIVITY

GROUPED = GROUPED_ACTIVITY
"""A view whose windows are separate version groups (offline ``grp`` = the window)."""
VIEWS = (*FEATURE_VIEWS, GROUPED)

ROW_SCHEMA = pa.schema(
    [
        ("view", pa.string()),
        ("entity_id", pa.int64()),
        ("grp", pa.string()),
        ("features", pa.map_(pa.string(), pa.string())),
        ("event_time", pa.int64()),
        ("version", pa.string()),
    ]
)


def row(
    view: str,
    entity_id: int,
    grp: str,
    features: dict[str, str | None],
    event_time: int,
    offset: int = 0,
    version: str | None = None,
) -> dict[str, Any]:
    """One offline row; the version is a clickstream version at (event_time, offset) unless
    given."""
    return {
        "view": view,
        "entity_id": entity_id,
        "grp": grp,
        "features": list(features.items()),
        "event_time": event_time,
        "version": version or click_version(event_time, 0, offset).encode(),
    }


def table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=ROW_SCHEMA)
