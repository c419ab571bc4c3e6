"""`streamfeat apply`: register the repo's definitions (core/features.py) through the API,
and the credentials the CLI sends to the API.

``apply`` is what ``feast apply`` is to Feast: every entity and feature view declared in
core/features.py (the same declarations the feature job runs) is registered through the
Feature Store API with a writer key — so it goes through the same auth, validation and
compatibility rules as any other client. Per definition it prints ``created``,
``unchanged``, ``new version``, ``rejected`` with the reasons, or ``changed concurrently``;
any of the last two exits 1 after all definitions were tried. A second run prints only
``unchanged``.

Each update is conditional: ``apply`` reads the definition, then sends its ``PUT`` with
``If-Match`` set to the ``ETag`` it read. If another writer (another ``apply`` from another
checkout, a client of the API) registered a version in between, the API answers 412 and
nothing is overwritten; if that writer registered exactly what this run sends, the API
answers ``unchanged`` — two runs of the same code never fail each other.

The CLI sends ``STREAMFEAT_API_KEY`` when set (production: a real key), else the local
stack's well-known development key for the role the command needs (refused by a production
API, so nothing silently works with a development key there).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import httpx
import typer

from core.features import FEATURE_VIEWS
from core.registry import EntitySpec, FeatureViewSpec, entity_spec, view_spec
from core.settings import load_settings
from feature_api.settings import Role, dev_key
from streamfeat.console import fail, out

API_KEY_ENV = "STREAMFEAT_API_KEY"


def api_headers(role: Role) -> dict[str, str]:
    """Headers authenticating a CLI call that needs ``role``."""
    return {"X-API-Key": os.environ.get(API_KEY_ENV) or dev_key(role)}


@dataclass(frozen=True)
class Applied:
    kind: str  # "entity" | "feature view"
    name: str
    outcome: str  # created | unchanged | new_version | rejected | conflict
    version: int | None
    reasons: tuple[str, ...] = ()

    def line(self) -> str:
        what = f"{self.kind} {self.name}"
        if self.outcome == "rejected":
            return f"  {what}: rejected — " + "; ".join(self.reasons)
        if self.outcome == "conflict":
            return f"  {what}: changed concurrently — " + "; ".join(self.reasons)
        label = self.outcome.replace("_", " ")
        return f"  {what}: {label} (v{self.version})"


class ApplyError(Exception):
    """The API answered something `apply` cannot act on (auth, outage, a bug)."""


def code_definitions() -> tuple[list[EntitySpec], list[FeatureViewSpec]]:
    """Every entity (once, in first-use order) and feature view of core/features.py."""
    entities = {v.entity.name: entity_spec(v.entity) for v in FEATURE_VIEWS}
    return list(entities.values()), [view_spec(v) for v in FEATURE_VIEWS]


def _error(r: httpx.Response) -> dict[str, Any]:
    try:
        error = r.json().get("error", {})
    except ValueError:
        return {}
    return error if isinstance(error, dict) else {}


def _register(client: httpx.Client, collection: str, name: str, body: Any) -> httpx.Response:
    """Update what is registered, conditionally on the state read just before; create it
    when absent. A create that loses a race with another creator is retried once as an
    update of what that one registered (``unchanged`` if it is the same)."""
    for _ in range(2):
        got = client.get(f"/v1/{collection}/{name}")
        if got.status_code == 200:
            tag = got.headers.get("ETag")  # an older API build sends none: unconditional
            headers = {"If-Match": tag} if tag else {}
            return client.put(f"/v1/{collection}/{name}", json=body, headers=headers)
        if got.status_code != 404:
            return got
        r = client.post(f"/v1/{collection}", json={"name": name, **body})
        if r.status_code != 409 or _error(r).get("code") != "already_exists":
            return r
    return r


def apply_one(client: httpx.Client, collection: str, kind: str, spec: Any) -> Applied:
    """Register one definition (``collection``: ``entities`` or ``feature-views``) and say
    what happened; raises :class:`ApplyError` on answers no definition could cause."""
    body = spec.model_dump(mode="json")
    name = body.pop("name")
    r = _register(client, collection, name, body)
    if r.status_code in (200, 201):
        data = r.json()
        return Applied(kind, name, data["outcome"], data["version"])
    if r.status_code == 412:
        error = _error(r)
        version = error.get("detail", {}).get("current_version")
        return Applied(kind, name, "conflict", version, (error.get("message", r.text[:300]),))
    if r.status_code in (409, 422):
        error = r.json().get("error", {})
        reasons = error.get("detail", {}).get("reasons") or [error.get("message", r.text[:300])]
        return Applied(kind, name, "rejected", None, tuple(reasons))
    raise ApplyError(f"{kind} {name}: HTTP {r.status_code} {r.text[:300]}")


def apply_definitions(client: httpx.Client) -> list[Applied]:
    """Register entities first (views refer to them), then views; one result each."""
    entities, views = code_definitions()
    results = [apply_one(client, "entities", "entity", e) for e in entities]
    results += [apply_one(client, "feature-views", "feature view", v) for v in views]
    return results


def apply(
    url: str = typer.Option("", help="Feature API base URL (default: the local stack's)."),
) -> None:
    """Register core/features.py's entities and feature views in the registry (idempotent)."""
    settings = load_settings()
    base = url or f"http://{settings.host}:{settings.ports.api}"
    try:
        with httpx.Client(base_url=base, timeout=10, headers=api_headers(Role.WRITER)) as client:
            results = apply_definitions(client)
    except httpx.HTTPError as exc:
        fail("apply", f"{base} unreachable: {exc}", fix="streamfeat up api")
    except ApplyError as exc:
        text = str(exc)
        if "HTTP 401" in text or "HTTP 403" in text:
            fix = f"set {API_KEY_ENV} to a writer key"
        elif "HTTP 404" in text or "HTTP 405" in text:  # the route itself is unknown there
            fix = (
                f"the API at {base} has no registry routes: an older build still running? "
                "`streamfeat down api && streamfeat up api`"
            )
        else:
            fix = "streamfeat logs api"
        fail("apply", text, fix=fix)
    for r in results:
        out.print(r.line())
    conflicts = [r for r in results if r.outcome == "conflict"]
    rejected = [r for r in results if r.outcome == "rejected"]
    if conflicts:
        fail(
            "apply",
            f"{len(conflicts)} definition(s) changed by another writer while apply ran; "
            "nothing of theirs was overwritten",
            fix="review the current versions (GET /v1/feature-views/<name>), then re-run "
            "`streamfeat apply` to register yours on top of them",
        )
    if rejected:
        fail(
            "apply",
            f"{len(rejected)} definition(s) rejected",
            fix="keep the change compatible, or register it under a new name",
        )
