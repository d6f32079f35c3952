"""One runner per project: `.runner/lock`.

`runner run` and `runner watch` hold an exclusive flock on the file while they work, and write who
they are into it, so a second one can say who holds the project. The kernel releases a flock when
its process dies, so a lock left by a killed runner is simply taken over.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

from runner.errors import LockHeld
from runner.state import STATE_DIR


class ProjectLock:
    def __init__(self, root: Path, command: str) -> None:
        self.path = root / STATE_DIR / "lock"
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.read(fd, 4096))
            os.close(fd)
            raise LockHeld(
                f"this project is in use by {holder}; wait for it to finish or stop it, then try again",
                path=self.path,
            ) from None
        # One plain line (pid, host, start time, command): cheap to write on every run.
        info = f"{os.getpid()} {os.uname().nodename} {time.time():.0f} {self.command}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ProjectLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _describe(raw: bytes) -> str:
    try:
        pid, host, since, command = raw.decode().split(" ", 3)
        when = time.strftime("%H:%M:%S", time.localtime(float(since)))
        return f"`{command}` (pid {int(pid)} on {host}, since {when})"
    except ValueError:
        return "another runner process"


def command_line() -> str:
    return "runner " + " ".join(sys.argv[1:])
