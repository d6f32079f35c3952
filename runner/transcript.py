"""A job's transcript: `transcript.jsonl`, one JSON object per step, appended as it happens.

A killed job keeps everything up to its last step. Every line passes through `redact` first, so
API keys and tokens from the environment, and anything shaped like one, never reach the file.

Entry types: `job` (which job, agent, provider, model), `start` (system prompt, tools), `user` (a
message sent: the job context, or which tool results went back), `assistant` (a model turn with
stop reason, usage and cost), `tool` (one tool call with input, result and duration), `finish`
(how the agent ended), `result` (the job's status once runner checked it: ticks, verify, outputs).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner.fsutil import append_line
from runner.secrets import redact, redact_data, secret_values


class Transcript:
    def __init__(self, path: Path, secrets: list[str] | None = None) -> None:
        self.path = path
        self._secrets = secret_values() if secrets is None else secrets
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("", encoding="utf-8")  # a job's transcript covers its latest run

    def write(self, kind: str, **fields: Any) -> None:
        entry = redact_data({"type": kind, "time": round(time.time(), 3), **fields}, self._secrets)
        line = json.dumps(entry, ensure_ascii=False, default=str)
        with self._lock:
            append_line(self.path, redact(line, self._secrets))  # and what `default=str` made text


def read_transcript(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                yield {"type": "note", "message": "(a line cut short when the job was killed)"}


def render_transcript(path: Path, width: int = 100) -> Iterator[str]:
    """The transcript as a person reads it: turns, tool calls and results, shortened."""
    for e in read_transcript(path):
        kind = e.get("type")
        if kind == "job":
            yield f"job {e.get('job')} · agent {e.get('agent')} · {e.get('provider')} · {e.get('model')}"
        elif kind == "start":
            yield f"tools: {', '.join(e.get('tools', []))}"
        elif kind == "user":
            for block in e.get("content", []):
                if block.get("type") == "text":
                    yield from _indent("user", block.get("text", ""), width, max_lines=12)
        elif kind == "assistant":
            yield f"── turn {e.get('turn')} ({e.get('stop_reason')}) " + "─" * 20
            for block in e.get("content", []):
                if block.get("type") == "text" and block.get("text", "").strip():
                    yield from _indent("assistant", block["text"], width, max_lines=20)
        elif kind == "tool":
            args = json.dumps(e.get("input", {}), ensure_ascii=False)
            yield f"  → {e.get('name')} {_short(args, width - 6)}"
            mark = "✗" if e.get("is_error") else "←"
            yield f"  {mark} {_short(str(e.get('result', '')).replace(chr(10), ' ⏎ '), width - 4)}"
        elif kind == "note":
            yield f"  · {e.get('message')}"
        elif kind == "finish":
            yield f"the agent ended: {e.get('status')}" + (f" ({e.get('reason')})" if e.get("reason") else "")
        elif kind == "result":
            yield f"result: {e.get('status')}" + (f" ({e.get('reason')})" if e.get("reason") else "")


def _indent(who: str, text: str, width: int, max_lines: int) -> Iterator[str]:
    lines = text.strip().splitlines()
    yield f"{who}:"
    for line in lines[:max_lines]:
        yield "  " + _short(line, width - 2)
    if len(lines) > max_lines:
        yield f"  ... {len(lines) - max_lines} more lines"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
