"""The agent loop: ask the model, run the tools it calls, repeat until it finishes.

Three small protocols meet here: a `Model` answers a conversation with a turn, an `Environment`
runs file and shell tools, and the job's `TaskTicker` turns `CompleteTask` calls into verified
ticks. Control flow is a few exceptions: `Finished`, `LimitReached` and `Stopped` end the loop
with a status. Every request, answer and tool call is appended to the transcript as it happens.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from runner.agents.models import cost_usd
from runner.agents.tools import ToolResult
from runner.budget import Limits, RunSpend
from runner.fingerprint import digest_of
from runner.transcript import Transcript


@dataclass
class TurnUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def add(self, other: TurnUsage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_write_tokens += other.cache_write_tokens

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens


@dataclass
class ModelTurn:
    content: list[dict[str, Any]]  # assistant content blocks, as the Messages API takes them back
    stop_reason: str
    usage: TurnUsage = field(default_factory=TurnUsage)


class Model(Protocol):
    model: str

    def query(
        self, system: str, tools: list[dict[str, Any]], messages: list[dict[str, Any]], cancelled: Any
    ) -> ModelTurn: ...


class Environment(Protocol):
    def schemas(self) -> list[dict[str, Any]]: ...

    def execute(self, name: str, input: dict[str, Any]) -> ToolResult: ...


class Ticker(Protocol):
    def complete(self, task_id: str, evidence: str) -> ToolResult: ...


class ModelError(Exception):
    """The model could not be asked (auth, bad request, retries exhausted). Ends the job `failed`."""

    status = "failed"


class ContextExceeded(ModelError):
    """The conversation no longer fits the model's context window. Ends the job `blocked`."""

    status = "blocked"


# --- control flow ------------------------------------------------------------------------------


class LoopExit(Exception):
    status = "done"

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason


class Finished(LoopExit):
    def __init__(self, status: str, reason: str | None = None) -> None:
        super().__init__(reason)
        self.status = status


class LimitReached(LoopExit):
    status = "partial"


class Stopped(LoopExit):
    status = "cancelled"


# --- the report an agent ends with -------------------------------------------------------------


@dataclass
class Report:
    summary: str = ""
    changes: list[str] = field(default_factory=list)
    deviations: list[str] = field(default_factory=list)
    limitations: list[str] = field(default_factory=list)
    concerns: list[str] = field(default_factory=list)


def report_from_fields(fields: Mapping[str, Any]) -> tuple[str, Report]:
    """Status and report from Finish's input (or a CLI agent's report.json), however loosely typed."""
    status = str(fields.get("status") or "done")
    summary = fields.get("summary")
    return (status if status in ("done", "partial", "blocked") else "partial"), Report(
        summary="" if summary is None else str(summary),
        changes=_strings(fields.get("changes")),
        deviations=_strings(fields.get("deviations")),
        limitations=_strings(fields.get("limitations")),
        concerns=_strings(fields.get("concerns")),
    )


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v is not None]
    return [str(value)]


_STATUS_LINE = re.compile(r"^\W*status\W*:\W*(READY_FOR_REVIEW|BLOCKED|DONE|COMPLETE|PARTIAL)\b", re.I | re.M)
# Within a sentence ("I cannot. Status: BLOCKED - no template") only the capitalised word counts.
_STATUS_INLINE = re.compile(r"\b[Ss]tatus\W*:\W*(READY_FOR_REVIEW|BLOCKED|DONE|COMPLETE|PARTIAL)\b")


def report_from_text(text: str) -> tuple[str, Report]:
    """Status and report from a final message in the seed prompts' style (no Finish call).

    `Status: BLOCKED` (on its own line, or mid-sentence in capitals; or a leading BLOCKED) means
    blocked; `Status: READY_FOR_REVIEW`, `IMPLEMENTATION COMPLETE` and `FEEDBACK ADDRESSED` mean
    done; a plain final answer counts as done.
    """
    m = _STATUS_LINE.search(text) or _STATUS_INLINE.search(text)
    word = m.group(1).upper() if m else ""
    if word == "BLOCKED" or (not word and re.match(r"\W*BLOCKED\b", text.strip())):
        status = "blocked"
    elif word == "PARTIAL":
        status = "partial"
    else:
        status = "done"
    return status, Report(
        summary=_field(text, "Summary") or _field(text, "Blocker") or _first_line(text),
        changes=_items(text, "Files Modified") or _items(text, "Files Changed"),
        concerns=_items(text, "Concerns/Questions") or _items(text, "Concerns"),
    )


def _field(text: str, name: str) -> str:
    m = re.search(rf"^\W*{re.escape(name)}\W*:\s*(.+)$", text, re.M | re.I)
    return m.group(1).strip() if m else ""


def _items(text: str, heading: str) -> list[str]:
    m = re.search(rf"^\W*{re.escape(heading)}\W*:?\s*$((?:\n\s*[-*]\s+.+)+)", text, re.M | re.I)
    return [line.strip()[1:].strip() for line in m.group(1).strip().splitlines()] if m else []


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:300]


# --- the loop ---------------------------------------------------------------------------------

Emit = Callable[..., None]


@dataclass
class Outcome:
    status: str  # done | partial | blocked | failed | cancelled
    reason: str | None
    report: Report
    usage: TurnUsage
    turns: int
    cost_usd: float
    final_text: str = ""  # the agent's last words: a Finish summary or its closing message


class AgentLoop:
    def __init__(
        self,
        model: Model,
        env: Environment,
        ticker: Ticker,
        transcript: Transcript,
        *,
        limits: Limits | None = None,
        spend: RunSpend | None = None,
        emit: Emit = lambda kind, **f: None,
        stopping: Any = None,
        cancelled: Any = None,
    ) -> None:
        self.model = model
        self.env = env
        self.ticker = ticker
        self.transcript = transcript
        self.limits = limits or Limits()
        self.spend = spend or RunSpend()
        self.emit = emit
        self.stopping = stopping or threading.Event()
        self.cancelled = cancelled or threading.Event()
        self.messages: list[dict[str, Any]] = []
        self.usage = TurnUsage()
        self.cost_usd = 0.0
        self.turns = 0
        self.report = Report()
        self.final_text = ""
        self.started = time.monotonic()
        self._calls: list[tuple[str, str]] = []  # (call, result) digests, for the stuck detector
        self._cut_off = False

    def run(self, system: str, task: str) -> Outcome:
        tools = self.env.schemas()
        self.transcript.write(
            "start", model=self.model.model, system=system, tools=[t["name"] for t in tools]
        )
        self._send_user([{"type": "text", "text": task}])
        try:
            while True:
                self.step(system, tools)
        except LoopExit as e:
            status, reason = e.status, e.reason
        except ModelError as e:
            status, reason = e.status, str(e)
        self.transcript.write(
            "finish", status=status, reason=reason, turns=self.turns, cost_usd=self.cost_usd
        )
        return Outcome(status, reason, self.report, self.usage, self.turns, self.cost_usd, self.final_text)

    def step(self, system: str, tools: list[dict[str, Any]]) -> None:
        self._check_limits()
        turn = self.model.query(system, tools, self.messages, self.cancelled)
        self._account(turn)
        self.messages.append({"role": "assistant", "content": turn.content})
        self.transcript.write(
            "assistant",
            turn=self.turns,
            content=turn.content,
            stop_reason=turn.stop_reason,
            usage=vars(turn.usage),
            cost_usd=round(self.cost_usd, 6),
        )
        handler = {
            "tool_use": self._on_tool_use,
            "end_turn": self._on_end,
            "stop_sequence": self._on_end,
            "max_tokens": self._on_max_tokens,
            "pause_turn": lambda t: None,  # the API paused a long turn: send the conversation back as is
            "refusal": lambda t: self._stop("blocked", "the model refused to continue"),
            "model_context_window_exceeded": lambda t: self._stop(
                "blocked", "the conversation outgrew the context window"
            ),
        }.get(turn.stop_reason, self._on_end)
        handler(turn)

    # --- stop reasons -------------------------------------------------------------------------

    def _on_tool_use(self, turn: ModelTurn) -> None:
        results, finished = self._run_tools(turn)
        if finished is not None:
            raise finished
        self._send_user(results)
        self._check_stuck()

    def _on_end(self, turn: ModelTurn) -> None:
        text = "\n".join(b.get("text", "") for b in turn.content if b.get("type") == "text")
        status, report = report_from_text(text)
        self.report, self.final_text = report, text
        raise Finished(status, report.summary if status != "done" else None)

    def _on_max_tokens(self, turn: ModelTurn) -> None:
        if self._cut_off:
            raise LimitReached("the model's answer hit the output limit twice")
        self._cut_off = True
        results: list[dict[str, Any]] = [
            _tool_result(
                b["id"], "Your answer was cut off before this call was complete; send it again.", True
            )
            for b in turn.content
            if b.get("type") == "tool_use"
        ]
        note = "Your answer hit the output limit. Finish what you were doing, briefly, in smaller steps."
        self._send_user([*results, {"type": "text", "text": note}])

    def _stop(self, status: str, reason: str) -> None:
        raise Finished(status, reason)

    # --- tools --------------------------------------------------------------------------------

    def _run_tools(self, turn: ModelTurn) -> tuple[list[dict[str, Any]], Finished | None]:
        results: list[dict[str, Any]] = []
        finished: Finished | None = None
        for block in turn.content:
            if block.get("type") != "tool_use":
                continue
            if self.cancelled.is_set():
                raise Stopped("cancelled")
            name, args = block["name"], block.get("input") or {}
            start = time.monotonic()
            if name == "Finish":
                finished = self._finish(args)
                result = ToolResult("Finished.")
            else:
                result = self._call(name, args)
            seconds = time.monotonic() - start
            self.transcript.write(
                "tool",
                turn=self.turns,
                name=name,
                input=args,
                result=result.content,
                is_error=result.is_error,
                seconds=round(seconds, 3),
            )
            self.emit("tool", name=name, summary=_summary(args), is_error=result.is_error)
            self._calls.append((_digest(name, args), _digest(result.content)))
            results.append(_tool_result(block["id"], result.content, result.is_error))
        return results, finished

    def _call(self, name: str, args: dict[str, Any]) -> ToolResult:
        if name == "CompleteTask":
            task_id, evidence = str(args.get("task_id", "")), str(args.get("evidence", ""))
            if not task_id:
                return ToolResult("CompleteTask needs a task_id.", is_error=True)
            return self.ticker.complete(task_id, evidence)
        try:
            return self.env.execute(name, args)
        except KeyError:
            return ToolResult(f"There is no tool named {name!r} here.", is_error=True)

    def _finish(self, args: dict[str, Any]) -> Finished:
        status, self.report = report_from_fields(args)
        self.final_text = self.report.summary
        return Finished(status, self.report.summary if status != "done" else None)

    # --- bookkeeping ----------------------------------------------------------------------------

    def _send_user(self, content: list[dict[str, Any]]) -> None:
        self.messages.append({"role": "user", "content": content})
        self.transcript.write("user", turn=self.turns, content=_without_results(content))

    def _account(self, turn: ModelTurn) -> None:
        self.turns += 1
        u = turn.usage
        self.usage.add(u)
        cost = cost_usd(
            self.model.model, u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens
        )
        self.cost_usd += cost
        self.spend.add(cost)
        self.emit("turn", turn=self.turns, tokens=self.usage.total, cost_usd=round(self.cost_usd, 6))

    def _check_limits(self) -> None:
        if self.cancelled.is_set():
            raise Stopped("cancelled")
        if self.stopping.is_set() and self.turns:
            raise Stopped(f"stopped after turn {self.turns}")
        lim = self.limits
        if lim.max_turns is not None and self.turns >= lim.max_turns:
            raise LimitReached(f"max_turns ({lim.max_turns}) reached")
        if lim.max_cost_usd is not None and self.cost_usd >= lim.max_cost_usd:
            raise LimitReached(f"max_cost_usd (${lim.max_cost_usd:g}) reached: ${self.cost_usd:.4f} spent")
        if lim.max_seconds is not None and time.monotonic() - self.started >= lim.max_seconds:
            raise LimitReached(f"max_seconds ({lim.max_seconds:g} s) reached")
        run_limit = self.spend.exceeded()
        if run_limit:
            raise LimitReached(run_limit)

    def _check_stuck(self) -> None:
        """The same call with the same result 4 times in a row, or two calls alternating for 6 steps."""
        calls = self._calls
        if len(calls) >= 4 and len(set(calls[-4:])) == 1:
            raise LimitReached("stuck: the same tool call returned the same result 4 times in a row")
        if len(calls) >= 6:
            last = calls[-6:]
            a, b = last[0], last[1]
            if a != b and all(c == (a if i % 2 == 0 else b) for i, c in enumerate(last)):
                raise LimitReached("stuck: two tool calls alternated with the same results for 6 steps")


def _tool_result(tool_use_id: str, content: str, is_error: bool) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": content or "(empty)",
    }
    if is_error:
        block["is_error"] = True
    return block


def _without_results(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Each tool result is in full in its `tool` entry; the `user` entry only says which went back.
    return [
        {k: v for k, v in b.items() if k != "content"} if b.get("type") == "tool_result" else b
        for b in content
    ]


def _digest(*parts: Any) -> str:
    return digest_of(json.dumps(parts, sort_keys=True, default=str).encode())


def _summary(args: dict[str, Any]) -> str:
    for key in ("file_path", "pattern", "command", "task_id", "status"):
        if key in args:
            return str(args[key])[:80]
    return ""
