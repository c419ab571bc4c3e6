"""The registry in PostgreSQL: every version of every entity and feature view.

Schema ``registry`` (created idempotently by :meth:`RegistryStore.migrate`, under an advisory
lock so two processes starting together do not race on the catalog):

- ``definitions`` — one row per (kind, name): latest version, status (active/deprecated),
  the online short name (unique per kind: two views must never share Redis keys), who
  deprecated it and why.
- ``versions`` — one row per (kind, name, version): the spec as JSONB, the changes from the
  previous version, created_at, created_by. Rows are only ever inserted.

Updates lock the definition row (``SELECT ... FOR UPDATE``) and diff against the latest
version inside that transaction, so two concurrent updates serialise: the second sees the
first's version, and the primary key (kind, name, version) makes a duplicate version
impossible even if that lock were bypassed. An update or deprecation may carry an
``If-Match`` (:mod:`feature_api.preconditions`): it is compared with the state read under
that lock, so "check, then write" is atomic — of several writers holding the same tag,
exactly one writes and the others get :class:`PreconditionFailed` (412). Without it an
update is accepted as before (``streamfeat apply`` stays idempotent; it sends the tag it
read). Each operation opens its own short connection with connect and statement timeouts;
PostgreSQL being down is :class:`RegistryUnavailable` (503), never a hang. Retrieval never
calls this per request (see :mod:`feature_api.registry_snapshot`, which reads through one
:class:`KeptConnection`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from core.features import CUSTOMER, FEATURE_VIEWS
from core.registry import (
    EntityBody,
    EntitySpec,
    FeatureViewBody,
    FeatureViewSpec,
    Outcome,
    diff_entities,
    diff_views,
    fill_entity_short,
    fill_shorts,
    incompatible,
)
from feature_api.errors import (
    AlreadyExists,
    ConcurrentUpdate,
    Conflict,
    Deprecated,
    IncompatibleChange,
    InvalidReference,
    NotFound,
    PreconditionFailed,
    RegistryUnavailable,
    UnknownEntity,
    UnknownVersion,
    UnknownView,
)
from feature_api.preconditions import IfMatch, etag

MIGRATION_LOCK = 0x5F_5E_61_7B  # pg_advisory_xact_lock key of registry migrations

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS registry;
CREATE TABLE IF NOT EXISTS registry.definitions (
    kind text NOT NULL CHECK (kind IN ('entity', 'feature_view')),
    name text NOT NULL,
    latest_version integer NOT NULL CHECK (latest_version >= 1),
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deprecated')),
    short text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    deprecated_at timestamptz,
    deprecated_by text,
    deprecation_reason text,
    PRIMARY KEY (kind, name),
    CONSTRAINT definitions_short_unique UNIQUE (kind, short)
);
CREATE TABLE IF NOT EXISTS registry.versions (
    kind text NOT NULL,
    name text NOT NULL,
    version integer NOT NULL CHECK (version >= 1),
    spec jsonb NOT NULL,
    changes jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    PRIMARY KEY (kind, name, version),
    FOREIGN KEY (kind, name) REFERENCES registry.definitions (kind, name)
);
"""


class Kind(StrEnum):
    ENTITY = "entity"
    FEATURE_VIEW = "feature_view"


CODE_SHORTS: dict[Kind, dict[str, str]] = {
    Kind.ENTITY: {CUSTOMER.short: CUSTOMER.name},
    Kind.FEATURE_VIEW: {v.short: v.name for v in FEATURE_VIEWS},
}
"""Short names the code declarations use, reserved for them even before `streamfeat apply`
registers them (the job writes those keys whatever the registry holds)."""


Spec = EntitySpec | FeatureViewSpec


@dataclass(frozen=True)
class Record:
    """One version of a definition, with the definition's current state."""

    kind: Kind
    name: str
    version: int
    latest_version: int
    status: str
    spec: Any  # EntitySpec | FeatureViewSpec, by kind
    changes: list[str]
    created_at: datetime
    created_by: str
    deprecated_at: datetime | None = None
    deprecated_by: str | None = None
    deprecation_reason: str | None = None

    @property
    def etag(self) -> str:
        """The definition's current state as read with this record (not this version's)."""
        return etag(self.latest_version, self.status)


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    record: Record
    etag: str
    """The definition's state as this call's transaction left it: what to send as
    ``If-Match`` next. It can differ from ``record.etag`` when another update committed
    between this call's commit and its re-read."""
    changes: list[str] = field(default_factory=list)


def _parse(kind: Kind, spec: dict[str, Any]) -> Spec:
    return (
        EntitySpec.model_validate(spec)
        if kind is Kind.ENTITY
        else FeatureViewSpec.model_validate(spec)
    )


def _precondition_failed(
    kind: Kind, name: str, head: dict[str, Any], if_match: IfMatch | None
) -> PreconditionFailed:
    current = etag(head["latest_version"], head["status"])
    given = if_match.raw if if_match is not None else ""
    return PreconditionFailed(
        f"{kind.value} {name!r} changed since you read it: If-Match {given} but it is now "
        f"version {head['latest_version']} ({head['status']}), ETag {current}. Nothing was "
        f"written: GET it again, redo your change on version {head['latest_version']} and "
        f"retry with If-Match: {current}",
        name=name,
        current_version=head["latest_version"],
        status=head["status"],
        etag=current,
        if_match=given,
    )


def _not_found(kind: Kind, name: str) -> NotFound:
    if kind is Kind.ENTITY:
        return UnknownEntity(f"unknown entity {name!r}", entity=name)
    return UnknownView(f"unknown feature view {name!r}", view=name)


_SELECT = """
SELECT v.kind, v.name, v.version, d.latest_version, d.status, v.spec, v.changes,
       v.created_at, v.created_by, d.deprecated_at, d.deprecated_by, d.deprecation_reason
FROM registry.versions v JOIN registry.definitions d USING (kind, name)
"""


def _record(row: dict[str, Any]) -> Record:
    kind = Kind(row["kind"])
    return Record(
        kind=kind,
        name=row["name"],
        version=row["version"],
        latest_version=row["latest_version"],
        status=row["status"],
        spec=_parse(kind, row["spec"]),
        changes=list(row["changes"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
        deprecated_at=row["deprecated_at"],
        deprecated_by=row["deprecated_by"],
        deprecation_reason=row["deprecation_reason"],
    )


class RegistryStore:
    """Registry operations, each in its own transaction on a short-lived connection."""

    def __init__(self, dsn: str, *, timeout_s: float) -> None:
        self.dsn = dsn
        self.timeout_s = timeout_s
        self._migrated = False

    def connect(
        self, *, autocommit: bool = False, long_lived: bool = False
    ) -> psycopg.Connection[dict[str, Any]]:
        """A new connection with this store's connect, statement and lock timeouts (raises
        psycopg's errors: callers map them with :meth:`mapped_errors`). ``long_lived`` adds
        TCP keepalives and a TCP user timeout, so a kept connection whose server host
        vanished fails within about the timeout instead of waiting on the kernel's
        retransmissions for many minutes."""
        timeout_ms = max(1, int(self.timeout_s * 1000))
        tcp: dict[str, Any] = {}
        if long_lived:
            tcp = {
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 5,
                "keepalives_count": 3,
                "tcp_user_timeout": timeout_ms * 2,
            }
        return psycopg.connect(
            self.dsn,
            connect_timeout=max(1, round(self.timeout_s)),
            options=f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
            row_factory=dict_row,
            autocommit=autocommit,
            **tcp,
        )

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        with self.mapped_errors(), self.connect() as conn, conn.transaction():
            yield conn

    @staticmethod
    @contextmanager
    def mapped_errors() -> Iterator[None]:
        """psycopg's failures as the API's errors: a held row lock is a concurrent update
        (409), anything operational (refused, timed out, dropped) the registry being down."""
        try:
            yield
        except psycopg.errors.LockNotAvailable as exc:
            raise ConcurrentUpdate(
                "another update of this definition holds it; retry", cause=str(exc)
            ) from exc
        except psycopg.OperationalError as exc:
            raise RegistryUnavailable(
                "registry (PostgreSQL) unavailable: registration needs it, retrieval does not",
                cause=str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            ) from exc

    def migrate(self) -> None:
        """Create the schema if absent (idempotent; safe from several processes at once)."""
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(SCHEMA_SQL)
        self._migrated = True

    def ready(self) -> None:
        """Migrate once per store (the first call of any operation does it)."""
        if not self._migrated:
            self.migrate()

    # ---- reads -----------------------------------------------------------------------------

    def get(self, kind: Kind, name: str, version: int | None = None) -> Record:
        """The latest version, or ``version``."""
        self.ready()
        with self._tx() as conn:
            if version is None:
                row = conn.execute(
                    _SELECT + "WHERE v.kind = %s AND v.name = %s AND v.version = d.latest_version",
                    (kind.value, name),
                ).fetchone()
            else:
                row = conn.execute(
                    _SELECT + "WHERE v.kind = %s AND v.name = %s AND v.version = %s",
                    (kind.value, name, version),
                ).fetchone()
                if row is None and self._exists(conn, kind, name):
                    raise UnknownVersion(
                        f"{kind.value} {name!r} has no version {version}",
                        name=name,
                        version=version,
                    )
        if row is None:
            raise _not_found(kind, name)
        return _record(row)

    def versions(self, kind: Kind, name: str) -> list[Record]:
        self.ready()
        with self._tx() as conn:
            rows = conn.execute(
                _SELECT + "WHERE v.kind = %s AND v.name = %s ORDER BY v.version",
                (kind.value, name),
            ).fetchall()
        if not rows:
            raise _not_found(kind, name)
        return [_record(r) for r in rows]

    def latest(self, kind: Kind | None = None) -> list[Record]:
        """Latest version of every definition (of ``kind``), by name."""
        self.ready()
        with self._tx() as conn:
            return self.latest_on(conn, kind)

    @staticmethod
    def latest_on(
        conn: psycopg.Connection[dict[str, Any]], kind: Kind | None = None
    ) -> list[Record]:
        """:meth:`latest` in one statement on ``conn`` (consistent without a transaction)."""
        where = "WHERE v.version = d.latest_version"
        params: tuple[Any, ...] = ()
        if kind is not None:
            where += " AND v.kind = %s"
            params = (kind.value,)
        rows = conn.execute(_SELECT + where + " ORDER BY v.kind, v.name", params).fetchall()
        return [_record(r) for r in rows]

    @staticmethod
    def _exists(conn: psycopg.Connection[dict[str, Any]], kind: Kind, name: str) -> bool:
        return (
            conn.execute(
                "SELECT 1 FROM registry.definitions WHERE kind = %s AND name = %s",
                (kind.value, name),
            ).fetchone()
            is not None
        )

    # ---- writes ----------------------------------------------------------------------------

    def create(self, spec: Spec, *, by: str) -> Result:
        """Register a new definition as version 1 (409 when the name is taken)."""
        self.ready()
        kind = Kind.ENTITY if isinstance(spec, EntitySpec) else Kind.FEATURE_VIEW
        with self._tx() as conn:
            if isinstance(spec, FeatureViewSpec):
                self._check_entity(conn, spec)
                spec = fill_shorts(spec)
            else:
                spec = fill_entity_short(spec)
            assert spec.short is not None
            self._check_short(conn, kind, spec.name, spec.short)
            inserted = conn.execute(
                "INSERT INTO registry.definitions (kind, name, latest_version, short) "
                "VALUES (%s, %s, 1, %s) ON CONFLICT (kind, name) DO NOTHING RETURNING name",
                (kind.value, spec.name, spec.short),
            ).fetchone()
            if inserted is None:
                raise AlreadyExists(
                    f"{kind.value} {spec.name!r} is already registered; update it with PUT",
                    name=spec.name,
                )
            self._insert_version(conn, kind, spec, 1, [], by)
        return Result(Outcome.CREATED, self.get(kind, spec.name), etag(1, "active"))

    def update(
        self,
        kind: Kind,
        name: str,
        body: EntityBody | FeatureViewBody,
        *,
        by: str,
        if_match: IfMatch | None = None,
    ) -> Result:
        """A new version when ``body`` differs compatibly from the latest; unchanged when
        equal; :class:`IncompatibleChange` (with every reason) otherwise.

        With ``if_match`` that does not match the current state: :class:`PreconditionFailed`
        — unless ``body`` is exactly the current version, then ``unchanged`` (RFC 9110
        §13.1.1 lets a server answer 2xx when the requested state is already in effect: two
        ``streamfeat apply`` runs of the same code both succeed)."""
        self.ready()
        with self._tx() as conn:
            head = self._lock(conn, kind, name)
            current = etag(head["latest_version"], head["status"])
            stale = if_match is not None and not if_match.matches(current)
            if head["status"] == "deprecated":
                if stale:
                    raise _precondition_failed(kind, name, head, if_match)
                raise Deprecated(
                    f"{kind.value} {name!r} is deprecated; register a new name instead",
                    name=name,
                )
            latest = conn.execute(
                "SELECT spec FROM registry.versions WHERE kind = %s AND name = %s AND version = %s",
                (kind.value, name, head["latest_version"]),
            ).fetchone()
            assert latest is not None
            old = _parse(kind, latest["spec"])
            new, changes = self._proposed(conn, kind, name, body, old)
            if stale and changes:
                raise _precondition_failed(kind, name, head, if_match)
            version = head["latest_version"]
            if not changes:
                outcome = Outcome.UNCHANGED
            else:
                reasons = incompatible(changes)
                if reasons:
                    raise IncompatibleChange(
                        f"incompatible change to {kind.value} {name!r}: {'; '.join(reasons)}",
                        name=name,
                        version=head["latest_version"],
                        reasons=reasons,
                    )
                version += 1
                self._insert_version(conn, kind, new, version, [c.reason for c in changes], by)
                conn.execute(
                    "UPDATE registry.definitions SET latest_version = %s, updated_at = now() "
                    "WHERE kind = %s AND name = %s",
                    (version, kind.value, name),
                )
                outcome = Outcome.NEW_VERSION
        # The version this call made (or found), even if another update has followed it.
        record = self.get(kind, name, version)
        return Result(outcome, record, etag(version, "active"), [c.reason for c in changes])

    @staticmethod
    def _lock(conn: psycopg.Connection[dict[str, Any]], kind: Kind, name: str) -> dict[str, Any]:
        """The definition's head row, locked until the transaction ends (404 if none)."""
        head = conn.execute(
            "SELECT latest_version, status FROM registry.definitions "
            "WHERE kind = %s AND name = %s FOR UPDATE",
            (kind.value, name),
        ).fetchone()
        if head is None:
            raise _not_found(kind, name)
        return head

    def _proposed(
        self,
        conn: psycopg.Connection[dict[str, Any]],
        kind: Kind,
        name: str,
        body: EntityBody | FeatureViewBody,
        old: Spec,
    ) -> tuple[Spec, list[Any]]:
        data = {**body.model_dump(), "name": name}
        if kind is Kind.ENTITY:
            assert isinstance(old, EntitySpec)
            entity = fill_entity_short(EntitySpec.model_validate(data), old)
            return entity, diff_entities(old, entity)
        assert isinstance(old, FeatureViewSpec)
        view = fill_shorts(FeatureViewSpec.model_validate(data), old)
        if view.entity != old.entity:
            return view, diff_views(old, view)  # refused as incompatible before any lookup
        self._check_entity(conn, view)
        return view, diff_views(old, view)

    def deprecate(
        self, kind: Kind, name: str, *, by: str, reason: str, if_match: IfMatch | None = None
    ) -> Result:
        """Mark a definition deprecated (idempotent). It stays readable and retrievable; it
        can no longer be updated. An entity with active views cannot be deprecated.
        ``if_match`` not matching an active definition is :class:`PreconditionFailed` (the
        admin reviewed another version); on a deprecated one the state asked for is in
        effect: ``unchanged``."""
        self.ready()
        with self._tx() as conn:
            head = self._lock(conn, kind, name)
            current = etag(head["latest_version"], head["status"])
            stale = if_match is not None and not if_match.matches(current)
            if stale and head["status"] != "deprecated":
                raise _precondition_failed(kind, name, head, if_match)
            outcome = Outcome.UNCHANGED
            if head["status"] != "deprecated":
                if kind is Kind.ENTITY:
                    self._check_no_active_views(conn, name)
                conn.execute(
                    "UPDATE registry.definitions SET status = 'deprecated', deprecated_at = now(),"
                    " deprecated_by = %s, deprecation_reason = %s, updated_at = now() "
                    "WHERE kind = %s AND name = %s",
                    (by, reason, kind.value, name),
                )
                outcome = Outcome.DEPRECATED
        return Result(outcome, self.get(kind, name), etag(head["latest_version"], "deprecated"))

    # ---- rules that need the database --------------------------------------------------------

    def _check_entity(
        self, conn: psycopg.Connection[dict[str, Any]], view: FeatureViewSpec
    ) -> None:
        row = conn.execute(
            "SELECT status FROM registry.definitions WHERE kind = 'entity' AND name = %s",
            (view.entity,),
        ).fetchone()
        if row is None:
            raise InvalidReference(
                f"feature view {view.name!r} is on entity {view.entity!r}, which is not "
                "registered: register the entity first",
                entity=view.entity,
            )
        if row["status"] == "deprecated":
            raise InvalidReference(
                f"entity {view.entity!r} is deprecated: new views cannot use it",
                entity=view.entity,
            )

    @staticmethod
    def _check_short(
        conn: psycopg.Connection[dict[str, Any]], kind: Kind, name: str, short: str
    ) -> None:
        row = conn.execute(
            "SELECT name FROM registry.definitions WHERE kind = %s AND short = %s AND name <> %s",
            (kind.value, short, name),
        ).fetchone()
        owner = row["name"] if row is not None else CODE_SHORTS[kind].get(short, name)
        if owner != name:
            raise Conflict(
                f"short name {short!r} is taken by {kind.value} {owner!r} (online keys "
                "would collide): choose another `short`",
                short=short,
                taken_by=owner,
            )

    @staticmethod
    def _check_no_active_views(conn: psycopg.Connection[dict[str, Any]], entity: str) -> None:
        rows = conn.execute(
            "SELECT d.name FROM registry.definitions d JOIN registry.versions v "
            "ON v.kind = d.kind AND v.name = d.name AND v.version = d.latest_version "
            "WHERE d.kind = 'feature_view' AND d.status = 'active' AND v.spec->>'entity' = %s "
            "ORDER BY d.name",
            (entity,),
        ).fetchall()
        if rows:
            views = [r["name"] for r in rows]
            raise Conflict(
                f"entity {entity!r} still has active feature views {views}: deprecate them first",
                views=views,
            )

    @staticmethod
    def _insert_version(
        conn: psycopg.Connection[dict[str, Any]],
        kind: Kind,
        spec: Spec,
        version: int,
        changes: list[str],
        by: str,
    ) -> None:
        try:
            conn.execute(
                "INSERT INTO registry.versions (kind, name, version, spec, changes, created_by) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (kind.value, spec.name, version, Jsonb(spec.model_dump(mode="json")),
                 Jsonb(changes), by),
            )  # fmt: skip
        except psycopg.errors.UniqueViolation as exc:
            raise ConcurrentUpdate(
                f"{kind.value} {spec.name!r} version {version} was just created by another "
                "update; re-read and retry",
                name=spec.name,
                version=version,
            ) from exc
