"""What runner prints while it works.

Jobs and the agent loop report events (`plan`, `start`, `turn`, `tool`, `tick`, `finish`,
`error`) through one callable. `JsonLines` writes one JSON object per line for other tools;
`Console` writes short aligned lines for people and, on a terminal, keeps a live view at the
bottom: one line per running or recently finished job (spec, phase, task, turn, tokens, cost,
elapsed) and a summary line. `runner watch` adds `watching` (idle, waiting for changes) and
`restart` (a running job was cancelled because its inputs changed) events.
"""

from __future__ import annotations

import shutil
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
        parts.append(f"${cost_usd:.2f}" if cost_usd >= 1 else f"${cost_usd:.3f}")
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


# How long a finished job keeps its line in the live view, and how many job lines it shows.
RECENT_SECONDS = 10.0
MAX_ROWS = 12


@dataclass
class _Row:
    job: str
    started: float
    turn: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    status: str | None = None  # None while running
    ended: float = 0.0
    seconds: float | None = None  # as the job reported it when it finished

    def columns(self) -> tuple[str, str, str]:
        spec, _, rest = self.job.partition(":")
        phase, _, task = rest.partition(":")
        return spec, phase, task or "-"


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

    def count_text(self) -> str:
        order = ["done", "partial", "blocked", "failed", "cancelled", "skipped", "awaiting-approval"]
        return ", ".join(f"{self.counts[s]} {s}" for s in order if self.counts.get(s))

    def line(self) -> str:
        n = sum(self.counts.values())
        if not n:
            return "nothing to do: every job is up to date"
        usage = usage_text(
            tokens=self.tokens, cost_usd=self.cost_usd, seconds=time.monotonic() - self.started
        )
        return f"{n} job{'s' if n != 1 else ''}: {self.count_text()} · {usage}"


class Console:
    """Human output. On a terminal, a live view of the jobs is redrawn below the log lines."""

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
        self.totals = Totals()  # of the current batch (since the last `plan`)
        self.session = Totals()  # since this console started: the live summary line
        self.width = 24
        self._rows: dict[str, _Row] = {}
        self._lock = threading.Lock()
        self._drawn = 0  # lines of the live view on screen, below the log
        self._watching: str | None = None  # what the summary line says while idle
        self._finished_since_watching = True
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
            self._clear_live()

    # --- events ------------------------------------------------------------------------------

    def _on_plan(self, f: dict[str, Any]) -> None:
        jobs = f.get("jobs", [])
        waiting = f.get("waiting") or []
        names = [j["job"] for j in jobs] + [w["job"] for w in waiting]
        if names:
            self.width = min(max(len(n) for n in names), 40)
        if f.get("dry_run"):
            if not jobs and not waiting:
                self._print("nothing to do: every job is up to date")
            for j in jobs:
                self._print(f"{j['job']:<{self.width}}  would run: {'; '.join(j['reasons'])}")
            for w in waiting:
                self._print(f"{w['job']:<{self.width}}  {w['state']}: {w['reason']}")
            return
        self.totals = Totals()
        self._watching = None

    def _on_start(self, f: dict[str, Any]) -> None:
        self._rows.pop(f["job"], None)  # a restarted job moves to the end
        self._rows[f["job"]] = _Row(f["job"], time.monotonic())
        # Every job gets its line, so that the [position/total] count has no gaps.
        what = f"{f['agent']} · {f.get('model')}" if f.get("agent") else "run"
        where = f" [{f['position']}/{f['total']}]" if f.get("total", 0) > 1 else ""
        self._print(f"{self._mark('start')} {f['job']:<{self.width}}  {what}{where}")

    def _on_turn(self, f: dict[str, Any]) -> None:
        r = self._rows.get(f["job"])
        if r and r.status is None:
            r.turn = f.get("turn", r.turn)
            r.tokens = f.get("tokens", r.tokens)
            r.cost_usd = f.get("cost_usd", r.cost_usd)

    def _on_tool(self, f: dict[str, Any]) -> None:
        if self.verbose:
            self._print(f"  {f['job']:<{self.width}}  {f.get('name')} {f.get('summary', '')}")

    def _on_tick(self, f: dict[str, Any]) -> None:
        unverified = "" if f.get("verified", True) else " (unverified: the phase has no verify commands)"
        self._print(f"  {f['job']:<{self.width}}  ticked {f.get('task')} in {f.get('path')}{unverified}")

    def _on_finish(self, f: dict[str, Any]) -> None:
        status = f["status"]
        tokens, cost = f.get("tokens", 0), f.get("cost_usd", 0.0)
        r = self._rows.get(f["job"])
        if r is not None:
            r.status, r.ended, r.seconds = status, time.monotonic(), f.get("seconds")
            r.turn, r.tokens, r.cost_usd = f.get("turns", r.turn), tokens or r.tokens, cost or r.cost_usd
        self.totals.add(status, tokens, cost)
        self.session.add(status, tokens, cost)
        self._finished_since_watching = True
        usage = usage_text(f.get("turns", 0), tokens, cost, f.get("seconds"))
        detail = f.get("reason") or ""
        text = " · ".join(x for x in (detail, usage) if x)
        self._print(f"{self._mark(status)} {f['job']:<{self.width}}  {status:<9} {text}".rstrip())

    def _on_restart(self, f: dict[str, Any]) -> None:
        self._print(f"{self._mark('restart')} {f['job']:<{self.width}}  restarting: {f.get('reason')}")

    def _on_summary(self, f: dict[str, Any]) -> None:
        waiting = f.get("waiting") or []
        if self.totals.counts or not waiting:
            self._print(self.totals.line())
        else:
            self._print("nothing to run, but not everything is done:")
        if waiting:
            self.width = max(self.width, min(max(len(w["job"]) for w in waiting), 40))
        for w in waiting:
            self._print(f"  {w['job']:<{self.width}}  {w['state']:<17} {w['reason']}".rstrip())

    def _on_watching(self, f: dict[str, Any]) -> None:
        n = f.get("specs", 0)
        text = f"watching {n} spec{'s' if n != 1 else ''} for changes"
        if f.get("mode") == "poll":
            text += " (polling)"
        waiting = f.get("waiting") or []
        if waiting:
            n = len(waiting)
            text += f" · {n} job{'s' if n != 1 else ''} failed or blocked, waiting for a change"
        if f.get("error"):
            text += " · nothing runs until the error above is fixed"
        # A re-plan that ran nothing only refreshes the summary line: no new log line.
        if self._finished_since_watching or text != self._watching:
            self._print(text + " (Ctrl-C to stop)")
        self._watching = text
        self._finished_since_watching = False

    def _on_error(self, f: dict[str, Any]) -> None:
        self._print(f"runner: {f.get('message')}")

    def _on_other(self, f: dict[str, Any]) -> None:
        if f.get("message"):
            self._print(f"{f['job']}: {f['message']}" if f.get("job") else str(f["message"]))

    # --- drawing ----------------------------------------------------------------------------

    def _mark(self, status: str) -> str:
        if status == "start":
            return "▶" if self._unicode else ">"
        if status == "restart":
            return "↻" if self._unicode else "~"
        mark = self.MARKS.get(status, "·")
        return mark if self._unicode else {"done": "+", "failed": "x"}.get(status, "-")

    def _print(self, line: str) -> None:
        self._clear_live()
        self.stream.write(line + "\n")
        self.stream.flush()

    def _clear_live(self) -> None:
        if self._drawn:
            up = f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else ""
            self.stream.write("\r" + up + "\x1b[J")
            self.stream.flush()
            self._drawn = 0

    def _redraw(self) -> None:
        if not self.live:
            return
        lines = self._live_lines(time.monotonic())
        self._clear_live()
        if not lines:
            return
        width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
        # A line that wrapped would throw off the cursor arithmetic of the next redraw.
        self.stream.write("\n".join(line[:width] for line in lines))
        self.stream.flush()
        self._drawn = len(lines)

    def _live_lines(self, now: float) -> list[str]:
        for job in [j for j, r in self._rows.items() if r.status and now - r.ended > RECENT_SECONDS]:
            del self._rows[job]
        rows = list(self._rows.values())
        lines = []
        if rows:
            cols = [r.columns() for r in rows[:MAX_ROWS]]
            widths = [min(max(len(c[i]) for c in cols), cap) for i, cap in enumerate((24, 16, 12))]
            for r, c in zip(rows[:MAX_ROWS], cols, strict=True):
                cells = "  ".join(f"{text[:w]:<{w}}" for text, w in zip(c, widths, strict=True))
                lines.append(f"{self._mark(r.status or 'start')} {cells}  {self._row_usage(r, now)}")
            if len(rows) > MAX_ROWS:
                lines.append(f"  +{len(rows) - MAX_ROWS} more")
        summary = self._summary_line(rows)
        if summary:
            lines.append(summary)
        return lines

    @staticmethod
    def _row_usage(r: _Row, now: float) -> str:
        if r.status is None:
            turn = f"turn {r.turn}" if r.turn else ""
            usage = usage_text(tokens=r.tokens, cost_usd=r.cost_usd, seconds=now - r.started)
        else:
            turn = r.status
            seconds = r.seconds if r.seconds is not None else r.ended - r.started
            usage = usage_text(r.turn, r.tokens, r.cost_usd, seconds)
        return " · ".join(x for x in (turn, usage) if x)

    def _summary_line(self, rows: list[_Row]) -> str:
        running = sum(1 for r in rows if r.status is None)
        if not running and self._watching is None:
            return ""
        head = f"{running} running" if running else str(self._watching)
        counts = self.session.count_text()
        usage = usage_text(tokens=self.session.tokens, cost_usd=self.session.cost_usd)
        return " · ".join(x for x in (head, counts, usage) if x)

    def _tick(self) -> None:
        # Elapsed times move and finished lines expire; an idle view has nothing to redraw.
        while not self._closed.wait(1.0):
            with self._lock:
                if self._rows:
                    self._redraw()
