"""The one error the stack raises: it names the service, what failed, its log and the fix."""

from __future__ import annotations

from pathlib import Path


class StackError(Exception):
    """A service could not be started, checked or stopped.

    ``str()`` is a single line meant for a terminal: ``service: problem (log: path) -> fix``.
    """

    def __init__(
        self, service: str, problem: str, *, log: Path | None = None, fix: str | None = None
    ) -> None:
        self.service = service
        self.problem = problem
        self.log = log
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = f"{self.service}: {self.problem}"
        if self.log is not None:
            text += f" (log: {self.log})"
        if self.fix:
            text += f" -> fix: {self.fix}"
        return text
