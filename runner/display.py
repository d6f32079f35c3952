"""What runner prints while it works.

Jobs and the agent loop report events (`plan`, `start`, `turn`, `tool`, `tick`, `finish`,
`error`) through one callable. `JsonLines` writes one JSON object per line for other tools;
`Console` writes short aligned lines for people and, on a terminal, keeps a live status line at the
bottom with what is running (turn, tokens, cost, elapsed).
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar


def human_tokens(n: int) -> str:
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.2f}M"


def human_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f}s"
    minutes, seconds = divmod(int(s), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def usage_text(turns: int = 0, tokens: int = 0, cost_usd: float = 0.0, seconds: float | None = None) -> str:
    parts = []
    if turns:
        parts.append(f"{turns} turn{'s' if turns != 1 else ''}")
    if tokens:
        parts.append(f"{human_tokens(tokens)} tokens")
    if cost_usd:
        parts.append(f"${cost_usd:.2f}" if cost_usd >= 0.01 else f"${cost_usd:.4f}")
    if seconds is not None:
        parts.append(human_seconds(seconds))
    return " · ".join(parts)


class JsonLines:
    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def __call__(self, kind: str, **fields: Any) -> None:
        import json

        line = json.dumps({"event": kind, "time": round(time.time(), 3), **fields}, default=str)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        pass


@dataclass
class _Running:
    job: str
    started: float
    turn: int = 0
    tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class Totals:
    counts: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    cost_usd: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def add(self, status: str, tokens: int = 0, cost_usd: float = 0.0) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        self.tokens += tokens
        self.cost_usd += cost_usd

    def line(self) -> str:
        n = sum(self.counts.values())
        if not n:
            return "nothing to do: every job is up to date"
        order = ["done", "partial", "blocked", "failed", "cancelled", "skipped", "awaiting-approval"]
        counts = ", ".join(f"{self.counts[s]} {s}" for s in order if self.counts.get(s))
        usage = usage_text(
            tokens=self.tokens, cost_usd=self.cost_usd, seconds=time.monotonic() - self.started
        )
        return f"{n} job{'s' if n != 1 else ''}: {counts} · {usage}"


class Console:
    """Human output. On a terminal, a live line shows running jobs and is redrawn every second."""

    MARKS: ClassVar[dict[str, str]] = {
        "done": "✓",
        "partial": "◐",
        "blocked": "■",
        "failed": "✗",
        "cancelled": "⨯",
        "skipped": "-",
        "awaiting-approval": "?",
    }

    def __init__(
        self, stream: IO[str] | None = None, *, live: bool | None = None, verbose: bool = False
    ) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.verbose = verbose
        self.totals = Totals()
        self.width = 24
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._status_shown = False
        self._unicode = (getattr(self.stream, "encoding", "") or "").lower().replace("-", "") == "utf8"
        self._ticker: threading.Thread | None = None
        self._closed = threading.Event()
        if self.live:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def __call__(self, kind: str, **f: Any) -> None:
        with self._lock:
            getattr(self, "_on_" + kind.replace("-", "_"), self._on_other)(f)
            self._redraw()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._clear_status()

    # --- events ------------------------------------------------------------------------------

    def _on_plan(self, f: dict[str, Any]) -> None:
        jobs = f.get("jobs", [])
        if jobs:
            self.width = min(max(len(j["job"]) for j in jobs), 40)
        if f.get("dry_run"):
            if not jobs:
                self._print("nothing to do: every job is up to date")
            for j in jobs:
                self._print(f"{j['job']:<{self.width}}  would run: {'; '.join(j['reasons'])}")

    def _on_start(self, f: dict[str, Any]) -> None:
        self._running[f["job"]] = _Running(f["job"], time.monotonic())
        if f.get("agent"):
            where = f" [{f['position']}/{f['total']}]" if f.get("total", 0) > 1 else ""
            self._print(
                f"{self._mark('start')} {f['job']:<{self.width}}  {f['agent']} · {f.get('model')}{where}"
            )

    def _on_turn(self, f: dict[str, Any]) -> None:
        r = self._running.get(f["job"])
        if r:
            r.turn, r.tokens, r.cost_usd = (
                f.get("turn", r.turn),
                f.get("tokens", r.tokens),
                f.get("cost_usd", 0.0),
            )

    def _on_tool(self, f: dict[str, Any]) -> None:
        if self.verbose:
            self._print(f"  {f['job']:<{self.width}}  {f.get('name')} {f.get('summary', '')}")

    def _on_tick(self, f: dict[str, Any]) -> None:
        self._print(f"  {f['job']:<{self.width}}  ticked {f.get('task')} in {f.get('path')}")

    def _on_finish(self, f: dict[str, Any]) -> None:
        self._running.pop(f["job"], None)
        status = f["status"]
        self.totals.add(status, f.get("tokens", 0), f.get("cost_usd", 0.0))
        usage = usage_text(f.get("turns", 0), f.get("tokens", 0), f.get("cost_usd", 0.0), f.get("seconds"))
        detail = f.get("reason") or ""
        text = " · ".join(x for x in (detail, usage) if x)
        self._print(f"{self._mark(status)} {f['job']:<{self.width}}  {status:<9} {text}".rstrip())

    def _on_summary(self, f: dict[str, Any]) -> None:
        self._print(self.totals.line())

    def _on_error(self, f: dict[str, Any]) -> None:
        self._print(f"runner: {f.get('message')}")

    def _on_other(self, f: dict[str, Any]) -> None:
        if f.get("message"):
            self._print(str(f["message"]))

    # --- drawing ----------------------------------------------------------------------------

    def _mark(self, status: str) -> str:
        if status == "start":
            return "▶" if self._unicode else ">"
        mark = self.MARKS.get(status, "·")
        return mark if self._unicode else {"done": "+", "failed": "x"}.get(status, "-")

    def _print(self, line: str) -> None:
        self._clear_status()
        self.stream.write(line + "\n")
        self.stream.flush()

    def _clear_status(self) -> None:
        if self._status_shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._status_shown = False

    def _redraw(self) -> None:
        if not self.live or not self._running:
            return
        now = time.monotonic()
        parts = []
        for r in list(self._running.values())[:3]:
            bits = [r.job]
            if r.turn:
                bits.append(f"turn {r.turn}")
            bits.append(usage_text(tokens=r.tokens, cost_usd=r.cost_usd, seconds=now - r.started))
            parts.append(" ".join(bits))
        more = len(self._running) - 3
        line = " | ".join(parts) + (f" | +{more} more" if more > 0 else "")
        self._clear_status()
        self.stream.write(line[:200])
        self.stream.flush()
        self._status_shown = True

    def _tick(self) -> None:
        while not self._closed.wait(1.0):
            with self._lock:
                self._redraw()
