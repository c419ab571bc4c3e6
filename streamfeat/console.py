"""Terminal output shared by the CLI commands: one console, one way to fail."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

from streamfeat.stack.errors import StackError

# Wide enough for tables when stdout is a file or a CI log.
out = Console(width=None if sys.stdout.isatty() else 160, highlight=False)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160, highlight=False)


def fail_with(exc: StackError) -> NoReturn:
    """Print the error as one line (what failed, its log, the fix) and exit 1."""
    err.print(f"[bold red]error:[/] {exc.one_line()}", soft_wrap=True)
    raise typer.Exit(1)


def fail(what: str, problem: str, *, log: Path | None = None, fix: str | None = None) -> NoReturn:
    fail_with(StackError(what, problem, log=log, fix=fix))


def short(path: str) -> str:
    """A path relative to the working directory when it is below it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path
