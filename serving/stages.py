"""Serving stages of a registered model: the pure rules of promotion and rollback.

A model version is served in three stages, in this order only:
``staging`` -> ``canary`` (a share of the traffic, default 5 %) -> ``production``.
Each stage is an MLflow registered-model *alias* (MLflow's built-in stages are deprecated
since 2.9); an alias points at one version, so "at most one version per stage" holds by
construction. A fourth alias, ``previous-production``, keeps the version production replaced
findable; ``rollback`` returns production to it.

The rules, stated once here and applied by serving/registry.py:

- to staging: any registered version that holds no serving stage (a canary or production
  version never goes back; rollback is the way down). It replaces the staged version.
- to canary: only the staged version; it leaves staging. It replaces a running canary.
  The canary's traffic share is 0 < share < 100. Promoting the canary version to canary
  again only changes its share.
- to production: only the canary version. The old production version becomes
  ``previous-production`` (the older previous is no longer findable by alias); canary is
  cleared (its share with it).
- rollback: production returns to ``previous-production``, which is then empty (one level
  of rollback). A canary or staged version that *is* the restored version is cleared, so a
  version holds at most one serving stage.

Nothing here talks to MLflow: a move is computed from the current aliases and turned into
alias sets/deletes by :meth:`Move.alias_changes`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum


class Stage(StrEnum):
    """A serving stage; its value is the MLflow alias that holds it."""

    STAGING = "staging"
    CANARY = "canary"
    PRODUCTION = "production"


PREVIOUS_PRODUCTION = "previous-production"
"""Alias of the version production replaced (what rollback returns to)."""
ALIASES = (*(s.value for s in Stage), PREVIOUS_PRODUCTION)
DEFAULT_CANARY_TRAFFIC = 5.0
"""Percent of requests a new canary receives unless told otherwise."""

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_TRAINING_SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")


class IllegalMove(ValueError):
    """A promotion or rollback the rules refuse; the message says why and what to do."""


def check_model_name(name: str) -> str:
    """Model names become lineage labels (``model_version:<model>/<version>``) and KServe
    resource names: letters, digits, ``_ . -``, no slash, starting alphanumeric."""
    if not _MODEL_NAME.fullmatch(name):
        raise ValueError(
            f"model name {name!r} must be 1-200 letters, digits, '_', '.', '-' "
            "starting with a letter or digit"
        )
    return name


def check_training_sets(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Training-set names, deduplicated in order. At least one: a model version whose data
    is unknown cannot be traced. No commas or spaces: the version's tag joins them with ','."""
    unique = tuple(dict.fromkeys(names))
    if not unique:
        raise ValueError("name at least one training set the model was trained on")
    for name in unique:
        if not _TRAINING_SET_NAME.fullmatch(name):
            raise ValueError(
                f"training set name {name!r} must be 1-200 letters, digits, '_', '.', ':', '-' "
                "starting with a letter or digit"
            )
    return unique


def check_traffic(percent: float) -> float:
    """A canary's share of requests: more than 0 (else it is not tested) and less than 100
    (else it is production without the promotion)."""
    if not 0 < percent < 100:
        raise IllegalMove(
            f"canary traffic must be more than 0 and less than 100 percent, got {percent:g}"
        )
    return percent


@dataclass(frozen=True)
class Placement:
    """Which version holds which alias of one registered model.

    ``canary_traffic`` is set exactly when ``canary`` is (the percent of requests it gets).
    """

    staging: int | None = None
    canary: int | None = None
    production: int | None = None
    previous_production: int | None = None
    canary_traffic: float | None = None

    @classmethod
    def from_aliases(
        cls, aliases: Mapping[str, int | str], canary_traffic: float | None = None
    ) -> Placement:
        """From MLflow's ``RegisteredModel.aliases`` (alias -> version, versions as strings);
        other aliases are ignored. A canary without a recorded share gets the default."""
        get = {a: int(v) for a, v in aliases.items() if a in ALIASES}
        canary = get.get(Stage.CANARY.value)
        traffic = None
        if canary is not None:
            traffic = DEFAULT_CANARY_TRAFFIC if canary_traffic is None else canary_traffic
        return cls(
            staging=get.get(Stage.STAGING.value),
            canary=canary,
            production=get.get(Stage.PRODUCTION.value),
            previous_production=get.get(PREVIOUS_PRODUCTION),
            canary_traffic=traffic,
        )

    def aliases(self) -> dict[str, int]:
        """alias -> version for every alias that is set."""
        pairs = {
            Stage.STAGING.value: self.staging,
            Stage.CANARY.value: self.canary,
            Stage.PRODUCTION.value: self.production,
            PREVIOUS_PRODUCTION: self.previous_production,
        }
        return {alias: v for alias, v in pairs.items() if v is not None}

    def stage_of(self, version: int) -> Stage | None:
        """The serving stage ``version`` holds (at most one, see the module rules)."""
        for stage in Stage:
            if self.aliases().get(stage.value) == version:
                return stage
        return None


@dataclass(frozen=True)
class Move:
    """One legal promotion or rollback: ``version`` entered ``stage``."""

    before: Placement
    after: Placement
    version: int
    stage: Stage
    retired: int | None = None
    """The version that left production (promotion to production, rollback)."""
    rollback: bool = False
    notes: tuple[str, ...] = ()
    """Consequences a user should see (what was replaced, retired, cleared)."""

    def alias_changes(self) -> tuple[dict[str, int], tuple[str, ...]]:
        """Aliases to set (alias -> version) and aliases to delete, to go from ``before``
        to ``after``."""
        old, new = self.before.aliases(), self.after.aliases()
        sets = {a: v for a, v in new.items() if old.get(a) != v}
        deletes = tuple(a for a in old if a not in new)
        return sets, deletes


def _where(p: Placement, version: int) -> str:
    stage = p.stage_of(version)
    return f"it is in {stage.value}" if stage else "it holds no serving stage"


def promote(p: Placement, version: int, to: Stage, *, traffic: float | None = None) -> Move:
    """The move putting ``version`` into ``to``; raises IllegalMove when the rules refuse."""
    if traffic is not None and to is not Stage.CANARY:
        raise IllegalMove("--traffic applies to a canary only")
    if to is Stage.STAGING:
        return _to_staging(p, version)
    if to is Stage.CANARY:
        return _to_canary(p, version, traffic)
    return _to_production(p, version)


def _to_staging(p: Placement, version: int) -> Move:
    current = p.stage_of(version)
    if current is Stage.STAGING:
        raise IllegalMove(f"version {version} is already in staging")
    if current is not None:
        raise IllegalMove(
            f"version {version} is in {current.value}; a served version does not go back to "
            "staging (use rollback to undo a production promotion)"
        )
    notes = (f"version {p.staging} leaves staging",) if p.staging is not None else ()
    return Move(p, replace(p, staging=version), version, Stage.STAGING, notes=notes)


def _to_canary(p: Placement, version: int, requested: float | None) -> Move:
    traffic = check_traffic(DEFAULT_CANARY_TRAFFIC if requested is None else requested)
    if p.canary == version:
        if requested is None or p.canary_traffic == traffic:
            raise IllegalMove(
                f"version {version} is already the canary at {p.canary_traffic:g}% traffic "
                "(give another traffic share to change it)"
            )
        note = f"canary traffic {p.canary_traffic:g}% -> {traffic:g}%"
        return Move(p, replace(p, canary_traffic=traffic), version, Stage.CANARY, notes=(note,))
    if p.staging != version:
        raise IllegalMove(
            f"version {version} must be in staging before canary ({_where(p, version)}); "
            f"promote it to staging first"
        )
    notes: tuple[str, ...] = ()
    if p.canary is not None:
        notes = (f"replaces canary version {p.canary} (it no longer gets traffic)",)
    after = replace(p, staging=None, canary=version, canary_traffic=traffic)
    return Move(p, after, version, Stage.CANARY, notes=notes)


def _to_production(p: Placement, version: int) -> Move:
    if p.production == version:
        raise IllegalMove(f"version {version} is already in production")
    if p.canary != version:
        raise IllegalMove(
            f"version {version} must be in canary before production ({_where(p, version)}); "
            f"promote it to canary first"
        )
    previous = p.production if p.production is not None else p.previous_production
    after = replace(
        p, production=version, previous_production=previous, canary=None, canary_traffic=None
    )
    notes: tuple[str, ...] = ()
    if p.production is not None:
        notes = (f"version {p.production} retired to {PREVIOUS_PRODUCTION}",)
    return Move(p, after, version, Stage.PRODUCTION, retired=p.production, notes=notes)


def rollback(p: Placement) -> Move:
    """Production back to ``previous-production``; raises IllegalMove when there is none."""
    target = p.previous_production
    if target is None:
        raise IllegalMove(
            f"no {PREVIOUS_PRODUCTION} version to roll back to "
            "(rollback undoes one promotion to production)"
        )
    after = replace(p, production=target, previous_production=None)
    notes = []
    if p.production is not None:
        notes.append(f"version {p.production} leaves production (rolled back)")
    if after.staging == target:
        after = replace(after, staging=None)
        notes.append(f"version {target} leaves staging")
    if after.canary == target:
        after = replace(after, canary=None, canary_traffic=None)
        notes.append(f"version {target} leaves canary")
    return Move(
        p, after, target, Stage.PRODUCTION, retired=p.production, rollback=True, notes=tuple(notes)
    )
