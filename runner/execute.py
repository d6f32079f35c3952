"""Execution: run jobs in dependency order, up to N at a time.

Each job runs in a daemon thread; the scheduler (the caller's thread) starts a job once all its
upstream and order-only predecessors in this run are done, and skips the dependants of a job that
did not finish `done`, while unrelated jobs go on. A job's signature is taken when it starts,
from what it is about to read, so an edit made while it runs leaves it stale.

Stopping: `stop()` starts no new jobs and lets running ones finish their current step;
`cancel()` kills them. A job's record says `running` until it ends, so a runner killed outright
leaves jobs that the next run sees as interrupted (see `recover`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.artifacts import job_dir, write_json
from runner.budget import Limits, RunSpend
from runner.changes import files_may_change
from runner.errors import Terminated, UserError
from runner.plan import Job, Plan, Verdict, dependency_order, output_exists, signature
from runner.project import Project
from runner.recovery import remove_outputs_written_since
from runner.secrets import redact_data, secret_values
from runner.shell import run_command
from runner.state import State, Usage

Emit = Callable[..., None]

# After a cancel, how long running jobs get to stop before they are left behind.
CANCEL_GRACE = 5.0
_WAIT = object()  # a job's predecessors have not finished yet


@dataclass
class JobResult:
    status: str  # done | partial | blocked | failed | cancelled | awaiting-approval
    reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    ticked: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # extra run.json fields


@dataclass
class JobContext:
    project: Project
    state: State
    job: Job
    signature: str
    run_id: int
    phase_dir: Path
    dir: Path  # this job's own folder (run.json, log, transcript)
    stopping: threading.Event  # finish the current step, then stop
    cancelled: threading.Event  # stop now
    emit: Emit
    spend: RunSpend
    upstream_files: list[str] = field(default_factory=list)  # existing outputs of upstream jobs
    notes: str = ""
    feedback: str = ""
    started: float = field(default_factory=time.time)
    # The jobs that ran at some moment while this one did (with -j): files seen changing in the work
    # tree then may be theirs.
    alongside: set[str] = field(default_factory=set)

    @property
    def log_path(self) -> Path:
        return self.dir / "log"

    def env(self) -> dict[str, str]:
        """The environment of the user's own commands (`run:`, `verify:`): theirs, plus where they are."""
        return {
            **os.environ,
            "RUNNER_SPEC": self.job.spec.path,
            "RUNNER_SPEC_NAME": self.job.spec.name,
            "RUNNER_PHASE": self.job.phase.name,
            "RUNNER_JOB": self.job.id,
            "RUNNER_ARTIFACTS": str(self.phase_dir),
            **({"RUNNER_TASK": self.job.task_id} if self.job.task_id else {}),
        }

    @property
    def upstream_features(self) -> list[Path]:
        """Feature lists of earlier phases this job builds on (nearest first)."""
        return [self.project.root / f for f in self.upstream_files if f.endswith("features.json")]

    def fill(self, command: str) -> str:
        return self.job.spec.fill(command, self.job.task_id)


def _record_test_reports(ctx: JobContext) -> None:
    """A JUnit report among a command's outputs becomes summary.md and the phase's feature list."""
    reports = [ctx.project.root / o for o in ctx.job.outputs if o.endswith(".xml")]
    if not any(r.is_file() for r in reports):
        return
    from runner.testresults import record_test_results

    for report in reports:
        if report.is_file():
            record_test_results(report, ctx.phase_dir, ctx.upstream_features, ctx.project.rel(report))


def run_shell_job(ctx: JobContext) -> JobResult:
    phase = ctx.job.phase
    assert phase.run is not None
    command = ctx.fill(phase.run)
    ctx.dir.mkdir(parents=True, exist_ok=True)
    with open(ctx.log_path, "wb") as log:
        log.write(f"$ {command}\n".encode())
        log.flush()
        with files_may_change():
            result = run_command(
                command,
                cwd=ctx.project.root,
                env=ctx.env(),
                output=log,
                timeout=phase.timeout,
                cancelled=ctx.cancelled,
            )
    where = ctx.project.rel(ctx.log_path)
    if not result.cancelled:
        _record_test_reports(ctx)
    if result.cancelled:
        removed = remove_outputs_written_since(ctx.project.root, ctx.job.outputs, ctx.started)
        return JobResult(
            "cancelled",
            "cancelled" + (f"; removed what it had half written: {', '.join(removed)}" if removed else ""),
        )
    if not result.ok:
        return JobResult("failed", f"{result.describe(phase.timeout)} (see {where})")
    missing = [o for o in ctx.job.outputs if not output_exists(ctx.project.root, o)]
    if missing:
        return JobResult("failed", f"the command succeeded but did not create {missing[0]}")
    return JobResult("done")


def check_credentials(plan: Plan, ids: list[str]) -> None:
    """Before any job starts: jobs that need the Anthropic API need a key (a one-line error, exit 2)."""
    needs_key = [j for j in ids if plan.jobs[j].phase.agent and plan.jobs[j].phase.provider == "anthropic"]
    if needs_key and not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
        raise UserError(
            f"{needs_key[0]} runs an agent on the Anthropic API: set ANTHROPIC_API_KEY "
            "(or use `provider: command` in the workflow to run a CLI agent)"
        )


JobFunction = Callable[[JobContext], JobResult]


def job_function(job: Job) -> JobFunction:
    if job.phase.run is not None:
        return run_shell_job
    from runner.agents.job import run_agent_job

    return run_agent_job


class Executor:
    def __init__(
        self,
        project: Project,
        state: State,
        plan: Plan,
        emit: Emit,
        *,
        parallel: int = 1,
        notes: str = "",
    ) -> None:
        self.project = project
        self.state = state
        self.plan = plan
        self.emit = emit
        # Jobs on git branches share one working tree, so they take turns.
        self.parallel = 1 if project.workflow.git else max(1, parallel)
        self.notes = notes
        self.feedback = state.feedback(pending=True)
        self.stopping = threading.Event()
        self.cancelled = threading.Event()
        self.results: dict[str, JobResult] = {}
        rb = project.workflow.run_budget
        self.spend = RunSpend(Limits(max_cost_usd=rb.max_cost_usd, max_seconds=rb.max_seconds))
        self._cancelled_at: float | None = None
        self._contexts: dict[str, JobContext] = {}
        self._cancel_job: dict[str, threading.Event] = {}

    def stop(self) -> None:
        self.stopping.set()

    def cancel(self) -> None:
        self.stopping.set()
        self.cancelled.set()
        for event in list(self._cancel_job.values()):
            event.set()
        if self._cancelled_at is None:
            self._cancelled_at = time.monotonic()

    def cancel_job(self, job_id: str) -> bool:
        """Cancel one running job (watch --on-busy restart). False if it is not running."""
        event = self._cancel_job.get(job_id)
        if event is None:
            return False
        event.set()
        return True

    @property
    def running(self) -> list[str]:
        return list(self._cancel_job)

    def run(self, ids: list[str], verdicts: dict[str, Verdict] | None = None) -> dict[str, JobResult]:
        """Run the given jobs (a subset of the plan), respecting dependencies among them."""
        jobs = self.plan.jobs
        wanted = set(ids)
        order = [j for j in dependency_order(jobs) if j in wanted]
        pending = list(order)
        selected = set(order)
        finished: queue.Queue[tuple[str, JobResult]] = queue.Queue()
        running: set[str] = set()
        started = 0
        total = len(order)
        self.emit(
            "plan",
            jobs=[
                {"job": j, "reasons": list(verdicts[j].reasons) if verdicts and j in verdicts else []}
                for j in order
            ],
        )
        interrupts = 0
        while pending or running:
            if not self.stopping.is_set():
                for job_id in list(pending):
                    if len(running) >= self.parallel:
                        break
                    blocker = self._blocker(jobs[job_id], selected)
                    if blocker is _WAIT:
                        continue
                    pending.remove(job_id)
                    if blocker is not None:
                        self._skip(job_id, blocker)
                        continue
                    running.add(job_id)
                    started += 1
                    self._start(job_id, finished, position=started, total=total)
            elif pending:
                for job_id in pending:
                    self.results[job_id] = JobResult("skipped", "runner was stopped")
                    self.emit("finish", job=job_id, status="skipped", reason="runner was stopped")
                pending.clear()
            if not running:
                # Nothing runs and nothing can start: what is left waits on itself. Never spin.
                for job_id in pending:
                    self._skip(job_id, "waits for a job that cannot start (a cycle)")
                pending.clear()
                continue
            try:
                job_id, result = finished.get(timeout=0.5)
            except queue.Empty:
                if self._cancelled_at is not None and time.monotonic() - self._cancelled_at > CANCEL_GRACE:
                    self._abandon(running)
                continue
            except KeyboardInterrupt as e:
                # SIGTERM and SIGHUP (someone closing the terminal) count as a second Ctrl-C at once.
                interrupts += 2 if isinstance(e, Terminated) and interrupts == 0 else 1
                if interrupts > 2:
                    self._abandon(running)
                elif interrupts == 1:
                    self.stop()
                    self.emit(
                        "note",
                        message="stopping: running jobs finish their current step (Ctrl-C again to cancel)",
                    )
                else:
                    self.cancel()
                    self.emit("note", message="cancelling running jobs")
                continue
            running.discard(job_id)
            self.results[job_id] = result
        if interrupts:
            raise KeyboardInterrupt
        return self.results

    def _abandon(self, running: set[str]) -> None:
        """Jobs that ignore a cancel (a model request in flight) are recorded as cancelled and left
        behind: their threads are daemons, so runner can exit within seconds."""
        for job_id in sorted(running):
            ctx = self._contexts[job_id]
            result = JobResult("cancelled", "cancelled while waiting for the model")
            self.state.finish_job(job_id, ctx.run_id, result.status, result.reason)
            self.results[job_id] = result
            self.emit("finish", job=job_id, status=result.status, reason=result.reason)
        running.clear()

    def _blocker(self, job: Job, selected: set[str]) -> object:
        """None if the job can start; _WAIT if it must wait; else the reason it can never run."""
        for dep in (*job.upstream, *job.after):
            if dep not in selected:
                continue
            result = self.results.get(dep)
            if result is None:
                return _WAIT
            if result.status != "done":
                return f"{dep} {result.status if result.status != 'skipped' else 'did not run'}"
        return None

    def _skip(self, job_id: str, blocker: object) -> None:
        result = JobResult("skipped", f"upstream {blocker}")
        self.results[job_id] = result
        self.emit("finish", job=job_id, status="skipped", reason=result.reason)

    def _start(self, job_id: str, finished: queue.Queue, *, position: int, total: int) -> None:
        job = self.plan.jobs[job_id]
        # Only the upstream records matter (their latest runs); not every job's.
        records = {up: rec for up in job.upstream if (rec := self.state.job(up)) is not None}
        comps = self.plan.fresh_components(job, records)
        self.state.save_file_rows(self.plan.fingerprints.take_updates())
        sig = signature(comps)
        run_id = self.state.start_job(job_id, sig, comps)
        phase_dir = self.project.artifacts_dir(job.spec, job.phase.name)
        cancel = threading.Event()
        self._cancel_job[job_id] = cancel
        ctx = JobContext(
            project=self.project,
            state=self.state,
            job=job,
            signature=sig,
            run_id=run_id,
            phase_dir=phase_dir,
            dir=job_dir(phase_dir, job.task_id),
            stopping=self.stopping,
            cancelled=cancel,
            emit=lambda kind, **f: self.emit(kind, job=job_id, **f),
            spend=self.spend,
            upstream_files=self._upstream_files(job),
            notes=self.notes,
            feedback=self.feedback.get(job_id, ""),
        )
        for other in list(self._cancel_job):
            if other != job_id and other in self._contexts:
                ctx.alongside.add(other)
                self._contexts[other].alongside.add(job_id)
        self._contexts[job_id] = ctx
        self.emit("start", job=job_id, position=position, total=total, model=job.model, agent=job.phase.agent)

        def work() -> None:
            try:
                result = job_function(job)(ctx)
            except UserError as e:  # bad input met only now (a replay script, a feature list): say it plainly
                result = JobResult("failed", str(e))
            except Exception as e:  # a bug or an unexpected fault must not take the other jobs down
                import traceback

                ctx.dir.mkdir(parents=True, exist_ok=True)
                with open(ctx.dir / "error.txt", "w", encoding="utf-8") as f:
                    traceback.print_exc(file=f)
                result = JobResult("failed", f"internal error: {type(e).__name__}: {e}")
            try:
                self._record(ctx, result)
            except Exception as e:  # a full disk, a locked database: the run must still end
                result = JobResult("failed", f"could not record the result: {type(e).__name__}: {e}")
                self.emit("error", message=f"{job_id}: {result.reason}")
                with contextlib.suppress(Exception):  # so that the next run does not trust it
                    self.state.finish_job(job_id, run_id, result.status, result.reason)
            finally:
                self._cancel_job.pop(job_id, None)
                finished.put((job_id, result))

        threading.Thread(target=work, name=job_id, daemon=True).start()

    def _upstream_files(self, job: Job) -> list[str]:
        """Files of earlier phases this job builds on: upstream outputs and its inputs under artifacts/."""
        files: list[str] = []
        for up in job.upstream:
            upstream = self.plan.jobs.get(up)
            for out in upstream.outputs if upstream else ():
                if out not in files and (self.project.root / out).is_file():
                    files.append(out)
        for rel in self.plan.input_files(job):
            if rel.startswith("artifacts/") and rel not in files and (self.project.root / rel).is_file():
                files.append(rel)
        return files

    def _record(self, ctx: JobContext, result: JobResult) -> None:
        self.state.finish_job(
            ctx.job.id, ctx.run_id, result.status, result.reason, result.usage, result.ticked
        )
        if ctx.feedback and result.status in ("done", "awaiting-approval"):
            self.state.feedback_addressed(ctx.job.id)  # later runs of the job need not hear it again
        u = result.usage
        ended = time.time()
        # Reasons and details quote agents and commands: redacted like everything else on disk.
        write_json(
            ctx.dir / "run.json",
            redact_data(
                {
                    "job": ctx.job.id,
                    "signature": ctx.signature,
                    "status": result.status,
                    "reason": result.reason,
                    "started": _iso(ctx.started),
                    "ended": _iso(ended),
                    "seconds": round(ended - ctx.started, 3),
                    "model": u.model or ctx.job.model,
                    "turns": u.turns,
                    "tokens": {
                        "input": u.input_tokens,
                        "output": u.output_tokens,
                        "cache_read": u.cache_read_tokens,
                        "cache_write": u.cache_write_tokens,
                    },
                    "cost_usd": round(u.cost_usd, 6),
                    "ticked": result.ticked,
                    **result.details,
                },
                secret_values(),
            ),
        )
        self.emit(
            "finish",
            job=ctx.job.id,
            status=result.status,
            reason=result.reason,
            seconds=round(ended - ctx.started, 3),
            turns=u.turns,
            tokens=u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_write_tokens,
            cost_usd=round(u.cost_usd, 6),
            ticked=result.ticked,
        )


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts))
