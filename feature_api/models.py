"""Request and response models of the retrieval API (the registry and lineage add theirs)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from core.events import Source
from feature_api.freshness import Status

EntityId = Annotated[int, Field(ge=0, le=2**63 - 1, description="The entity's join key.")]


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


class BatchFeaturesPublic(BaseModel):
    """Answer for a batch, in the order of ``entity_ids`` (duplicates answered each time)."""

    view: str
    served_at: int
    results: list[EntityFeaturesPublic]


class ErrorBody(BaseModel):
    code: str
    message: str
    detail: dict[str, Any] = {}


class ErrorPublic(BaseModel):
    error: ErrorBody
