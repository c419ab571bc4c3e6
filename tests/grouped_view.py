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
    groups=tuple((w, tuple(f"{p}_{w}" for p in ("clicks", "carts", "purchases"))) for w in WINDOWS),
)
