"""Last-writer-wins per (entity, attribute) (ARCHITECTURE.md, "Event time and the version").

The greatest :class:`core.version.Version` wins: ``(event_time, source_priority,
source_seq)`` compared element by element. Hence:

- equal event_time: the higher-priority source wins (pg_cdc > s3_crm); within one source
  the greater ``source_seq`` wins (CDC: (commit LSN, LSN); CRM: (export_ts, object_key,
  row); clickstream: (partition, offset));
- the order is total and arrival order never matters: applying the same updates in any
  order, with any duplicates, gives the same state;
- a redelivered update has the SAME version as the one already applied and changes
  nothing (matching the online store's guard: only a strictly greater version writes);
- deletes are versioned tombstones: a value with a later version resurrects the attribute,
  an older one (late or replayed) loses to the tombstone and does not.

A version identifies one source record, so two updates of one attribute with equal versions
carry equal values. Should the contract ever be broken, :func:`winner` still picks
deterministically (tombstone first, then the greater value) so it stays order-independent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from core.events import Source
from flink_jobs.logic.events import AttributeUpdate

Key = tuple[int, str]
"""(entity_id, attribute)."""


def _rank(update: AttributeUpdate) -> tuple[object, ...]:
    return (update.version, update.deleted, update.value or "")


def winner(updates: Iterable[AttributeUpdate]) -> AttributeUpdate:
    """The winning update of one (entity, attribute): the greatest version, whatever the
    input order. Raises ValueError on no updates or on updates of several keys."""
    best: AttributeUpdate | None = None
    for u in updates:
        if best is None:
            best = u
        elif (u.entity_id, u.attribute) != (best.entity_id, best.attribute):
            raise ValueError(
                f"winner() of mixed keys {(best.entity_id, best.attribute)} and "
                f"{(u.entity_id, u.attribute)}"
            )
        elif _rank(u) > _rank(best):
            best = u
    if best is None:
        raise ValueError("winner() of no updates")
    return best


def won_by(update: AttributeUpdate) -> Source:
    """The source whose record carries this update (from its version's priority)."""
    return update.version.source


def merge_all(updates: Iterable[AttributeUpdate]) -> dict[Key, AttributeUpdate]:
    """The winner of every (entity_id, attribute), tombstones included."""
    merged: dict[Key, AttributeUpdate] = {}
    for u in updates:
        key = (u.entity_id, u.attribute)
        kept = merged.get(key)
        if kept is None or _rank(u) > _rank(kept):
            merged[key] = u
    return merged


class LwwState:
    """Streaming last-writer-wins state: the current winner of each (entity, attribute).

    :meth:`apply` changes the state only for a strictly greater version; an equal version
    is a redelivery and a lower one is stale. Tombstones are kept (they must keep beating
    older values), so :meth:`values` reports a deleted attribute as None.
    """

    def __init__(self) -> None:
        self._current: dict[Key, AttributeUpdate] = {}

    def apply(self, update: AttributeUpdate) -> bool:
        """Apply one update; True if it became the attribute's value (state changed)."""
        key = (update.entity_id, update.attribute)
        kept = self._current.get(key)
        if kept is not None and not update.version > kept.version:
            return False
        self._current[key] = update
        return True

    def apply_all(self, updates: Iterable[AttributeUpdate]) -> list[AttributeUpdate]:
        """Apply in order; the updates that changed the state."""
        return [u for u in updates if self.apply(u)]

    def get(self, entity_id: int, attribute: str) -> AttributeUpdate | None:
        return self._current.get((entity_id, attribute))

    def values(self, entity_id: int) -> dict[str, str | None]:
        """Current value per attribute of one entity (None: deleted)."""
        keys = sorted(k for k in self._current if k[0] == entity_id)
        return {attr: self._current[(eid, attr)].value for eid, attr in keys}

    def snapshot(self) -> dict[Key, AttributeUpdate]:
        return dict(self._current)

    def __iter__(self) -> Iterator[AttributeUpdate]:
        return iter(self._current.values())

    def __len__(self) -> int:
        return len(self._current)
