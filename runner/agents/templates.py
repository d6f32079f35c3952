"""Filling agent prompt templates.

Prompts in the wild mark where the orchestrator's values go in several ways; all of these are
filled, so a user's prompt runs unchanged:

- `{{spec}}`, `{{spec-name}}`: the spec folder (a path the agent can read, e.g. `agent-os/specs/auth`)
- `{{name}}`: the spec folder's name; `[this-spec]`: the same, as Agent OS writes it inside paths
- `{{task}}`: the task block (id, title, sub-tasks, requirement refs);
  a line such as `[TASK WILL BE INSERTED HERE BY ORCHESTRATOR]` is replaced by it too
- `{{task-id}}`, `{{issue-id}}`: the task's id
- `{{notes}}`: notes given with `runner run --notes`, plus review feedback when the prompt has no
  `{{feedback}}` of its own; `{{feedback}}`: the review feedback
- `{{phase}}`: the phase name
- `$ARGUMENTS` and `$1`, `$2` ... in slash-command files that declare an `argument-hint`: the values
  named by the hint, in order

Names are case-insensitive and `-`/`_` are interchangeable. Unknown `{{...}}` are left as they are
and reported, since prompts may legitimately contain template code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NONE = "(none)"

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_-]*)\s*\}\}")
_INSERT_LINE = re.compile(r"^[ \t]*\[[A-Z][A-Z ]*\bINSERTED\b[A-Z ]*\][ \t]*$", re.MULTILINE)
_THIS_SPEC = "[this-spec]"
_POSITIONAL = re.compile(r"\$(ARGUMENTS|[1-9])\b")

_ALIASES = {
    "spec": "spec",
    "spec_name": "spec",
    "spec_path": "spec",
    "spec_folder": "spec",
    "spec_dir": "spec",
    "name": "name",
    "task": "task",
    "task_id": "task_id",
    "issue_id": "task_id",
    "issue": "task_id",
    "notes": "notes",
    "feedback": "feedback",
    "phase": "phase",
}


@dataclass(frozen=True)
class PromptValues:
    spec: str  # folder path from the project root
    name: str  # folder name
    phase: str
    task: str | None = None  # the task block
    task_id: str | None = None
    notes: str = ""
    feedback: str = ""


@dataclass(frozen=True)
class Rendered:
    text: str
    task_placed: bool  # the template had a place for the whole task block (not just its id)
    feedback_placed: bool  # review feedback reached the prompt text
    unknown: tuple[str, ...]  # placeholders left unfilled


def render(template: str, values: PromptValues, argument_hint: tuple[str, ...] = ()) -> Rendered:
    keys = {_ALIASES.get(_key(m.group(1))) for m in _PLACEHOLDER.finditer(template)}
    wants_feedback = "feedback" in keys
    notes = values.notes
    if values.feedback and not wants_feedback and "notes" in keys:
        notes = f"{notes}\n\n{values.feedback}".strip()
    table = {
        "spec": values.spec,
        "name": values.name,
        "task": values.task or NONE,
        "task_id": values.task_id or NONE,
        "notes": notes or NONE,
        "feedback": values.feedback or NONE,
        "phase": values.phase,
    }
    unknown: list[str] = []

    def fill(m: re.Match[str]) -> str:
        key = _ALIASES.get(_key(m.group(1)))
        if key is None:
            unknown.append(m.group(1))
            return m.group(0)
        return table[key]

    text = _PLACEHOLDER.sub(fill, template)
    task_placed = "task" in keys
    if values.task and _INSERT_LINE.search(text):
        text = _INSERT_LINE.sub(lambda _: values.task or "", text)
        task_placed = True
    text = text.replace(_THIS_SPEC, values.name)
    if argument_hint:
        args = [table.get(_ALIASES.get(_key(h), ""), NONE) for h in argument_hint]

        def positional(m: re.Match[str]) -> str:
            if m.group(1) == "ARGUMENTS":
                return " ".join(args)
            index = int(m.group(1)) - 1
            return args[index] if index < len(args) else m.group(0)

        text = _POSITIONAL.sub(positional, text)
    feedback_placed = bool(values.feedback) and (wants_feedback or "notes" in keys)
    return Rendered(
        text=text, task_placed=task_placed, feedback_placed=feedback_placed, unknown=tuple(unknown)
    )


def _key(name: str) -> str:
    return name.lower().replace("-", "_")
