"""Spec discovery: the spec folders of Agent OS, Spec Kit, Kiro and any roots a workflow names.

A spec root is a glob of folders (`agent-os/specs/*`). A folder counts as a spec when it holds at
least one spec document (spec.md, tasks.md, requirements.md, ...), so helper folders such as
`specs/fixtures/` next to real specs are left alone. Hidden folders are skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from runner.errors import UserError
from runner.globs import expand

# Files (or folders) whose presence makes a folder a spec.
SPEC_MARKERS = (
    "spec.md",
    "tasks.md",
    "requirements.md",
    "design.md",
    "plan.md",
    "features.json",
    "feature_list.json",
    "planning",
)


@dataclass(frozen=True)
class Spec:
    name: str  # folder name; used in job ids and artifact folders
    path: str  # folder, relative to the project root, posix separators
    roots: tuple[str, ...] = ()  # the spec-root patterns that match it (a phase applies to its file's roots)

    @property
    def tasks_path(self) -> str:
        return f"{self.path}/tasks.md"

    def fill(self, text: str, task: str | None = None) -> str:
        """`{spec}` (the folder), `{name}` and, for a task job, `{task}` filled into a pattern or command.

        Plain text, as make does: a command that must survive spaces uses "$RUNNER_SPEC".
        """
        text = text.replace("{spec}", self.path).replace("{name}", self.name)
        return text.replace("{task}", task) if task is not None else text


def discover_specs(root: Path, spec_roots: tuple[str, ...] | list[str]) -> list[Spec]:
    """All spec folders under the given roots, in root order then name order."""
    found: dict[str, Spec] = {}
    for pattern in spec_roots:
        for rel in expand(root, pattern.strip("/"), folders=True):
            name = rel.rsplit("/", 1)[-1]
            other = found.get(name)
            if other is not None and other.path == rel:
                found[name] = replace(other, roots=(*other.roots, pattern))
                continue
            if name.startswith(".") or not _is_spec(f"{root}/{rel}"):
                continue
            if ":" in name:
                raise UserError(f"spec folder {rel}: job ids use ':' between spec, phase and task; rename it")
            if other is not None:
                raise UserError(
                    f"two specs are named '{name}': {other.path} and {rel}; rename one (job ids use the folder name)"
                )
            found[name] = Spec(name=name, path=rel, roots=(pattern,))
    return list(found.values())


def _is_spec(folder: str) -> bool:
    # Usually the first marker exists: one stat per folder rather than a directory listing.
    return any(os.path.exists(os.path.join(folder, marker)) for marker in SPEC_MARKERS)


def select_specs(specs: list[Spec], wanted: tuple[str, ...] | list[str]) -> list[Spec]:
    """The specs named on the command line, by folder name or path; unknown names are an error."""
    if not wanted:
        return specs
    by_key = {s.name: s for s in specs} | {s.path: s for s in specs}
    chosen = []
    for w in wanted:
        spec = by_key.get(w.rstrip("/")) or by_key.get(os.path.normpath(w).replace(os.sep, "/"))
        if spec is None:
            known = ", ".join(s.name for s in specs) or "none found"
            raise UserError(f"no spec named '{w}' (specs: {known})")
        if spec not in chosen:
            chosen.append(spec)
    return chosen
