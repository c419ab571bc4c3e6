"""Registry definitions and the rules for changing them: pure, no database.

An entity or feature view is registered as a *spec* (a validated pydantic model, stored as
JSON). Specs are made from the code declarations in :mod:`core.features` (what
``streamfeat apply`` registers) or sent to the API; :func:`to_feature_view` turns a spec back
into the :class:`core.features.FeatureView` the online store reads, so a view registered only
through the API is retrievable like a declared one.

Changing a registered definition makes a new version when every change is *compatible* —
readers of the previous version still read the same fields with the same meaning of types —
and is refused otherwise (:func:`diff_views`, :func:`diff_entities` say why):

- incompatible: removing a feature, changing a feature's dtype or short name, changing the
  view's entity, short name, version scope or a feature's version group; for an entity,
  changing its join key or short name. Each would make stored values unreadable or
  misread (the online store is keyed and typed by exactly these).
- compatible: adding a feature, changing descriptions, owner, tags, TTL, sources or the
  transformation text (the job's definition is versioned with the registry entry).

Short names (``short``) are the online store's field and key names. A spec may omit them:
:func:`fill_shorts` derives compact feature shorts deterministically from the long names
(``clicks_1h`` -> ``c1h``: a field name is repeated in every stored hash), keeps the previous
version's short names so an update never moves stored data, and never derives one that an
explicit or previously stored short holds. A view's or entity's short defaults to its name:
it appears once per key, not once per field, and must stay unique across the registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from core.events import Source
from core.features import DType, Entity, Feature, FeatureView, Lags, windowed_features
from core.windows import EVENT_SOURCES, AggFunction, Aggregations, Filter, Measure, Window


class Outcome(StrEnum):
    """What a registration did (``streamfeat apply`` prints it per definition)."""

    CREATED = "created"
    NEW_VERSION = "new_version"
    UNCHANGED = "unchanged"
    DEPRECATED = "deprecated"


CODE_OWNER = "streamfeat"
"""Owner recorded for definitions registered from core/features.py."""
CODE_TRANSFORMATION = "streamfeat feature job (flink_jobs), declared in core/features.py"

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", min_length=1, max_length=63),
]
"""Lower snake case: safe in URLs, SQL identifiers and Redis keys."""
Short = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]*$", min_length=1, max_length=63)
]
"""Online store name: never starts with ``_`` nor holds ``@``, so it never collides with the
reserved fields (``_v``, ``_t``, ``<short>@``, ``<group>@``). Keep feature shorts short:
they are repeated in every stored hash."""
NO_NUL = r"^[^\x00]*$"
"""Free text may hold anything but NUL, which PostgreSQL text and JSONB cannot store."""
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=NO_NUL)]
TagValue = Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)]
Owner = Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)]
Text = Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)]
MAX_TTL_S = 366 * 86_400
MAX_LATENESS_MS = 7 * 86_400_000
"""The clickstream's retention: the job cannot wait longer for a straggler than Kafka keeps it."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntityBody(_Spec):
    """An entity without its name (the body of an update: the name is in the URL)."""

    join_key: Name = Field(description="Column/field that identifies an instance.")
    short: Short | None = Field(
        None, description="Online key part; derived from the name when absent."
    )
    description: Text = ""
    owner: Owner = ""
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, max_length=50)


class EntitySpec(EntityBody):
    name: Name


class FeatureSpec(_Spec):
    name: Name
    dtype: DType
    short: Short | None = Field(
        None, description="Online field name; derived from the name when absent."
    )
    description: Text = ""


class GroupSpec(_Spec):
    """Features a view-scoped view writes together, under one version field ``<name>@``."""

    name: Short
    features: list[Name] = Field(min_length=1)


class FilterSpec(_Spec):
    field: Name
    values: list[Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)]] = Field(
        min_length=1, max_length=100
    )


class MeasureSpec(_Spec):
    name: Name
    short: Short
    function: AggFunction = Field(
        description="last: the value of the window's latest event (ties in time: the greater "
        "value); approx_distinct: distinct values of `column`, estimated (HyperLogLog, 64 "
        "registers: ~10 % standard error at any count)."
    )
    column: Name | None = Field(
        None,
        description="The int64 field summed, compared or taken (last); for approx_distinct "
        "the field of any type whose distinct values are counted.",
    )
    where: FilterSpec | None = None
    description: Text = ""


class WindowSpec(_Spec):
    name: Short = Field(description="Feature name suffix, e.g. `1h`.")
    length_ms: int = Field(ge=1, le=MAX_LATENESS_MS * 5)
    tile_ms: int = Field(ge=1000)


class AggregationsSpec(_Spec):
    """A windowed view (core.windows): measures over windows, stored as tiles. Its features
    are derived (``<measure>_<window>``, int64)."""

    source: Literal[tuple(EVENT_SOURCES)] = Field(  # type: ignore[valid-type]
        description="Event source the feature job aggregates."
    )
    measures: list[MeasureSpec] = Field(min_length=1, max_length=50)
    windows: list[WindowSpec] = Field(min_length=1, max_length=20)
    where: FilterSpec | None = None

    def declaration(self) -> Aggregations:
        """The core.windows declaration (ValueError when the measures or windows do not fit
        its source or its tile rules)."""

        def flt(f: FilterSpec | None) -> Filter | None:
            return None if f is None else Filter(f.field, tuple(f.values))

        return Aggregations(
            source=EVENT_SOURCES[self.source],
            measures=tuple(
                Measure(m.name, m.short, m.function, m.column, flt(m.where), m.description)
                for m in self.measures
            ),
            windows=tuple(Window(w.name, w.length_ms, w.tile_ms) for w in self.windows),
            where=flt(self.where),
        )


def aggregations_spec(aggs: Aggregations) -> AggregationsSpec:
    def flt(f: Filter | None) -> FilterSpec | None:
        return None if f is None else FilterSpec(field=f.field, values=list(f.values))

    return AggregationsSpec(
        source=aggs.source.name,
        measures=[
            MeasureSpec(
                name=m.name,
                short=m.short,
                function=m.function,
                column=m.column,
                where=flt(m.where),
                description=m.description,
            )
            for m in aggs.measures
        ],
        windows=[
            WindowSpec(name=w.name, length_ms=w.length_ms, tile_ms=w.tile_ms) for w in aggs.windows
        ],
        where=flt(aggs.where),
    )


class LagsSpec(_Spec):
    """core.features.Lags: lag features derived from an entity's two latest events."""

    value: Name = Field(description="Feature: the latest event's value.")
    prev: Name = Field(description="Feature: the value of the event before it.")
    since_ms: Name = Field(description="Feature: latest event time - the previous one's.")
    delta: Name | None = Field(None, description="Feature: latest value - previous value.")
    horizon_ms: int = Field(
        Lags.horizon_ms,
        gt=0,
        description="The previous event counts only if at most this long before the latest.",
    )

    def declaration(self) -> Lags:
        return Lags(self.value, self.prev, self.since_ms, self.delta, self.horizon_ms)


def lags_spec(lags: Lags) -> LagsSpec:
    return LagsSpec(
        value=lags.value,
        prev=lags.prev,
        since_ms=lags.since_ms,
        delta=lags.delta,
        horizon_ms=lags.horizon_ms,
    )


class FeatureViewBody(_Spec):
    """A feature view without its name (the body of an update)."""

    entity: Name = Field(description="Name of a registered entity.")
    features: list[FeatureSpec] = Field(min_length=1, max_length=500)
    sources: list[Source] = Field(
        min_length=1,
        json_schema_extra={"uniqueItems": True},
        description="Sources feeding the view; each has a priority in the version order.",
    )
    transformation: Text = Field("", description="How the features are computed.")
    ttl_s: int = Field(86_400, ge=1, le=MAX_TTL_S, description="Online TTL from event time.")
    allowed_lateness_ms: int | None = Field(
        None,
        ge=0,
        le=MAX_LATENESS_MS,
        description="How far behind its source's newest event time an event may arrive and "
        "still count in the view; later ones go to the dead-letter queue as `late`. Null: "
        "the feature job's default (its bounded out-of-orderness).",
    )
    version_scope: Literal["view", "attribute"] = "view"
    groups: list[GroupSpec] = Field(
        default_factory=list,
        description="View scope only: features written together under one version field.",
    )
    short: Short | None = Field(None, description="Online key part; the name when absent.")
    owner: Owner = ""
    description: Text = ""
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, max_length=50)
    aggregations: AggregationsSpec | None = Field(
        None,
        description="A windowed view: its features are these measures over these windows, "
        "kept as tiles and answered as of each read (the features must be the derived ones).",
    )
    lags: LagsSpec | None = Field(
        None,
        description="A lag view: its features are derived from each entity's two latest "
        "events (each feature named once: the value, the previous value, the time since it, "
        "optionally the difference).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> FeatureViewBody:
        names = [f.name for f in self.features]
        if self.aggregations is not None:
            derived = windowed_features(self.aggregations.declaration())
            got = [(f.name, f.dtype) for f in self.features]
            want = [(f.name, f.dtype) for f in derived]
            if sorted(got) != sorted(want):
                raise ValueError(
                    f"a windowed view's features are its measures x windows: {want}, got {got}"
                )
            if self.groups or self.version_scope != "view":
                raise ValueError("a windowed view has view scope and no groups")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate feature names: {sorted(_dupes(names))}")
        if self.lags is not None:
            named = list(self.lags.declaration().names)
            if sorted(named) != sorted(names):
                raise ValueError(f"a lag view's features are its lags {named}, got {names}")
        shorts = [f.short for f in self.features if f.short is not None]
        if len(set(shorts)) != len(shorts):
            raise ValueError(f"duplicate feature short names: {sorted(_dupes(shorts))}")
        if len(set(self.sources)) != len(self.sources):
            raise ValueError("duplicate sources")
        if self.groups and self.version_scope != "view":
            raise ValueError("groups are for view-scoped views only")
        grouped = [m for g in self.groups for m in g.features]
        if len(set(grouped)) != len(grouped):
            raise ValueError("a feature is in more than one group")
        unknown = sorted(set(grouped) - set(names))
        if unknown:
            raise ValueError(f"groups name unknown features: {unknown}")
        group_names = [g.name for g in self.groups]
        if len(set(group_names)) != len(group_names):
            raise ValueError("duplicate group names")
        return self


class FeatureViewSpec(FeatureViewBody):
    name: Name


def _dupes(items: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    return {x for x in items if x in seen or seen.add(x)}  # type: ignore[func-returns-value]


# ---- short names --------------------------------------------------------------------------


def derive_short(name: str, taken: Iterable[str]) -> str:
    """Initials of the snake-case words, digits kept (``clicks_1h`` -> ``c1h``,
    ``last_session_duration_s`` -> ``lsds``), then ``2``, ``3``... until not ``taken``.
    Deterministic for a given name and ``taken`` set."""
    taken = set(taken)
    base = "".join(p if p[0].isdigit() else p[0] for p in name.split("_") if p)[:14]
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}{n}"
    return candidate


def fill_shorts(spec: FeatureViewSpec, previous: FeatureViewSpec | None = None) -> FeatureViewSpec:
    """``spec`` with every short name set: given ones kept, a feature that existed in
    ``previous`` keeps its short name there, the rest derived (in declaration order) from
    names not already used. The view's short defaults to the previous one, else its name.

    Every short ``previous`` used is reserved before anything is derived — also for a feature
    declared *after* a new one, and for a removed one (stored hashes still hold its field) —
    so a derived short never lands on a stored field. An explicit short that does is kept as
    given and refused by :func:`diff_views` (the caller asked for it; it must not be renamed
    silently). Deterministic: the same ``spec`` and ``previous`` give the same result."""
    before = {f.name: f.short for f in previous.features} if previous else {}
    taken = {f.short for f in spec.features if f.short} | {s for s in before.values() if s}
    features = []
    for f in spec.features:
        short = f.short or before.get(f.name) or derive_short(f.name, taken)
        taken.add(short)
        features.append(f.model_copy(update={"short": short}))
    view_short = spec.short or (previous.short if previous else None) or spec.name
    return spec.model_copy(update={"features": features, "short": view_short})


def fill_entity_short(spec: EntitySpec, previous: EntitySpec | None = None) -> EntitySpec:
    short = spec.short or (previous.short if previous else None) or spec.name
    return spec.model_copy(update={"short": short})


# ---- from and to the code declarations -----------------------------------------------------


def entity_spec(entity: Entity) -> EntitySpec:
    return EntitySpec(
        name=entity.name,
        join_key=entity.join_key,
        short=entity.short,
        description=entity.description,
        owner=CODE_OWNER,
    )


def view_spec(view: FeatureView) -> FeatureViewSpec:
    return FeatureViewSpec(
        name=view.name,
        entity=view.entity.name,
        features=[
            FeatureSpec(name=f.name, dtype=f.dtype, short=f.short, description=f.description)
            for f in view.features
        ],
        sources=list(view.sources),
        transformation=CODE_TRANSFORMATION,
        ttl_s=view.ttl_s,
        allowed_lateness_ms=view.allowed_lateness_ms,
        version_scope=view.version_scope,
        groups=[GroupSpec(name=g, features=list(members)) for g, members in view.groups],
        short=view.short,
        owner=CODE_OWNER,
        description=view.description,
        tags=dict(view.tags),
        aggregations=None if view.aggregations is None else aggregations_spec(view.aggregations),
        lags=None if view.lags is None else lags_spec(view.lags),
    )


def to_entity(spec: EntitySpec) -> Entity:
    return Entity(spec.name, spec.short or spec.name, spec.join_key, spec.description)


def to_feature_view(spec: FeatureViewSpec, entity: EntitySpec) -> FeatureView:
    """The online-store view of a registered spec (shorts must be filled: stored specs are)."""
    if entity.name != spec.entity:
        raise ValueError(f"view {spec.name!r} is on entity {spec.entity!r}, not {entity.name!r}")
    return FeatureView(
        name=spec.name,
        short=spec.short or spec.name,
        entity=to_entity(entity),
        features=tuple(
            Feature(f.name, f.short or f.name, f.dtype, f.description) for f in spec.features
        ),
        sources=tuple(spec.sources),
        version_scope=spec.version_scope,
        ttl_s=spec.ttl_s,
        allowed_lateness_ms=spec.allowed_lateness_ms,
        groups=tuple((g.name, tuple(g.features)) for g in spec.groups),
        description=spec.description,
        tags=dict(spec.tags),
        aggregations=None if spec.aggregations is None else spec.aggregations.declaration(),
        lags=None if spec.lags is None else spec.lags.declaration(),
    )


# ---- compatibility ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two versions; ``compatible`` says whether readers of the old
    version are unaffected."""

    what: str
    compatible: bool
    reason: str


def _attr(what: str, old: object, new: object, *, compatible: bool, why: str = "") -> list[Change]:
    if old == new:
        return []
    text = f"{what} changed from {old!r} to {new!r}" + (f": {why}" if why else "")
    return [Change(what, compatible, text)]


def diff_entities(old: EntitySpec, new: EntitySpec) -> list[Change]:
    """Every change from ``old`` to ``new`` (both with shorts filled)."""
    return [
        *_attr(
            "join_key", old.join_key, new.join_key, compatible=False,
            why="features are stored and looked up by it",
        ),
        *_attr(
            "short", old.short, new.short, compatible=False,
            why="stored online keys contain it",
        ),
        *_attr("description", old.description, new.description, compatible=True),
        *_attr("owner", old.owner, new.owner, compatible=True),
        *_attr("tags", old.tags, new.tags, compatible=True),
    ]  # fmt: skip


def _group_of(spec: FeatureViewSpec) -> dict[str, str | None]:
    membership: dict[str, str | None] = {f.name: None for f in spec.features}
    for group in spec.groups:
        for m in group.features:
            membership[m] = group.name
    return membership


def diff_views(old: FeatureViewSpec, new: FeatureViewSpec) -> list[Change]:
    """Every change from ``old`` to ``new`` (both with shorts filled), incompatible first
    within each kind. Removing a feature or changing what stored fields mean is
    incompatible; adding features and changing metadata is not."""
    changes = [
        *_attr(
            "entity", old.entity, new.entity, compatible=False,
            why="stored rows are keyed by the entity",
        ),
        *_attr(
            "short", old.short, new.short, compatible=False,
            why="stored online keys contain it",
        ),
        *_attr(
            "version_scope", old.version_scope, new.version_scope, compatible=False,
            why="stored versions are laid out per scope",
        ),
        *_attr(
            "aggregations", old.aggregations, new.aggregations, compatible=False,
            why="stored tiles are laid out and valued by the measures and windows",
        ),
        *_attr(
            "lags", old.lags, new.lags, compatible=False,
            why="stored event rows are read by the lag rule",
        ),
    ]  # fmt: skip
    olds = {f.name: f for f in old.features}
    news = {f.name: f for f in new.features}
    old_groups, new_groups = _group_of(old), _group_of(new)
    for name, before in olds.items():
        after = news.get(name)
        if after is None:
            changes.append(
                Change(
                    f"feature {name}",
                    False,
                    f"feature {name!r} removed: readers of it would break "
                    "(deprecate the view and register a new one instead)",
                )
            )
            continue
        changes += _attr(
            f"feature {name} dtype", before.dtype, after.dtype, compatible=False,
            why="stored values would be misread",
        )  # fmt: skip
        changes += _attr(
            f"feature {name} short", before.short, after.short, compatible=False,
            why="stored values live under the old field name",
        )  # fmt: skip
        changes += _attr(
            f"feature {name} group", old_groups[name], new_groups[name], compatible=False,
            why="its version field would move",
        )  # fmt: skip
        changes += _attr(
            f"feature {name} description", before.description, after.description,
            compatible=True,
        )  # fmt: skip
    changes += [
        Change(f"feature {name}", True, f"feature {name!r} ({f.dtype}) added")
        for name, f in news.items()
        if name not in olds
    ]
    new_groups_only = {g.name for g in new.groups} - {g.name for g in old.groups}
    changes += [Change(f"group {g}", True, f"group {g!r} added") for g in sorted(new_groups_only)]
    changes += [
        *_attr("ttl_s", old.ttl_s, new.ttl_s, compatible=True),
        *_attr(
            "allowed_lateness_ms",
            old.allowed_lateness_ms,
            new.allowed_lateness_ms,
            compatible=True,
        ),
        *_attr("sources", old.sources, new.sources, compatible=True),
        *_attr("transformation", old.transformation, new.transformation, compatible=True),
        *_attr("owner", old.owner, new.owner, compatible=True),
        *_attr("description", old.description, new.description, compatible=True),
        *_attr("tags", old.tags, new.tags, compatible=True),
    ]
    order = [f.name for f in new.features if f.name in olds]
    if order != [f.name for f in old.features if f.name in news]:
        changes.append(Change("feature order", True, "features reordered"))
    return _short_collisions(old, new) + changes


def _short_collisions(old: FeatureViewSpec, new: FeatureViewSpec) -> list[Change]:
    """A feature of ``new`` whose short is another feature's — in ``new``, or in ``old`` even
    if removed since: two features would read and write one stored field."""
    owners = {f.short: f.name for f in old.features if f.short}
    found = []
    for f in new.features:
        if f.short is None:
            continue
        owner = owners.setdefault(f.short, f.name)
        if owner != f.name:
            found.append(
                Change(
                    f"feature {f.name} short",
                    False,
                    f"feature {f.name!r} would be stored under short name {f.short!r}, the "
                    f"field of feature {owner!r}: omit `short` to get a free one",
                )
            )
    return found


def incompatible(changes: Iterable[Change]) -> list[str]:
    """The reasons that refuse an update (empty: the update may become a new version)."""
    return [c.reason for c in changes if not c.compatible]
