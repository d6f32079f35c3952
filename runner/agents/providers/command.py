"""The `command` provider: any CLI agent (`claude -p`, `codex exec`, `aider --message-file -` ...).

The rendered prompt goes to the command's stdin; its output goes to the job log. A CLI agent edits
files with its own tools, so tasks.md is reconciled afterwards: ticks of the job's own tasks are
kept when `verify` passes, and anything else it did to the task list (removed or reworded tasks,
other ticks) is undone and reported. The result comes from a report file the agent may write
(`$RUNNER_REPORT`: JSON with `status` and `summary`, or text with a `Status:` line), else from the
last lines of its output, else from its exit code.
"""

from __future__ import annotations

import json
import time
from typing import Any

from runner.agents.loop import Outcome, Report, TurnUsage, report_from_fields, report_from_text
from runner.agents.ticks import TaskTicker, tasks_text
from runner.changes import files_may_change
from runner.execute import JobContext
from runner.shell import run_command
from runner.taskguard import diff_tasks

REPORT_NAME = "report"  # $RUNNER_REPORT = <job dir>/report (JSON or text)


def run_cli_agent(ctx: JobContext, prompt: str, ticker: TaskTicker, log: Any) -> Outcome:
    phase = ctx.job.phase
    if not phase.command:
        from runner.workflow import phase_error

        raise phase_error(
            phase, "provider", f"phase '{phase.name}' uses provider command but names no `command:`"
        )
    command = ctx.fill(phase.command)
    report_path = ctx.dir / REPORT_NAME
    report_path.unlink(missing_ok=True)
    tasks_path = ticker.tasks_path
    started = time.time()  # before the read: see TaskTicker.repair
    before = tasks_text(tasks_path.read_bytes())[0] if tasks_path and tasks_path.exists() else None
    timeout = phase.timeout or phase.budget.max_seconds
    log(f"$ {command}")
    with open(ctx.dir / "output.log", "wb") as out, files_may_change():
        result = run_command(
            command,
            cwd=ctx.project.root,
            env={**ctx.env(), "RUNNER_REPORT": str(report_path)},
            output=out,
            stdin=prompt.encode("utf-8"),
            timeout=timeout,
            cancelled=ctx.cancelled,
        )
    log(f"the agent's command ended: {result.describe(timeout)} after {result.seconds:.1f} s")
    if before is not None and (note := _reconcile_tasks(ticker, before, started, log)):
        ctx.emit("note", message=note)
    text = (ctx.dir / "output.log").read_text(encoding="utf-8", errors="replace")
    status, report = _report(report_path, text[-20_000:])
    if result.cancelled:
        status, reason = "cancelled", "cancelled"
    elif result.timed_out:
        status, reason = "partial", result.describe(timeout)
    elif not result.ok:
        status, reason = "failed", f"{result.describe()} (see {ctx.project.rel(ctx.dir / 'output.log')})"
    else:
        reason = report.summary if status != "done" else None
    return Outcome(status, reason, report, TurnUsage(), 0, 0.0)


def _reconcile_tasks(ticker: TaskTicker, before: str, started: float, log: Any) -> str | None:
    """Keep the agent's verified ticks of its own tasks; undo the rest of what it did to tasks.md.
    What was undone, in a line for the terminal, or None."""
    assert ticker.tasks_path is not None
    after = tasks_text(ticker.tasks_path.read_bytes())[0]
    if after == before:
        return None
    diff = diff_tasks(before, after)
    claimed = {t for t in diff.ticked if ticker.allowed is None or t in ticker.allowed}
    verified = ticker.verify()[0] if claimed else True
    keep = claimed if verified else set()
    if claimed and not verified:
        log(f"verify failed (output above), so the agent's ticks of {', '.join(sorted(claimed))} are undone")
    note = None
    if (repaired := ticker.repair(before, started, verified=keep)) is not None:
        kept = []
        if keep:
            kept.append(f"{'verified ' if ticker.verify_commands else ''}ticks of its own tasks")
        if repaired[1]:  # still UTF-8
            # Added tasks and other text stay: a person may have written them while the agent ran.
            if diff.added:
                kept.append("the tasks added")
            if diff.other_text_changed:
                kept.append("the text outside the tasks")
            changed = diff.describe()
            wording = " (the new wording is in the job's log)" if diff.reworded else ""
        else:  # all of it went back; a diff of the misread text names changes that were not made
            changed, wording = "saved it as text that is not UTF-8", ""
        undone = f"kept {', '.join(kept)}; undid the rest" if kept else "undid it"
        note = f"the agent changed tasks.md ({changed}); {undone}{wording}"
        log(note)
    ticker.announce(sorted(keep))
    return note


def _report(path: Any, output_tail: str) -> tuple[str, Report]:
    if path.exists():
        raw = path.read_text(encoding="utf-8", errors="replace")
        try:
            data = json.loads(raw)
        except ValueError:
            return report_from_text(raw)
        if isinstance(data, dict):
            return report_from_fields(data)
    return report_from_text(output_tail)
