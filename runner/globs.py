"""Globs, one way everywhere: spec roots, workflow inputs and outputs, the watcher, and the
Glob/Grep tools.

`*` and `?` stay within one folder, `**` crosses folders (`a/**/b` also matches `a/b`), `[...]`
is a set (`[!...]` negated), `{a,b}` alternates, `\\` escapes. Paths are root-relative, with `/`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache

_MAGIC = re.compile(r"[*?\[{]")
_NEVER_SEARCHED = frozenset({".git", ".runner"})


def has_magic(pattern: str) -> bool:
    return _MAGIC.search(pattern) is not None


def fixed_folder(pattern: str) -> str:
    """The folders a pattern starts with, before any wildcard: every match lies below them."""
    prefix = literal_prefix(pattern)
    return prefix[: prefix.rfind("/")] if "/" in prefix else ""


def expand(root: str | os.PathLike[str], pattern: str, *, folders: bool = False) -> list[str]:
    """The files (or folders) under `root` that `pattern` matches: root-relative, sorted.

    As in a shell, wildcards do not reach into hidden files and folders unless the pattern names
    one after its fixed part (`.kiro/specs/*` is fine; `**/*.md` skips `.venv/`); `.git/` and
    `.runner/` are never searched. Without `**`, the walk goes no deeper than the pattern does.
    """
    root = os.fspath(root)
    base = fixed_folder(pattern)
    base = base + "/" if base else ""
    rest = pattern[len(base) :]
    depth = None if "**" in rest else rest.count("/")
    hidden = ("/" + rest).find("/.") >= 0
    regex = compile_glob(rest)  # the part below the fixed folders: one regex for every spec's copy
    found: list[str] = []

    def walk(below: str, level: int) -> None:
        try:
            it = os.scandir(os.path.join(root, base + below))
        except OSError:
            return
        with it:
            for entry in it:
                name = entry.name
                if name in _NEVER_SEARCHED or (name[0] == "." and not hidden):
                    continue
                rel = below + name
                is_dir = entry.is_dir()
                if (is_dir if folders else entry.is_file()) and regex.fullmatch(rel):
                    found.append(base + rel)
                # A `**` walk does not follow links to folders: they may lead back up.
                if is_dir and (level < depth if depth is not None else not entry.is_symlink()):
                    walk(rel + "/", level + 1)

    walk("", 0)
    return sorted(found)


def literal_prefix(pattern: str) -> str:
    """The part of a pattern before its first wildcard: every path it matches starts with this."""
    m = _MAGIC.search(pattern)
    return pattern if m is None else pattern[: m.start()]


def translate(pattern: str, placeholders: Mapping[str, str] | None = None) -> str:
    """A glob as a regex body: `*` and `?` stay in one folder, `**` crosses folders, `{a,b}` alternates.

    `placeholders` maps literal tokens of the pattern (such as `{spec}`) to regex bodies.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        token = next((t for t in placeholders or () if pattern.startswith(t, i)), None)
        if token is not None:
            out.append(placeholders[token])  # type: ignore[index]
            i += len(token)
            continue
        c = pattern[i]
        if c == "*":
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            whole = (i == 0 or pattern[i - 1] == "/") and (j == n or pattern[j] == "/")
            if j - i >= 2 and whole:
                if j == n:
                    out.append(".*")
                    i = j
                else:
                    out.append("(?:[^/]*/)*")
                    i = j + 1
            else:
                out.append("[^/]*")
                i = j
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
                i += 1
                continue
            body = pattern[i + 1 : j]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\")
            out.append(f"[{'^/' if negate else ''}{body}]")
            i = j + 1
        elif c == "{":
            close, alternatives = split_braces(pattern, i)
            if close < 0:
                out.append(re.escape(c))
                i += 1
                continue
            out.append("(?:" + "|".join(translate(alt, placeholders) for alt in alternatives) + ")")
            i = close + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def split_braces(pattern: str, start: int) -> tuple[int, list[str]]:
    """The index of the `}` closing the `{` at `start` and the comma-separated parts, or (-1, [])."""
    depth, part_start, parts = 0, start + 1, []
    i = start
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                parts.append(pattern[part_start:i])
                return i, parts
        elif c == "," and depth == 1:
            parts.append(pattern[part_start:i])
            part_start = i + 1
        i += 1
    return -1, []


@lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A compiled glob, to `fullmatch` root-relative posix paths."""
    return re.compile(translate(pattern), re.DOTALL)
