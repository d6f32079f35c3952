"""The first user message of an agent job: what to do, where things are, how to report.

It names files rather than pasting them: the agent reads what it needs with its tools, and the
prompt prefix stays small and cacheable. Only the task group itself is quoted, from tasks.md as it
is now, with its details and acceptance criteria.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from runner.tasks import TaskList

_HEADING = re.compile(r" {0,3}#{1,6}(?:[ \t]|$)")  # a Markdown heading, not a shell comment
SPEC_DOC_SUFFIXES = (".md", ".json", ".yaml", ".yml", ".txt")
MAX_LISTED = 40


def task_block(tasks: TaskList, group_id: str, rel: str) -> str:
    """The task group's own lines from tasks.md (up to the next group or heading), with its origin."""
    group = next(g for g in tasks.groups() if g.id == group_id)
    roots = sorted(g.root.line for g in tasks.groups())
    lines = tasks.lines
    start = group.root.line - 1
    end = next((line - 1 for line in roots if line > group.root.line), len(lines))
    body: list[str] = []
    fence = ""
    for line in lines[start:end]:
        stripped = line.lstrip()
        if fence:
            fence = "" if stripped.startswith(fence) else fence
        elif stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif body and _HEADING.match(line):
            break
        body.append(line.rstrip())
    while body and not body[-1].strip():
        body.pop()
    head = f"Task {group.id} of {rel} (line {group.root.line})"
    if group.root.section:
        head += f", under “{group.root.section}”"
    parts = [head + ":", "", *body]
    if group.depends_on:
        parts += ["", f"It builds on task {', '.join(group.depends_on)}."]
    return "\n".join(parts)


def job_message(
    *,
    job_id: str,
    phase: str,
    spec_name: str,
    spec_path: str,
    root: Path,
    assignment: str | None,
    task_ids: list[str],
    upstream_files: list[str],
    agent_outputs: list[str],
    runner_outputs: list[str],
    verify: list[str],
    feedback: str,
    notes: str,
    task_in_prompt: bool,
    cli: bool = False,
) -> str:
    out = [f"runner job `{job_id}`: the `{phase}` phase for the spec `{spec_name}` (folder `{spec_path}`)."]
    out += ["", "## Your assignment"]
    if assignment and not task_in_prompt:
        out.append(assignment)
    elif assignment:
        out.append(f"Task {task_ids[0]} as given in your instructions (tasks {', '.join(task_ids)}).")
    else:
        out.append(f"The `{phase}` phase for the whole spec, as your instructions describe.")
    out += ["", "## Where things are (paths are relative to the project root, which is your working folder)"]
    docs = spec_documents(root, spec_path)
    if docs:
        out.append("Spec documents: " + ", ".join(docs))
    if upstream_files:
        out.append("From earlier phases: " + ", ".join(upstream_files))
    if agent_outputs:
        out.append("You must write: " + ", ".join(agent_outputs))
    if runner_outputs:
        out.append(
            f"Recorded by runner from your {'report' if cli else 'Finish report'} unless you write them "
            "yourself: " + ", ".join(runner_outputs)
        )
    out += ["", "## Rules of this workspace"]
    commands = "`, `".join(verify)
    if cli:
        # A CLI agent has its own tools: no CompleteTask, no Finish. Prompts written for runner's
        # loop name them anyway, so say what they stand for here.
        out.append(
            "- Your instructions may name the tools CompleteTask and Finish, which you do not have here: "
            "ticking a task's box in tasks.md is your CompleteTask (runner checks the tick as it would "
            "check a CompleteTask call), and the report below is your Finish."
        )
        if task_ids:
            out.append(
                "- When a task is really done, tick its box in tasks.md yourself; runner keeps the tick"
                f"{f' if `{commands}` passes' if verify else ''}. "
                f"Only these tasks are yours: {', '.join(task_ids)}. Do not change other tasks."
            )
        out.append(
            '- When you are finished, write a JSON report to the file named by $RUNNER_REPORT: {"status": '
            '"done" | "partial" | "blocked", "summary": "...", "changes": [...], "deviations": [...], '
            '"limitations": [...]}.'
        )
        return "\n".join([*out, *_feedback_and_notes(feedback, notes)])
    if task_ids:
        out.append(
            "- tasks.md is guarded. When a task is really done, call CompleteTask(task_id, evidence): runner ticks "
            f"its box{f' after `{commands}` passes' if verify else ''}. Do not edit checkboxes yourself. "
            f"Only these tasks are yours: {', '.join(task_ids)}."
        )
    out.append("- Files outside the project, and .git/ and .runner/, are out of reach.")
    out.append(
        "- When you are finished, call Finish with status done, partial (say what is missing) or blocked (say "
        "what you tried and what you need), a one-sentence summary, the files you changed, deviations from the "
        "design and known limitations."
    )
    return "\n".join([*out, *_feedback_and_notes(feedback, notes)])


def _feedback_and_notes(feedback: str, notes: str) -> list[str]:
    out: list[str] = []
    if feedback:
        out += ["", "## Review feedback to address (every point)", feedback]
    if notes:
        out += ["", "## Notes from the person running this job", notes]
    return out


def spec_documents(root: Path, spec_path: str) -> list[str]:
    found: list[str] = []
    base = root / spec_path
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(SPEC_DOC_SUFFIXES) and not name.startswith("."):
                found.append(Path(dirpath, name).relative_to(root).as_posix())
                if len(found) >= MAX_LISTED:
                    return [*found, "..."]
    return found
