"""Allowed lateness per feature view: which views share one watermark.

Flink SQL has one watermark per source table, and a record behind it is late for every
operator downstream. So views with different allowed lateness read their source through
different source tables — a *lateness class* each, with its own watermark bound, gate and
DLQ entries for what is late for it. Views with equal lateness share one class (one read,
one parse), which is the default: every view at ``JobConfig.max_out_of_orderness_ms``.

The class of the first branch is the *primary* one: it alone sends the records that fail
an expectation (bad JSON, missing fields) to the DLQ, so they are filed once. A record late
for several classes gets one ``late`` entry per class, each naming the views it missed.

Views computed together (the order views, read through one source table) form one branch
and must agree on their lateness: their rows come from one watermark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.features import FeatureView

Branch = tuple[FeatureView, ...]
"""Views one part of the plan computes together."""


@dataclass(frozen=True)
class LatenessClass:
    suffix: str
    """Appended to the names of this class's tables and views ('' for the primary class)."""
    lateness_ms: int
    views: tuple[FeatureView, ...]

    @property
    def primary(self) -> bool:
        return self.suffix == ""

    @property
    def view_names(self) -> str:
        return ", ".join(v.name for v in self.views)


def view_lateness(view: FeatureView, *, default_ms: int, overrides: Mapping[str, int]) -> int:
    """A view's allowed lateness: the job's override, else its declaration, else the
    default."""
    if view.name in overrides:
        return overrides[view.name]
    return default_ms if view.allowed_lateness_ms is None else view.allowed_lateness_ms


def branch_lateness(branch: Branch, *, default_ms: int, overrides: Mapping[str, int]) -> int:
    """The lateness all views of ``branch`` share (ValueError naming them when they differ)."""
    values = {v.name: view_lateness(v, default_ms=default_ms, overrides=overrides) for v in branch}
    if len(set(values.values())) > 1:
        shown = ", ".join(f"{name} {ms} ms" for name, ms in values.items())
        raise ValueError(
            f"views computed together must have one allowed lateness, got {shown}: set them "
            "equal (FeatureView.allowed_lateness_ms or JobConfig.allowed_lateness_ms)"
        )
    return next(iter(values.values()))


def lateness_classes(
    branches: Sequence[Branch], *, default_ms: int, overrides: Mapping[str, int]
) -> list[LatenessClass]:
    """The classes of one source's branches, the first branch's class first (primary)."""
    by_ms: dict[int, list[FeatureView]] = {}
    for branch in branches:
        ms = branch_lateness(branch, default_ms=default_ms, overrides=overrides)
        by_ms.setdefault(ms, []).extend(branch)
    return [
        LatenessClass("" if i == 0 else f"_l{ms}", ms, tuple(views))
        for i, (ms, views) in enumerate(by_ms.items())
    ]


def class_of(classes: Sequence[LatenessClass], view: FeatureView) -> LatenessClass:
    return next(c for c in classes if view in c.views)
