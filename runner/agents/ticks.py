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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from runner.agents.tools import ToolResult
from runner.shell import run_command
from runner.taskguard import TasksDiff, diff_tasks, reconcile
from runner.tasks import Task, TaskList, load_tasks, parse_tasks, rewrite, set_checked

VERIFY_OUTPUT_CHARS = 4000


class Workspace:
    """The file tools, counting the calls that may change files (so verify results can be reused)."""

    MUTATING = frozenset({"Write", "Edit", "Bash"})

    def __init__(self, tools: Any) -> None:
        self.tools = tools
        self.changes = 0

    def schemas(self) -> list[dict[str, Any]]:
        return self.tools.schemas()

    def execute(self, name: str, input: dict[str, Any]) -> ToolResult:
        if name in self.MUTATING:
            self.changes += 1
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
        workspace: Workspace | None = None,
        log: Callable[[str], None] = lambda line: None,
        emit: Callable[..., None] = lambda kind, **f: None,
        on_tick: Callable[[list[str]], None] = lambda task_ids: None,
        owner: str | None = None,
        person_marks: Callable[[], dict[str, bool]] = dict,
        cancelled: Any = None,
        verify_timeout: float | None = 1800.0,
    ) -> None:
        self.root = root
        self.tasks_path = tasks_path
        self.guarded = {p.resolve() for p in guarded}
        self.allowed = allowed  # None: any task of the spec
        self.verify_commands = verify
        self.env = env
        self.workspace = workspace
        self.log = log
        self.emit = emit
        self.on_tick = on_tick
        self.owner = owner  # the phase whose jobs tick this spec's tasks
        self.person_marks = person_marks  # boxes people set with `runner check` during this job
        self.cancelled = cancelled
        self.verify_timeout = verify_timeout
        self.ticked: list[str] = []
        self.evidence: dict[str, str] = {}
        self._verified: tuple[int, bool, str] | None = None
        self._snapshot: str | None = None

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
        """Tick every open required task of the assignment (the agent reported it done and verify passed)."""
        if self.tasks_path is None or not self.tasks_path.exists():
            return []
        tasks = load_tasks(self.tasks_path)
        open_tasks = [
            t
            for t in tasks.tasks
            if not t.checked and not t.optional and (self.allowed is None or t.id in self.allowed)
        ]
        return self._tick(open_tasks[::-1])  # children first, so parents tick last

    def open_tasks(self) -> list[str]:
        if self.tasks_path is None or not self.tasks_path.exists():
            return []
        return [
            t.id
            for t in load_tasks(self.tasks_path).tasks
            if not t.checked and not t.optional and (self.allowed is None or t.id in self.allowed)
        ]

    def _tick(self, targets: list[Task]) -> list[str]:
        """Tick the targets; parents whose required sub-tasks are now all done are ticked too."""
        assert self.tasks_path is not None
        before = {t.id for t in load_tasks(self.tasks_path).tasks if t.checked}
        for t in targets:
            set_checked(self.tasks_path, t.id, True, tick_parents=True)
        done = [t.id for t in load_tasks(self.tasks_path).tasks if t.checked and t.id not in before]
        for task_id in done:
            self.ticked.append(task_id)
            self.emit("tick", task=task_id, path=self.rel)
            self.log(f"ticked {task_id} in {self.rel}")
        if done:
            self.on_tick(done)
        self._snapshot = None
        return done

    # --- verify -----------------------------------------------------------------------------

    def verify(self) -> tuple[bool, str]:
        """Run the phase's verify commands; reuse the last result while no file may have changed."""
        if not self.verify_commands:
            return True, ""
        stamp = self.workspace.changes if self.workspace is not None else -1
        if self._verified is not None and self._verified[0] == stamp >= 0:
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
        current = path.read_text(encoding="utf-8-sig") if path.exists() else ""
        diff = diff_tasks(current, new_text)
        if own and diff.only_ticks and not diff.unticked:
            if not diff.ticked:
                return ToolResult("No change: the file already says that.")
            results = [self.complete(task_id, "ticked by editing tasks.md") for task_id in diff.ticked]
            text = "\n".join(r.content for r in results)
            return ToolResult(text, is_error=any(r.is_error for r in results))
        where = "your spec's tasks.md" if own else "another spec's tasks.md"
        return ToolResult(
            f"Refused: {where} is guarded and this edit {diff.describe()}. Only ticking your own tasks is "
            "allowed, and the runner does it for you after checking: call CompleteTask(task_id, evidence). "
            "The file was not changed.",
            is_error=True,
        )

    def repair(self, before: str, *, verified: set[str]) -> TasksDiff | None:
        """Undo what an agent did to the task list since `before`; None if there was nothing to undo.

        Kept: the `verified` ticks of its own tasks, the boxes people set with `runner check`
        meanwhile, unticks of other tasks (an untick loses nothing), and text outside the tasks.
        Undone: removed tasks, reworded tasks (the replaced wording goes to the job log), and
        every other tick. An agent cannot be told apart from a person editing the file by hand
        at the same moment; `runner check` can.
        """
        assert self.tasks_path is not None
        now = self.tasks_path.read_text(encoding="utf-8-sig")
        if now == before:
            return None
        diff = diff_tasks(before, now)
        marks = self.person_marks()
        keep = verified | {t for t, checked in marks.items() if checked}
        kept_unticks = {t for t in diff.unticked if (self.allowed is None or t not in self.allowed)}
        kept_unticks |= {t for t, checked in marks.items() if not checked}
        only = {t.id for t in parse_tasks(before).tasks} - kept_unticks
        fixed = reconcile(before, now, allowed_ticks=keep, only=only)[0]
        if fixed == now:
            return None
        reworded = parse_tasks(now)
        for task_id in diff.reworded:
            with contextlib.suppress(KeyError):
                self.log(f"task {task_id} had been reworded to: {reworded.get(task_id).title}")
        _restore_tasks(self.tasks_path, before, keep=keep, only=only)
        return diff

    def before_shell(self) -> None:
        if self.tasks_path is not None and self.tasks_path.exists():
            self._snapshot = self.tasks_path.read_text(encoding="utf-8-sig")

    def after_shell(self) -> str | None:
        if self._snapshot is None or self.tasks_path is None or not self.tasks_path.exists():
            return None
        before, self._snapshot = self._snapshot, None
        diff = self.repair(before, verified=set())
        if diff is None:
            return None
        self.log(f"undid a shell command's changes to {self.rel}: {diff.describe()}")
        return (
            f"Note: that command changed {self.rel} ({diff.describe()}). tasks.md is guarded, so the runner "
            "undid those changes. Tick tasks with CompleteTask."
        )


def _restore_tasks(path: Path, before: str, *, keep: set[str], only: set[str] | None) -> None:
    """Undo what was done to the tasks in `only` (None: all) since `before`, except the ticks in `keep`.

    Removed and reworded tasks come back and other ticks are reverted. Other tasks, and text
    outside the tasks, stay as they are now: a person may have changed them meanwhile.
    """

    def repair(data: bytes) -> bytes:
        bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
        fixed = reconcile(before, data.decode("utf-8-sig"), allowed_ticks=keep, only=only)[0]
        return bom + fixed.encode("utf-8")

    rewrite(path, repair)


def _with_descendants(tasks: TaskList, task: Task) -> list[Task]:
    """The task and its required sub-tasks, deepest first (so a parent is ticked after its children)."""
    below: list[Task] = []
    for child in tasks.children(task.id):
        if not child.optional:
            below.extend(_with_descendants(tasks, child))
    return [*below, task]
