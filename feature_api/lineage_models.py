"""Request and response models of the lineage API.

``LineageEventIn`` accepts the OpenLineage event shapes (spec 2-0-x): a run event (``run``
+ ``job``), a job event (``job`` without ``run``: static lineage) or a dataset event
(``dataset``). Unknown fields and facets are kept as sent, as OpenLineage expects of a
consumer.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from core.lineage import Kind

Text = Annotated[str, Field(min_length=1, max_length=1000)]
EventType = Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]
MAX_DATASETS = 1000


class _Open(BaseModel):
    """OpenLineage field names (camelCase) as the spec spells them; extra fields kept."""

    model_config = ConfigDict(extra="allow")


class DatasetIn(_Open):
    namespace: Text
    name: Text
    facets: dict[str, Any] = Field(default_factory=dict)


class JobIn(_Open):
    namespace: Text
    name: Text
    facets: dict[str, Any] = Field(default_factory=dict)


class RunIn(_Open):
    runId: uuid.UUID
    facets: dict[str, Any] = Field(default_factory=dict)


class LineageEventIn(_Open):
    eventTime: AwareDatetime
    producer: Text
    eventType: EventType | None = None
    run: RunIn | None = None
    job: JobIn | None = None
    dataset: DatasetIn | None = None
    inputs: list[DatasetIn] = Field(default_factory=list, max_length=MAX_DATASETS)
    outputs: list[DatasetIn] = Field(default_factory=list, max_length=MAX_DATASETS)

    @model_validator(mode="after")
    def _one_shape(self) -> LineageEventIn:
        if self.job is None and self.dataset is None:
            raise ValueError("an OpenLineage event needs `job` (run/job event) or `dataset`")
        if self.run is not None and self.job is None:
            raise ValueError("a run event needs `job`")
        if self.dataset is not None and (self.job is not None or self.run is not None):
            raise ValueError("a dataset event carries `dataset` only, not `job` or `run`")
        return self

    @property
    def shape(self) -> Literal["run", "job", "dataset"]:
        if self.run is not None:
            return "run"
        return "job" if self.job is not None else "dataset"


class LineageEventStored(BaseModel):
    shape: Literal["run", "job", "dataset"]
    duplicate: bool = Field(description="The same event was stored before (nothing changed).")
    edges: int = Field(description="Graph edges this event added or refreshed.")


class NodePublic(BaseModel):
    id: str = Field(description="`job:<namespace>:<name>` or `dataset:<namespace>:<name>`.")
    ref: str = Field(description="`kind:label`, usable as the graph's `node` parameter.")
    kind: Kind
    label: str
    namespace: str
    name: str
    distance: int = Field(description="Hops from the nearest requested node (0: itself).")


class EdgePublic(BaseModel):
    source: str
    target: str
    last_run_id: uuid.UUID | None
    last_seen: AwareDatetime


class GraphPublic(BaseModel):
    roots: list[str]
    direction: str
    depth: int
    nodes: list[NodePublic]
    edges: list[EdgePublic]
