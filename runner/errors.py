"""Errors a user can act on.

Every error caused by bad input (a workflow, a tasks.md, a command-line argument) is a `UserError`:
one line that names the file, the line when there is one, and what to do. The CLI prints it and
exits with code 2 without touching any file.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.column = column

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        return where + self.message


class LockHeld(UserError):
    """Another runner process owns this project."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop at once, as a second Ctrl-C does."""


def terminate_on_signals() -> None:
    """In the main thread: turn SIGTERM and SIGHUP into `Terminated`."""
    import signal

    def raise_terminated(signum: int, frame: object) -> None:
        raise Terminated

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_terminated)
