"""Agent definitions: Markdown prompts with optional YAML front matter.

The format is Claude Code's sub-agent file (`name`, `description`, `tools`, `model`, ...) and its
slash-command file (`argument-hint`, `description`, `model`); a file without front matter is a
plain prompt. Unknown front matter keys (`color`, `permissionMode` ...) are kept and ignored, so
the same file keeps working in Claude Code.

`agent: NAME` in a workflow is looked up, in order, in `agent-os/agents/`, `.claude/agents/` and
`.claude/commands/` of the project (as NAME.md, NAME.txt or NAME, then by the `name:` field), then
among the agents built into runner. A value with a slash or a .md/.txt suffix is a path from the
project root.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import UserError

AGENT_DIRS = ("agent-os/agents", ".claude/agents", ".claude/commands")
BUILTIN_AGENTS = Path(__file__).resolve().parent.parent / "defaults" / "agents"
_SUFFIXES = (".md", ".txt", "")

Cached = Callable[[Path, str, Callable[[bytes], Any]], Any]


@dataclass(frozen=True)
class AgentDefinition:
    name: str
    path: Path
    body: str  # the prompt template
    description: str | None = None
    tools: tuple[str, ...] | None = None  # None: every tool
    model: str | None = None  # None: the workflow's model ("inherit" means the same)
    argument_hint: tuple[str, ...] = ()
    max_turns: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def parse_definition(path: Path, text: str) -> dict[str, Any]:
    """Split front matter from the body. Returns plain data (it is cached)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    fields: dict[str, Any] = {}
    body = text
    lines = text.splitlines(keepends=True)
    if lines and lines[0].rstrip("\r\n") == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].rstrip("\r\n") in ("---", "...")), None)
        if end is not None:
            fields = _front_matter(path, "".join(lines[1:end]))
            body = "".join(lines[end + 1 :])
    return {"fields": fields, "body": body.lstrip("\r\n")}


def _front_matter(path: Path, text: str) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as e:
        # Claude Code reads `argument-hint: [spec-name] [issue-id]` (not valid YAML) as a plain string,
        # so a file that fails YAML but is made of simple `key: value` lines is read that way.
        simple = _simple_front_matter(text)
        if simple is not None:
            return simple
        mark = getattr(e, "problem_mark", None)
        raise UserError(
            f"invalid front matter: {getattr(e, 'problem', None) or e}; fix the YAML between the --- lines",
            path=path,
            line=mark.line + 2 if mark else None,  # +1 for 1-based, +1 for the opening ---
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError("front matter must be a YAML mapping (key: value lines)", path=path, line=2)
    return {str(k): _plain(v) for k, v in data.items()}


def _plain(value: Any) -> Any:
    """Dates and other YAML types, at any depth, become strings: the result is cached as plain data."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _simple_front_matter(text: str) -> dict[str, Any] | None:
    fields: dict[str, Any] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.match(r"([A-Za-z_][\w-]*)\s*:\s*(.*)$", line)
        if m is None:
            return None
        value: Any = m.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif value.isdigit():
            value = int(value)
        elif value in ("true", "false"):
            value = value == "true"
        fields[m.group(1)] = value
    return fields


def definition_from(path: Path, parsed: dict[str, Any]) -> AgentDefinition:
    fields = parsed["fields"]
    name = str(fields.get("name") or _stem(path))
    tools = fields.get("tools")
    if isinstance(tools, str):
        tools = [t.strip() for t in tools.split(",") if t.strip()]
    model = fields.get("model")
    model = None if model in (None, "", "inherit") else str(model)
    max_turns = fields.get("max_turns", fields.get("maxTurns"))
    if max_turns is not None and (
        isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1
    ):
        raise UserError(f"max_turns must be a whole number > 0, not {max_turns!r}", path=path)
    return AgentDefinition(
        name=name,
        path=path,
        body=parsed["body"],
        description=fields.get("description"),
        tools=tuple(str(t) for t in tools) if tools else None,
        model=model,
        argument_hint=_hint_names(fields.get("argument-hint")),
        max_turns=max_turns,
        fields=fields,
    )


def _hint_names(hint: Any) -> tuple[str, ...]:
    """'[spec-name] [issue-id] [notes]' -> ('spec-name', 'issue-id', 'notes')."""
    if not hint:
        return ()
    if isinstance(hint, list):
        hint = " ".join(f"[{h}]" for h in hint)
    names = re.findall(r"\[([^\]]+)\]|<([^>]+)>", str(hint))
    return tuple((a or b).strip() for a, b in names)


def load_agent(path: Path, cached: Cached | None = None) -> AgentDefinition:
    def parse(data: bytes) -> dict[str, Any]:
        return parse_definition(path, data.decode("utf-8", errors="replace"))

    parsed = cached(path, "agent", parse) if cached else parse(path.read_bytes())
    return definition_from(path, parsed)


def agent_path(root: Path, ref: str) -> Path | None:
    """The file an `agent:` value refers to, or None."""
    if "/" in ref or ref.endswith((".md", ".txt")):
        candidate = root / ref
        return candidate if candidate.is_file() else None
    # The project's own agents win over the built-in ones, by file name and then by `name:` field.
    for folders in ([root / d for d in AGENT_DIRS], [BUILTIN_AGENTS]):
        for folder in folders:
            for suffix in _SUFFIXES:
                candidate = folder / f"{ref}{suffix}"
                if candidate.is_file():
                    return candidate
        for folder in folders:
            for candidate in _agent_files(folder):
                if _declared_name(candidate) == ref:
                    return candidate
    return None


def known_agents(root: Path) -> list[str]:
    names: list[str] = []
    for folder in [root / d for d in AGENT_DIRS] + [BUILTIN_AGENTS]:
        for candidate in _agent_files(folder):
            name = _stem(candidate)
            if name not in names:
                names.append(name)
    return names


def _agent_files(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as it:
            return sorted(Path(e.path) for e in it if e.is_file() and not e.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _declared_name(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except OSError:
        return None
    if not head.startswith("---"):
        return None
    for line in head.splitlines()[1:]:
        if line.strip() in ("---", "..."):
            break
        key, _, value = line.partition(":")
        if key.strip() == "name":
            return value.strip().strip("'\"")
    return None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".md", ".txt"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
