"""Recovering from a runner that died mid-run (kill -9, crash, power loss).

Its jobs' records still say `running`. Before planning, such jobs are closed as cancelled, so they
run again; and, as make does for interrupted targets, outputs their commands were writing are
removed, so a half-written file never looks up to date.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from runner.globs import expand, has_magic
from runner.project import Project
from runner.state import State


def remove_outputs_written_since(root: Path, outputs: tuple[str, ...], since: float) -> list[str]:
    """make's rule for interrupted targets: a half-written output must not look up to date."""
    removed = []
    for pattern in outputs:
        names = expand(root, pattern) if has_magic(pattern) else [pattern]
        for name in names:
            path = root / name
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() and path.stat().st_mtime >= since - 1:
                    path.unlink()
                    removed.append(name)
    return removed


def recover(project: Project, state: State) -> list[str]:
    """Close the records of jobs whose runner died mid-run; remove what their commands half-wrote.

    Call it holding the project lock: then no other runner is running jobs, so every `running`
    record not of this process is left over (its pid may well belong to another program by now).
    """
    recovered = []
    for rec in state.left_running():
        spec_name, _, rest = rec.id.partition(":")
        phase_name, _, task = rest.partition(":")
        phase = project.workflow.phases.get(phase_name)
        spec = next((s for s in project.specs if s.name == spec_name), None)
        if phase is not None and spec is not None and phase.run is not None and rec.started:
            outputs = tuple(spec.fill(o, task or None) for o in phase.outputs)
            remove_outputs_written_since(project.root, outputs, rec.started)
        if rec.run_id is not None:
            state.finish_job(rec.id, rec.run_id, "cancelled", "interrupted: runner stopped while it ran")
        recovered.append(rec.id)
    return recovered
