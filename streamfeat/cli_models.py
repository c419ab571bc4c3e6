"""`streamfeat model ...`: register model versions in MLflow and move them through the
serving stages staging -> canary -> production (rules: serving/stages.py).

Every command talks to the stack's MLflow (``STREAMFEAT_PORTS__MLFLOW``) and reports lineage
through the CLI's emitter (cli_lineage.py). MLflow's client retries a failed request up to 7
times with exponential backoff (minutes); the CLI caps that at 2 retries and 30 s per request
unless ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` / ``MLFLOW_HTTP_REQUEST_TIMEOUT`` are set, and
checks MLflow's health first, so an MLflow that is down is one line naming its URL and log.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from core.settings import StackSettings, load_settings
from serving.stages import DEFAULT_CANARY_TRAFFIC, Move, Stage
from streamfeat.cli_lineage import emitter
from streamfeat.console import fail, out
from streamfeat.stack.base import StackContext

if TYPE_CHECKING:
    from serving.registry import ModelRegistry

models_app = typer.Typer(
    no_args_is_help=True,
    help="Model registry (MLflow): register versions, promote staging -> canary -> production.",
)

T = TypeVar("T")


def _with_registry(settings: StackSettings, action: Callable[[ModelRegistry], T]) -> T:
    """Run ``action`` on the stack's registry; every failure is one line and exit 1."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.exceptions import MlflowException  # ~2 s: only when a model command runs

    from serving.registry import MlflowUnreachable, ModelRegistry, RegistryError
    from serving.stages import IllegalMove

    log = StackContext(settings).log_path("mlflow")
    try:
        return action(ModelRegistry(settings.mlflow_url, lineage=emitter(settings)))
    except MlflowUnreachable as exc:
        fail(
            "mlflow",
            exc.problem,
            log=log,
            fix="start it with `streamfeat up mlflow`, check with `streamfeat status mlflow`",
        )
    except IllegalMove as exc:
        fail("model", f"refused: {exc}")
    except RegistryError as exc:
        fail("model", exc.problem, fix=exc.fix)
    except MlflowException as exc:
        fail(
            "mlflow", f"{settings.mlflow_url}: {exc.message}", log=log, fix="streamfeat logs mlflow"
        )


def _print_move(model: str, move: Move) -> None:
    what = "rolled back" if move.rollback else "promoted"
    line = f"{model}: version {move.version} {what} to {move.stage.value}"
    if move.stage is Stage.CANARY and move.after.canary_traffic is not None:
        line += f" ({move.after.canary_traffic:g}% of traffic)"
    out.print(line)
    for note in move.notes:
        out.print(f"  {note}")


@models_app.command("register")
def register(
    name: Annotated[str, typer.Option("--name", help="Registered model name (created if new).")],
    model_uri: Annotated[
        str,
        typer.Option(
            "--model-uri",
            help="runs:/<run_id>/<path>, models:/<model_id>, or a local MLflow model directory.",
        ),
    ],
    training_set: Annotated[
        list[str],
        typer.Option("--training-set", help="Training set the model learned from (repeatable)."),
    ],
) -> None:
    """Register a new version of model NAME, tagged with its training sets."""
    settings = load_settings()
    info = _with_registry(
        settings,
        lambda r: r.register(name=name, model_uri=model_uri, training_sets=training_set),
    )
    from serving.inputs import InputError
    from serving.live import describe, record_feature_views

    try:
        views = record_feature_views(settings, name, info.version)
    except InputError as exc:  # a model that does not read online features by name
        out.print(f"  note: {exc}; it cannot be served by the predictors")
    else:
        out.print(f"  reads {describe(views)}")
    out.print(
        f"{name}: registered version {info.version} (training sets: "
        f"{', '.join(info.training_sets)}; source: {info.source})"
    )


@models_app.command("promote")
def promote(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(min=1, help="Version to promote.")],
    to: Annotated[Stage, typer.Option("--to", help="Target stage.")],
    traffic: Annotated[
        float | None,
        typer.Option(
            help=f"Canary's percent of requests (default {DEFAULT_CANARY_TRAFFIC:g}); "
            "on the current canary: change its share."
        ),
    ] = None,
    skip_live_check: Annotated[
        bool,
        typer.Option(
            help="Move a version whose inputs are not this stack's online features (a model "
            "served elsewhere): no check that its features are live."
        ),
    ] = False,
) -> None:
    """Promote VERSION: staging, then canary, then production (in that order only). A move
    to canary or production first checks that every feature view the version reads is live
    online (registered at the version it was trained on, written, fresh)."""
    from serving.live import NotLive, check_live

    settings = load_settings()
    live = partial(check_live, settings)
    try:
        move = _with_registry(
            settings,
            lambda r: r.promote(
                model, version, to, traffic=traffic, live=None if skip_live_check else live
            ),
        )
    except NotLive as exc:
        fail(
            "model",
            f"refused: {exc}",
            fix="deploy the feature job (`streamfeat job deploy`) and let it write these views, "
            "or register the views the model reads (`streamfeat apply`)",
        )
    _print_move(model, move)


@models_app.command("rollback")
def rollback(model: Annotated[str, typer.Argument(help="Registered model name.")]) -> None:
    """Return production to the version it replaced (previous-production)."""
    settings = load_settings()
    move = _with_registry(settings, lambda r: r.rollback(model))
    _print_move(model, move)


@models_app.command("status")
def status(model: Annotated[str, typer.Argument(help="Registered model name.")]) -> None:
    """Which version holds which stage; every version with its training sets."""
    settings = load_settings()
    st = _with_registry(settings, lambda r: r.status(model))
    table = Table(title=f"model {model}", header_style="bold")
    for column in ("version", "stage", "training sets", "status", "created", "source"):
        table.add_column(column, overflow="fold")
    for v in st.versions:
        table.add_row(
            str(v.version),
            ", ".join(v.stages) or "-",
            ", ".join(v.training_sets) or "-",
            v.status,
            v.created.strftime("%Y-%m-%d %H:%M:%S"),
            v.source,
        )
    out.print(table)
    p = st.placement
    if p.canary is not None:
        out.print(f"canary: version {p.canary} at {p.canary_traffic:g}% of traffic")
    if model == settings.serving_model:
        out.print(_serving_line(settings))


@models_app.command("manifest")
def manifest(model: Annotated[str, typer.Argument(help="Registered model name.")]) -> None:
    """Print the KServe InferenceService of MODEL for its current placement: the canary
    revision at its share while a canary is, else production alone (kubectl apply -f -)."""
    from streamfeat.k8s import dump, inference_service

    settings = load_settings()
    p = _with_registry(settings, lambda r: r.placement(model))
    if p.canary is not None:
        doc = inference_service(model, stage="canary", canary_percent=p.canary_traffic)
    else:
        doc = inference_service(model)
    print(dump([doc], f"the registry's placement of {model}"), end="")


@models_app.command("train-demo")
def train_demo(
    per_entity: Annotated[int, typer.Option(min=1, help="Spine instants per customer.")] = 5,
) -> None:
    """Train the demo's purchase-propensity model on a point-in-time training set of the
    offline table, register it as the stack's serving model and move it to production."""
    from batch.point_in_time import TrainingSetError
    from serving.live import NotLive, check_live
    from streamfeat.demo_model import train

    settings = load_settings()
    live = partial(check_live, settings)
    try:
        done = _with_registry(
            settings,
            lambda r: train(
                settings, registry=r, live=live, per_entity=per_entity, progress=out.print
            ),
        )
    except TrainingSetError as exc:
        fail("training set", str(exc), fix="run the demo first: `make demo` (job, offline commit)")
    except NotLive as exc:
        fail("model", f"refused: {exc}", fix="deploy the feature job and let it write the views")
    except RuntimeError as exc:
        fail("models", str(exc), fix="`streamfeat status predictor` and its log")
    out.print(
        f"{done.name}: version {done.version} in production, trained on {done.training_set} "
        f"({done.rows} rows, {done.positives} positive); ask it: "
        f"streamfeat model predict {done.name} 17"
    )


@models_app.command("predict")
def predict(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    entity_ids: Annotated[list[int], typer.Argument(help="Entity ids (customers).")],
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the endpoint to answer 200.")
    ] = 0.0,
) -> None:
    """Predictions for ENTITY_IDS from the model endpoint (production and canary behind it),
    with the version that answered each and its features' age."""
    import time

    import httpx

    settings = load_settings()
    url = f"{settings.models_url}/v1/models/{model}:predict"
    deadline = time.monotonic() + wait
    while True:
        try:
            r = httpx.post(url, json={"instances": entity_ids}, timeout=10)
        except httpx.HTTPError as exc:
            problem = f"{url} unreachable: {exc}"
        else:
            if r.status_code == 200:
                break
            problem = f"{url} answered {r.status_code}: {r.text[:300]}"
        if time.monotonic() >= deadline:
            fail(
                "models",
                problem,
                log=StackContext(settings).log_path("predictor"),
                fix=f"`streamfeat status` (is a version of {model} in production?)",
            )
        time.sleep(1.0)
    got = r.json()
    table = Table(title=f"{model} predictions", header_style="bold")
    for column in ("entity", "prediction", "version", "stage", "feature age (ms)"):
        table.add_column(column)
    for i, entity in enumerate(got["entity_ids"]):
        ages = ", ".join(f"{v}: {a}" for v, a in got["feature_age_ms"][i].items())
        table.add_row(
            str(entity),
            f"{got['predictions'][i]:.4f}",
            str(got["versions"][i]),
            got["stages"][i],
            ages,
        )
    out.print(table)


def _serving_line(settings: StackSettings) -> str:
    """What the stack's model endpoint serves now, beside the registry's placement."""
    import httpx

    try:
        got = httpx.get(f"{settings.models_url}/readyz", timeout=3).json()
    except (httpx.HTTPError, ValueError) as exc:
        return f"endpoint {settings.models_url}: not answering ({exc})"

    def state(ready: bool) -> str:
        return "ready" if ready else "NOT ready"

    line = f"endpoint {settings.models_url}: production v{got['production']} "
    line += state(got["production_ready"])
    if got.get("canary") is not None:
        line += (
            f", canary v{got['canary']} at {got['canary_traffic_percent']:g}% "
            f"{state(got['canary_ready'])} (entities of a canary NOT ready go to production)"
        )
    return line
