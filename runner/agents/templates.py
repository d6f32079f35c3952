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

# One pass over the template: a value filled in is never read for placeholders again (a task that
# says `awk '{print $1}'` keeps its $1).
_TOKEN = re.compile(
    r"(?P<placeholder>\{\{\s*(?P<name>[A-Za-z][A-Za-z0-9_-]*)\s*\}\})"
    r"|(?P<this_spec>\[this-spec\])"
    r"|(?P<insert_line>^[ \t]*\[[A-Z][A-Z ]*\bINSERTED\b[A-Z ]*\][ \t]*$)"
    r"|(?P<positional>\$(?P<arg>ARGUMENTS|[1-9])\b)",
    re.MULTILINE,
)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_-]*)\s*\}\}")

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
    args = [table.get(_ALIASES.get(_key(h), ""), NONE) for h in argument_hint]
    inserted = False

    def fill(m: re.Match[str]) -> str:
        nonlocal inserted
        if m.group("placeholder"):
            key = _ALIASES.get(_key(m.group("name")))
            if key is None:
                unknown.append(m.group("name"))
                return m.group(0)
            return table[key]
        if m.group("this_spec"):
            return values.name
        if m.group("insert_line"):
            if not values.task:
                return m.group(0)
            inserted = True
            return values.task
        if not argument_hint:  # $1 means nothing special in a prompt that takes no arguments
            return m.group(0)
        if m.group("arg") == "ARGUMENTS":
            return " ".join(args)
        index = int(m.group("arg")) - 1
        return args[index] if index < len(args) else m.group(0)

    text = _TOKEN.sub(fill, template)
    task_placed = "task" in keys or inserted
    feedback_placed = bool(values.feedback) and (wants_feedback or "notes" in keys)
    return Rendered(
        text=text, task_placed=task_placed, feedback_placed=feedback_placed, unknown=tuple(unknown)
    )


def _key(name: str) -> str:
    return name.lower().replace("-", "_")
