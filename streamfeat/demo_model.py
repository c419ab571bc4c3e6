"""The demo's model: purchase propensity from the demo data, trained on a point-in-time
training set, registered and moved to production (``streamfeat model train-demo``).

- Spine: up to ``per_entity`` instants per customer, each a moment the customer clicked
  (an offline ``user_activity`` row's event time).
- Features at each instant (point in time, batch/training_set.py): clicks in the last hour
  and the last 24 h, add-to-carts and purchases in the last 24 h (the demo's clicks are
  recent; its seeded orders are not, so order features would not be live online).
- Label: did the customer purchase in the hour after the instant: ``purchases_1h`` of
  ``user_activity`` as of one hour later, from a second build of the same spine shifted by an
  hour (complete tiles only, so it counts no event after that instant either).
- Model: serving/training.py's pipeline, logged with its signature (the columns name the
  online features the predictor reads), registered with the training set as its lineage,
  promoted staging -> canary -> production (each move checks its features are live online).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.features import USER_ACTIVITY
from core.settings import StackSettings

FEATURES = (
    "user_activity:clicks_1h",
    "user_activity:clicks_24h",
    "user_activity:carts_24h",
    "user_activity:purchases_24h",
)
"""As the training-set builder names them; its columns (and the model's inputs) are
``<view>__<feature>``."""
LABEL_FEATURE = "user_activity:purchases_1h"
WAIT_S = 90.0
"""How long to wait for the job's first offline files of user_activity."""
HORIZON_MS = 3_600_000
EXPERIMENT = "streamfeat-demo"


@dataclass(frozen=True)
class DemoModel:
    name: str
    version: int
    training_set: str
    rows: int
    positives: int


def _spines(settings: StackSettings, name: str, per_entity: int) -> tuple[str, str] | None:
    """The spines (entity_id, timestamp) on the S3 endpoint, from one read of the offline
    rows: per customer up to ``per_entity`` of its click instants, oldest first, and the
    same instants one :data:`HORIZON_MS` later (the label's). None: no rows yet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.objectstore import arrow_fs
    from core.offline import read_rows

    rows = read_rows(settings, view=USER_ACTIVITY.name)
    if rows.num_rows == 0:
        return None
    seen: dict[int, set[int]] = {}
    for r in rows.select(["entity_id", "event_time"]).to_pylist():
        seen.setdefault(r["entity_id"], set()).add(r["event_time"])
    entities, stamps = [], []
    for entity, times in sorted(seen.items()):
        for t in sorted(times)[:: max(1, len(times) // per_entity)][:per_entity]:
            entities.append(entity)
            stamps.append(t)
    out = []
    for kind, shift_ms in (("features", 0), ("label", HORIZON_MS)):
        key = f"training-sets/spines/{name}-{kind}.parquet"
        table = pa.table(
            {
                "entity_id": pa.array(entities, pa.int64()),
                "timestamp": [t + shift_ms for t in stamps],
            }
        )
        pq.write_table(table, f"{settings.s3.lake_bucket}/{key}", filesystem=arrow_fs(settings))
        out.append(f"s3://{settings.s3.lake_bucket}/{key}")
    return out[0], out[1]


def train(
    settings: StackSettings,
    *,
    registry: object,
    live: Callable[[str, int], None],
    per_entity: int = 5,
    progress: Callable[[str], None] = print,
) -> DemoModel:
    """Build the training set, fit, register and promote the stack's ``serving_model``."""
    import numpy as np

    from batch.iceberg import commit
    from batch.point_in_time import TrainingSetError
    from batch.training_set import build
    from serving.live import describe, record_feature_views
    from serving.registry import ModelRegistry
    from serving.stages import Stage
    from serving.training import fit_and_log

    assert isinstance(registry, ModelRegistry)
    name = settings.serving_model
    set_name = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    progress("spine: click instants per customer from the offline table ...")
    deadline = time.monotonic() + WAIT_S
    while (spines := _spines(settings, set_name, per_entity)) is None:
        if time.monotonic() > deadline:
            raise TrainingSetError(
                f"no {USER_ACTIVITY.name} rows in the offline files after {WAIT_S:.0f} s "
                "(fix: deploy the feature job and produce clicks: `make demo`)"
            )
        progress("  waiting for the feature job's first offline files ...")
        time.sleep(5.0)
    added = commit(settings)
    progress(f"offline table: {added.added} file(s) committed, snapshot {added.snapshot_id}")
    spine, label_spine = spines
    features = build(
        settings, name=set_name, spine=spine, features=list(FEATURES), progress=progress
    )
    labels = build(
        settings,
        name=f"{set_name}-label",
        spine=label_spine,
        features=[LABEL_FEATURE],
        progress=progress,
    )
    frame = _read(settings, features.uri).to_pandas()
    later = _read(settings, labels.uri).to_pandas()
    later["timestamp"] = later["timestamp"] - HORIZON_MS
    label = _column(LABEL_FEATURE)
    frame = frame.merge(later[["entity_id", "timestamp", label]], on=["entity_id", "timestamp"])
    y = (frame[label].fillna(0).to_numpy() > 0).astype(int)
    if len(set(y.tolist())) < 2:  # one class only: the demo data has no signal to learn
        clicks = frame[_column(FEATURES[0])].fillna(0).to_numpy()
        y = (clicks > np.median(clicks)).astype(int)
        progress("  ! one label class only: learning 'more clicks than the median' instead")
    uri = fit_and_log(
        settings,
        frame[[_column(f) for f in FEATURES]].astype(float),
        y.tolist(),
        experiment=EXPERIMENT,
        tags={"streamfeat.training_set": f"{set_name}/{features.run_id}"},
    )
    version = registry.register(name=name, model_uri=uri, training_sets=[set_name]).version
    views = record_feature_views(settings, name, version)
    progress(f"  reads {describe(views)}")
    progress(f"registered {name} version {version} ({len(y)} rows, {int(y.sum())} positive)")
    for stage in (Stage.STAGING, Stage.CANARY, Stage.PRODUCTION):
        registry.promote(name, version, stage, live=live)
    progress(f"{name} version {version} in production; waiting for the endpoint to serve it ...")
    _await_serving(settings, name, version)
    return DemoModel(name, version, set_name, len(y), int(y.sum()))


def _await_serving(settings: StackSettings, name: str, version: int) -> None:
    """Until the model endpoint answers with ``version`` (the production predictor follows
    its alias within seconds); RuntimeError naming the log after :data:`WAIT_S`."""
    import httpx

    url = f"{settings.models_url}/v1/models/{name}:predict"
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            r = httpx.post(url, json={"instances": [1]}, timeout=5)
            if r.status_code == 200 and r.json()["versions"] == [version]:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise RuntimeError(
        f"the model endpoint {settings.models_url} did not serve {name} version {version} "
        f"within {WAIT_S:.0f} s (see .local/stack/logs/predictor.log)"
    )


def _column(feature: str) -> str:
    """A training set's column for ``view:feature``."""
    view, _, name = feature.partition(":")
    return f"{view}__{name}"


def _read(settings: StackSettings, uri: str) -> Any:
    import pyarrow.parquet as pq

    from core.objectstore import arrow_fs

    return pq.read_table(uri.removeprefix("s3://"), filesystem=arrow_fs(settings))
