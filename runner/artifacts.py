"""Where a job's artifacts go, and its run.json.

Each phase of each spec has one folder, `artifacts/<spec>-<phase>/`. A job of an `each: task`
phase keeps its own files (run.json, transcript.jsonl, log) in a sub-folder named after its task,
`artifacts/<spec>-<phase>/<task-id>/`, next to the phase's shared implementation.md and
features.json.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from runner.fsutil import atomic_write

# Files runner writes into every job's folder itself.
JOB_FILES = ("run.json", "transcript.jsonl", "log")


def safe_name(task_id: str) -> str:
    """A task id as a folder name ('Task 3' -> 'Task-3')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", task_id).strip("-.") or "task"


def job_dir(phase_dir: Path, task_id: str | None) -> Path:
    return phase_dir / safe_name(task_id) if task_id else phase_dir


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
