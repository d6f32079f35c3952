"""Planning: which jobs exist, what each depends on, and whether it must run (and why).

A job is one phase for one spec, or for one task group with `each: task`. Its signature is a
digest of named components, each of which can be compared on its own, so every "must run" comes
with its reasons:

    input:<path>     content digest of an input file ("-" when missing)
    task             the task group's own text (checkboxes cleared), for `each: task` jobs
    prompt           the agent definition file
    config           the phase's settings in the workflow
    model            the resolved model id
    upstream:<job>   the run that last brought that upstream job up to date
    feedback         review points or rejection notes the job must address (see review.py)

A task job does not depend on the rest of tasks.md, so ticking one task never invalidates another.
Task groups run in document order (or as their stated dependencies allow); that order is an
order-only constraint: it sequences jobs without entering their signatures.

Jobs whose inputs match another job's outputs depend on it implicitly, as in make.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner.errors import UserError
from runner.fingerprint import MISSING, Fingerprints, digest_of
from runner.globs import compile_glob, expand, has_magic, literal_prefix
from runner.graph import find_cycle, topological_order
from runner.state import JobRecord, pid_alive

if TYPE_CHECKING:
    from runner.agents.definitions import AgentDefinition
    from runner.project import Project
    from runner.specs import Spec
    from runner.workflow import Phase


@dataclass(frozen=True)
class GroupInfo:
    """What planning needs to know of a task group (a cached summary of tasks.md)."""

    id: str
    title: str
    line: int
    digest: str
    depends_on: tuple[str, ...]
    parallel: bool  # Spec Kit [P]
    section: str | None
    done: bool  # every required task of the group is ticked


@dataclass
class Job:
    id: str
    spec: Spec
    phase: Phase
    group: GroupInfo | None = None
    inputs: tuple[str, ...] = ()  # patterns, with {spec}/{name} filled
    outputs: tuple[str, ...] = ()
    upstream: list[str] = field(default_factory=list)  # in the signature
    after: list[str] = field(default_factory=list)  # order only
    agent: AgentDefinition | None = None
    model: str | None = None

    @property
    def task_id(self) -> str | None:
        return self.group.id if self.group else None


@dataclass(frozen=True)
class Verdict:
    state: str  # up-to-date | stale | blocked | failed | running | awaiting-approval
    reasons: tuple[str, ...]
    signature: str
    components: dict[str, str]
    # Stale only because its last attempt, with this very signature, did not succeed: `runner run`
    # retries it (as make does), `runner watch` waits for a change instead of looping on a failure.
    retry_only: bool = False

    @property
    def must_run(self) -> bool:
        return self.state in ("stale", "failed")


class Plan:
    def __init__(self, project: Project, jobs: dict[str, Job], fingerprints: Fingerprints) -> None:
        self.project = project
        self.jobs = jobs  # dependency order
        self.fingerprints = fingerprints
        self.feedback = project.state.feedback()
        self._root = os.fspath(project.root)  # joined thousands of times: a str, not a Path
        self._globbed: dict[str, list[str]] = {}  # many jobs share a pattern (CLAUDE.md, standards/**)

    # --- signatures ---------------------------------------------------------------------------

    def components(self, job: Job, records: dict[str, JobRecord]) -> dict[str, str]:
        fp = self.fingerprints
        comps: dict[str, str] = {}
        skip = job.spec.tasks_path if job.group else None
        for rel in self.input_files(job):
            if rel != skip:
                comps["input:" + rel] = fp.digest(rel)
        if job.group:
            comps["task"] = job.group.digest
        if job.agent:
            comps["prompt"] = self.project.prompt_digest(job.agent)
            comps["model"] = job.model or ""
        comps["config"] = job.phase.config_digest
        if job.id in self.feedback:
            comps["feedback"] = digest_of(self.feedback[job.id].encode())
        for up in job.upstream:
            rec = records.get(up)
            comps["upstream:" + up] = str(rec.stamp) if rec and rec.stamp is not None else "none"
        return comps

    def fresh_components(self, job: Job, records: dict[str, JobRecord]) -> dict[str, str]:
        """Components from the files as they are now (at a job's start), not as planned."""
        for pattern in job.inputs:
            self._globbed.pop(pattern, None)
        for rel in self.input_files(job):
            self.fingerprints.forget(rel)
        return self.components(job, records)

    def input_files(self, job: Job) -> list[str]:
        files: list[str] = []
        for pattern in job.inputs:
            if has_magic(pattern):
                files.extend(self._glob(pattern))
            else:
                files.append(pattern)
        return files

    def _glob(self, pattern: str) -> list[str]:
        found = self._globbed.get(pattern)
        if found is None:
            found = self._globbed[pattern] = expand(self._root, pattern)
        return found

    def evaluate(self, records: dict[str, JobRecord]) -> dict[str, Verdict]:
        """Decide for every job whether it is up to date, in dependency order."""
        verdicts: dict[str, Verdict] = {}
        for job in self.jobs.values():
            comps = self.components(job, records)
            sig = signature(comps)
            rec = records.get(job.id)
            waiting = rec is not None and rec.status in ("running", "awaiting-approval")
            if (
                job.group is not None
                and job.group.done
                and not waiting
                and not _new_feedback(rec, comps)
                and not self._left_unfinished(job, rec)
            ):
                # Ticked is done, whoever ticked it; untick a task (or review it) to have it run again.
                verdicts[job.id] = Verdict("up-to-date", ("its tasks are ticked",), sig, comps)
                continue
            state, reasons = _judge(rec, sig, comps)
            retry_only = state in ("stale", "failed") and rec is not None and rec.signature == sig
            if (
                job.group is not None
                and rec is not None
                and rec.status == "done"
                and (state == "up-to-date" or rec.components.get("task") == comps["task"])
            ):
                # It finished done, so its tasks were ticked, and they read as they did: someone
                # unticked one since. That is what makes it run again, whatever else changed while
                # it counted as done.
                earlier = reasons if state == "stale" else []
                state, reasons = "stale", ["a task of this group was unticked since it ran", *earlier]
            if state == "up-to-date":
                missing = [o for o in job.outputs if not output_exists(self._root, o)]
                if missing:
                    state, reasons = "stale", [f"output {m} is missing" for m in missing]
            if state in ("up-to-date", "stale"):
                for up in job.upstream:
                    v = verdicts.get(up)
                    if v is None:
                        continue
                    if v.state in ("blocked", "awaiting-approval"):
                        state, reasons, retry_only = "blocked", [f"upstream {up} is {v.state}"], False
                        break
                    if v.must_run and state == "up-to-date":
                        state, reasons, retry_only = "stale", [f"upstream {up} will run"], v.retry_only
            verdicts[job.id] = Verdict(state, tuple(reasons), sig, comps, retry_only)
        return verdicts

    def _left_unfinished(self, job: Job, rec: JobRecord | None) -> bool:
        """A run that ticked its tasks but ended partial, short of an output it must write."""
        if rec is None or rec.status != "partial":
            return False
        return any(not output_exists(self._root, o) for o in job.outputs)

    def select(
        self,
        verdicts: dict[str, Verdict],
        *,
        phases: tuple[str, ...] = (),
        task: str | None = None,
        force: bool = False,
        retry: bool = True,
        again: frozenset[str] = frozenset(),
    ) -> list[str]:
        """The jobs to run, in dependency order: the stale ones among those chosen (by phase and
        task), plus their stale upstream jobs, as make builds a target's prerequisites. With
        retry=False, jobs that would only repeat a failed attempt are left out, but for those in
        `again` (jobs watch cancelled to restart them). `force` runs the chosen jobs even when up to
        date or blocked (not their upstream, and never a ticked group)."""
        for p in phases:
            self.project.workflow.phase(p)
        chosen = [
            j
            for j, job in self.jobs.items()
            if (not phases or job.phase.name in phases) and (task is None or _is_task(job, task))
        ]
        if task is not None and not chosen:
            raise UserError(
                f"no open task group '{task}' in the selected specs (see `runner tasks SPEC/tasks.md`)"
            )

        forced = set(chosen)

        def runs(job_id: str) -> bool:
            v = verdicts[job_id]
            return v.must_run and (retry or not v.retry_only or job_id in again)

        @functools.cache
        def held(job_id: str) -> bool:
            """An upstream job, or an earlier task group, must run but waits for a change
            (retry=False): this job waits too."""
            job = self.jobs[job_id]
            return any(
                up in self.jobs and ((verdicts[up].must_run and not runs(up)) or held(up))
                for up in (*job.upstream, *job.after)
            )

        wanted: set[str] = set()

        def pull(job_id: str) -> None:
            if job_id in wanted:
                return
            ticked = self.jobs[job_id].group is not None and self.jobs[job_id].group.done  # type: ignore[union-attr]
            if (runs(job_id) and not held(job_id)) or (force and job_id in forced and not ticked):
                wanted.add(job_id)
            for up in self.jobs[job_id].upstream:
                if up in self.jobs and runs(up):
                    pull(up)

        for job_id in chosen:
            pull(job_id)
        return [j for j in self.jobs if j in wanted]


def _is_task(job: Job, task: str) -> bool:
    return job.group is not None and job.group.id == task


def signature(components: dict[str, str]) -> str:
    text = "\n".join(f"{key}\0{components[key]}" for key in sorted(components))
    return digest_of(text.encode())


def _new_feedback(rec: JobRecord | None, comps: dict[str, str]) -> bool:
    return "feedback" in comps and (rec is None or rec.components.get("feedback") != comps["feedback"])


def _judge(rec: JobRecord | None, sig: str, comps: dict[str, str]) -> tuple[str, list[str]]:
    if rec is None:
        return "stale", ["never run"]
    if rec.status == "running":
        if rec.pid is not None and pid_alive(rec.pid):
            return "running", [f"running in process {rec.pid}"]
        return "stale", ["its last run was interrupted"]
    if rec.status == "awaiting-approval":
        return "awaiting-approval", [rec.reason or "waiting for `runner approve`"]
    if rec.signature != sig:
        return "stale", explain_changes(rec.components, comps)
    if rec.status == "blocked":
        return "blocked", [rec.reason or "the agent reported BLOCKED"]
    if rec.status != "done":
        state = "failed" if rec.status == "failed" else "stale"
        return state, [f"last run {rec.status}{reason_suffix(rec.status, rec.reason)}"]
    return "up-to-date", []


def reason_suffix(status: str, reason: str | None) -> str:
    """`: <reason>` to follow a run's status, or nothing when the reason only repeats it (`cancelled`)."""
    return f": {reason}" if reason and reason != status else ""


def explain_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """What differs between two sets of signature components, in words."""
    reasons: list[str] = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        kind, _, name = key.partition(":")
        if kind == "input":
            if before is None:
                reasons.append(f"new input {name}")
            elif after is None or after == MISSING:
                reasons.append(f"input {name} was removed")
            elif before == MISSING:
                reasons.append(f"input {name} was created")
            else:
                reasons.append(f"input {name} changed")
        elif kind == "upstream":
            if before is None:
                reasons.append(f"new upstream job {name}")
            elif after is None:
                reasons.append(f"no longer depends on {name}")
            else:
                reasons.append(f"upstream job {name} ran again")
        elif kind == "task":
            reasons.append("the task's text changed")
        elif kind == "prompt":
            reasons.append("the agent definition changed")
        elif kind == "model":
            reasons.append(f"model changed from {before or 'none'} to {after or 'none'}")
        elif kind == "config":
            reasons.append(_settings_change(before, after))
        elif kind == "feedback":
            reasons.append("there is review feedback to address")
        else:
            reasons.append(f"{key} changed")
    return reasons or ["signature changed"]


def _settings_change(before: str | None, after: str | None) -> str:
    """Which of the phase's settings changed: the config component is their canonical text."""
    import ast

    try:
        old, new = ast.literal_eval(before or ""), ast.literal_eval(after or "")
    except (ValueError, SyntaxError):
        old = new = None
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        if keys:
            return f"the phase's {', '.join(f'`{k}`' for k in keys)} changed in the workflow"
    return "the phase's settings in the workflow changed"


def output_exists(root: os.PathLike | str, pattern: str) -> bool:
    """Whether an output exists (for a glob: whether anything matches it)."""
    if has_magic(pattern):
        return bool(expand(root, pattern))
    return os.path.exists(os.path.join(root, pattern))


# --- building the job graph ------------------------------------------------------------------


def build_plan(
    project: Project,
    fingerprints: Fingerprints,
    *,
    specs: Iterable[Spec] | None = None,
    on_bad_spec: Callable[[UserError], None] | None = None,
) -> Plan:
    """Every job of the workflow over the given specs (default: all), in dependency order.

    A spec whose own files cannot be read (a tasks.md that is not UTF-8, a broken feature list) is
    bad input: a UserError, or, with `on_bad_spec`, reported there and left out of the plan.
    """
    chosen = list(specs) if specs is not None else project.specs
    groups: dict[str, list[GroupInfo]] = {}  # the task groups of each spec that can be read
    for spec in chosen:
        try:
            groups[spec.name] = _read_own_files(project, spec)
        except UserError as e:
            if on_bad_spec is None:
                raise
            on_bad_spec(e)
    jobs: dict[str, Job] = {}
    by_phase: dict[tuple[str, str], list[str]] = {}
    for phase in project.workflow.phases.values():
        for spec in chosen:
            if spec.name in groups and set(spec.roots) & set(phase.spec_roots):
                ids = _phase_jobs(project, phase, spec, groups[spec.name], by_phase, jobs)
                by_phase[(spec.name, phase.name)] = ids
    _implicit_dependencies(jobs)
    ordered = {job_id: jobs[job_id] for job_id in dependency_order(jobs)}
    return Plan(project, ordered, fingerprints)


def _read_own_files(project: Project, spec: Spec) -> list[GroupInfo]:
    """Read what planning needs of a spec's own files: its task groups, if a phase has a job per
    group, and its feature list, if a phase starts one from it."""
    phases = [p for p in project.workflow.phases.values() if set(spec.roots) & set(p.spec_roots)]
    if any(o.rsplit("/", 1)[-1] == "features.json" for p in phases for o in p.outputs):
        project.check_feature_lists(spec)
    return project.task_groups(spec) if any(p.each == "task" for p in phases) else []


def _phase_jobs(
    project: Project,
    phase: Phase,
    spec: Spec,
    groups: list[GroupInfo],
    by_phase: dict[tuple[str, str], list[str]],
    jobs: dict[str, Job],
) -> list[str]:
    upstream = [j for need in phase.needs for j in by_phase.get((spec.name, need), [])]
    agent = project.agent(phase) if phase.agent else None
    # A CLI agent or a replay script chooses no model of ours; show (and sign) the provider instead.
    model = (
        (project.model_for(phase, agent) if phase.provider == "anthropic" else phase.provider)
        if agent
        else None
    )
    base = dict(spec=spec, phase=phase, agent=agent, model=model)
    if phase.each != "task":
        job = Job(
            id=f"{spec.name}:{phase.name}",
            upstream=list(upstream),
            inputs=tuple(spec.fill(p) for p in phase.inputs),
            outputs=tuple(spec.fill(p) for p in phase.outputs),
            **base,
        )
        jobs[job.id] = job
        return [job.id]
    ids: list[str] = []
    for group, after in _groups_in_order(groups):
        job = Job(
            id=f"{spec.name}:{phase.name}:{group.id}",
            group=group,
            upstream=list(upstream),
            after=[f"{spec.name}:{phase.name}:{a}" for a in after],
            inputs=tuple(spec.fill(p, group.id) for p in phase.inputs),
            outputs=tuple(spec.fill(p, group.id) for p in phase.outputs),
            **base,
        )
        jobs[job.id] = job
        ids.append(job.id)
    return ids


def _groups_in_order(groups: list[GroupInfo]) -> list[tuple[GroupInfo, list[str]]]:
    """Task groups, each open one with the open groups it must wait for.

    A ticked group stays in the plan as an up-to-date job, so the phases after it see the same
    upstream whether its tasks were ticked a minute or a month ago.

    Stated dependencies win; otherwise groups run one after another in document order, except that
    consecutive Spec Kit [P] groups of one section may run side by side. Where the two disagree (a
    group that depends on a later one), the document order gives way; a cycle among stated
    dependencies is broken where it closes, as make drops a circular dependency.
    """
    open_ids = {g.id for g in groups if not g.done}
    after: dict[str, list[str]] = {g.id: [] for g in groups}
    by_order: set[tuple[str, str]] = set()  # edges that come from document order alone
    ends: list[str] = []  # the groups nothing after them waits for yet: a sequential group waits for all
    batch_base: list[str] | None = None  # what the current [P] batch waits for
    batch_section: object = object()
    for g in groups:
        if g.done:
            continue
        if g.depends_on:
            after[g.id] = [d for d in g.depends_on if d in open_ids and d != g.id]
            if not g.parallel:
                batch_base = None
            elif batch_base is None or g.section != batch_section:  # it opens a [P] batch all the same
                batch_base, batch_section = list(ends), g.section
            ends = [*ends, g.id]
            continue
        if g.parallel and batch_base is not None and g.section == batch_section:
            after[g.id] = list(batch_base)
            ends = [*ends, g.id]
        elif g.parallel:
            after[g.id], batch_base, batch_section = list(ends), list(ends), g.section
            ends = [g.id]
        else:
            after[g.id], ends, batch_base = list(ends), [g.id], None
        by_order.update((g.id, p) for p in after[g.id])
    while cycle := find_cycle(after):
        edges = list(itertools.pairwise(cycle))
        waiter, waited = next((e for e in edges if e in by_order), edges[-1])
        after[waiter].remove(waited)
    return [(g, after[g.id]) for g in groups]


def _implicit_dependencies(jobs: dict[str, Job]) -> None:
    """A job that reads another phase's outputs depends on that job (make's implicit edges).

    Outputs are kept sorted, so each input glob is matched only against the outputs that start
    with its literal prefix: linear in the number of jobs, not quadratic.
    """
    producers: dict[str, list[str]] = {}
    for job in jobs.values():
        for out in job.outputs:
            producers.setdefault(out, []).append(job.id)
    if not producers:
        return
    outputs = sorted(producers)
    for job in jobs.values():
        for pattern in job.inputs:
            if has_magic(pattern):
                found = [p for out in _outputs_matching(pattern, outputs) for p in producers[out]]
            else:
                found = producers.get(pattern, [])
            for producer in found:
                if jobs[producer].phase.name != job.phase.name and producer not in job.upstream:
                    job.upstream.append(producer)
    cycle = find_cycle({j: jobs[j].upstream for j in jobs})
    if cycle:
        from runner.workflow import phase_error

        raise phase_error(
            jobs[cycle[0]].phase,
            "inputs",
            "jobs read each other's outputs in a cycle: " + " -> ".join(cycle) + "; remove one of the inputs",
        )


def _outputs_matching(pattern: str, outputs: list[str]) -> list[str]:
    """The sorted `outputs` a glob matches, looking only at those that start with its literal part."""
    prefix = literal_prefix(pattern)
    candidates = []
    for out in itertools.islice(outputs, bisect.bisect_left(outputs, prefix), None):
        if not out.startswith(prefix):
            break
        candidates.append(out)
    if not candidates:  # most inputs have no output near them: no regex to compile
        return []
    regex = compile_glob(pattern)
    return [out for out in candidates if regex.fullmatch(out)]


def dependency_order(jobs: dict[str, Job]) -> list[str]:
    """Job ids with every upstream (and order-only predecessor) before its dependants."""
    return topological_order({j: (*job.upstream, *job.after) for j, job in jobs.items()})


def summarise_groups(task_list: Any) -> list[dict[str, Any]]:
    """The cacheable planning summary of a parsed tasks.md (see GroupInfo)."""
    summary = []
    for group in task_list.groups():
        if group.optional:
            continue
        summary.append(
            {
                "id": group.id,
                "title": group.title,
                "line": group.root.line,
                "digest": digest_of(group.text.encode()),
                "depends_on": list(group.depends_on),
                "parallel": "P" in group.root.markers,
                "section": group.root.section,
                "done": group.done,
            }
        )
    return summary
