"""The model registry: MLflow registered models, their versions and serving stages.

``register`` creates a model version from an MLflow model — a URI MLflow resolves
(``runs:/<run>/<path>``, ``models:/<id>``, ``mlflow-artifacts:/...``, ``s3://...``) or a
local MLflow model directory, which is first uploaded as the artifacts of a run (experiment
``streamfeat-model-uploads``) so the version's source is reachable by a model server, never a
path on one machine. The version is tagged with the training sets it learned from.

``promote``/``rollback`` apply the rules of serving/stages.py with MLflow aliases. What a
model server reads: alias ``production`` (the main predictor), alias ``canary`` and the
registered model's tag ``streamfeat.canary_traffic_percent`` (the canary's share),
``previous-production`` (what rollback returns to). Each version also keeps when it entered
each stage (tags ``streamfeat.<stage>_at``) and when it left production.

Lineage: registration reports ``training_set:* -> job:model_registration.<model> ->
model_version:<model>/<n>``, each promotion or rollback ``model_version:<model>/<n> ->
job:model_promotion.<model> -> serving_stage:<model>/<stage>``, as START then COMPLETE (FAIL
with the error). An illegal move is refused before anything is reported or changed.

MLflow is reached through its HTTP API; its fluent ``register_model`` resolves ``runs:/``
URIs through the process-wide tracking URI, so a ``ModelRegistry`` sets it (one process talks
to one MLflow). Each call first probes ``/health`` with a short deadline, so an MLflow that is
down is one clear error, not minutes of the client's retries. Two operators promoting the same
model at the same moment can interleave (MLflow has no transaction over aliases): the last
writer wins per alias; promotions are meant to be run by one release process.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import lineage
from serving import stages
from serving.stages import PREVIOUS_PRODUCTION, IllegalMove, Move, Placement, Stage

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

    from core.lineage import LineageEmitter

TRAINING_SETS_TAG = "streamfeat.training_sets"
"""Version tag: the training sets the version learned from, joined with ','."""
CANARY_TRAFFIC_TAG = "streamfeat.canary_traffic_percent"
"""Registered-model tag: the canary's share of requests, set exactly while a canary is."""
UPLOAD_EXPERIMENT = "streamfeat-model-uploads"
"""Experiment whose runs hold models registered from a local directory."""
MLMODEL = "MLmodel"


class RegistryError(Exception):
    """A registry operation failed; ``fix`` says what to do about it."""

    def __init__(self, problem: str, *, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem)


class MlflowUnreachable(RegistryError):
    """The MLflow tracking server did not answer its health check."""


@dataclass(frozen=True)
class VersionInfo:
    version: int
    stages: tuple[str, ...]
    """Aliases of this version among the serving ones (stage or previous-production)."""
    training_sets: tuple[str, ...]
    source: str
    status: str
    created: datetime


@dataclass(frozen=True)
class ModelStatus:
    name: str
    placement: Placement
    versions: tuple[VersionInfo, ...]
    """Every version, newest first."""


def local_model_dir(model_uri: str) -> Path | None:
    """The local directory ``model_uri`` names (a plain path or ``file:``), else None."""
    parsed = urllib.parse.urlparse(model_uri)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme == "":
        return Path(model_uri)
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ModelRegistry:
    """Registration and stage moves of models on one MLflow tracking server."""

    def __init__(
        self, tracking_uri: str, *, lineage: LineageEmitter, probe_timeout_s: float = 3.0
    ) -> None:
        import mlflow

        self.tracking_uri = tracking_uri.rstrip("/")
        self.lineage = lineage
        self.probe_timeout_s = probe_timeout_s
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        self.client: MlflowClient = mlflow.MlflowClient(self.tracking_uri, self.tracking_uri)

    # ---- registration ----

    def register(self, *, name: str, model_uri: str, training_sets: Sequence[str]) -> VersionInfo:
        """A new version of model ``name`` (created if new) from ``model_uri``, tagged with
        ``training_sets``; returns it once MLflow reports it READY."""
        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            stages.check_model_name(name)
            sets = stages.check_training_sets(list(training_sets))
        except ValueError as exc:
            raise RegistryError(str(exc)) from exc
        local = local_model_dir(model_uri)
        if local is not None:
            _check_model_dir(local)
        self.probe()
        spec = lineage.model_registration_spec(model=name, version=0, training_sets=sets)
        # the version number is MLflow's answer: START names the inputs, COMPLETE the output
        with self.lineage.track(replace(spec, outputs=())) as run:
            try:
                source = self._upload(name, local) if local is not None else model_uri
                mv = mlflow.register_model(
                    source,
                    name,
                    await_registration_for=60,
                    tags={TRAINING_SETS_TAG: ",".join(sets)},
                )
            except MlflowException as exc:
                raise RegistryError(
                    f"MLflow refused to register {model_uri!r} as {name!r}: {exc.message}",
                    fix="pass an MLflow model: runs:/<run_id>/<path>, models:/<model_id>, or a "
                    "directory holding an MLmodel file",
                ) from exc
            if mv.status != "READY":
                raise RegistryError(
                    f"version {mv.version} of {name!r} is {mv.status}: {mv.status_message}",
                    fix=f"see the MLflow server log; delete the version in {self.tracking_uri}",
                )
            run.complete(
                lineage.model_registration_spec(model=name, version=mv.version, training_sets=sets)
            )
        return self._info(mv, Placement())

    def _upload(self, name: str, local: Path) -> str:
        """Log the directory as the artifacts of a new run; its ``runs:/`` URI."""
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(UPLOAD_EXPERIMENT)
        if exp is not None:
            exp_id = exp.experiment_id
        else:
            try:
                exp_id = self.client.create_experiment(UPLOAD_EXPERIMENT)
            except MlflowException:  # created by a concurrent upload
                found = self.client.get_experiment_by_name(UPLOAD_EXPERIMENT)
                if found is None:
                    raise
                exp_id = found.experiment_id
        tags = {"streamfeat.model": name, "streamfeat.local_path": str(local.resolve())}
        run_id = self.client.create_run(exp_id, tags=tags, run_name=f"upload-{name}").info.run_id
        try:
            self.client.log_artifacts(run_id, str(local), "model")
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id)
        return f"runs:/{run_id}/model"

    # ---- stages ----

    def promote(
        self,
        name: str,
        version: int,
        to: Stage | str,
        *,
        traffic: float | None = None,
        live: Callable[[str, int], None] | None = None,
    ) -> Move:
        """Move ``version`` into stage ``to``; IllegalMove when the rules refuse. A move that
        sends it traffic (canary, production) first calls ``live(name, version)``, which
        raises when its features are not live online (serving/live.py)."""
        self.probe()
        placement = self.placement(name)
        self._version(name, version)
        move = stages.promote(placement, version, Stage(to), traffic=traffic)
        if live is not None and move.stage in (Stage.CANARY, Stage.PRODUCTION):
            live(name, version)
        self._apply(name, move)
        return move

    def rollback(self, name: str) -> Move:
        """Production back to the version it replaced; IllegalMove when there is none."""
        self.probe()
        move = stages.rollback(self.placement(name))
        self._apply(name, move)
        return move

    def _apply(self, name: str, move: Move) -> None:
        """Write the move to MLflow under one lineage run. Order matters if it is cut
        short: the retired version is kept findable first, new aliases are set before old
        ones are deleted (something keeps serving), tags last."""
        spec = lineage.serving_stage_spec(model=name, version=move.version, stage=move.stage)
        sets, deletes = move.alias_changes()
        ordered = sorted(sets.items(), key=lambda item: item[0] != PREVIOUS_PRODUCTION)
        with self.lineage.track(spec):
            for alias, v in ordered:
                self.client.set_registered_model_alias(name, alias, str(v))
            for alias in deletes:
                self.client.delete_registered_model_alias(name, alias)
            traffic = move.after.canary_traffic
            if traffic is not None:
                self.client.set_registered_model_tag(name, CANARY_TRAFFIC_TAG, f"{traffic:g}")
            elif move.before.canary_traffic is not None:
                self.client.delete_registered_model_tag(name, CANARY_TRAFFIC_TAG)
            now = _now()
            self.client.set_model_version_tag(
                name, str(move.version), f"streamfeat.{move.stage.value}_at", now
            )
            if move.retired is not None:
                left = "rolled_back_at" if move.rollback else "retired_at"
                self.client.set_model_version_tag(
                    name, str(move.retired), f"streamfeat.{left}", now
                )

    # ---- reading ----

    def placement(self, name: str) -> Placement:
        """Which version holds which serving alias of ``name`` now."""
        return placement_of(self._model(name))

    def status(self, name: str) -> ModelStatus:
        """Every version of ``name`` with its stage and training sets, newest first."""
        self.probe()
        placement = self.placement(name)
        found = self.client.search_model_versions(f"name = '{stages.check_model_name(name)}'")
        infos = sorted((self._info(mv, placement) for mv in found), key=lambda i: -i.version)
        return ModelStatus(name, placement, tuple(infos))

    def probe(self) -> None:
        """Raise MlflowUnreachable unless ``/health`` answers within the deadline."""
        url = f"{self.tracking_uri}/health"
        try:
            with urllib.request.urlopen(url, timeout=self.probe_timeout_s) as resp:
                ok = resp.status == 200
        except OSError as exc:
            raise MlflowUnreachable(f"MLflow at {self.tracking_uri} unreachable: {exc}") from exc
        if not ok:
            raise MlflowUnreachable(f"MLflow at {self.tracking_uri} answered {resp.status}")

    def _model(self, name: str) -> RegisteredModel:
        from mlflow.exceptions import MlflowException

        try:
            stages.check_model_name(name)
            return self.client.get_registered_model(name)
        except ValueError as exc:
            raise RegistryError(str(exc)) from exc
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise RegistryError(
                    f"no registered model {name!r} in {self.tracking_uri}",
                    fix=f"streamfeat model register --name {name} --model-uri ... "
                    "--training-set ...",
                ) from exc
            raise

    def _version(self, name: str, version: int) -> ModelVersion:
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version(name, str(version))
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise RegistryError(
                    f"model {name!r} has no version {version}",
                    fix=f"streamfeat model status {name}",
                ) from exc
            raise
        if mv.status != "READY":
            raise RegistryError(f"version {version} of {name!r} is {mv.status}, not READY")
        return mv

    def _info(self, mv: ModelVersion, placement: Placement) -> VersionInfo:
        version = int(mv.version)
        held = tuple(a for a, v in placement.aliases().items() if v == version)
        sets = mv.tags.get(TRAINING_SETS_TAG, "")
        return VersionInfo(
            version=version,
            stages=held,
            training_sets=tuple(s for s in sets.split(",") if s),
            source=mv.source or "",
            status=mv.status,
            created=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
        )


def placement_of(model: RegisteredModel) -> Placement:
    """The serving placement a registered model's aliases and canary tag describe."""
    aliases: dict[str, Any] = dict(model.aliases or {})
    raw = (model.tags or {}).get(CANARY_TRAFFIC_TAG)
    try:
        traffic = float(raw) if raw is not None else None
    except ValueError:
        traffic = None  # an edited tag: the canary falls back to the default share
    return Placement.from_aliases(aliases, traffic)


def _check_model_dir(path: Path) -> None:
    if not path.is_dir():
        raise RegistryError(
            f"{path} is not a directory (and not a URI MLflow knows)",
            fix="pass runs:/<run_id>/<path>, models:/<model_id>, or an MLflow model directory",
        )
    if not (path / MLMODEL).is_file():
        raise RegistryError(
            f"{path} is not an MLflow model directory (no {MLMODEL} file)",
            fix="save the model with mlflow.<flavor>.save_model(model, path)",
        )


__all__ = ["IllegalMove", "ModelRegistry", "ModelStatus", "RegistryError", "VersionInfo"]
