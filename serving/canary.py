"""Which version answers an entity: the canary's deterministic share of the traffic.

An entity's bucket is a stable hash of its id into ``0 .. BUCKETS - 1`` (BLAKE2b, so it is
the same in every process, on every machine, after every restart: unlike Python's ``hash``).
With a canary holding ``share`` percent, the entities whose bucket is below
``share * BUCKETS / 100`` go to the canary, every other one to production. So:

- a given entity always sees the same version while the share stays;
- raising the share only moves entities from production to the canary (and lowering it
  back), never the other way round;
- over many entities the canary's part approaches the share (tested: 10,000 ids land
  within 1 % of 5 %).

Kubernetes does the same with the InferenceService's ``canaryTrafficPercent`` per request
(not per entity); the local router keeps the stronger per-entity rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

BUCKETS = 10_000
"""Resolution of the share: 0.01 %."""


def bucket(entity_id: int) -> int:
    """The entity's bucket, ``0 .. BUCKETS - 1``."""
    digest = hashlib.blake2b(str(entity_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def to_canary(entity_id: int, share: float | None) -> bool:
    """Whether the canary answers ``entity_id`` (``share``: percent; None: no canary)."""
    if not share:
        return False
    return bucket(entity_id) < round(share * BUCKETS / 100)


def split(entity_ids: Sequence[int], share: float | None) -> tuple[list[int], list[int]]:
    """Positions in ``entity_ids`` answered by production, and by the canary."""
    production: list[int] = []
    canary: list[int] = []
    for i, entity_id in enumerate(entity_ids):
        (canary if to_canary(entity_id, share) else production).append(i)
    return production, canary
