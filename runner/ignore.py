"""Which project files are ignored, with git's rules.

Sources: the root `.gitignore`, nested `.gitignore` files (each relative to its folder) and
`.git/info/exclude`. `.git/` and `.runner/` are always ignored, at any depth. Precedence is git's:
the deepest `.gitignore` that has an opinion wins, the last matching line within a file wins,
`info/exclude` comes last, and nothing inside an ignored folder can be re-included.

Patterns are compiled by pathspec's `GitIgnoreSpec`. Its own `check_file` answers "is this file, or a
folder above it, matched", which gets folder-level negations such as `*` + `!*/` wrong when the path
is a folder. Because `matches` and `walk` decide folders top-down anyway, each path here only needs
"does this line match the path itself", which is read from the compiled regex and its directory-mark
group.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from pathspec import GitIgnoreSpec

ALWAYS_IGNORED = frozenset({".git", ".runner"})
IGNORE_FILE = ".gitignore"
EXCLUDE_FILE = ".git/info/exclude"

# pathspec's regexes capture a trailing "/" in this group when a line matched a folder.
_DIR_MARK = "ps_d"
_CACHE_LIMIT = 65536


class _Lines:
    """The compiled lines of one ignore file, in file order."""

    __slots__ = ("empty", "rules", "spec")

    def __init__(self, text: str) -> None:
        self.spec = GitIgnoreSpec.from_lines(text.splitlines())
        active = [p for p in self.spec.patterns if getattr(p, "include", None) is not None]
        self.empty = not active
        self.rules: list[tuple[re.Pattern[str], bool]] | None = None
        if all(isinstance(getattr(p, "regex", None), re.Pattern) for p in active):
            self.rules = [(p.regex, bool(p.include)) for p in reversed(active)]  # type: ignore[attr-defined]

    def decide(self, path: str, is_dir: bool) -> bool | None:
        """True: ignored, False: re-included by a `!` line, None: no line is about this path."""
        if self.rules is None:
            # A pathspec that does not expose its regexes: its own answer is close enough.
            return self.spec.check_file(path + "/" if is_dir else path).include
        for regex, include in self.rules:  # reversed, so the last matching line wins
            if _matches_itself(regex, path, is_dir):
                return include
        return None


def _matches_itself(regex: re.Pattern[str], path: str, is_dir: bool) -> bool:
    m = regex.search(path)
    if m is not None and m.groupdict().get(_DIR_MARK) is None:
        return True
    if is_dir:
        slashed = path + "/"
        for m in regex.finditer(slashed):
            if m.groupdict().get(_DIR_MARK) is not None and m.end(_DIR_MARK) == len(slashed):
                return True
    return False


class IgnoreRules:
    """gitignore semantics for one project root; cheap to query repeatedly."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._given_root = os.path.abspath(root)
        self._lines: dict[str, _Lines | None] = {}
        self._exclude: _Lines | None = None
        self._exclude_loaded = False
        self._dirs: dict[str, bool] = {}
        self._results: dict[tuple[str, bool], bool] = {}

    # -- public ---------------------------------------------------------------------------------

    def reload(self) -> None:
        """Forget every compiled ignore file; they are read again on the next query."""
        # Swap in fresh dicts rather than clearing, so a concurrent reader (the watcher thread)
        # never sees a half-emptied cache.
        self._lines = {}
        self._dirs = {}
        self._results = {}
        self._exclude = None
        self._exclude_loaded = False

    @staticmethod
    def is_rules_file(relpath: str) -> bool:
        """Does a change to this root-relative path call for `reload()`?"""
        relpath = relpath.replace(os.sep, "/").strip("/")
        return relpath == EXCLUDE_FILE or relpath.rsplit("/", 1)[-1] == IGNORE_FILE

    def matches(self, relpath: str | os.PathLike[str], is_dir: bool = False) -> bool:
        """Is this path ignored? Root-relative posix paths; absolute paths inside the root work too.

        An absolute path outside the root is reported as ignored: it is not part of the project.
        """
        rel = self._normalise(relpath)
        if rel is None:
            return True
        if rel == "":
            return False
        key = (rel, is_dir)
        results = self._results
        hit = results.get(key)
        if hit is not None:
            return hit
        parts = rel.split("/")
        ignored = False
        for i in range(1, len(parts)):
            if self._dir_ignored("/".join(parts[:i])):
                ignored = True
                break
        if not ignored:
            ignored = self._dir_ignored(rel) if is_dir else self._ignored_here(rel, False)
        if len(results) >= _CACHE_LIMIT:
            results = self._results = {}
        results[key] = ignored
        return ignored

    def walk(self, start: Path) -> Iterator[Path]:
        """Yield the files under `start` that are not ignored, in sorted order, pruning ignored folders.

        `start` itself is searched even when it is ignored (as ripgrep does with an explicit path);
        a file as `start` is yielded as is. Symlinked folders are not followed (no cycles, no escape
        from the root); symlinked files are yielded.
        """
        start = Path(start)
        if not start.is_absolute():
            start = self.root / start
        if start.is_file():
            yield start
            return
        base = self._normalise(start)
        if base is None:
            raise ValueError(f"{start} is outside the project root {self.root}")
        # Depth-first in name order, so the output is sorted by path components.
        stack: list[Iterator[tuple[os.DirEntry[str], str]]] = [self._entries(str(start), base)]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
                continue
            entry, rel = item
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                if is_dir:
                    if not self._dir_ignored(rel):
                        stack.append(self._entries(entry.path, rel))
                elif not self._ignored_here(rel, False) and entry.is_file():
                    yield Path(entry.path)
            except OSError:
                continue  # vanished or unreadable: skip it, as ripgrep does

    @staticmethod
    def _entries(folder: str, rel_folder: str) -> Iterator[tuple[os.DirEntry[str], str]]:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            yield entry, (f"{rel_folder}/{entry.name}" if rel_folder else entry.name)

    # -- internals ------------------------------------------------------------------------------

    def _normalise(self, relpath: str | os.PathLike[str]) -> str | None:
        text = os.fspath(relpath)
        if os.path.isabs(text):
            for root in (str(self.root), self._given_root):
                if text == root:
                    return ""
                if text.startswith(root.rstrip("/") + "/"):
                    text = text[len(root.rstrip("/")) + 1 :]
                    break
            else:
                return None
        text = text.replace(os.sep, "/")
        while text.startswith("./"):
            text = text[2:]
        text = text.strip("/")
        return "" if text == "." else text

    def _dir_ignored(self, rel: str) -> bool:
        """Is this folder itself ignored? Its ancestors must already be known not to be."""
        dirs = self._dirs
        hit = dirs.get(rel)
        if hit is None:
            hit = self._ignored_here(rel, True)
            dirs[rel] = hit
        return hit

    def _ignored_here(self, rel: str, is_dir: bool) -> bool:
        """Decide one path by the ignore files that apply to it, ignoring its ancestors' state."""
        name = rel.rsplit("/", 1)[-1]
        if name in ALWAYS_IGNORED:
            return True
        parts = rel.split("/")
        # Deepest .gitignore first: it overrides the ones above it.
        for depth in range(len(parts) - 1, -1, -1):
            lines = self._lines_for("/".join(parts[:depth]))
            if lines is None:
                continue
            verdict = lines.decide("/".join(parts[depth:]), is_dir)
            if verdict is not None:
                return verdict
        exclude = self._exclude_lines()
        if exclude is not None:
            verdict = exclude.decide(rel, is_dir)
            if verdict is not None:
                return verdict
        return False

    def _lines_for(self, folder: str) -> _Lines | None:
        cache = self._lines
        if folder in cache:
            return cache[folder]
        path = self.root / folder / IGNORE_FILE if folder else self.root / IGNORE_FILE
        lines = _load(path)
        cache[folder] = lines
        return lines

    def _exclude_lines(self) -> _Lines | None:
        if not self._exclude_loaded:
            self._exclude = _load(self.root / EXCLUDE_FILE)
            self._exclude_loaded = True
        return self._exclude


def _load(path: Path) -> _Lines | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError):
        return None
    lines = _Lines(text)
    return None if lines.empty else lines
