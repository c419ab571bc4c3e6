"""A view-scoped view with version groups (one per window), as a registered view may declare
them: features written by separate operators, each group with its own version. The code's
views compute every window in one row and declare none."""

from __future__ import annotations

from dataclasses import replace

from core.features import USER_ACTIVITY, WINDOWS

GROUPED_ACTIVITY = replace(
    USER_ACTIVITY,
    name="grouped_activity",
    short="ga",
    groups=tuple(
        (w.name, tuple(f"{p}_{w.name}" for p in ("clicks", "carts", "purchases"))) for w in WINDOWS
    ),
    aggregations=None,  # values stored as they are, not tiles
    ttl_s=86_400,
)

PLAIN_ACTIVITY = replace(
    USER_ACTIVITY, name="plain_activity", short="pla", aggregations=None, ttl_s=86_400
)
"""user_activity's features as one view-scoped row (values stored as they are): the online
store's row contract, apart from tiles."""
