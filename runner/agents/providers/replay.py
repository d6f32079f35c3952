"""The `replay` provider: a Model that answers from a script, for demos and tests.

The script is YAML or JSON: a list of assistant turns, each with optional `text`, a list of
`tool_use` calls (`{name, input}`) and an optional `stop_reason`; or raw `content` blocks. A
transcript.jsonl of an earlier run replays its assistant turns. The turns go through the same
loop and tools as a real model, so a replayed job ticks, writes and verifies for real.

    - text: "Reading the spec first."
      tool_use: [{name: Read, input: {file_path: specs/a/spec.md}}]
    - tool_use: [{name: CompleteTask, input: {task_id: "1.1", evidence: "tests pass"}}]
    - tool_use: [{name: Finish, input: {status: done, summary: Added the parser}}]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner.agents.loop import ModelError, ModelTurn
from runner.errors import UserError


class ReplayModel:
    def __init__(self, script: Path) -> None:
        self.model = "replay"
        self.script = script
        self._turns = load_script(script)
        self._next = 0

    def query(
        self, system: str, tools: list[dict[str, Any]], messages: list[dict[str, Any]], cancelled: Any
    ) -> ModelTurn:
        if self._next >= len(self._turns):
            raise ModelError(f"the replay script {self.script} has no turn {self._next + 1}")
        turn = self._turns[self._next]
        self._next += 1
        return turn


def load_script(path: Path) -> list[ModelTurn]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("replay script not found; check the phase's `replay:` path", path=path) from None
    if path.suffix == ".jsonl":
        entries = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [
            ModelTurn(e["content"], e.get("stop_reason") or "end_turn")
            for e in entries
            if e.get("type") == "assistant"
        ]
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or "not valid YAML"
        raise UserError(
            f"invalid replay script: {problem}", path=path, line=mark.line + 1 if mark else None
        ) from None
    if not isinstance(data, list):
        raise UserError("a replay script is a list of assistant turns", path=path)
    return [_turn(path, i, t) for i, t in enumerate(data, 1)]


def _turn(path: Path, number: int, spec: Any) -> ModelTurn:
    if not isinstance(spec, dict):
        raise UserError(f"turn {number} must be a mapping (text, tool_use, stop_reason)", path=path)
    content: list[dict[str, Any]] = list(spec.get("content") or [])
    if spec.get("text"):
        content.append({"type": "text", "text": str(spec["text"])})
    for i, call in enumerate(spec.get("tool_use") or [], 1):
        if not isinstance(call, dict) or "name" not in call:
            raise UserError(f"turn {number}: each tool_use needs a name and an input", path=path)
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_replay_{number}_{i}",
                "name": call["name"],
                "input": call.get("input", {}),
            }
        )
    if not content:
        raise UserError(f"turn {number} is empty", path=path)
    stop = spec.get("stop_reason") or (
        "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
    )
    return ModelTurn(content, stop)
