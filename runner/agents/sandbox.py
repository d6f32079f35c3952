"""Keeps an agent's file tools inside the project root.

Every path an agent names goes through `Sandbox.resolve`, which returns the real (symlink-free) path
or raises `SandboxError`. The error text goes back to the model as the tool result, so it says what
was wrong and, when it can, which path would work: models often write `/tasks/x.md` meaning
`tasks/x.md`, or Windows paths copied from a prompt written on Windows.

Only the file tools are confined this way; Bash runs as the user in the project root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

PROTECTED = (".git", ".runner")

_WINDOWS_DRIVE = re.compile(r"^/?([A-Za-z]):(?:[\\/]|$)")


class SandboxError(Exception):
    """A path the agent may not use; the message is written for the model to read."""


class Sandbox:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ValueError(f"project root {root} is not a folder")
        self._root_str = str(self.root)
        # The root as the caller spelled it, so an absolute path through a symlinked spelling of
        # the root (macOS /tmp -> /private/tmp) is still recognised as inside.
        self._given = os.path.abspath(root)

    def resolve(self, path: str, *, write: bool = False) -> Path:
        """The real path inside the root that `path` names, or SandboxError.

        Relative paths are taken from the project root. The file need not exist; its deepest
        existing parent is resolved instead. With `write`, the path must also be usable as a file.
        """
        if not isinstance(path, str):
            raise SandboxError(f"A path must be a string, got {type(path).__name__}.")
        text = path.strip()
        if not text:
            raise SandboxError(
                "The path is empty. Give a path relative to the project root, e.g. `src/app.py`."
            )
        if "\x00" in text:
            raise SandboxError("The path contains a NUL byte.")
        if _WINDOWS_DRIVE.match(text):
            raise SandboxError(self._windows_message(text, write))
        if text.startswith("~"):
            raise SandboxError(
                f"`{text}`: `~` is not expanded and the home folder is outside the project. "
                "Paths are relative to the project root."
            )
        if text.startswith("file://"):
            text = text[len("file://") :]

        candidate = text if os.path.isabs(text) else os.path.join(self._root_str, text)
        lexical = os.path.normpath(candidate)
        lexical_rel = self._inside(lexical)
        real = os.path.realpath(candidate)
        real_rel = self._inside(real)
        if real_rel is None:
            if os.path.isabs(text) and lexical_rel is None:
                raise SandboxError(self._absolute_message(text, write))
            if lexical_rel is None:
                raise SandboxError(
                    f"`{text}` is outside the project root: `..` may not leave it. "
                    "Paths are relative to the project root."
                )
            raise SandboxError(
                f"`{text}` leads outside the project root through a symbolic link "
                f"(it resolves to {real}); only files inside the project can be used."
            )
        for rel in (lexical_rel, real_rel):
            if rel is None:
                continue
            hit = _protected_part(rel)
            if hit == ".git":
                raise SandboxError(
                    f"`{text}` is inside `.git/`, which the file tools may not read or write. "
                    "Use `git` commands through Bash for repository information."
                )
            if hit == ".runner":
                raise SandboxError(
                    f"`{text}` is inside `.runner/`, the runner's own state; it is off-limits."
                )

        result = Path(real)
        if write:
            self._check_writable(text, result)
        return result

    def rel(self, path: str | os.PathLike[str]) -> str:
        """The root-relative posix spelling of `path`, for messages ("." for the root itself)."""
        text = os.fspath(path)
        if not os.path.isabs(text):
            return PurePosixPath(text.replace(os.sep, "/")).as_posix()
        for form in (os.path.normpath(text), os.path.realpath(text)):
            rel = self._inside(form)
            if rel is not None:
                return rel or "."
        return text

    # -- internals ------------------------------------------------------------------------------

    def _inside(self, absolute: str) -> str | None:
        """Root-relative posix path of a normalised absolute path, or None if it is outside."""
        for root in (self._root_str, self._given):
            if absolute == root:
                return ""
            prefix = root.rstrip("/") + "/"
            if absolute.startswith(prefix):
                return absolute[len(prefix) :].replace(os.sep, "/")
        return None

    def _check_writable(self, text: str, real: Path) -> None:
        if real == self.root or real.is_dir():
            raise SandboxError(f"`{text}` is a folder; give the path of a file inside it.")
        parent = real.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise SandboxError(f"Cannot create `{text}`: `{self.rel(parent)}` is a file, not a folder.")

    def _suggest(self, text: str, write: bool) -> str | None:
        """The longest tail of an outside path that names something inside the root."""
        parts = [p for p in PurePosixPath(text.replace("\\", "/")).parts if p not in ("/", "", ".")]
        if ".." in parts:
            return None
        for i in range(len(parts)):
            tail = parts[i:]
            rel = "/".join(tail)
            if _protected_part(rel):
                continue
            target = self.root / rel
            # For a file about to be created, an existing folder below the root is evidence enough.
            plausible = target.exists() or (write and len(tail) > 1 and target.parent.is_dir())
            if plausible and self._inside(os.path.realpath(target)) is not None:
                return rel
        return None

    def _absolute_message(self, text: str, write: bool) -> str:
        message = (
            f"`{text}` is outside the project. Paths are relative to the project root "
            f"({self._root_str}); absolute paths work only inside it."
        )
        suggestion = self._suggest(text, write)
        if suggestion:
            message += f" Did you mean `{suggestion}`?"
        return message

    def _windows_message(self, text: str, write: bool) -> str:
        stripped = _WINDOWS_DRIVE.sub("/", text).replace("\\", "/")
        message = (
            f"`{text}` is a Windows-style path, but the project runs on a POSIX system. "
            "Use a path relative to the project root, with `/` separators"
        )
        suggestion = self._suggest(stripped, write)
        return message + (f": did you mean `{suggestion}`?" if suggestion else ", e.g. `src/app.py`.")


def _protected_part(rel: str) -> str | None:
    # Case-insensitive, since `.GIT` is `.git` on macOS and Windows file systems.
    for part in rel.split("/"):
        low = part.lower()
        if low in PROTECTED:
            return low
    return None
