"""Running shell commands for jobs: `run:` phases, `verify:` commands and CLI agents.

Commands run from the project root in their own session, so a Ctrl-C in the terminal reaches
runner (which decides what to stop) rather than every child at once; cancelling kills the
command's whole process group, and so does its end (nothing it started outlives the job).
Output is copied line by line with secrets redacted: logs never hold an API key.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from runner.secrets import redact, secret_values


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
    output: IO[bytes],
    stdin: bytes | None = None,
    timeout: float | None = None,
    cancelled: threading.Event | None = None,
) -> CommandResult:
    """Run `command` with `bash -c`; its output goes to `output`, with secrets redacted.

    When the command ends (or is stopped), whatever it left running in the background is stopped
    too: a job's processes end with the job.
    """
    start = time.monotonic()
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if stdin is not None:
        _feed(proc, stdin)
    copier = threading.Thread(target=_copy_redacted, args=(proc, output, secret_values(env)), daemon=True)
    copier.start()
    deadline = start + timeout if timeout else None
    result: CommandResult | None = None
    while result is None:
        try:
            result = CommandResult(proc.wait(timeout=0.1))
        except subprocess.TimeoutExpired:
            if cancelled is not None and cancelled.is_set():
                result = CommandResult(None, cancelled=True)
            elif deadline is not None and time.monotonic() > deadline:
                result = CommandResult(None, timed_out=True)
    kill_group(proc)
    copier.join(timeout=5)
    return replace(result, seconds=time.monotonic() - start)


def _copy_redacted(proc: subprocess.Popen[bytes], output: IO[bytes], secrets: list[str]) -> None:
    """Line by line, so a secret is never split across two writes."""
    assert proc.stdout is not None
    for line in proc.stdout:
        text = line.decode("utf-8", "surrogateescape")
        output.write(redact(text, secrets).encode("utf-8", "surrogateescape"))
        output.flush()


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
