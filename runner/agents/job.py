"""One agent job, end to end: prompt, tools, the loop (or a CLI agent), ticks, artifacts.

The status a job ends with is earned, not claimed: an agent that reports done with tasks still
open gets them ticked only if `verify` passes (else the job is `partial`), and a job that did not
write the outputs it must write is `partial` too.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.agents.context import job_message, task_block
from runner.agents.loop import AgentLoop, Model, Outcome, Report
from runner.agents.record import record_features, record_implementation
from runner.agents.sandbox import Sandbox
from runner.agents.templates import PromptValues, render
from runner.agents.ticks import TaskTicker, Workspace, tasks_holding
from runner.agents.tools import Tools
from runner.artifacts import JOB_FILES
from runner.budget import Limits
from runner.errors import UserError
from runner.execute import JobContext, JobResult
from runner.features import SPEC_FEATURE_FILES, FeatureList
from runner.fsutil import append_line, atomic_write
from runner.git import Git, GitError, JobCommits, branch_name
from runner.globs import expand, has_magic
from runner.implementation import Entry
from runner.secrets import redact, redact_data, scrubbed_env, secret_values
from runner.state import Usage
from runner.tasks import TaskList, load_tasks
from runner.text import decode_utf8
from runner.transcript import Transcript

if TYPE_CHECKING:
    from runner.plan import Job

VERIFY_TIMEOUT = 1800.0  # seconds, unless the phase sets `timeout`
# Written by runner from the job's report when the agent does not write them itself.
RUNNER_OUTPUTS = ("implementation.md", "features.json")
# Not work to list under "Files changed": what running the code leaves behind (ticks are listed apart).
_BYTECODE = re.compile(r"(^|/)__pycache__/|\.py[co]$")


class JobLog:
    """The job's `log`: what runner did around the agent (verify output, ticks, skipped tools).

    It keeps the earlier runs' lines, each run under a line of its own: what a run undid (a task's
    replaced wording) must outlive the next run, which under `watch --on-busy restart` starts at once.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.secrets = secret_values()
        append_line(path, f"== run started {time.strftime('%Y-%m-%d %H:%M:%S')} ==")

    def __call__(self, line: str) -> None:
        append_line(self.path, redact(f"{time.strftime('%H:%M:%S')} {line}", self.secrets))


def run_agent_job(ctx: JobContext) -> JobResult:
    job, project, phase, spec = ctx.job, ctx.project, ctx.job.phase, ctx.job.spec
    agent = job.agent
    assert agent is not None
    log = JobLog(ctx.log_path)
    tasks_path = project.root / spec.tasks_path
    wanted = {job.group.id} if job.group is not None else set()
    tasks = tasks_holding(tasks_path, wanted) if tasks_path.exists() else None
    task_ids: list[str] = []
    block = None
    if job.group is not None:
        group = next((g for g in tasks.groups() if g.id == job.group.id), None) if tasks else None
        if group is None:
            return JobResult("failed", f"task {job.group.id} is no longer in {spec.tasks_path}")
        task_ids = [t.id for t in group.tasks]
        block = task_block(tasks, group.id, spec.tasks_path)  # type: ignore[arg-type]
    elif tasks is not None:
        task_ids = [t.id for t in tasks.tasks]

    rendered = render(
        agent.body,
        PromptValues(
            spec=spec.path,
            name=spec.name,
            phase=phase.name,
            task=block,
            task_id=job.task_id,
            notes=ctx.notes,
            feedback=ctx.feedback,
        ),
        agent.argument_hint,
    )
    if rendered.unknown:
        log(f"placeholders left as they are in {project.rel(agent.path)}: {', '.join(rendered.unknown)}")
    runner_outputs = [o for o in job.outputs if _runner_records(ctx, o)]
    verify = [ctx.fill(v) for v in phase.verify]
    owner = _task_phase(ctx)
    message = job_message(
        job_id=job.id,
        phase=phase.name,
        spec_name=spec.name,
        spec_path=spec.path,
        root=project.root,
        assignment=block,
        task_ids=task_ids if job.group else [],
        upstream_files=ctx.upstream_files,
        agent_outputs=[o for o in job.outputs if o not in runner_outputs],
        runner_outputs=runner_outputs,
        verify=verify,
        feedback=ctx.feedback if not rendered.feedback_placed else "",
        notes=ctx.notes,
        task_in_prompt=rendered.task_placed,
        cli=phase.provider == "command",
    )
    agent_env = scrubbed_env()
    ticker = TaskTicker(
        root=project.root,
        tasks_path=tasks_path if tasks is not None else None,
        guarded={project.root / s.tasks_path for s in project.specs},
        allowed=set(task_ids) if job.group else (set() if owner else None),
        owner=owner,
        person_marks=lambda: ctx.state.marks_since(spec.tasks_path, ctx.started),
        verify=verify,
        env=agent_env,
        log=log,
        emit=ctx.emit,
        cancelled=ctx.cancelled,
        verify_timeout=phase.timeout or VERIFY_TIMEOUT,
    )
    commits = _git(ctx, tasks, log)
    if commits is not None:
        ticker.on_tick = commits.on_tick
    tree = _WorkTree(project.root)
    if phase.provider == "command":
        from runner.agents.providers.command import run_cli_agent

        outcome = run_cli_agent(ctx, f"{rendered.text}\n\n---\n\n{message}", ticker, log)
        written: set[str] = set()  # the files runner saw this job write (a CLI agent's: none)
    else:
        own = [o for o in _own_outputs(job) if not has_magic(o)]
        tools = Tools(Sandbox(project.root), names=agent.tools, guard=ticker, env=agent_env, outputs=own)
        if tools.unknown:
            log(f"tools this runner does not have, skipped: {', '.join(tools.unknown)}")
        workspace = Workspace(tools)
        transcript = Transcript(ctx.dir / "transcript.jsonl")
        transcript.write("job", job=job.id, agent=agent.name, provider=phase.provider, model=job.model)
        loop = AgentLoop(
            _model(ctx, agent.fields),
            workspace,
            ticker,
            transcript,
            limits=_limits(phase.budget, agent.max_turns),
            spend=ctx.spend,
            emit=lambda kind, **fields: ctx.emit(kind, **redact_data(fields, log.secrets)),
            stopping=ctx.stopping,
            cancelled=ctx.cancelled,
        )
        outcome = loop.run(rendered.text, message)
        written = set(tools.changed_files)
    # Files written by shell commands or a CLI agent, as git sees them (committed ones included).
    changed = written | tree.changed() | (commits.committed if commits is not None else set())
    outcome = _redacted(outcome, log.secrets)

    def wrote(output: str) -> bool:
        return _written(ctx, output, changed)

    status, reason = _settle(ctx, outcome, ticker, log, wrote, runner_outputs)
    review: dict[str, Any] = {}
    if phase.reviews and status == "done":
        from runner.review import settle_review

        status, reason, review = settle_review(ctx, outcome.final_text, wrote)
    if commits is not None and status == "done":
        held = commits.finish("Addresses review feedback." if ctx.feedback else "")
        if held is not None:
            ctx.state.set_pending_approval(job.id, *held)
            status = "awaiting-approval"
            reason = (
                f"look at the changes, then `runner approve {job.id}` or `runner reject {job.id} --notes ...`"
            )
    details = _record(ctx, outcome, status, reason, task_ids, changed, written, ticker, log)
    if phase.provider != "command":
        transcript.write("result", status=status, reason=reason, ticked=ticker.ticked)
    return JobResult(
        status,
        reason,
        usage=Usage(
            model=job.model,
            turns=outcome.turns,
            input_tokens=outcome.usage.input_tokens,
            output_tokens=outcome.usage.output_tokens,
            cache_read_tokens=outcome.usage.cache_read_tokens,
            cache_write_tokens=outcome.usage.cache_write_tokens,
            cost_usd=outcome.cost_usd,
        ),
        ticked=list(ticker.ticked),
        details={**details, **review},
    )


def _task_phase(ctx: JobContext) -> str | None:
    """The phase whose jobs own this spec's tasks (`each: task`): a spec-wide job may not tick them,
    since only those jobs' `verify` stands behind a tick."""
    spec = ctx.job.spec
    return next(
        (
            p.name
            for p in ctx.project.workflow.phases.values()
            if p.each == "task" and set(spec.roots) & set(p.spec_roots)
        ),
        None,
    )


class _WorkTree:
    """What changed in a git work tree since the job started (nothing known outside git)."""

    def __init__(self, root: Path) -> None:
        self.git = Git(root) if Git.is_repo(root) else None
        self.before = self._snapshot()

    def _snapshot(self) -> dict[str, str]:
        try:
            return self.git.snapshot() if self.git else {}
        except GitError:
            return {}

    def changed(self) -> set[str]:
        if self.git is None:
            return set()
        try:
            return set(self.git.changed_since(self.before))
        except GitError:
            return set()


def _git(ctx: JobContext, tasks: TaskList | None, log: JobLog) -> JobCommits | None:
    """With `git:` in the workflow: switch to the job's branch and commit as tasks are ticked."""
    config = ctx.project.workflow.git
    if config is None:
        return None
    if not Git.is_repo(ctx.project.root):
        log("git: the project is not a git repository; no branch, no commits")
        return None
    git = Git(ctx.project.root)
    job = ctx.job
    branch = branch_name(job.spec.name, job.task_id, job.phase.name, config.branch)
    try:
        if git.switch(branch):
            log(f"git: created branch {branch}")
    except GitError as e:
        log(f"git: could not switch to {branch}: {e}")
        return None
    titles = {t.id: t.title for t in tasks.tasks} if tasks else {}
    approve = config.approve or job.phase.approve
    return (
        JobCommits(git, job.spec.name, job.task_id, titles, approve=approve, log=log)
        if config.commit
        else None
    )


def _record_output(
    ctx: JobContext,
    out: str,
    status: str,
    reason: str | None,
    report: Report,
    changed: set[str],
    written: set[str],
    ticker: TaskTicker,
    task_ids: list[str],
    notes: list[str],
    log: JobLog,
    details: dict[str, Any],
) -> None:
    job, project = ctx.job, ctx.project
    path = project.root / out
    name = out.rsplit("/", 1)[-1]
    agent_wrote = out in changed
    if name == "implementation.md":
        # tasks.md files are runner's to change (ticks), for this job or another.
        task_lists = {s.tasks_path for s in project.specs}
        work = {f for f in changed if f not in task_lists and not _BYTECODE.search(f)}
        # With other jobs running, what git saw change may be theirs: only runner's own record of
        # this job's writes, and the files the agent says it changed, are its for sure.
        own = written | {project.rel(os.path.normpath(project.root / c)) for c in report.changes}
        alongside = sorted(work - own) if ctx.alongside else []
        files = sorted(work & own if ctx.alongside else work)
        entry = Entry(
            job_id=job.id,
            task_id=job.task_id,
            title=job.group.title if job.group else job.phase.name,
            status=status,
            files=files or ([] if alongside else report.changes),
            files_alongside=alongside,
            summary="\n\n".join([report.summary, *notes]).strip(),
            deviations=report.deviations,
            limitations=report.limitations,
            reason=reason,
        )
        missing = record_implementation(
            path, entry, title=job.spec.name, agent_wrote=agent_wrote and out in _own_outputs(job)
        )
        if missing:
            log(f"{out} (written by the agent) lacks the sections: {', '.join(missing)}")
            details["implementation_missing_sections"] = missing
    elif name == "features.json" and not agent_wrote:
        checked = (
            {t.id for t in load_tasks(ticker.tasks_path).tasks if t.checked} if ticker.tasks_path else set()
        )
        origin = record_features(
            path,
            sources=_feature_sources(ctx),
            task_ids=set(task_ids) if job.group else set(),
            checked=checked,
            status=status,
            reason=reason,
        )
        if origin is None:
            log(f"no feature list to start {out} from (no upstream features.json, no spec features.json)")
        elif job.phase.update_spec_features:
            atomic_write(project.root / job.spec.path / "features.json", path.read_bytes())


def _runner_records(ctx: JobContext, output: str) -> bool:
    """Whether runner writes this output when the agent does not: implementation.md always, a
    features.json when there is a feature list to start it from (an earlier phase's, the spec's,
    or the phase's own copy that another task job wrote)."""
    name = output.rsplit("/", 1)[-1]
    if name == "features.json":
        return any(p.is_file() for p in (*_feature_sources(ctx), ctx.project.root / output))
    return name in RUNNER_OUTPUTS


def _feature_sources(ctx: JobContext) -> list[Path]:
    """The feature lists a phase's features.json starts from, best first."""
    spec_dir = ctx.project.root / ctx.job.spec.path
    return [*ctx.upstream_features, *(spec_dir / name for name in SPEC_FEATURE_FILES)]


def _own_outputs(job: Job) -> list[str]:
    """The outputs no other job writes: all of a spec-wide job's, a task job's `{task}` ones.

    The rest (a phase's implementation.md, its features.json) hold every task job's entry: an
    agent must Read them before overwriting, and runner adds its job's entry even to a file the
    agent wrote, so that no task's record goes missing."""
    if job.group is None:
        return list(job.outputs)
    return [o for o, pattern in zip(job.outputs, job.phase.outputs, strict=True) if "{task}" in pattern]


def _redacted(outcome: Outcome, secrets: list[str]) -> Outcome:
    """The agent's own words go into artifacts; secrets it may have seen must not."""
    report = Report(**redact_data(asdict(outcome.report), secrets))
    reason = redact(outcome.reason, secrets) if outcome.reason else None
    return replace(outcome, report=report, reason=reason, final_text=redact(outcome.final_text, secrets))


def _model(ctx: JobContext, fields: dict[str, Any]) -> Model:
    phase = ctx.job.phase
    if phase.provider == "replay":
        from runner.agents.providers.replay import ReplayModel

        if not phase.replay:
            from runner.workflow import phase_error

            raise phase_error(
                phase, "provider", f"phase '{phase.name}' uses provider replay but names no `replay:` script"
            )
        return ReplayModel(ctx.project.root / ctx.fill(phase.replay))
    from runner.agents.providers.anthropic import DEFAULT_MAX_TOKENS, AnthropicModel

    assert ctx.job.model is not None
    max_tokens = fields.get("max_tokens")
    return AnthropicModel(
        ctx.job.model, max_tokens=max_tokens if isinstance(max_tokens, int) else DEFAULT_MAX_TOKENS
    )


def _limits(budget: Limits, agent_max_turns: int | None) -> Limits:
    return Limits(
        max_turns=agent_max_turns or budget.max_turns,
        max_cost_usd=budget.max_cost_usd,
        max_seconds=budget.max_seconds,
    )


def _written(ctx: JobContext, output: str, changed: set[str]) -> bool:
    """Whether this job wrote an output: with the file tools, or (a shell command, a CLI agent)
    since it started. A copy left from an earlier run does not count."""
    root = ctx.project.root
    names = expand(root, output) if has_magic(output) else [output]
    for name in names:
        if name in changed:
            return True
        with contextlib.suppress(OSError):
            if (root / name).stat().st_mtime >= ctx.started:
                return True
    return False


def _settle(
    ctx: JobContext,
    outcome: Outcome,
    ticker: TaskTicker,
    log: JobLog,
    wrote: Callable[[str], bool],
    runner_outputs: list[str],
) -> tuple[str, str | None]:
    """The job's real status: a reported `done` must be backed by ticked tasks and written outputs."""
    status, reason = outcome.status, outcome.reason
    if status != "done":
        return status, reason
    missing = [
        o
        for o in ctx.job.outputs
        if o not in runner_outputs and o.rsplit("/", 1)[-1] not in JOB_FILES and not wrote(o)
    ]
    if missing:
        return "partial", f"reported done but did not write {', '.join(missing)}"
    for output in ctx.job.outputs:
        # The next phases start from a feature list the agent wrote: a broken one must not pass.
        if output.rsplit("/", 1)[-1] == "features.json" and wrote(output):
            try:  # named as the project names it, as the plan-time check does (project._valid)
                FeatureList.parse(decode_utf8((ctx.project.root / output).read_bytes(), output), output)
            except UserError as e:
                log(f"reported done, but the feature list it wrote is broken: {e}")
                return "partial", f"reported done, but {e}"
    # Only a task job's report covers its tasks; a spec-wide job ticks what it completes explicitly.
    still_open = ticker.open_tasks() if ctx.job.group else []
    if still_open:
        if not ticker.verify()[0]:
            log(f"reported done, but verify failed (output above); not ticked: {', '.join(still_open)}")
            return "partial", f"verify failed; left unticked: {', '.join(still_open)}"
        ticker.complete_rest()
        if ticker.disputed and (left := ticker.open_tasks()):
            changed = ", ".join(sorted(ticker.disputed))
            return "partial", (
                f"left unticked: {', '.join(left)}: a report of done does not cover {changed}, which "
                "the agent tried to remove or reword (runner kept it as it was); CompleteTask or `runner check` ticks it"
            )
    return "done", None


def _record(
    ctx: JobContext,
    outcome: Outcome,
    status: str,
    reason: str | None,
    task_ids: list[str],
    changed: set[str],
    written: set[str],
    ticker: TaskTicker,
    log: JobLog,
) -> dict[str, Any]:
    job, project = ctx.job, ctx.project
    report: Report = outcome.report
    # Screenshots and other evidence agents save under {spec}/verification/ (Agent OS's convention).
    verification = sorted(
        project.rel(p) for p in (project.root / job.spec.path / "verification").rglob("*") if p.is_file()
    )
    details: dict[str, Any] = {
        "agent": job.phase.agent,
        "provider": job.phase.provider,
        "summary": report.summary,
        "concerns": report.concerns,
        "verified": bool(job.phase.verify),  # ticks stood behind verify commands, not just the agent's word
        "verification": verification,
    }
    details["evidence"] = redact_data(ticker.evidence, log.secrets)
    evidence = "; ".join(f"{task}: {text}" for task, text in details["evidence"].items())
    notes = [f"Verification files: {', '.join(f'`{v}`' for v in verification)}"] if verification else []
    notes += [f"Evidence: {evidence}"] if evidence else []
    for out in job.outputs:
        try:
            _record_output(
                ctx, out, status, reason, report, changed, written, ticker, task_ids, notes, log, details
            )
        except UserError as e:  # e.g. a feature list a person left invalid: the job's work stands
            log(f"could not update {out}: {e}")
            ctx.emit("note", message=f"could not update {out}: {e}")
            details.setdefault("artifact_errors", []).append(str(e))
    return details
