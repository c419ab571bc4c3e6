"""Request and response models of the API: retrieval, then the registry (whose request
bodies are the specs of :mod:`core.registry` themselves: one definition of a valid spec)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.events import Source
from core.registry import NO_NUL, EntitySpec, FeatureViewSpec, Outcome
from feature_api.freshness import Status

MAX_ENTITY_ID = 2**53 - 1
"""Largest entity id the API takes: RFC 8259 §6 calls only integers within ±(2**53 - 1)
interoperable in JSON (JavaScript clients, float-based parsers and schema-driven generators
silently round past it), so ids beyond it would be misread by some client."""
EntityId = Annotated[
    int, Field(ge=0, le=MAX_ENTITY_ID, description="The entity's join key (JSON-safe integer).")
]


class FeatureValuePublic(BaseModel):
    """One feature of one entity, with how fresh it is."""

    value: Any = Field(description="The value; null when MISSING or EXPIRED.")
    status: Status
    event_time: int | None = Field(description="Event time of the value, epoch ms UTC.")
    age_ms: int | None = Field(description="Served time minus event_time (negative: skew).")
    source: Source | None = Field(description="Source whose version won (last-writer-wins).")


class EntityFeaturesPublic(BaseModel):
    entity_id: int
    features: dict[str, FeatureValuePublic]


class FeaturesPublic(BaseModel):
    """Answer for one entity."""

    view: str
    served_at: int = Field(description="When the values were judged, epoch ms UTC.")
    entity_id: int
    features: dict[str, FeatureValuePublic]


class BatchFeaturesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_ids: list[EntityId] = Field(min_length=1)
    features: list[str] | None = Field(
        None, description="Long feature names; null or absent means every feature of the view."
    )
    as_of: int | None = Field(
        None,
        ge=0,
        le=MAX_ENTITY_ID,
        description="Windowed views only: answer as of this past instant (epoch ms, within the "
        "last hour) from complete tiles; absent: live, counting the open head tile.",
    )
    format: Literal["full", "compact"] = Field(
        "full",
        description="`full`: value, status, event time, age and source per feature. "
        "`compact`: per entity the values in the order of `features`, and the freshness once "
        "per version field (`meta`) -- about a sixth of the bytes for a batch of 100.",
    )


class BatchFeaturesPublic(BaseModel):
    """Answer for a batch, in the order of ``entity_ids`` (duplicates answered each time)."""

    view: str
    served_at: int
    results: list[EntityFeaturesPublic]


class FreshnessMeta(BaseModel):
    """Freshness of the values one version field dates (a compact answer's ``meta``)."""

    features: list[int] = Field(description="Indexes into the answer's `features`.")
    event_time: int | None = Field(description="Event time of these values, epoch ms UTC.")
    age_ms: int | None = Field(description="Served time minus event_time (negative: skew).")
    source: Source | None = Field(description="Source whose version won (last-writer-wins).")
    expired: bool = Field(
        description="Older than the view's TTL by event time: the values are withheld (null)."
    )


class CompactEntityPublic(BaseModel):
    entity_id: int
    values: list[Any] = Field(
        description="In the order of `features`; null when MISSING, or withheld when its meta "
        "is expired."
    )
    meta: list[FreshnessMeta]


class CompactBatchPublic(BaseModel):
    """A batch answered in the compact form (``"format": "compact"``), in the order of
    ``entity_ids``."""

    view: str
    served_at: int
    features: list[str] = Field(description="The feature names `values` follow.")
    results: list[CompactEntityPublic]


class ErrorBody(BaseModel):
    code: str
    message: str
    detail: dict[str, Any] = {}


class ErrorPublic(BaseModel):
    error: ErrorBody


# ---- registry ---------------------------------------------------------------------------


class DefinitionState(BaseModel):
    """What every registered version reports beside its spec."""

    name: str
    version: int = Field(description="This version (1 = first registration).")
    latest_version: int
    status: Literal["active", "deprecated"]
    changes: list[str] = Field(description="How this version differs from the previous one.")
    created_at: datetime
    created_by: str = Field(description="Subject of the credentials that registered it.")
    deprecated_at: datetime | None = None
    deprecated_by: str | None = None
    deprecation_reason: str | None = None


class EntityPublic(DefinitionState):
    spec: EntitySpec


class FeatureViewPublic(DefinitionState):
    spec: FeatureViewSpec
    in_code: bool = Field(
        description="Declared in core/features.py: retrieval then serves the code declaration "
        "(the one the feature job computes) whatever the registry holds."
    )


class EntityRegistrationPublic(EntityPublic):
    outcome: Outcome


class FeatureViewRegistrationPublic(FeatureViewPublic):
    outcome: Outcome


class DeprecateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        "", max_length=500, pattern=NO_NUL, description="Why; shown to readers of it."
    )
