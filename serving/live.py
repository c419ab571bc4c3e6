"""Before traffic moves to a model version: is every feature it reads live online?

A version reads the features its signature names (serving/inputs.py). Each of their views
must be, at the moment of the move:

- registered in the feature registry (or declared in core/features.py), not deprecated, and
  at the version the model was trained on when the version records it (tag
  ``streamfeat.feature_views``, written at registration by :func:`record_feature_views`);
- being written: some of its entities in Redis (a bounded SCAN of the view's keys);
- fresh: the newest value among those sampled is younger than the view's TTL.

Otherwise the move is refused with the reasons (:class:`NotLive`), so a canary or a new
production version never answers from features nobody writes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

from core.features import FeatureView
from core.settings import StackSettings
from serving.inputs import feature_views, model_inputs

VIEWS_TAG = "streamfeat.feature_views"
"""Model-version tag: the feature views it reads and their registry versions, as JSON
(``{"user_activity": 1}``; null for a view declared in code and not registered)."""
SAMPLE = 50
"""Entities per view read to judge freshness."""
SCAN_ROUNDS = 200
"""SCAN calls per view at most (COUNT 1000 each): a bounded look, even at 500 GB."""


class NotLive(Exception):
    """A version's features are not all live online; ``problems`` says which and why."""

    def __init__(self, model: str, version: int, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            f"version {version} of {model!r} reads features that are not live online: "
            + "; ".join(problems)
        )


def version_columns(settings: StackSettings, name: str, version: int) -> list[str]:
    """The input columns of a registered version's signature (its MLmodel file only)."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_url)
    mlflow.set_registry_uri(settings.mlflow_url)
    info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    if info.signature is None or info.signature.inputs is None:
        return []
    return list(info.signature.inputs.input_names())


def view_problems(settings: StackSettings, view: FeatureView, now_ms: int) -> str | None:
    """Why ``view`` is not live (None: it is)."""
    import redis

    from core.online import RedisOnlineStore, key_parts
    from feature_api.freshness import row_values, version_fields

    prefix, suffix = key_parts(view)
    client = redis.Redis(host=settings.host, port=settings.ports.redis, socket_timeout=3)
    try:
        ids: list[str] = []
        cursor = 0
        for _ in range(SCAN_ROUNDS):
            got = client.scan(cursor, match=f"{prefix}*{suffix}", count=1000)
            cursor, keys = cast(tuple[int, list[bytes]], got)
            ids += [k.decode()[len(prefix) : -len(suffix) or None] for k in keys]
            if cursor == 0 or len(ids) >= SAMPLE:
                break
        if not ids:
            return f"{view.name}: nothing in the online store (is the feature job writing it?)"
        rows = RedisOnlineStore(client).read(view, ids[:SAMPLE], now_ms=now_ms)
    finally:
        client.close()
    features = view.features
    vfields = version_fields(view, features)
    newest = max(
        (
            state["event_time"]
            for row in rows
            for state in row_values(
                view=view, features=features, row=row, now_ms=now_ms, vfields=vfields
            ).values()
            if state["event_time"] is not None
        ),
        default=None,
    )
    if newest is None or now_ms - newest >= view.ttl_s * 1000:
        age = "no dated value" if newest is None else f"newest value {now_ms - newest} ms old"
        return f"{view.name}: not fresh ({age}, TTL {view.ttl_s} s)"
    return None


def registry_versions(settings: StackSettings) -> dict[str, tuple[int, bool]]:
    """Every registered feature view: (its latest version, deprecated)."""
    from feature_api.registry_store import Kind, RegistryStore

    records = RegistryStore(settings.postgres_dsn(), timeout_s=3.0).latest(Kind.FEATURE_VIEW)
    return {r.name: (r.version, r.deprecated_at is not None) for r in records}


def record_feature_views(settings: StackSettings, name: str, version: int) -> dict[str, int | None]:
    """Tag version ``version`` of ``name`` with the views its signature reads and their
    registry versions now (the ones it was trained on, when called at registration)."""
    import json

    from mlflow import MlflowClient

    columns = version_columns(settings, name, version)
    inputs = model_inputs(columns, feature_views(settings))
    registered = registry_versions(settings)
    views = {v: registered[v][0] if v in registered else None for v in inputs.views}
    client = MlflowClient(settings.mlflow_url, settings.mlflow_url)
    client.set_model_version_tag(name, str(version), VIEWS_TAG, json.dumps(views))
    return views


def describe(views: dict[str, int | None]) -> str:
    """``user_activity (registry v1), customer_orders (code)``."""
    return ", ".join(f"{v} (registry v{n})" if n else f"{v} (code)" for v, n in views.items())


def _trained_on(settings: StackSettings, name: str, version: int) -> dict[str, int | None]:
    import json

    from mlflow import MlflowClient

    client = MlflowClient(settings.mlflow_url, settings.mlflow_url)
    raw = client.get_model_version(name, str(version)).tags.get(VIEWS_TAG)
    return {} if raw is None else dict(json.loads(raw))


def check_live(settings: StackSettings, name: str, version: int) -> None:
    """Raise :class:`NotLive` unless every view version ``version`` of ``name`` reads is live."""
    columns = version_columns(settings, name, version)
    if not columns:
        raise NotLive(name, version, ["its signature names no input (log it with a signature)"])
    views = feature_views(settings)
    try:
        inputs = model_inputs(columns, views)
    except ValueError as exc:
        raise NotLive(name, version, [str(exc)]) from exc
    now = time.time_ns() // 1_000_000
    problems = []
    registered = registry_versions(settings)
    for view_name, trained in _trained_on(settings, name, version).items():
        held = registered.get(view_name)
        if held is not None and held[1]:
            problems.append(f"{view_name}: deprecated in the feature registry")
        elif trained is not None and (held is None or held[0] != trained):
            now_at = "not registered" if held is None else f"at v{held[0]}"
            problems.append(f"{view_name}: trained on v{trained}, the registry is {now_at}")
    problems += [p for view, _ in inputs.wanted if (p := view_problems(settings, view, now))]
    if problems:
        raise NotLive(name, version, problems)
