"""Recovering from a runner that died mid-run (kill -9, crash, power loss).

Its jobs' records still say `running`. Before planning, such jobs are closed as cancelled, so they
run again; and, as make does for interrupted targets, outputs their commands were writing are
removed, so a half-written file never looks up to date.
"""

from __future__ import annotations

from pathlib import Path

from runner.project import Project
from runner.state import State


def remove_outputs_written_since(root: Path, outputs: tuple[str, ...], since: float) -> list[str]:
    """make's rule for interrupted targets: a half-written output must not look up to date."""
    removed = []
    for out in outputs:
        path = root / out
        try:
            if path.is_file() and path.stat().st_mtime >= since - 1:
                path.unlink()
                removed.append(out)
        except FileNotFoundError:
            pass
    return removed


def recover(project: Project, state: State) -> list[str]:
    """Close the records of jobs whose runner died mid-run; remove what their commands half-wrote."""
    recovered = []
    for rec in state.interrupted():
        parts = rec.id.split(":")
        phase = project.workflow.phases.get(parts[1]) if len(parts) > 1 else None
        spec = next((s for s in project.specs if s.name == parts[0]), None)
        if phase is not None and spec is not None and phase.run is not None and rec.started:
            outputs = tuple(
                o.replace("{spec}", spec.path).replace("{name}", spec.name) for o in phase.outputs
            )
            remove_outputs_written_since(project.root, outputs, rec.started)
        if rec.run_id is not None:
            state.finish_job(rec.id, rec.run_id, "cancelled", "interrupted: runner stopped while it ran")
        recovered.append(rec.id)
    return recovered
