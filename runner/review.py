"""Review rounds: a reviewer's verdict turns into feedback for the jobs it reviewed.

A phase with `reviews: <phase>` ends with APPROVED or CHANGES_REQUESTED (the first line of its
review.md, else its report). With CHANGES_REQUESTED, each numbered point goes to the task groups it
names (`[Task 1.2]`, `Task 3`, `T012`), together with the points that name none; when no point
names a task, every reviewed job gets them all. The feedback is stored in the state database and is part of
those jobs' signatures, so they become stale and run again with the feedback filled into their
prompt ({{feedback}}, {{notes}} or the job message); then the test and review phases after them run
again. After `max_rounds` rounds of changes the review ends `blocked`, for a person to decide.
Each round's review is kept in `artifacts/<spec>-<phase>/round-<n>/`, n counting the rounds of one cycle.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.tasks import id_forms, load_tasks

if TYPE_CHECKING:
    from runner.execute import JobContext
    from runner.project import Project
    from runner.specs import Spec

APPROVED = "APPROVED"
CHANGES_REQUESTED = "CHANGES_REQUESTED"

# The first line's verdict, after Markdown decoration and a label ("## Verdict: APPROVED").
_FIRST_LINE = re.compile(
    r"^[\s#>*_`:-]*(?:(?:verdict|status|decision|review)[\s*_`]*:[\s*_`]*)?(APPROVED|CHANGES[ _]REQUESTED)\b",
    re.IGNORECASE,
)
_SHOUTED = re.compile(r"\b(APPROVED|CHANGES[ _]REQUESTED)\b")
_POINT = re.compile(r"^\s*(\d+)[.)]\s+(.+)$")
_TASK_REF = re.compile(r"\bTask\s+([\w.]+)|\[(?:Task\s+)?([\w.]+)\]|\b(T\d+[A-Z]?)\b", re.IGNORECASE)


@dataclass
class Review:
    verdict: str | None
    points: list[str] = field(default_factory=list)


def parse_review(text: str) -> Review:
    """The verdict and the numbered points, with their wrapped lines.

    The verdict is the first line's. A reviewer who put it elsewhere wrote it in capitals; prose
    ("the parser I approved earlier") is not a verdict, and any CHANGES_REQUESTED beats an APPROVED.
    """
    first = next((line for line in text.splitlines() if line.strip()), "")
    m = _FIRST_LINE.match(first)
    words = {w.replace(" ", "_") for w in _SHOUTED.findall(text)}
    if m:
        verdict: str | None = APPROVED if m.group(1).upper() == APPROVED else CHANGES_REQUESTED
    elif CHANGES_REQUESTED in words:
        verdict = CHANGES_REQUESTED
    elif APPROVED in words:
        verdict = APPROVED
    else:
        verdict = None
    points: list[str] = []
    for line in text.splitlines():
        numbered = _POINT.match(line)
        if numbered:
            points.append(numbered.group(2).strip())
        elif points and line.startswith((" ", "\t")) and line.strip():
            points[-1] += " " + line.strip()
        elif points and not line.strip():
            continue
    return Review(verdict, points)


def route(points: list[str], groups: dict[str, set[str]]) -> dict[str, list[str]]:
    """Which points each reviewed job gets: those naming one of its tasks, plus those naming none.

    Points that name no task ride along with the jobs that run anyway (any of them can act on
    project-wide advice); only when no point names a task do all the reviewed jobs get them all.
    """
    named: dict[str, list[str]] = {}
    general: list[str] = []
    for point in points:
        refs = {form for a, b, c in _TASK_REF.findall(point) for form in id_forms(a or b or c)}
        owners = [g for g, ids in groups.items() if refs & ids]
        for g in owners:
            named.setdefault(g, []).append(point)
        if not owners:
            general.append(point)
    if not named:
        return {g: list(points) for g in groups}
    return {g: [*named[g], *general] for g in named}


def feedback_text(review_job: str, round: int, points: list[str]) -> str:
    lines = [f"Review round {round} ({review_job}): CHANGES_REQUESTED. Address every point:"]
    lines += [f"{i}. {p}" for i, p in enumerate(points, 1)]
    return "\n".join(lines)


def archive_round(phase_dir: Path, files: list[Path], n: int) -> None:
    """Copy this round's review into round-<n>/, replacing what an earlier cycle left there."""
    folder = phase_dir / f"round-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for f in files:
        if f.is_file():
            shutil.copy2(f, folder / f.name)


def reviewed_jobs(project: Project, spec: Spec, phase_name: str) -> dict[str, set[str]]:
    """The jobs of the reviewed phase for this spec, each with the task ids it covers."""
    reviewed = project.workflow.phase(phase_name)
    if reviewed.each != "task":
        return {f"{spec.name}:{reviewed.name}": set()}
    path = project.root / spec.tasks_path
    if not path.exists():
        return {}
    return {
        f"{spec.name}:{reviewed.name}:{g.id}": {t.id for t in g.tasks}
        for g in load_tasks(path).groups()
        if not g.optional
    }


def settle_review(
    ctx: JobContext, report_text: str, wrote: Callable[[str], bool]
) -> tuple[str, str | None, dict[str, Any]]:
    """Status, reason and run.json details of a finished review job; records feedback for CHANGES_REQUESTED."""
    job, project, state, phase = ctx.job, ctx.project, ctx.state, ctx.job.phase
    assert phase.reviews is not None
    # Only what this job wrote counts: a review.md left from an earlier round is not this verdict.
    files = [project.root / o for o in job.outputs if (project.root / o).is_file() and wrote(o)]
    review_file = next((f for f in files if f.suffix == ".md"), None)
    review = parse_review(
        review_file.read_text(encoding="utf-8", errors="replace") if review_file else report_text
    )
    # Rounds count the reviews of one cycle, which ends with an approval or with a person stepping in.
    n = state.review_rounds(job.id) + 1
    archive_round(ctx.phase_dir, files, n)
    details: dict[str, Any] = {"verdict": review.verdict, "round": n}
    if review.verdict is None:
        where = project.rel(review_file) if review_file else "its report"
        return (
            "partial",
            f"no verdict: the first line of {where} should be APPROVED or CHANGES_REQUESTED",
            details,
        )
    if review.verdict == APPROVED:
        state.set_review_rounds(job.id, 0)
        return "done", None, details
    if n > phase.max_rounds:
        state.set_review_rounds(job.id, 0)  # once a person has stepped in, the next review starts afresh
        return "blocked", f"changes still requested after {phase.max_rounds} rounds of fixes", details
    routed = route(review.points or [report_text.strip()], reviewed_jobs(project, job.spec, phase.reviews))
    for target, points in routed.items():
        state.set_feedback(target, feedback_text(job.id, n, points), job.id, n)
    state.set_review_rounds(job.id, n)
    details["feedback_to"] = sorted(routed)
    jobs = ", ".join(sorted(routed))
    return "done", f"changes requested (round {n} of {phase.max_rounds}), for {jobs}", details
