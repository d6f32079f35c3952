"""`runner init`: a new project that `runner run --dry-run` can plan at once.

Existing files are never overwritten: init only adds what is missing and says what it did.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from runner.specs import discover_specs
from runner.workflow import DEFAULT_WORKFLOW

DEFAULTS = DEFAULT_WORKFLOW.parent
EXAMPLE_SPEC = "agent-os/specs/example-slugify"
GITIGNORE_LINES = (".runner/", "artifacts/*", "!artifacts/.gitkeep")


def scaffold(root: Path) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    done: list[str] = []
    copies = [(DEFAULT_WORKFLOW, Path("workflows") / DEFAULT_WORKFLOW.name)]
    copies += [(p, Path("agent-os/agents") / p.name) for p in sorted((DEFAULTS / "agents").glob("*.md"))]
    example = DEFAULTS / "example-spec"
    spec_roots = yaml.safe_load(DEFAULT_WORKFLOW.read_text(encoding="utf-8"))["specs"]
    own = [s.path for s in discover_specs(root, spec_roots) if s.path != EXAMPLE_SPEC]
    if own:  # the example would only join the plan next to the project's own specs
        done.append(
            f"skipped  {EXAMPLE_SPEC} (the project has specs: {', '.join(own[:3])}{' ...' * (len(own) > 3)})"
        )
    else:
        copies += [
            (p, Path(EXAMPLE_SPEC) / p.relative_to(example))
            for p in sorted(example.rglob("*"))
            if p.is_file()
        ]
    for source, rel in copies:
        target = root / rel
        if target.exists():
            done.append(f"kept     {rel.as_posix()} (already there)")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        done.append(f"created  {rel.as_posix()}")
    keep = root / "artifacts" / ".gitkeep"
    if not keep.exists():
        keep.parent.mkdir(exist_ok=True)
        keep.touch()
        done.append("created  artifacts/")
    done.append(_gitignore(root / ".gitignore"))
    done.append("next: `runner run --dry-run` shows the plan; `runner watch` runs it as you edit specs")
    return done


def _gitignore(path: Path) -> str:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    present = {line.strip() for line in text.splitlines()}
    missing = [line for line in GITIGNORE_LINES if line not in present]
    if not missing:
        return "kept     .gitignore (already ignores .runner/ and artifacts/)"
    prefix = "" if not text or text.endswith("\n") else "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(prefix + "# runner\n" + "\n".join(missing) + "\n")
    return f"updated  .gitignore (+{', '.join(missing)})"
