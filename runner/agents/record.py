"""What an agent job leaves in its phase's folder besides its transcript: implementation.md and the
phase's copy of features.json.
"""

from __future__ import annotations

import threading
from pathlib import Path

from runner.features import FeatureList
from runner.implementation import Entry, missing_sections, upsert_entry

_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock(path: Path) -> threading.Lock:
    """Task jobs of one phase share features.json; with -j their updates must not interleave."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path.resolve(), threading.Lock())


def record_implementation(path: Path, entry: Entry, *, title: str, agent_wrote: bool) -> list[str]:
    """Add the job's entry to implementation.md, unless the agent wrote the file itself.

    An agent's own file is kept as it is; the sections it lacks are returned, to be reported.
    """
    if agent_wrote and path.exists():
        return missing_sections(path.read_text(encoding="utf-8", errors="replace"))
    upsert_entry(path, entry, title=title)
    return []


def record_features(
    path: Path,
    *,
    sources: list[Path],
    task_ids: set[str],
    checked: set[str],
    status: str,
    reason: str | None,
) -> Path | None:
    """Update the phase's copy of the feature list for one job; returns where it came from.

    The copy is rebuilt from the first of `sources` that exists (upstream artifacts, then the
    spec's file), so features a re-run design adds or drops show up; statuses this phase recorded
    before are carried over. A feature names the tasks that deliver it in a "tasks" list: the
    features of this job's tasks become done when all their tasks are ticked, else they take the
    job's status (partial or blocked, with its reason), or stay in progress while other task
    groups remain. Features without "tasks" keep what they had.
    """
    with _lock(path):
        origin = next((s for s in sources if s.exists()), path if path.exists() else None)
        if origin is None:
            return None
        features = FeatureList.load(origin)
        before = FeatureList.load(path) if path.exists() and origin != path else None
        earlier = {before.key(f): f for f in before.features} if before else {}
        for feature in features.features:
            key = features.key(feature)
            tasks = {str(t) for t in feature.get("tasks") or []}
            if tasks and (not task_ids or tasks & task_ids):
                if tasks <= checked:
                    features.set_status(key, "done")
                elif status in ("partial", "blocked"):
                    features.set_status(key, status, reason)
                elif task_ids:
                    features.set_status(key, "in-progress")
            elif key in earlier:
                assert before is not None
                features.set_status(key, before.status(key), earlier[key].get("reason"))
        features.write(path)
        return origin
