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
) -> None:
    """Promote VERSION: staging, then canary, then production (in that order only)."""
    settings = load_settings()
    move = _with_registry(settings, lambda r: r.promote(model, version, to, traffic=traffic))
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
