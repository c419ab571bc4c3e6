"""Lineage in PostgreSQL (schema ``lineage``): the events as received, and the graph
derived from them (nodes: datasets and jobs; edges: ``input -> job -> output``).

- Events are stored once: the key is a hash of the canonical JSON, so a spooled event
  that is replayed after all (the first delivery's answer was lost) changes nothing.
- Edges come from runs that succeeded: on a RUNNING (a streaming job is up) or COMPLETE
  event, the inputs and outputs of every stored event of that run are joined (a producer
  may name them on START only). A failed or still-starting run adds its job and datasets
  as nodes but no edges. A job event (no run) is static lineage: its edges count at once.
- The schema is created on first use, idempotently, under an advisory lock (two API
  workers starting together do not race on CREATE). PostgreSQL is needed only by lineage
  calls: when it is down they answer 503 and retrieval is untouched.

One short connection per call: lineage traffic is a few events per deploy or import, and
nothing is held open between requests.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from core.lineage import Kind, classify
from feature_api.errors import ApiError, NotFound
from feature_api.lineage_graph import Direction, Walk, walk
from feature_api.lineage_models import DatasetIn, LineageEventIn

SUCCESS_STATES = ("RUNNING", "COMPLETE")
_LOCK_KEY = 7_402_113_501  # pg_advisory_xact_lock key of the schema creation

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS lineage;
CREATE TABLE IF NOT EXISTS lineage.events (
  event_key   text PRIMARY KEY,
  shape       text NOT NULL,
  run_id      uuid,
  event_type  text,
  event_time  timestamptz NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  payload     jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run_id ON lineage.events (run_id);
CREATE TABLE IF NOT EXISTS lineage.nodes (
  id         bigserial PRIMARY KEY,
  is_job     boolean NOT NULL,
  namespace  text NOT NULL,
  name       text NOT NULL,
  kind       text NOT NULL,
  label      text NOT NULL,
  first_seen timestamptz NOT NULL,
  last_seen  timestamptz NOT NULL,
  UNIQUE (is_job, namespace, name)
);
CREATE INDEX IF NOT EXISTS nodes_kind_label ON lineage.nodes (kind, label);
CREATE TABLE IF NOT EXISTS lineage.edges (
  source      bigint NOT NULL REFERENCES lineage.nodes (id),
  target      bigint NOT NULL REFERENCES lineage.nodes (id),
  first_seen  timestamptz NOT NULL,
  last_seen   timestamptz NOT NULL,
  last_run_id uuid,
  PRIMARY KEY (source, target)
);
"""


class LineageUnavailable(ApiError):
    """The lineage store (PostgreSQL) did not answer; lineage calls need it, retrieval not."""

    status_code = 503
    code = "lineage_store_unavailable"

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": "1"}


class UnknownNode(NotFound):
    code = "unknown_node"


class AmbiguousNode(ApiError):
    status_code = 422
    code = "ambiguous_node"


@dataclass(frozen=True)
class Node:
    id: int
    is_job: bool
    namespace: str
    name: str
    kind: Kind
    label: str

    @property
    def public_id(self) -> str:
        return f"{'job' if self.is_job else 'dataset'}:{self.namespace}:{self.name}"

    @property
    def ref(self) -> str:
        return f"{self.kind.value}:{self.label}"


@dataclass(frozen=True)
class Edge:
    source: int
    target: int
    last_run_id: uuid.UUID | None
    last_seen: datetime


@dataclass(frozen=True)
class Graph:
    roots: list[Node]
    nodes: dict[int, Node]
    walk: Walk[int]
    edges: list[Edge]


def event_key(payload: dict[str, Any]) -> str:
    """Identity of an event: the same JSON document (keys in any order) gives the same key."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_ref(ref: str) -> tuple[Kind, str]:
    """``kind:label`` -> (kind, label); ValueError naming the kinds when it is not one."""
    kind, sep, label = ref.partition(":")
    kinds = ", ".join(k.value for k in Kind)
    if not sep or not label:
        raise ValueError(f"node {ref!r} is not `kind:label` (kinds: {kinds})")
    try:
        return Kind(kind), label
    except ValueError:
        raise ValueError(f"unknown node kind {kind!r} (kinds: {kinds})") from None


class LineageStore:
    def __init__(self, dsn: str, *, timeout_s: float = 3.0) -> None:
        self.dsn = dsn
        self.timeout_s = timeout_s
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    @contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[Any]]:
        ms = int(self.timeout_s * 1000)
        try:
            with psycopg.connect(
                self.dsn,
                connect_timeout=max(1, round(self.timeout_s)),
                options=f"-c statement_timeout={ms} -c lock_timeout={ms}",
            ) as conn:
                self._ensure_schema(conn)
                yield conn
        except psycopg.OperationalError as exc:
            raise LineageUnavailable(
                "lineage store (PostgreSQL) is unreachable or too slow",
                cause=str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            ) from exc

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                conn.execute(SCHEMA_SQL)
            self._schema_ready = True

    # ---- writes ----

    def ingest(self, event: LineageEventIn) -> tuple[bool, int]:
        """Store one event; returns (duplicate, edges added or refreshed)."""
        payload = event.model_dump(mode="json", exclude_none=True)
        key = event_key(payload)
        run_id = event.run.runId if event.run else None
        with self._connect() as conn, conn.transaction():
            inserted = conn.execute(
                "INSERT INTO lineage.events (event_key, shape, run_id, event_type, event_time,"
                " payload) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (event_key) DO NOTHING RETURNING 1",
                (key, event.shape, run_id, event.eventType, event.eventTime, Jsonb(payload)),
            ).fetchone()
            if inserted is None:
                return True, 0
            at = event.eventTime
            if event.dataset is not None:
                self._node(conn, event.dataset, is_job=False, at=at)
                return False, 0
            assert event.job is not None  # validated: run and job events carry a job
            job_id = self._node(conn, event.job, is_job=True, at=at)
            inputs, outputs = list(event.inputs), list(event.outputs)
            if event.shape == "run" and event.eventType in SUCCESS_STATES:
                earlier_in, earlier_out = self._run_datasets(conn, run_id)
                inputs += earlier_in
                outputs += earlier_out
            in_ids = {self._node(conn, d, is_job=False, at=at) for d in inputs}
            out_ids = {self._node(conn, d, is_job=False, at=at) for d in outputs}
            if event.shape == "run" and event.eventType not in SUCCESS_STATES:
                return False, 0
            pairs = [(i, job_id) for i in sorted(in_ids)] + [(job_id, o) for o in sorted(out_ids)]
            for src, dst in pairs:
                conn.execute(
                    "INSERT INTO lineage.edges (source, target, first_seen, last_seen,"
                    " last_run_id) VALUES (%s, %s, %s, %s, %s)"
                    " ON CONFLICT (source, target) DO UPDATE SET"
                    " last_seen = GREATEST(lineage.edges.last_seen, EXCLUDED.last_seen),"
                    " last_run_id = CASE WHEN EXCLUDED.last_seen >= lineage.edges.last_seen"
                    " THEN EXCLUDED.last_run_id ELSE lineage.edges.last_run_id END",
                    (src, dst, at, at, run_id),
                )
            return False, len(pairs)

    def _node(
        self, conn: psycopg.Connection[Any], d: DatasetIn | Any, *, is_job: bool, at: datetime
    ) -> int:
        kind, label = classify(d.namespace, d.name, job=is_job)
        row = conn.execute(
            "INSERT INTO lineage.nodes (is_job, namespace, name, kind, label, first_seen,"
            " last_seen) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (is_job, namespace, name) DO UPDATE SET"
            " first_seen = LEAST(lineage.nodes.first_seen, EXCLUDED.first_seen),"
            " last_seen = GREATEST(lineage.nodes.last_seen, EXCLUDED.last_seen)"
            " RETURNING id",
            (is_job, d.namespace, d.name, kind.value, label, at, at),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def _run_datasets(
        self, conn: psycopg.Connection[Any], run_id: uuid.UUID | None
    ) -> tuple[list[DatasetIn], list[DatasetIn]]:
        """Inputs and outputs named by the run's earlier events (e.g. its START)."""
        inputs: list[DatasetIn] = []
        outputs: list[DatasetIn] = []
        rows = conn.execute(
            "SELECT payload FROM lineage.events WHERE run_id = %s", (run_id,)
        ).fetchall()
        for (payload,) in rows:
            inputs += [DatasetIn.model_validate(d) for d in payload.get("inputs", [])]
            outputs += [DatasetIn.model_validate(d) for d in payload.get("outputs", [])]
        return inputs, outputs

    # ---- reads ----

    def resolve(
        self, *, ref: str | None = None, namespace: str | None = None, name: str | None = None
    ) -> list[Node]:
        """The node(s) a request names: ``kind:label``, or ``namespace`` + ``name`` (a job
        and a dataset may share both: then both are roots). UnknownNode/AmbiguousNode."""
        with self._connect() as conn:
            if ref is not None:
                kind, label = parse_ref(ref)
                rows = conn.execute(
                    f"SELECT {_NODE_COLUMNS} FROM lineage.nodes WHERE kind = %s AND label = %s"
                    " ORDER BY id",
                    (kind.value, label),
                ).fetchall()
                asked = ref
            else:
                rows = conn.execute(
                    f"SELECT {_NODE_COLUMNS} FROM lineage.nodes"
                    " WHERE namespace = %s AND name = %s ORDER BY id",
                    (namespace, name),
                ).fetchall()
                asked = f"{namespace} {name}"
        nodes = [_node_of(r) for r in rows]
        if not nodes:
            raise UnknownNode(f"no lineage node {asked!r}", node=asked)
        if ref is not None and len(nodes) > 1:
            raise AmbiguousNode(
                f"{ref!r} names {len(nodes)} nodes; ask by namespace and name",
                candidates=[{"namespace": n.namespace, "name": n.name} for n in nodes],
            )
        return nodes

    def graph(self, roots: Sequence[Node], direction: Direction, depth: int) -> Graph:
        """The walk from ``roots``. The whole edge table is read once: the graph holds one
        edge per (dataset, job) pair ever seen, thousands at most, not one per event."""
        with self._connect() as conn:
            edge_rows = conn.execute(
                "SELECT source, target, last_run_id, last_seen FROM lineage.edges"
            ).fetchall()
            result = walk(
                [(int(s), int(t)) for s, t, _, _ in edge_rows],
                [n.id for n in roots],
                direction,
                depth,
            )
            ids = sorted(result.distance)
            node_rows = conn.execute(
                f"SELECT {_NODE_COLUMNS} FROM lineage.nodes WHERE id = ANY(%s)", (ids,)
            ).fetchall()
        nodes = {n.id: n for n in map(_node_of, node_rows)}
        edges = [
            Edge(int(s), int(t), run, seen)
            for s, t, run, seen in edge_rows
            if (int(s), int(t)) in result.edges
        ]
        edges.sort(key=lambda e: (e.source, e.target))
        return Graph(list(roots), nodes, result, edges)


_NODE_COLUMNS = "id, is_job, namespace, name, kind, label"


def _node_of(row: tuple[Any, ...]) -> Node:
    id_, is_job, namespace, name, kind, label = row
    return Node(int(id_), bool(is_job), namespace, name, Kind(kind), label)
