"""Did this input change? Content digests of project files, behind a stat cache.

The check goes stat first (mtime_ns, size, inode), then content: a file whose stat matches the
cached row, and whose mtime is clearly older than the moment it was hashed, keeps its digest
without being read. Where the rows are stored is the state module's business; this module only
decides.

A tasks.md is digested with every checkbox cleared, so ticking a box (the runner's own write, or a
person's) changes no signature; rewording, adding or removing a task does. A features.json is
digested without its statuses, for the same reason.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from runner.state import RACY_NS

try:  # hashlib's own blake2b, without hashlib loading OpenSSL (about 2 ms of every start)
    from _blake2 import blake2b
except ImportError:  # not CPython
    from hashlib import blake2b

MISSING = "-"

_CHECKBOX = re.compile(rb"^([ \t]*(?:>[ \t]?)*[ \t]*(?:[-*+]|\d+[.)])[ \t]+\[)[ xX-](\])", re.MULTILINE)


# What a feature list says about progress rather than about the features themselves.
_PROGRESS_FIELDS = frozenset({"status", "passes", "reason", "completed_at"})


def content_digest(data: bytes, name: str = "") -> str:
    if name == "tasks.md":
        data = _CHECKBOX.sub(rb"\1 \2", data)
    elif name in ("features.json", "feature_list.json"):
        data = _without_progress(data)
    return digest_of(data)


def digest_of(data: bytes) -> str:
    """The digest runner uses everywhere: 128-bit BLAKE2b, in hex."""
    return blake2b(data, digest_size=16).hexdigest()


def _without_progress(data: bytes) -> bytes:
    """A feature list minus statuses, so a phase updating them (`update_spec_features`) changes no
    signature of the phases that read the list."""
    import json

    try:
        doc = json.loads(data)
    except ValueError:
        return data
    features = doc.get("features") if isinstance(doc, dict) else doc
    if isinstance(features, list):
        for feature in features:
            if isinstance(feature, dict):
                for key in _PROGRESS_FIELDS & feature.keys():
                    del feature[key]
    return json.dumps(doc, sort_keys=True).encode()


class Fingerprints:
    """Digests of files under `root`, by root-relative posix path."""

    def __init__(self, root: Path, known: dict[str, tuple[int, int, int, str, int]]) -> None:
        self.root = os.fspath(root)  # joined thousands of times: a str, not a Path
        self._known = known
        self._memo: dict[str, str] = {}
        self._updates: list[tuple[str, int, int, int, str, int]] = []

    def digest(self, rel: str) -> str:
        memo = self._memo.get(rel)
        if memo is not None:
            return memo
        path = os.path.join(self.root, rel)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            self._memo[rel] = MISSING
            return MISSING
        row = self._known.get(rel)
        if (
            row is not None
            and row[0] == st.st_mtime_ns
            and row[1] == st.st_size
            and row[2] == st.st_ino
            and st.st_mtime_ns < row[4] - RACY_NS
        ):
            digest = row[3]
        else:
            checked = time.time_ns()
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                self._memo[rel] = MISSING
                return MISSING
            digest = content_digest(data, rel.rsplit("/", 1)[-1])
            self._updates.append((rel, st.st_mtime_ns, st.st_size, st.st_ino, digest, checked))
        self._memo[rel] = digest
        return digest

    def forget(self, rel: str) -> None:
        """Drop the memo for a file (it is about to be re-read, e.g. at a job's start)."""
        self._memo.pop(rel, None)

    def take_updates(self) -> list[tuple[str, int, int, int, str, int]]:
        updates, self._updates = self._updates, []
        for row in updates:
            self._known[row[0]] = row[1:]
        return updates
