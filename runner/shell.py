"""Running shell commands for jobs: `run:` phases, `verify:` commands and CLI agents.

Commands run from the project root in their own session, so a Ctrl-C in the terminal reaches
runner (which decides what to stop) rather than every child at once; cancelling kills the
command's whole process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class CommandResult:
    returncode: int | None  # None when killed (timeout or cancel)
    timed_out: bool = False
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self, timeout: float | None = None) -> str:
        if self.cancelled:
            return "cancelled"
        if self.timed_out:
            return f"timed out after {timeout:g} s" if timeout else "timed out"
        return f"exit {self.returncode}"


def run_command(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    output: IO[bytes] | int,
    stdin: bytes | None = None,
    timeout: float | None = None,
    cancelled: threading.Event | None = None,
) -> CommandResult:
    start = time.monotonic()
    proc = subprocess.Popen(
        command,
        shell=True,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if stdin is not None:
        _feed(proc, stdin)
    deadline = start + timeout if timeout else None
    while True:
        try:
            rc = proc.wait(timeout=0.1)
            return CommandResult(rc, seconds=time.monotonic() - start)
        except subprocess.TimeoutExpired:
            pass
        if cancelled is not None and cancelled.is_set():
            kill_group(proc)
            return CommandResult(None, cancelled=True, seconds=time.monotonic() - start)
        if deadline is not None and time.monotonic() > deadline:
            kill_group(proc)
            return CommandResult(None, timed_out=True, seconds=time.monotonic() - start)


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    # A thread, so a command that does not read its stdin cannot block us on a full pipe.
    def write() -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(data)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    threading.Thread(target=write, daemon=True).start()


def kill_group(proc: subprocess.Popen[bytes], grace: float = 2.0) -> None:
    """SIGTERM the command's process group, then SIGKILL what is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # Children that outlived the leader still hold the group; make sure none survive.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
