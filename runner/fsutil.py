"""Crash-safe file writes.

A reader, a crash or a kill -9 at any moment sees either the old file or the new one, never a
half-written mix: data goes to a temporary file in the same folder, is flushed to disk, and is
renamed over the target. The target's permission bits are kept.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

# The temporary file of a write in progress: `.<name>.<8 random characters>.tmp` beside the target.
TEMP_NAME = re.compile(r"(?:^|/)\.[^/]+\.[a-z0-9_]{8}\.tmp$")

# Read once at import: os.umask can only be read by setting it, which races with other threads.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, data: bytes | str, *, encoding: str = "utf-8") -> None:
    """Replace `path` with `data` atomically, creating parent folders as needed.

    Text is written exactly as given (no newline translation), so a caller that read a CRLF file
    gets CRLF back.
    """
    path = Path(path)
    payload = data.encode(encoding) if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        else:
            # mkstemp creates 0600 files; give new files the usual umask-based permissions.
            os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def append_line(path: str | Path, line: str) -> None:
    """Append one line and flush it, so a killed process loses at most the line being written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line if line.endswith("\n") else line + "\n")
        f.flush()


def temp_beside(path: Path) -> tuple[int, str]:
    """An open temporary file in `path`'s folder, named as TEMP_NAME says (mkstemp's fd, path)."""
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
