"""`runner watch`: run what is stale now, then again whenever inputs change, until Ctrl-C.

React to file state, not to event types. An event only says "look again"; after a quiet period
(the debounce) the whole plan is evaluated from the files as they are. So it does not matter how
an editor saved (in place, temp file renamed over, target renamed away and a new file written),
a burst of events gives one re-plan, and a change that leaves every signature the same (a tick,
an artifact, a touch) runs nothing. Jobs that only failed again with the same signature wait for a
change (`Plan.select(retry=False)`), so watch never loops on a failure.

Threads: the main thread owns planning, the batch, the watches and Ctrl-C. It sleeps in select()
on a socket that the other threads poke: watchdog's dispatcher (a change that matters), the worker
thread running a batch of jobs (done), and the signal handler (through `set_wakeup_fd`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import select
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from runner.agents.definitions import AGENT_DIRS
from runner.errors import UserError
from runner.execute import CANCEL_GRACE, Executor, JobResult, check_credentials
from runner.fingerprint import Fingerprints
from runner.globs import fixed_folder, has_magic, translate
from runner.ignore import IgnoreRules
from runner.lock import ProjectLock, command_line
from runner.plan import Plan, Verdict, build_plan, explain_changes
from runner.project import ARTIFACTS_DIR, Project
from runner.recovery import recover
from runner.specs import select_specs
from runner.state import State
from runner.workflow import WORKFLOW_DIR

Emit = Callable[..., None]

# Re-plan at the latest this long after the first change of a burst, even if changes keep coming.
MAX_DELAY_FLOOR = 1.0
# A job that ran this many times in a row (watch never idle in between) waits for the next change:
# it is most likely rewriting its own inputs, and an agent doing so would burn money all day.
MAX_STREAK = 3
# How often --poll (and the fallback when inotify gives out) looks at the watched folders.
POLL_SECONDS = 1.0
# While a job awaits approval, how often to check whether `runner approve` or `reject` ran.
APPROVAL_POLL_SECONDS = 1.0

_LITTER = re.compile(r"(\.sw[a-px]|~|\.tmp)\Z|\A\.#|\A#.*#\Z|\A4913\Z")


def is_litter(name: str) -> bool:
    """Editor and tool temp files: vim swap and probe files, emacs locks and autosaves, backups."""
    return _LITTER.search(name) is not None


def watch(
    root: Path,
    *,
    specs: tuple[str, ...],
    debounce: float,
    on_busy: str,
    poll: bool,
    parallel: int,
    reporter: Any,
) -> int:
    """Watch the project at `root` until Ctrl-C; the exit code (0, or 130 if jobs were cancelled)."""
    try:
        return Session(root, specs, debounce, on_busy, poll, parallel, reporter).run()
    finally:
        reporter.close()


# --- what to watch ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interest:
    """Which folders to watch and which changed paths matter (root-relative posix paths)."""

    trees: tuple[str, ...]  # below these, every path that is not ignored matters
    inputs: re.Pattern[str] | None  # declared inputs elsewhere: they matter even where ignored
    missing: tuple[str, ...]  # wanted folders that do not exist yet: creating them matters
    folders: frozenset[tuple[str, bool]]  # what to schedule: (folder, recursive)

    def matters(self, rel: str, is_dir: bool, ignore: IgnoreRules) -> bool:
        if is_litter(rel.rsplit("/", 1)[-1]):
            return False
        if self.inputs is not None and self.inputs.fullmatch(rel):
            return True
        if _below(rel, ARTIFACTS_DIR) or ignore.matches(rel, is_dir):
            return False
        return any(_below(rel, t) for t in self.trees) or any(_below(m, rel) for m in self.missing)


def interest(project: Project) -> Interest:
    """The spec roots, workflows/ and agent folders (whole trees), plus every declared input
    outside them; declared inputs matter even where .gitignore (or artifacts/) would hide them."""
    root = project.root
    spec_roots = [_clean(p) for p in project.workflow.spec_roots]
    trees = {_fixed_prefix(p) for p in spec_roots} | {WORKFLOW_DIR, *AGENT_DIRS}
    wanted: set[tuple[str, bool]] = {(t, True) for t in trees} | {("", False)}
    spec = "(?:" + "|".join(_glob_regex(p, "") for p in spec_roots) + ")"
    regexes: set[str] = set()
    for phase in project.workflow.phases.values():
        paths = [_clean(p) for p in phase.inputs]
        if phase.agent and ("/" in phase.agent or phase.agent.endswith((".md", ".txt"))):
            paths.append(_clean(phase.agent))  # an agent given by path, outside the agent folders
        for pattern in paths:
            regexes.add(_glob_regex(pattern, spec))
            if not pattern.startswith("{spec}/"):  # a spec's own files are below its spec root
                wanted.add(_input_folder(pattern))
    folders: set[tuple[str, bool]] = set()
    missing: list[str] = []
    for folder, recursive in wanted:
        if os.path.isdir(root / folder):
            folders.add((folder, recursive))
        else:
            # Watch the nearest existing parent for the folder to appear.
            missing.append(folder)
            folders.add((_existing_parent(root, folder), False))
    inputs = re.compile("|".join(f"(?:{r})" for r in sorted(regexes))) if regexes else None
    return Interest(tuple(sorted(trees)), inputs, tuple(sorted(missing)), _minimal(folders))


def _clean(pattern: str) -> str:
    while pattern.startswith("./"):
        pattern = pattern[2:]
    return pattern.strip("/")


def _fixed_prefix(pattern: str) -> str:
    """The folder part of a glob before its first wildcard or placeholder (a literal path whole)."""
    pattern = _clean(pattern)
    return fixed_folder(pattern) if has_magic(pattern) else pattern


def _input_folder(pattern: str) -> tuple[str, bool]:
    """Where a declared input can change: its folder, or a whole tree when its folder varies."""
    parts = pattern.split("/")
    fixed = _fixed_prefix(pattern)
    depth = len(fixed.split("/")) if fixed else 0
    if depth >= len(parts) - 1:  # only the file name varies (or nothing does)
        return "/".join(parts[:-1]), False
    return fixed, True


def _glob_regex(pattern: str, spec: str) -> str:
    """A regex for a workflow glob, with `spec` standing for {spec} (any spec folder) and any name
    for {name} and {task}."""
    return translate(pattern, {"{spec}": spec, "{name}": "[^/]+", "{task}": "[^/]+"})


def _existing_parent(root: Path, folder: str) -> str:
    while folder and not os.path.isdir(root / folder):
        folder = folder.rpartition("/")[0]
    return folder


def _minimal(folders: set[tuple[str, bool]]) -> frozenset[tuple[str, bool]]:
    """Drop folders a recursive watch above them (or on them) already covers."""
    trees = [f for f, recursive in folders if recursive]
    return frozenset(
        (f, recursive)
        for f, recursive in folders
        if not any(t != f and _below(f, t) for t in trees) and (recursive or f not in trees)
    )


def _below(path: str, folder: str) -> bool:
    return not folder or path == folder or path.startswith(folder + "/")


# --- the observer --------------------------------------------------------------------------------


class Watches:
    """The watchdog observer and its scheduled folders. When the OS runs out of inotify watches
    (or instances), or watchdog fails, it falls back to polling and says so once; when events were
    lost, it asks for a rescan and says so once.

    `on_event(rel, is_dir)` and `wake()` are called on watchdog's threads; everything else runs on
    the caller's (main) thread."""

    def __init__(
        self,
        root: Path,
        on_event: Callable[[str, bool], None],
        say: Callable[[str], None],
        wake: Callable[[], None],
        *,
        poll: bool,
    ) -> None:
        self.root = root
        self.polling = poll
        self._say = say
        self._wake = wake
        self._handler = _Handler(str(root), on_event)
        self._scheduled: dict[tuple[str, bool], ObservedWatch] = {}
        self._lock = threading.Lock()
        self._lost = False
        self._failure: str | None = None
        self._said_lost = False
        self._log = _WatchdogLog(self._on_lost, self._on_failure)
        logging.getLogger("watchdog").addHandler(self._log)
        self._observer = self._new_observer()

    def _new_observer(self) -> BaseObserver:
        if not self.polling:
            try:
                observer = Observer()  # inotify_init fails when the instance limit is reached
                observer.start()
                return observer
            except OSError as e:
                self._say_polling(str(e))
        observer = PollingObserver(timeout=POLL_SECONDS)
        observer.start()
        return observer

    def update(self, folders: frozenset[tuple[str, bool]]) -> None:
        """Watch exactly these folders (again, where a watch died with its folder)."""
        alive = {e.watch for e in self._observer.emitters if e.is_alive()}
        for key, w in list(self._scheduled.items()):
            if key not in folders or w not in alive:
                with contextlib.suppress(KeyError):
                    self._observer.unschedule(w)
                del self._scheduled[key]
        added_tree = False
        for folder, recursive in sorted(folders - self._scheduled.keys()):
            try:
                self._scheduled[folder, recursive] = self._observer.schedule(
                    self._handler, str(self.root / folder), recursive=recursive, event_filter=_EVENTS
                )
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EMFILE) and not self.polling:
                    self.fall_back(str(e))
                    self.update(folders)
                    return
                if e.errno != errno.ENOENT:  # a folder that just vanished: its parent's watch sees it
                    self._say(f"cannot watch {folder or '.'}: {e.strerror}; changes there are not seen")
                continue
            added_tree = added_tree or recursive
        if added_tree and not self.polling and _watch_shortfall(self.root, self._scheduled.keys()):
            # watchdog skips subfolders it cannot watch without a word: count what the kernel has.
            self.fall_back("inotify watch limit reached")
            self.update(folders)

    def fall_back(self, reason: str) -> None:
        if self.polling:
            return
        self._say_polling(reason)
        self._stop_observer()
        self._scheduled.clear()
        self._observer = self._new_observer()

    def recover(self) -> bool:
        """Deal with lost events or a failed observer; True if every file must be looked at again."""
        with self._lock:
            lost, self._lost = self._lost, False
            failure, self._failure = self._failure, None
        if failure is not None:
            self.fall_back(f"watching failed ({failure})")
        if lost and not self._said_lost:
            self._said_lost = True
            self._say("file events were lost (the kernel's event queue overflowed); rescanning everything")
        return lost or failure is not None

    def _on_lost(self) -> None:
        with self._lock:
            self._lost = True
        self._wake()

    def _on_failure(self, message: str) -> None:
        with self._lock:
            self._failure = message
        self._wake()

    def _say_polling(self, reason: str) -> None:
        self.polling = True
        self._say(
            f"{reason}: watching by polling every {POLL_SECONDS:g}s instead "
            "(raise fs.inotify.max_user_watches / max_user_instances to get events again)"
        )

    def close(self) -> None:
        logging.getLogger("watchdog").removeHandler(self._log)
        self._stop_observer()

    def _stop_observer(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)


# Opens and reads (planning reads every input) and attribute changes (touch) say nothing about
# content: asking the kernel only for writes, creations, deletions and moves keeps them out.
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]


class _Handler(FileSystemEventHandler):
    """watchdog calls `dispatch` on its dispatcher thread; the session decides what matters."""

    def __init__(self, root: str, on_event: Callable[[str, bool], None]) -> None:
        self._prefix = root.rstrip("/") + "/"
        self._on_event = on_event

    def dispatch(self, event: FileSystemEvent) -> None:
        for path in (event.src_path, event.dest_path):
            path = os.fsdecode(path)
            if path.startswith(self._prefix):
                self._on_event(path[len(self._prefix) :], event.is_directory)
            elif path == self._prefix[:-1]:
                self._on_event("", True)


def _watch_shortfall(root: Path, folders: Iterable[tuple[str, bool]]) -> bool:
    """Does the kernel hold fewer inotify watches for us than there are folders to watch?
    Counted twice before saying yes: a folder removed between the two counts is not a shortfall."""
    for _ in range(2):
        need = sum(_folders_below(root / folder) if recursive else 1 for folder, recursive in folders)
        have = _inotify_watch_count()
        if have is None or have >= need:
            return False
    return True


def _folders_below(folder: Path) -> int:
    """The folder and its subfolders, without following symlinks (as watchdog watches them)."""
    count = 1
    for dirpath, dirnames, _ in os.walk(folder):
        count += sum(1 for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
    return count


def _inotify_watch_count() -> int | None:
    """Watches held by this process's inotify instances (Linux /proc), or None where unknown."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    count = 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as f:
                count += sum(1 for line in f if line.startswith("inotify wd:"))
        except OSError:
            continue
    return count


class _WatchdogLog(logging.Handler):
    """watchdog tells of lost events (a kernel queue overflow) and of failures to re-add watches
    only in its log; this turns those into a rescan, or a switch to polling."""

    def __init__(self, on_lost: Callable[[], None], on_failure: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self._on_lost = on_lost
        self._on_failure = on_failure

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "overflow" in message.lower():
            self._on_lost()
        elif record.levelno >= logging.ERROR:
            self._on_failure(message.splitlines()[0])


# --- the session ----------------------------------------------------------------------------------


class _Batch:
    """One Executor run on a worker thread, so the main thread stays free for Ctrl-C and events."""

    def __init__(
        self, executor: Executor, ids: list[str], verdicts: dict[str, Verdict], wake: Callable[[], None]
    ) -> None:
        self.executor = executor
        self.results: dict[str, JobResult] = {}
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ids, verdicts, wake), name="runner-batch", daemon=True
        )
        self._thread.start()

    def _run(self, ids: list[str], verdicts: dict[str, Verdict], wake: Callable[[], None]) -> None:
        try:
            self.results = self.executor.run(ids, verdicts)
        except Exception as e:  # reported by the main thread; watching goes on
            self.error = e
        finally:
            self.done.set()
            wake()


class Session:
    """One `runner watch`: the lock, the catch-up, then re-plans as changes settle, until Ctrl-C."""

    def __init__(
        self,
        root: Path,
        specs: tuple[str, ...],
        debounce: float,
        on_busy: str,
        poll: bool,
        parallel: int,
        emit: Emit,
    ) -> None:
        self.root = root.resolve()
        self.specs = specs
        self.debounce = max(0.0, debounce)
        self.max_delay = max(MAX_DELAY_FLOOR, 10 * self.debounce)
        self.on_busy = on_busy
        self.poll = poll
        self.parallel = parallel
        self.emit = emit
        self.ignore = IgnoreRules(self.root)
        self.interest: Interest | None = None
        self._watches: Watches | None = None
        self._state: State | None = None
        self._batch: _Batch | None = None
        self._streak: Counter[str] = Counter()  # runs per job since watch was last idle
        self._restarted: set[str] = set()  # jobs cancelled by --on-busy restart, to start again
        self._bad_specs: list[UserError] = []  # specs left out of the last plan: their files are bad
        self._last_error: str | None = None
        self._specs_watched = 0
        self._approvals = False  # some job awaits `runner approve`
        self._db_version = 0
        # Written by other threads (and the signal handler), read by the main thread.
        self._lock = threading.Lock()
        self._first_change: float | None = None  # of the burst not planned yet
        self._last_change = 0.0
        self._signals = 0
        # Main-thread state of Ctrl-C.
        self._handled_signals = 0
        self._stopping = False
        self._exit_code = 0
        self._deadline: float | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    @property
    def state(self) -> State:
        assert self._state is not None
        return self._state

    @property
    def watches(self) -> Watches:
        assert self._watches is not None
        return self._watches

    # --- start and main loop ---------------------------------------------------------------------

    def run(self) -> int:
        try:
            with ProjectLock(self.root, command_line()), self._signal_handlers():
                self._state = State.open(self.root)
                # Bad input at the start is a usage error (exit 2); later it is reported and watched.
                project = Project(self.root, self.state)
                select_specs(project.specs, self.specs)
                for job_id in recover(project, self.state):
                    self.emit("note", message=f"{job_id} was interrupted last time; it will run again")
                self._watches = Watches(self.root, self._on_event, self._say, self._wake, poll=self.poll)
                self._plan(retry=True, first=True)
                return self._loop()
        finally:
            if self._watches is not None:
                self._watches.close()
            if self._state is not None:
                self._state.close()
            self._wake_r.close()
            self._wake_w.close()

    def _loop(self) -> int:
        while True:
            self._handle_signals()
            if self._batch is not None and self._batch.done.is_set():
                self._end_batch()
            if self._stopping:
                if self._batch is None:
                    return self._exit_code
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    return self._exit_code
                self._sleep(None if self._deadline is None else self._deadline - time.monotonic())
                continue
            self._sleep(self._act())

    def _act(self) -> float | None:
        """Re-plan (or, with --on-busy restart, check the running jobs) once changes have settled;
        how long to sleep until something is due (None: until woken)."""
        if self.watches.recover():
            self._changed(event=False)
        if self._batch is None and self._approvals and self.state.data_version() != self._db_version:
            self._changed(event=False)
        due = self._due_in()
        if self._batch is None and self._approvals and due is None:
            return APPROVAL_POLL_SECONDS
        if due is None or due > 0:
            return due
        if self._batch is None:
            self._guarded(self._plan)
        elif self.on_busy == "restart":
            self._guarded(self._restart_changed)
        else:
            return None  # queue: the batch's end wakes us, and we plan then
        return self._due_in()

    def _guarded(self, step: Callable[[], None]) -> None:
        """While watching, a bad workflow (or a bug) is reported and watching goes on."""
        try:
            step()
        except Exception as e:
            message = str(e) if isinstance(e, UserError) else f"internal error: {type(e).__name__}: {e}"
            self._error(message)
            if self._batch is None:
                self._idle(error=message)

    # --- planning ----------------------------------------------------------------------------------

    def _load(self) -> tuple[Project, Plan, dict[str, Verdict]]:
        """Plan from the files as they are now; changes from here on call for another look."""
        with self._lock:
            self._first_change = None
        # A fresh Project each time (its parses are stat-cached): workflow, agents and spec folders
        # may all have changed.
        project = Project(self.root, self.state)
        self.interest = interest(project)
        # Watch before reading: whatever changes after this is seen.
        self.watches.update(self.interest.folders)
        chosen = select_specs(project.specs, self.specs)
        self._specs_watched = len(chosen)
        # One spec's unreadable file holds back that spec only; the others go on being watched.
        self._bad_specs = []
        fingerprints = Fingerprints(self.root, self.state.file_rows())
        plan = build_plan(project, fingerprints, specs=chosen, on_bad_spec=self._bad_specs.append)
        verdicts = plan.evaluate(self.state.jobs())
        self.state.save_file_rows(plan.fingerprints.take_updates())
        return project, plan, verdicts

    def _plan(self, *, retry: bool = False, first: bool = False) -> None:
        project, plan, verdicts = self._load()
        if first and self._bad_specs:
            raise self._bad_specs[0]  # bad input at the start, as for `runner run`
        # A job cancelled to restart it did not fail: it runs again even if nothing changed since.
        restarted, self._restarted = frozenset(self._restarted), set()
        ids = self._without_loops(plan, plan.select(verdicts, retry=retry, again=restarted))
        if ids:
            check_credentials(plan, ids)
        if self._bad_specs:
            waiting = "; ".join(str(e) for e in self._bad_specs)
            self._error(f"{waiting} (that spec waits until it is fixed; the others run)")
        else:
            self._last_error = None  # planned without an error: one reported before has been fixed
        if not ids:
            self._idle(verdicts)
            return
        executor = Executor(project, self.state, plan, self.emit, parallel=self.parallel)
        self._batch = _Batch(executor, ids, verdicts, self._wake)

    def _without_loops(self, plan: Plan, ids: list[str]) -> list[str]:
        """Leave out jobs that keep making themselves stale, and what depends on them."""
        looping = [j for j in ids if self._streak[j] >= MAX_STREAK]
        if not looping:
            return ids
        for job_id in looping:
            self._error(
                f"{job_id} ran {MAX_STREAK} times in a row and was stale again after each run "
                "(does it write its own inputs?); it runs again at the next change"
            )
        dropped = set(looping)
        for job_id in ids:  # dependency order: upstream jobs come first
            job = plan.jobs[job_id]
            if any(d in dropped for d in (*job.upstream, *job.after)):
                dropped.add(job_id)
        return [j for j in ids if j not in dropped]

    def _idle(self, verdicts: dict[str, Verdict] | None = None, error: str | None = None) -> None:
        waiting = []
        for job_id, v in (verdicts or {}).items():
            if v.must_run or v.state in ("blocked", "awaiting-approval"):
                waiting.append({"job": job_id, "state": v.state})
        # `runner approve` and `reject` change only the state database, which no file event reports.
        self._approvals = any(w["state"] == "awaiting-approval" for w in waiting)
        self._db_version = self.state.data_version()
        self._streak.clear()
        mode = "poll" if self.watches.polling else "events"
        self.emit("watching", specs=self._specs_watched, mode=mode, waiting=waiting, error=error)

    def _restart_changed(self) -> None:
        """--on-busy restart: cancel the running jobs whose signature changed; the re-plan at the
        end of the batch starts them again."""
        assert self._batch is not None
        _, _, verdicts = self._load()
        records = self.state.jobs()
        for job_id in self._batch.executor.running:
            rec, v = records.get(job_id), verdicts.get(job_id)
            # A job that left the plan (its task was ticked, by itself perhaps) is left to finish.
            if rec is None or v is None or rec.status != "running" or rec.signature == v.signature:
                continue
            if self._batch.executor.cancel_job(job_id):
                self._restarted.add(job_id)
                reason = "; ".join(explain_changes(rec.components, v.components))
                self.emit("restart", job=job_id, reason=reason)

    def _end_batch(self) -> None:
        assert self._batch is not None
        batch, self._batch = self._batch, None
        if batch.error is not None:
            self._error(f"internal error: {type(batch.error).__name__}: {batch.error}")
        for job_id, result in batch.results.items():
            if result.status not in ("cancelled", "skipped"):
                self._streak[job_id] += 1
        self.emit("summary", counts=dict(Counter(r.status for r in batch.results.values())))
        # Look again: edits made while the batch ran, and what a cancelled job left stale.
        self._changed(event=False)

    def _error(self, message: str) -> None:
        if message != self._last_error:  # the same error after every save is noise
            self.emit("error", message=message)
        self._last_error = message

    # --- events from other threads -----------------------------------------------------------------

    def _on_event(self, rel: str, is_dir: bool) -> None:
        if IgnoreRules.is_rules_file(rel):
            self.ignore.reload()
        current = self.interest
        if current is not None and current.matters(rel, is_dir, self.ignore):
            self._changed(event=True)

    def _changed(self, *, event: bool) -> None:
        now = time.monotonic()
        with self._lock:
            was_clean = self._first_change is None
            if was_clean:
                self._first_change = now
            if event:
                self._last_change = now
        if was_clean:
            self._wake()

    def _say(self, message: str) -> None:
        self.emit("error", message=message)

    def _due_in(self) -> float | None:
        with self._lock:
            if self._first_change is None:
                return None
            due = min(self._last_change + self.debounce, self._first_change + self.max_delay)
        return max(0.0, due - time.monotonic())

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full means a wake-up is pending anyway; closed: exiting
            self._wake_w.send(b"\0")

    def _sleep(self, timeout: float | None) -> None:
        select.select([self._wake_r], [], [], timeout)
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass

    # --- Ctrl-C --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        def handler(signum: int, frame: object) -> None:
            # SIGTERM (a process manager stopping us) and SIGHUP (the terminal closed) mean "stop
            # now", as a second Ctrl-C does.
            self._signals += 1 if signum == signal.SIGINT else 2

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        old_fd = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        try:
            yield
        finally:
            signal.set_wakeup_fd(old_fd)
            for s, h in old.items():
                signal.signal(s, h)

    def _handle_signals(self) -> None:
        seen = self._signals
        if seen == self._handled_signals:
            return
        self._handled_signals = seen
        executor = self._batch.executor if self._batch is not None else None
        if not self._stopping:
            self._stopping = True
            if executor is not None:
                executor.stop()
                self.emit(
                    "note",
                    message="stopping: running jobs finish their current step (Ctrl-C again to cancel)",
                )
        if seen >= 2 and executor is not None and self._deadline is None:
            if executor.running:
                self._exit_code = 130
            executor.cancel()
            self.emit("note", message="cancelling running jobs")
            self._deadline = time.monotonic() + CANCEL_GRACE
        if seen >= 3:
            self._deadline = time.monotonic()
