"""The `runner` command line.

Commands import what they need when they run, so `runner --help` and a no-op `runner run` stay
fast. Bad input of any kind ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from runner import __version__
from runner.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.plan import Plan, Verdict
    from runner.project import Project
    from runner.state import State


def _relative(e: UserError, root: Path | None) -> UserError:
    """The error naming its file relative to the project, as every other message names files."""
    if root is not None and e.path is not None and Path(e.path).is_relative_to(root):
        e.path = Path(e.path).relative_to(root).as_posix()
    return e


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"runner: {_relative(e, ctx.obj)}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("runner: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="runner")
@click.option(
    "-C",
    "directory",
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False),
    help="Run as if started in DIR.",
)
@click.pass_context
def main(ctx: click.Context, directory: str | None) -> None:
    """make for spec-driven AI development: runs the phase agents whose inputs changed."""
    ctx.obj = Path(directory or ".").resolve()


def _root() -> Path:
    return click.get_current_context().find_root().obj


def _open(create: bool = True) -> tuple[Project, State]:
    from runner.project import Project
    from runner.state import State

    root = _root()
    state = State.open(root, create=create)
    return Project(root, state), state


def _evaluate(
    project: Project,
    state: State,
    specs: tuple[str, ...] = (),
    on_bad_spec: Callable[[UserError], None] | None = None,
) -> tuple[Plan, dict[str, Verdict]]:
    from runner.fingerprint import Fingerprints
    from runner.plan import build_plan
    from runner.specs import select_specs

    chosen = select_specs(project.specs, specs)
    fingerprints = Fingerprints(project.root, state.file_rows())
    plan = build_plan(project, fingerprints, specs=chosen, on_bad_spec=on_bad_spec)
    return plan, plan.evaluate(state.jobs())


# --- run -----------------------------------------------------------------------------------

_jobs_option = click.option(
    "-j",
    "--jobs",
    "parallel",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Jobs to run at once.",
)


@main.command()
@click.argument("specs", nargs=-1)
@click.option(
    "--phase", "phases", multiple=True, metavar="P", help="Only this phase (and what it needs). Repeatable."
)
@click.option(
    "--task", "task", metavar="ID", help="Only the job of this task (with --phase, or the each-task phase)."
)
@click.option("--notes", default="", help="Notes for the agents ({{notes}} in prompts).")
@_jobs_option
@click.option("-n", "--dry-run", is_flag=True, help="Show what would run, and why; run nothing.")
@click.option("--force", is_flag=True, help="Run the selected jobs even if up to date or blocked.")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line.")
def run(
    specs: tuple[str, ...],
    phases: tuple[str, ...],
    task: str | None,
    notes: str,
    parallel: int,
    dry_run: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Bring stale jobs up to date. Exit 0: all done; 1: a job failed or is blocked; 2: bad input."""
    from runner.lock import ProjectLock, command_line

    project, state = _open(create=not dry_run)
    reporter = _reporter(as_json)
    try:
        if dry_run:
            plan, verdicts = _evaluate(project, state, specs)
            ids = plan.select(verdicts, phases=phases, task=task, force=force)
            _note_ticked(reporter, plan, phases, task, force)
            _note_no_specs(reporter, project)
            reporter(
                "plan",
                jobs=[{"job": j, "reasons": list(verdicts[j].reasons) or ["--force"]} for j in ids],
                dry_run=True,
                waiting=_waiting(plan, verdicts, phases, task, exclude=set(ids)),
            )
            from runner.execute import check_credentials

            try:
                check_credentials(plan, ids)
            except UserError as e:
                reporter("note", message=f"a real run would stop here: {e.message}")
            return
        with ProjectLock(project.root, command_line()):
            from runner.errors import terminate_on_signals
            from runner.recovery import recover

            terminate_on_signals()
            for job_id in recover(project, state):
                reporter("note", message=f"{job_id} was interrupted last time; it will run again")
            code = run_once(project, state, reporter, specs, phases, task, notes, parallel, force)
        sys.exit(code)
    finally:
        reporter.close()


def run_once(
    project: Project,
    state: State,
    reporter: Any,
    specs: tuple[str, ...] = (),
    phases: tuple[str, ...] = (),
    task: str | None = None,
    notes: str = "",
    parallel: int = 1,
    force: bool = False,
) -> int:
    """Plan, run what is stale, report; the exit code of `runner run`.

    A review that requests changes makes the reviewed jobs stale; runner then plans again and runs
    the next round at once, until the reviews are settled. Later passes only run what changed
    since (a failure is not retried in a loop).
    """
    results: dict[str, Any] = {}  # each job's latest result
    runs: Counter[str] = Counter()  # every run, rounds included
    first = True
    while True:
        feedback = state.feedback()
        plan, verdicts = _evaluate(project, state, specs)
        if first:
            _note_ticked(reporter, plan, phases, task, force)
            _note_no_specs(reporter, project)
        ids = plan.select(verdicts, phases=phases, task=task, force=force and first, retry=first)
        state.save_file_rows(plan.fingerprints.take_updates())
        if not ids:
            break
        from runner.execute import Executor, check_credentials

        check_credentials(plan, ids)
        executor = Executor(project, state, plan, reporter, parallel=parallel, notes=notes)
        batch = executor.run(ids, verdicts)
        results.update(batch)
        runs.update(r.status for r in batch.values())
        first = False
        if state.feedback() == feedback:
            break
    if results:  # what is left undone, judged after the runs
        plan, verdicts = _evaluate(project, state, specs)
    waiting = _waiting(plan, verdicts, phases, task)
    reporter("summary", counts=dict(runs), waiting=waiting)
    return 1 if waiting or any(r.status != "done" for r in results.values()) else 0


def _waiting(
    plan: Plan,
    verdicts: dict[str, Verdict],
    phases: tuple[str, ...],
    task: str | None,
    exclude: set[str] = frozenset(),
) -> list[dict[str, str]]:
    """The selected jobs that are not done and will not run: blocked, failed, awaiting approval, or
    stale only because their last attempt did not succeed."""
    chosen = set(plan.select(verdicts, phases=phases, task=task, force=True))
    return [
        {"job": j, "state": v.state, "reason": "; ".join(v.reasons)}
        for j, v in verdicts.items()
        if j in chosen
        and j not in exclude
        and (v.state in ("blocked", "failed", "awaiting-approval") or v.retry_only)
    ]


def _note_no_specs(reporter: Any, project: Project) -> None:
    if not project.specs:
        reporter("note", message=_no_specs(project))


def _no_specs(project: Project) -> str:
    from runner.specs import SPEC_MARKERS

    roots, markers = ", ".join(project.workflow.spec_roots), ", ".join(SPEC_MARKERS)
    return f"no specs found under {roots} (a spec folder holds one of {markers})"


def _note_ticked(reporter: Any, plan: Plan, phases: tuple[str, ...], task: str | None, force: bool) -> None:
    """--force never reruns a ticked task group: say so rather than do nothing silently."""
    if not force:
        return
    for job in plan.jobs.values():
        if (
            job.group
            and job.group.done
            and (not phases or job.phase.name in phases)
            and task in (None, job.group.id)
        ):
            reporter(
                "note", message=f"{job.id}: its tasks are ticked, so it is done; untick one to run it again"
            )


def _reporter(as_json: bool) -> Any:
    from runner.display import Console, JsonLines

    return JsonLines() if as_json else Console()


# --- status / explain ------------------------------------------------------------------------


@main.command()
@click.argument("specs", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(specs: tuple[str, ...], as_json: bool) -> None:
    """Every job with its state and why."""
    project, state = _open(create=False)
    # A spec whose own files cannot be read is left out and named last; the others are shown.
    bad: list[UserError] = []
    plan, verdicts = _evaluate(project, state, specs, on_bad_spec=bad.append)
    try:
        _show_status(project, state, plan, verdicts, as_json)
    finally:
        for e in bad:
            click.echo(f"runner: {_relative(e, project.root)} (that spec is left out)", err=True)
    if bad:
        click.get_current_context().exit(bad[0].exit_code)


def _show_status(
    project: Project, state: State, plan: Plan, verdicts: dict[str, Verdict], as_json: bool
) -> None:
    rows = []
    for job_id, v in verdicts.items():
        job = plan.jobs[job_id]
        last = state.last_run(job_id)
        rows.append(
            {
                "job": job_id,
                "spec": job.spec.name,
                "phase": job.phase.name,
                "task": job.task_id,
                "state": v.state,
                "reasons": list(v.reasons),
                "last_run": _last_run_json(last),
            }
        )
    if as_json:
        import json

        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no jobs: " + _no_specs(project))
        return
    from runner.display import usage_text

    width = min(max(len(r["job"]) for r in rows), 40)
    for r in rows:
        last = r["last_run"]
        usage = ""
        if last and last.get("tokens"):
            t = last["tokens"]
            usage = usage_text(last.get("turns") or 0, sum(t.values()), last.get("cost_usd") or 0.0)
        why = "; ".join(r["reasons"])
        click.echo(
            f"{r['job']:<{width}}  {r['state']:<17} {' · '.join(x for x in (why, usage) if x)}".rstrip()
        )


def _last_run_json(run: dict[str, Any] | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "status": run["status"],
        "reason": run["reason"],
        "started": run["started"],
        "finished": run["finished"],
        "model": run["model"],
        "turns": run["turns"],
        "tokens": {
            "input": run["input_tokens"] or 0,
            "output": run["output_tokens"] or 0,
            "cache_read": run["cache_read_tokens"] or 0,
            "cache_write": run["cache_write_tokens"] or 0,
        },
        "cost_usd": run["cost_usd"] or 0.0,
    }


@main.command()
@click.argument("job")
def explain(job: str) -> None:
    """Why a job is stale (or up to date), in words."""
    import time

    from runner.plan import reason_suffix

    project, state = _open(create=False)
    spec_name = job.split(":", 1)[0]
    plan, verdicts = _evaluate(project, state, (spec_name,) if ":" in job else ())
    v = verdicts.get(job)
    if v is None:
        import difflib

        close = difflib.get_close_matches(job, list(verdicts), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (see `runner status`)"
        raise UserError(f"no job '{job}'{hint}")
    if v.state == "up-to-date":
        click.echo(f"{job} is up to date{': ' + '; '.join(v.reasons) if v.reasons else ''}.")
    else:
        click.echo(f"{job} is {v.state}:")
        for reason in v.reasons:
            click.echo(f"  - {reason}")
    last = state.last_run(job)
    if last:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last["finished"] or last["started"]))
        click.echo(f"Last run: {last['status']} at {when}{reason_suffix(last['status'], last['reason'])}")
    upstream, after = plan.jobs[job].upstream, plan.jobs[job].after
    if upstream:
        click.echo("Depends on: " + ", ".join(upstream))
    if after:
        click.echo("Runs after: " + ", ".join(after))


# --- init / clean / log -------------------------------------------------------------------------


@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False))
def init(directory: str | None) -> None:
    """Scaffold a project: workflow, agents, an example spec (if there are no specs), artifacts/, .gitignore lines."""
    from runner.scaffold import scaffold

    target = Path(directory).resolve() if directory else _root()
    for line in scaffold(target):
        click.echo(line)


@main.command()
@click.argument("specs", nargs=-1)
def clean(specs: tuple[str, ...]) -> None:
    """Remove the artifacts and state of the given specs (default: all)."""
    import shutil

    from runner.lock import ProjectLock, command_line
    from runner.specs import select_specs

    project, state = _open()
    with ProjectLock(project.root, command_line()):
        chosen = select_specs(project.specs, specs)
        names = {s.name for s in chosen}
        removed = 0
        for spec in chosen:
            for phase in project.workflow.phases:
                folder = project.artifacts_dir(spec, phase)
                if folder.exists():
                    shutil.rmtree(folder)
                    removed += 1
        forget = [j for j in state.jobs() if j.split(":", 1)[0] in names]
        state.forget(forget)
    click.echo(
        f"removed {removed} artifact folder{'s' if removed != 1 else ''} and {len(forget)} job records"
    )


@main.command()
@click.argument("job")
def log(job: str) -> None:
    """Show a job's transcript (agents) or log (commands)."""
    from runner.artifacts import job_dir
    from runner.transcript import render_transcript

    project, _ = _open(create=False)
    parts = job.split(":")
    if len(parts) < 2:
        raise UserError(f"'{job}' is not a job id (SPEC:PHASE or SPEC:PHASE:TASK)")
    spec = project.spec(parts[0])
    phase = project.workflow.phase(parts[1])

    def task_jobs() -> tuple[list[str], str]:
        """The task phase's group ids, and its task jobs as a list for a message."""
        ids = [g.id for g in project.task_groups(spec)]
        return ids, ", ".join(f"{parts[0]}:{parts[1]}:{i}" for i in ids)

    if phase.each == "task" and len(parts) == 2:
        raise UserError(f"{job} is a phase of task jobs; name one: {task_jobs()[1] or 'none yet'}")
    folder = job_dir(project.artifacts_dir(spec, parts[1]), parts[2] if len(parts) > 2 else None)
    transcript, log_file, output = folder / "transcript.jsonl", folder / "log", folder / "output.log"
    if transcript.exists():
        for line in render_transcript(transcript):
            click.echo(line)
        return
    if log_file.exists():
        click.echo(log_file.read_text(encoding="utf-8", errors="replace"), nl=False)
        if output.exists():  # a CLI agent's own words, next to what runner did around it
            click.echo(f"--- the agent's output ({project.rel(output)}) ---")
            click.echo(output.read_text(encoding="utf-8", errors="replace"), nl=False)
        return
    if phase.each == "task":
        ids, listed = task_jobs()
        if parts[2] not in ids:
            raise UserError(
                f"no task group '{parts[2]}' in {spec.tasks_path} (its task jobs: {listed or 'none'})"
            )
    raise UserError(f"{job} has no transcript or log yet (looked in {project.rel(folder)})")


# --- watch ---------------------------------------------------------------------------------------


@main.command()
@click.argument("specs", nargs=-1)
@click.option(
    "--debounce",
    default=100,
    show_default=True,
    type=click.IntRange(min=0),
    metavar="MS",
    help="Quiet time before re-planning.",
)
@click.option(
    "--on-busy",
    type=click.Choice(["queue", "restart"]),
    default="queue",
    show_default=True,
    help="When inputs of a running job change: re-plan after it ends, or restart it.",
)
@click.option("--poll", is_flag=True, help="Poll instead of using OS events (network and container mounts).")
@_jobs_option
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line.")
def watch(
    specs: tuple[str, ...], debounce: int, on_busy: str, poll: bool, parallel: int, as_json: bool
) -> None:
    """Run what is stale now, then again whenever inputs change, until Ctrl-C."""
    from runner.watch import watch as watch_loop

    sys.exit(
        watch_loop(
            _root(),
            specs=specs,
            debounce=debounce / 1000,
            on_busy=on_busy,
            poll=poll,
            parallel=parallel,
            # Not on a terminal, another program reads this: one JSON event per line.
            reporter=_reporter(as_json or not sys.stdout.isatty()),
        )
    )


# --- approval ----------------------------------------------------------------------------------------


@main.command()
@click.argument("job")
def approve(job: str) -> None:
    """Commit a job that waits for approval, and let its dependants run."""
    from runner.git import Git, GitError, branch_name
    from runner.state import pid_alive

    project, state = _open()
    _, paths, message = _pending(state, job)
    running = [r.id for r in state.left_running() if r.pid is not None and pid_alive(r.pid)]
    if running:
        # A checkout moves the work tree under a running agent: its commits would land elsewhere.
        raise UserError(f"{', '.join(running)} is running; approve {job} once it has finished")
    git = Git(project.root)
    config = project.workflow.git
    try:
        if config is not None:
            # The held changes travel with a checkout: commit them on the job's own branch.
            spec, _, rest = job.partition(":")
            phase, _, task = rest.partition(":")
            git.switch(branch_name(spec, task or None, phase, config.branch))
        sha = git.commit(paths, message) if paths else None
    except GitError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"could not commit {job}: {first}; resolve it in git, then approve again") from None
    state.mark_done(job)
    state.clear_pending_approval(job)
    what = (
        f"committed {sha} ({len(paths)} file{'s' if len(paths) != 1 else ''})" if sha else "nothing to commit"
    )
    click.echo(f"approved {job}: {what}")


@main.command()
@click.argument("job")
@click.option(
    "--notes", required=True, help="What to change: given to the agent as feedback when it runs again."
)
def reject(job: str, notes: str) -> None:
    """Send a job that waits for approval back, with notes; its ticks are undone."""
    from runner.tasks import set_checked

    project, state = _open()
    tasks, _, _ = _pending(state, job)
    spec = project.spec(job.split(":", 1)[0])
    for task_id in reversed(tasks):
        set_checked(project.root / spec.tasks_path, task_id, False)
    state.set_feedback(job, f"A person rejected the previous attempt:\n{notes}", "reject", 0)
    state.set_status(job, "partial", f"rejected: {notes}")
    state.clear_pending_approval(job)
    click.echo(
        f"rejected {job}; it runs again with your notes"
        + (f" (unticked {', '.join(tasks)})" if tasks else "")
    )


def _pending(state: State, job: str) -> tuple[list[str], list[str], str]:
    pending = state.pending_approval(job)
    if pending is None:
        raise UserError(f"{job} is not waiting for approval (see `runner status`)")
    return pending


# --- tasks.md ------------------------------------------------------------------------------------


@main.command()
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a flat list in document order).")
def tasks(path: str, as_json: bool) -> None:
    """List the tasks of one tasks.md (or of a spec folder's tasks.md)."""
    from runner.tasks import load_tasks

    file = _path(path)
    task_list = load_tasks(file)
    if as_json:
        import json

        click.echo(json.dumps(task_list.to_json(), indent=2, ensure_ascii=False))
        return
    if not task_list.tasks:
        click.echo(f"no tasks in {path} (a task is a list item starting with [ ], [x] or [-])", err=True)
    width = max((len(t.id) for t in task_list.tasks), default=2)
    for t in task_list.tasks:
        box = {"done": "x", "in-progress": "-"}.get(t.state, " ")
        depth = 0
        parent = t.parent
        while parent is not None:
            depth += 1
            parent = task_list.get(parent).parent
        optional = " (optional)" if t.optional else ""
        markers = "".join(f" [{m}]" for m in t.markers)
        click.echo(f"{t.line:>5}  [{box}] {'  ' * depth}{t.id:<{width}}{markers}  {t.title}{optional}")


@main.command()
@click.argument("path", type=click.Path())
@click.argument("task_id")
def check(path: str, task_id: str) -> None:
    """Tick one task's box in a tasks.md (or a spec folder's), changing nothing else."""
    _set_checked(path, task_id, True)


@main.command()
@click.argument("path", type=click.Path())
@click.argument("task_id")
def uncheck(path: str, task_id: str) -> None:
    """Untick one task's box in a tasks.md (or a spec folder's), changing nothing else."""
    _set_checked(path, task_id, False)


def _set_checked(path: str, task_id: str, checked: bool) -> None:
    from runner.state import STATE_DIR, State
    from runner.tasks import load_tasks, set_checked

    file = _path(path)
    try:
        changed = set_checked(file, task_id, checked)
    except UserError as e:
        # As the user wrote it (a spec folder stands for its tasks.md).
        e.path = path if file.name == Path(path).name else str(Path(path) / file.name)
        raise
    task_id = load_tasks(file).get(task_id).id  # `2` may have named `2.0`
    root = _root()
    if changed and (root / STATE_DIR).is_dir() and file.resolve().is_relative_to(root):
        # An agent job running now must not take this for its own edit and undo it.
        State.open(root).record_mark(file.resolve().relative_to(root).as_posix(), task_id, checked)
    word = "ticked" if checked else "unticked"
    click.echo(f"{word} {task_id}" if changed else f"{task_id} was already {word}")


def _path(path: str) -> Path:
    p = Path(path)
    p = p if p.is_absolute() else _root() / p
    if p.is_dir():
        if not (p / "tasks.md").is_file():
            raise UserError(f"{path} is a folder without a tasks.md; name a spec folder or a tasks.md file")
        p = p / "tasks.md"
    if not p.is_file():
        raise UserError(f"no such file: {path}")
    return p


if __name__ == "__main__":
    main()


def entry() -> None:
    """The `runner` console script: `main`, then a quick exit once the SDK has been loaded.

    Tearing down the anthropic SDK's thousand pydantic models takes Python about 0.3 s at exit.
    By then every file is written (atomically) and every state transaction committed, so there
    is nothing left to clean up: flush the terminal and leave.
    """
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if isinstance(e.code, str):
            click.echo(e.code, err=True)
    if "anthropic" not in sys.modules:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
