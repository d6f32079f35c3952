"""How an agent's work reaches a tasks.md checkbox: only through here, and only verified.

`TaskTicker` answers `CompleteTask`, and is the tasks.md guard of the file tools: an `Edit` or
`Write` of a tasks.md whose only change is ticking boxes becomes `CompleteTask` calls; any other
change is refused with a message the agent can act on. Before anything is ticked, the phase's
`verify` commands run (with the agent's scrubbed environment, since they run code the agent
wrote); a failure goes back to the agent with the output's tail. Shell commands that touch the
spec's tasks.md are undone after the fact (`reconcile`), keeping any other text changes.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from runner import changes
from runner.agents.tools import ToolResult
from runner.shell import run_command
from runner.taskguard import TasksDiff, diff_tasks, reconcile
from runner.tasks import Task, TaskList, load_tasks, parse_tasks, rewrite, set_checked, with_marks

VERIFY_OUTPUT_CHARS = 4000


class Workspace:
    """The file tools, marking the calls that may change files, so that a verify result is reused
    only while nothing may have changed (parallel jobs included)."""

    MUTATING = frozenset({"Write", "Edit", "Bash"})

    def __init__(self, tools: Any) -> None:
        self.tools = tools

    def schemas(self) -> list[dict[str, Any]]:
        return self.tools.schemas()

    def execute(self, name: str, input: dict[str, Any]) -> ToolResult:
        if name not in self.MUTATING:
            return self.tools.execute(name, input)
        with changes.files_may_change():
            return self.tools.execute(name, input)


class TaskTicker:
    def __init__(
        self,
        *,
        root: Path,
        tasks_path: Path | None,
        guarded: set[Path],
        allowed: set[str] | None,
        verify: list[str],
        env: Mapping[str, str],
        log: Callable[[str], None] = lambda line: None,
        emit: Callable[..., None] = lambda kind, **f: None,
        on_tick: Callable[[list[str]], None] = lambda task_ids: None,
        owner: str | None = None,
        person_marks: Callable[[], dict[str, bool]] = dict,
        cancelled: Any = None,
        verify_timeout: float | None = None,
    ) -> None:
        self.root = root
        self.tasks_path = tasks_path
        self.guarded = {p.resolve() for p in guarded}
        self.allowed = allowed  # None: any task of the spec
        self.verify_commands = verify
        self.env = env
        self.log = log
        self.emit = emit
        self.on_tick = on_tick
        self.owner = owner  # the phase whose jobs tick this spec's tasks
        self.person_marks = person_marks  # boxes people set with `runner check` during this job
        self.cancelled = cancelled
        self.verify_timeout = verify_timeout
        self.ticked: list[str] = []
        self.evidence: dict[str, str] = {}
        # Tasks of the assignment the agent tried to remove or reword (an edit refused, a shell
        # command's change undone): a report of "done" does not cover them, only CompleteTask does.
        # Not after a CLI agent: what it left in tasks.md may be a person's edit or a parallel
        # agent's half-written file.
        self.disputed: set[str] = set()
        self._verified: tuple[int, bool, str] | None = None
        self._snapshot: tuple[str, float] | None = None  # tasks.md before a shell command, and when
        exists = tasks_path is not None and tasks_path.exists()
        self._ticked_at_start = {t.id for t in load_tasks(tasks_path).tasks if t.checked} if exists else set()

    @property
    def rel(self) -> str:
        assert self.tasks_path is not None
        return self.tasks_path.relative_to(self.root).as_posix()

    # --- CompleteTask -----------------------------------------------------------------------

    def complete(self, task_id: str, evidence: str) -> ToolResult:
        if self.tasks_path is None or not self.tasks_path.exists():
            return ToolResult("This spec has no tasks.md, so there is nothing to tick.", is_error=True)
        tasks = load_tasks(self.tasks_path)
        try:
            task = tasks.get(task_id)
        except KeyError:
            ids = ", ".join(sorted(self.allowed)) if self.allowed else "see `runner tasks`"
            return ToolResult(
                f"There is no task {task_id!r} in {self.rel} (your tasks: {ids}).", is_error=True
            )
        if self.allowed == set():
            return ToolResult(
                f"Tasks of this spec are completed by the `{self.owner}` phase, whose checks must pass "
                "before a box is ticked; this job does not tick tasks.",
                is_error=True,
            )
        if self.allowed is not None and task.id not in self.allowed:
            mine = ", ".join(t for t in sorted(self.allowed))
            return ToolResult(
                f"Task {task.id} is not part of your assignment; this job may only complete {mine}.",
                is_error=True,
            )
        targets = [t for t in _with_descendants(tasks, task) if not t.checked]
        if not targets:
            return ToolResult(f"Task {task.id} is already ticked.")
        ok, output = self.verify()
        if not ok:
            return ToolResult(
                f"Not ticked: the checks that must pass before a task is ticked failed.\n{output}\n"
                "Fix the cause, then call CompleteTask again.",
                is_error=True,
            )
        done = self._tick(targets)
        self.evidence[task.id] = evidence
        checks = f" after `{'`, `'.join(self.verify_commands)}` passed" if self.verify_commands else ""
        return ToolResult(f"Ticked {', '.join(done)} in {self.rel}{checks}.")

    def complete_rest(self) -> list[str]:
        """Tick every open required task of the assignment (the agent reported it done and verify
        passed) but the disputed ones and the tasks above them."""
        assert self.tasks_path is not None
        tasks = self._current_tasks()
        held = set()
        for task_id in self.disputed:
            with contextlib.suppress(KeyError):  # no longer in the file: nothing to hold
                task = tasks.get(task_id)
                held.add(task.id)
                while task.parent is not None:
                    task = tasks.get(task.parent)
                    held.add(task.id)
        return self._tick([t for t in self._open(tasks)[::-1] if t.id not in held])  # children first

    def _dispute(self, diff: TasksDiff) -> None:
        changed = {*diff.removed, *diff.reworded}
        self.disputed |= changed if self.allowed is None else changed & self.allowed

    def open_tasks(self) -> list[str]:
        return [t.id for t in self._open()]

    def _open(self, tasks: TaskList | None = None) -> list[Task]:
        """The assignment's required tasks that are not ticked yet, in document order. A box ticked
        since the job started by neither runner nor a person (`runner check`) still counts as open:
        with -j, what shows it ticked may be another CLI agent's stale copy of the file, whose repair
        then takes the tick back; ticked by runner, it stays. `tasks`: the file as just read."""
        if self.tasks_path is None or not self.tasks_path.exists():
            return []
        marked = {task_id for task_id, checked in self.person_marks().items() if checked}
        settled = self._ticked_at_start | set(self.ticked) | marked
        return [
            t
            for t in (tasks if tasks is not None else self._current_tasks()).tasks
            if (not t.checked or t.id not in settled)
            and not t.optional
            and (self.allowed is None or t.id in self.allowed)
        ]

    def _current_tasks(self) -> TaskList:
        assert self.tasks_path is not None
        return tasks_holding(self.tasks_path, self.allowed or set())

    def _tick(self, targets: list[Task]) -> list[str]:
        """Tick the targets; parents whose required sub-tasks are now all done are ticked too.

        Only the targets and their parents count as this job's ticks: with -j, other jobs tick
        their own tasks in the same file at the same time.
        """
        assert self.tasks_path is not None
        tasks = self._current_tasks()
        mine = {t.id for t in targets}
        for t in targets:
            parent = t.parent
            while parent is not None:
                mine.add(parent)
                parent = tasks.get(parent).parent
        before = {t.id for t in tasks.tasks if t.checked}
        with _RUNNER_TICKS.ticking(self.tasks_path, sorted(mine)):
            for t in targets:
                set_checked(self.tasks_path, t.id, True, tick_parents=True)
        done = [
            t.id
            for t in load_tasks(self.tasks_path).tasks
            if t.checked and t.id in mine and (t.id not in before or t.id not in self._ticked_at_start)
        ]
        self.announce(done)
        self._snapshot = None
        return done

    def announce(self, task_ids: list[str]) -> None:
        """Ticks this job made: to its record, the log, the events and git (on_tick)."""
        for task_id in task_ids:
            if task_id in self.ticked:  # ticked before, lost to a parallel writer, ticked again
                continue
            self.ticked.append(task_id)
            self.emit("tick", task=task_id, path=self.rel, verified=bool(self.verify_commands))
            self.log(
                f"ticked {task_id} in {self.rel}" + ("" if self.verify_commands else " (no verify commands)")
            )
        if task_ids:
            self.on_tick(task_ids)

    # --- verify -----------------------------------------------------------------------------

    def verify(self) -> tuple[bool, str]:
        """Run the phase's verify commands; reuse the last result while no file may have changed."""
        if not self.verify_commands:
            return True, ""
        stamp = changes.current()
        if self._verified is not None and self._verified[0] == stamp:
            return self._verified[1], self._verified[2]
        ok, output = True, ""
        for command in self.verify_commands:
            with tempfile.TemporaryFile() as out:
                result = run_command(
                    command,
                    cwd=self.root,
                    env=self.env,
                    output=out,
                    timeout=self.verify_timeout,
                    cancelled=self.cancelled,
                )
                out.seek(0)
                text = out.read().decode("utf-8", errors="replace")
            self.log(f"verify: $ {command} -> {result.describe(self.verify_timeout)}\n{text}")
            if not result.ok:
                tail = text[-VERIFY_OUTPUT_CHARS:]
                cut = f"[... {len(text) - len(tail)} earlier characters]\n" if len(tail) < len(text) else ""
                ok, output = False, f"$ {command}\n{cut}{tail}\n({result.describe(self.verify_timeout)})"
                break
        self._verified = (stamp, ok, output)
        return ok, output

    # --- the guard of the file tools ----------------------------------------------------------

    def covers(self, path: Path) -> bool:
        return path.resolve() in self.guarded

    def write(self, path: Path, new_text: str) -> ToolResult:
        own = self.tasks_path is not None and path.resolve() == self.tasks_path.resolve()
        current = tasks_text(path.read_bytes())[0] if path.exists() else ""
        diff = diff_tasks(current, new_text)
        if own and diff.only_ticks and not diff.unticked:
            if not diff.ticked:
                return ToolResult("No change: the file already says that.")
            results = [self.complete(task_id, "ticked by editing tasks.md") for task_id in diff.ticked]
            text = "\n".join(r.content for r in results)
            return ToolResult(text, is_error=any(r.is_error for r in results))
        if own:
            self._dispute(diff)
        refused = f"refused the agent's edit of {path.relative_to(self.root).as_posix()} ({diff.describe()})"
        self.log(refused)
        self.emit("note", message=refused)
        where = "your spec's tasks.md" if own else "another spec's tasks.md"
        return ToolResult(
            f"Refused: {where} is guarded and this edit {diff.describe()}. Only ticking your own tasks is "
            "allowed, and the runner does it for you after checking: call CompleteTask(task_id, evidence). "
            "The file was not changed.",
            is_error=True,
        )

    def repair(self, before: str, since: float, *, verified: set[str]) -> tuple[TasksDiff, bool] | None:
        """Undo what an agent did to the task list since `before` (read at `since`); the changes
        undone and whether the file was still UTF-8 (if not, all of it is undone), or None.

        Kept: the `verified` ticks of its own tasks, ticks runner made for other jobs, boxes people
        set with `runner check` meanwhile, unticks of other tasks (an untick loses nothing), and
        text outside the tasks. Undone: removed tasks, reworded tasks (the replaced wording goes to
        the job log), and every other tick. What to keep is decided on the file as it is when the
        repair lands, so a tick made a moment earlier by a parallel job survives, and one that an
        agent rewriting the whole file lost is made again. The `verified` ticks count as runner's
        from here on, for the repairs of parallel jobs. An agent cannot be told apart from a person
        editing the file by hand at the same moment; `runner check` can.
        """
        assert self.tasks_path is not None
        path = self.tasks_path
        undone: list[tuple[TasksDiff, str, bool]] = []

        def undo(data: bytes) -> bytes:
            now, utf8 = tasks_text(data)
            diff = diff_tasks(before, now)
            marks = self.person_marks()
            unmarked = {t for t, checked in marks.items() if not checked}
            keep = (
                verified | _RUNNER_TICKS.since(path, since) | {t for t, checked in marks.items() if checked}
            )
            kept_unticks = {t for t in diff.unticked if self.allowed is None or t not in self.allowed}
            only = {t.id for t in parse_tasks(before).tasks} - kept_unticks - unmarked
            # Text saved in another encoding cannot be kept in part: all of it goes back to `before`.
            fixed = reconcile(before, now, allowed_ticks=keep, only=only)[0] if utf8 else before
            # Ticks still being written are their writers' to finish; written ones must not be lost,
            # nor the boxes people set meanwhile, whatever a write from a stale copy did to them.
            made = verified | _RUNNER_TICKS.since(path, since, written=True)
            fixed = with_marks(fixed, {**dict.fromkeys(made, True), **marks})
            if fixed == now:
                return data
            undone.append((diff, now, utf8))
            bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
            return bom + fixed.encode("utf-8")

        with _RUNNER_TICKS.ticking(path, sorted(verified)):
            changed = rewrite(path, undo)
        if not changed or not undone:
            return None
        diff, now, utf8 = undone[-1]
        if not utf8:  # what a diff of the misread text says is not what was done
            self.log(f"{self.rel} had been saved as text that is not UTF-8; it is back as it was")
            return diff, False
        reworded = parse_tasks(now)
        for task_id in diff.reworded:
            with contextlib.suppress(KeyError):
                self.log(f"task {task_id} had been reworded to: {reworded.get(task_id).title}")
        return diff, True

    def before_shell(self) -> None:
        if self.tasks_path is not None and self.tasks_path.exists():
            since = time.time()  # before the read: a tick landing in between must count as "since"
            self._snapshot = (tasks_text(self.tasks_path.read_bytes())[0], since)

    def after_shell(self) -> str | None:
        if self._snapshot is None or self.tasks_path is None or not self.tasks_path.exists():
            return None
        (before, since), self._snapshot = self._snapshot, None
        repaired = self.repair(before, since, verified=set())
        if repaired is None:
            return None
        diff, utf8 = repaired
        if utf8:
            self._dispute(diff)
        what = diff.describe() if utf8 else "saved it as text that is not UTF-8"
        undone = f"undid a shell command's changes to {self.rel} ({what})"
        self.log(undone)
        self.emit("note", message=undone)
        return (
            f"Note: that command changed {self.rel} ({what}). tasks.md is guarded, so the runner "
            "undid those changes. Tick tasks with CompleteTask."
        )


def tasks_holding(path: Path, task_ids: set[str]) -> TaskList:
    """tasks.md as it is now. A read that lacks some of `task_ids` may have caught a CLI agent
    halfway through rewriting the file in place (truncate, then write; with -j, another job's agent
    may be at it), so it is read again, for up to a fifth of a second, before it counts."""
    deadline = time.monotonic() + 0.2
    while True:
        tasks = load_tasks(path)
        if task_ids <= {t.id for t in tasks.tasks} or time.monotonic() > deadline:
            return tasks
        time.sleep(0.005)


def tasks_text(data: bytes) -> tuple[str, bool]:
    """A tasks.md's text and whether it is UTF-8; bytes that are not are read as U+FFFD."""
    try:
        return data.decode("utf-8-sig"), True
    except UnicodeDecodeError:
        return data.decode("utf-8-sig", errors="replace"), False


class _TickRecord:
    """The ticks runner made in this process, per tasks.md: a repair after a shell command or a CLI
    agent must not take another job's verified tick (made meanwhile, with -j) for an unverified one.

    A tick is noted before it is written and dated when the write is done, so a repair that lands
    in between keeps it too.
    """

    def __init__(self) -> None:
        self._ticks: dict[Path, list[list]] = {}  # [done at (None while writing), task id]
        self._lock = threading.Lock()

    KEPT_SECONDS = 86400.0  # a repair asks about ticks since its job began: no job runs for a day

    @contextlib.contextmanager
    def ticking(self, path: Path, task_ids: list[str]) -> Iterator[None]:
        entries = [[None, t] for t in task_ids]
        horizon = time.time() - self.KEPT_SECONDS
        with self._lock:
            kept = [e for e in self._ticks.get(path.resolve(), []) if e[0] is None or e[0] >= horizon]
            self._ticks[path.resolve()] = kept + entries
        try:
            yield
        finally:
            now = time.time()
            with self._lock:
                for entry in entries:
                    entry[0] = now

    def since(self, path: Path, t: float, *, written: bool = False) -> set[str]:
        """Ticks made at `t` or later, and those being made now (unless `written`)."""
        with self._lock:
            entries = self._ticks.get(path.resolve(), [])
            return {task_id for at, task_id in entries if (at is None and not written) or (at or 0) >= t}


_RUNNER_TICKS = _TickRecord()


def _with_descendants(tasks: TaskList, task: Task) -> list[Task]:
    """The task and its required sub-tasks, deepest first (so a parent is ticked after its children)."""
    below: list[Task] = []
    for child in tasks.children(task.id):
        if not child.optional:
            below.extend(_with_descendants(tasks, child))
    return [*below, task]
