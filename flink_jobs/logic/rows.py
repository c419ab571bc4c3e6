"""The output of the feature logic: one row of a feature view for one entity."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.version import Version

FeatureValue = int | str | bool | None


@dataclass(frozen=True, slots=True)
class FeatureRow:
    """Values of one feature view (keyed by the features' LONG names) for one entity, as
    of ``event_time`` (epoch ms UTC). ``version`` orders the rows of one (view, entity)
    consistently with ``event_time``: the online store keeps the row with the greatest
    version, so it always holds the latest row whatever order they are written in."""

    view: str
    entity_id: int
    event_time: int
    version: Version
    values: dict[str, FeatureValue]


def latest_per_entity(rows: Iterable[FeatureRow]) -> dict[int, FeatureRow]:
    """For each entity the row with the greatest (event_time, version): what the online
    store holds after all rows were written, in any order."""
    latest: dict[int, FeatureRow] = {}
    for row in rows:
        kept = latest.get(row.entity_id)
        if kept is None or (row.event_time, row.version) > (kept.event_time, kept.version):
            latest[row.entity_id] = row
    return latest
