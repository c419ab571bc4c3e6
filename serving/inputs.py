"""A model's inputs as online features: which views and features it reads, and its input
rows for given entities.

A model trained on a streamfeat training set names its input columns as the training set
does, ``<view>__<feature>`` (batch/training_set.py), and MLflow keeps them in the model's
signature. The predictor reads exactly those features online, for the requested entities,
through the feature API's retrieval code (one Redis round trip for all views), and builds
the rows the model was trained on: a value that is missing or expired online is NaN, as a
null in the training set is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.features import FEATURE_VIEWS, Feature, FeatureView
from core.settings import StackSettings

log = logging.getLogger("streamfeat.serving")

ENTITY_INPUT = "entity_id"
"""The v2 input (INT64) and the v1 instance key naming the entities of a request."""
SEPARATOR = "__"
"""Between view and feature in a training set's (and so a model's) column names."""


class InputError(ValueError):
    """A model input that is not an online feature (the message names it)."""


@dataclass(frozen=True)
class ModelInputs:
    """The columns a model reads, in order, and the features they come from."""

    columns: tuple[str, ...]
    wanted: tuple[tuple[FeatureView, tuple[Feature, ...]], ...]
    """Per view (in first-use order), the features the columns read."""

    @property
    def views(self) -> tuple[str, ...]:
        return tuple(v.name for v, _ in self.wanted)


def model_inputs(columns: Sequence[str], views: Mapping[str, FeatureView]) -> ModelInputs:
    """The online features behind ``columns`` (``<view>__<feature>`` each); InputError for
    a column of another form, an unknown view or an unknown feature."""
    per_view: dict[str, list[Feature]] = {}
    for column in columns:
        view_name, sep, feature_name = column.partition(SEPARATOR)
        if not sep or not view_name or not feature_name:
            raise InputError(f"model input {column!r} is not <view>{SEPARATOR}<feature>")
        view = views.get(view_name)
        if view is None:
            raise InputError(f"model input {column!r}: no feature view {view_name!r}")
        try:
            feature = view.feature(feature_name)
        except KeyError as exc:
            raise InputError(
                f"model input {column!r}: view {view_name!r} has no feature {feature_name!r}"
            ) from exc
        per_view.setdefault(view_name, []).append(feature)
    wanted = tuple((views[name], tuple(fs)) for name, fs in per_view.items())
    return ModelInputs(tuple(columns), wanted)


def rows(
    inputs: ModelInputs, states: Sequence[Sequence[Mapping[str, Mapping[str, Any]]]]
) -> tuple[list[list[float]], list[dict[str, int | None]]]:
    """Per entity: its input row (floats, NaN where the value is not PRESENT) and the age
    in ms of each view's values (None: the view holds nothing for it). ``states``: per view
    of ``inputs.wanted``, per entity, feature name -> its answer (feature_api.service)."""
    n = len(states[0]) if states else 0
    out: list[list[float]] = [[] for _ in range(n)]
    ages: list[dict[str, int | None]] = [{} for _ in range(n)]
    by_column: list[tuple[int, str]] = []
    index = {view.name: i for i, (view, _) in enumerate(inputs.wanted)}
    for column in inputs.columns:
        view_name, _, feature_name = column.partition(SEPARATOR)
        by_column.append((index[view_name], feature_name))
    for e in range(n):
        for vi, feature_name in by_column:
            state = states[vi][e][feature_name]
            value = state["value"] if state["status"] == "PRESENT" else None
            out[e].append(math.nan if value is None else float(value))
        for vi, (view, features) in enumerate(inputs.wanted):
            ages[e][view.name] = states[vi][e][features[0].name]["age_ms"]
    return out, ages


def entity_ids_of(payload: Any) -> list[int]:
    """The entity ids of a v1 (dict) or v2 (InferRequest) request; ValueError otherwise."""
    if isinstance(payload, Mapping):
        instances = payload.get("instances")
        if not isinstance(instances, list):
            raise ValueError('v1 body must be {"instances": [<entity id> | {"entity_id": id}]}')
        ids = [i.get(ENTITY_INPUT) if isinstance(i, Mapping) else i for i in instances]
    else:
        found = [i for i in getattr(payload, "inputs", []) if i.name == ENTITY_INPUT]
        if not found:
            raise ValueError(f"v2 request needs an INT64 input named {ENTITY_INPUT!r}")
        data = found[0].data
        ids = list(data.tolist() if hasattr(data, "tolist") else data)
    good = [i for i in ids if isinstance(i, int) and not isinstance(i, bool) and i >= 0]
    if not ids or len(good) != len(ids):
        raise ValueError("entity ids must be a non-empty list of integers >= 0")
    return good


def feature_views(settings: StackSettings) -> dict[str, FeatureView]:
    """The views a model may read: the registry's (latest of each) over core/features.py's."""
    from feature_api.registry_snapshot import load
    from feature_api.registry_store import RegistryStore

    views = {v.name: v for v in FEATURE_VIEWS}
    try:
        views.update(load(RegistryStore(settings.postgres_dsn(), timeout_s=3.0)).views)
    except Exception as exc:  # the registry down: the code's views still serve
        log.warning("feature registry unreadable, serving code-declared views only: %s", exc)
    return views
