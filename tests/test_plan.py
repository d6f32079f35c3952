"""Staleness: what makes a job run again, and what does not, with the reasons `explain` gives."""

from __future__ import annotations

import json
import os
from pathlib import Path

from runner.fingerprint import Fingerprints
from runner.plan import Plan, build_plan
from runner.project import Project
from runner.state import State
from tests.conftest import age, cli, write

TWO_PHASES = """
specs: ["specs/*"]
phases:
  build:
    inputs: ["{spec}/spec.md", "{spec}/notes/*.md"]
    outputs: ["artifacts/{name}-build/out.txt"]
    run: "mkdir -p $RUNNER_ARTIFACTS && cat {spec}/spec.md > artifacts/{name}-build/out.txt"
  check:
    needs: [build]
    outputs: ["artifacts/{name}-check/ok"]
    run: "mkdir -p $RUNNER_ARTIFACTS && touch $RUNNER_ARTIFACTS/ok"
"""

AGENT_PHASES = """
specs: ["specs/*"]
model: sonnet
phases:
  design:
    agent: designer
    inputs: ["{spec}/spec.md", "{spec}/tasks.md"]
    outputs: ["artifacts/{name}-design/design.md"]
  implement:
    agent: designer
    needs: [design]
    each: task
    inputs: ["{spec}/tasks.md", "artifacts/{name}-design/design.md"]
    outputs: ["artifacts/{name}-implement/implementation.md"]
"""

TASKS = """\
# Tasks
- [ ] 1. First group
  - [ ] 1.1 First sub-task
- [ ] 2. Second group
"""


def plan_of(root: Path) -> tuple[State, Plan]:
    state = State.open(root)
    project = Project(root, state)
    return state, build_plan(project, Fingerprints(project.root, state.file_rows()))


def verdicts(root: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    state, plan = plan_of(root)
    return {j: (v.state, v.reasons) for j, v in plan.evaluate(state.jobs()).items()}


def settle(root: Path) -> None:
    """What a successful run leaves: every stale job recorded done with its signature, its outputs
    written, and a task job's tasks ticked."""
    from runner.plan import signature
    from runner.tasks import load_tasks, set_checked

    state, plan = plan_of(root)
    verdicts = plan.evaluate(state.jobs())
    for job_id, job in plan.jobs.items():
        if not verdicts[job_id].must_run:
            continue
        comps = plan.fresh_components(job, state.jobs())  # as a job does when it starts
        run_id = state.start_job(job_id, signature(comps), comps)
        for out in job.outputs:
            write(root, {out: "made"})
        if job.group:
            path = root / job.spec.tasks_path
            group = next(g for g in load_tasks(path).groups() if g.id == job.group.id)
            for task in group.tasks:
                set_checked(path, task.id)
        state.finish_job(job_id, run_id, "done")
    state.save_file_rows(plan.fingerprints.take_updates())


def two_phase_project(project) -> Path:  # type: ignore[no-untyped-def]
    root = project(TWO_PHASES, {"specs/a/spec.md": "alpha", "specs/b/spec.md": "beta"})
    age(root)
    assert cli(root, "run").exit_code == 0
    return root


def test_content_change_reruns_that_spec_and_its_dependants_only(project) -> None:  # type: ignore[no-untyped-def]
    root = two_phase_project(project)
    write(root, {"specs/a/spec.md": "alpha 2"})
    v = verdicts(root)
    assert v["a:build"] == ("stale", ("input specs/a/spec.md changed",))
    assert v["a:check"] == ("stale", ("upstream a:build will run",))
    assert v["b:build"][0] == v["b:check"][0] == "up-to-date"
    result = cli(root, "run", "--json")
    finished = [json.loads(line) for line in result.stdout.splitlines() if '"finish"' in line]
    assert [(e["job"], e["status"]) for e in finished] == [("a:build", "done"), ("a:check", "done")]
    assert {s for s, _ in verdicts(root).values()} == {"up-to-date"}


def test_touch_without_change_runs_nothing(project) -> None:  # type: ignore[no-untyped-def]
    root = two_phase_project(project)
    os.utime(root / "specs/a/spec.md")
    assert {s for s, _ in verdicts(root).values()} == {"up-to-date"}


def test_new_file_matching_a_glob_input_is_a_change(project) -> None:  # type: ignore[no-untyped-def]
    root = two_phase_project(project)
    write(root, {"specs/b/notes/idea.md": "idea"})
    assert verdicts(root)["b:build"] == ("stale", ("new input specs/b/notes/idea.md",))


def test_brace_globs_in_inputs_and_outputs(project) -> None:  # type: ignore[no-untyped-def]
    root = project(
        """
        specs: ["specs/*"]
        phases:
          build:
            inputs: ["{spec}/{spec,plan}.md", "{spec}/**/*.{yaml,yml}"]
            outputs: ["artifacts/{name}-build/out.{txt,json}"]
            run: "mkdir -p $RUNNER_ARTIFACTS && cat {spec}/*.md > $RUNNER_ARTIFACTS/out.txt"
        """,
        {
            "specs/a/spec.md": "s",
            "specs/a/plan.md": "p",
            "specs/a/x/c.yml": "c",
            "specs/a/.hidden/h.yml": "h",
        },
    )
    age(root)
    assert cli(root, "run").exit_code == 0
    assert verdicts(root)["a:build"][0] == "up-to-date"  # out.txt counts as the output
    write(root, {"specs/a/plan.md": "p2", "specs/a/x/c.yml": "c2", "specs/a/.hidden/h.yml": "h2"})
    # As in a shell, a wildcard does not reach into hidden folders.
    assert verdicts(root)["a:build"] == (
        "stale",
        ("input specs/a/plan.md changed", "input specs/a/x/c.yml changed"),
    )


def test_config_change_makes_the_phase_stale(project) -> None:  # type: ignore[no-untyped-def]
    root = two_phase_project(project)
    write(
        root,
        {"workflows/w.yaml": TWO_PHASES.replace("touch $RUNNER_ARTIFACTS/ok", "touch $RUNNER_ARTIFACTS/ok ")},
    )
    v = verdicts(root)
    assert v["a:check"] == ("stale", ("the phase's `run` changed in the workflow",))
    assert v["a:build"][0] == "up-to-date"


def test_settings_a_phase_does_not_use_do_not_make_it_stale(project) -> None:  # type: ignore[no-untyped-def]
    root = two_phase_project(project)
    changed = TWO_PHASES.replace(
        'specs: ["specs/*"]', 'specs: ["specs/*"]\nmodel: opus\ncommand: "my-agent --v2"'
    )
    write(root, {"workflows/w.yaml": changed})
    assert {state for state, _ in verdicts(root).values()} == {"up-to-date"}  # `run:` phases use neither


def test_deleted_output_reruns_the_job(project) -> None:  # type: ignore[no-untyped-def]
    root = two_phase_project(project)
    (root / "artifacts/b-check/ok").unlink()
    assert verdicts(root)["b:check"] == ("stale", ("output artifacts/b-check/ok is missing",))
    assert cli(root, "run").exit_code == 0
    assert (root / "artifacts/b-check/ok").exists()


def test_an_edit_made_while_a_job_runs_leaves_it_stale(project) -> None:  # type: ignore[no-untyped-def]
    editing = TWO_PHASES.replace(
        "cat {spec}/spec.md > artifacts/{name}-build/out.txt",
        "cat {spec}/spec.md > artifacts/{name}-build/out.txt && echo edited-meanwhile >> {spec}/spec.md",
    )
    root = project(editing, {"specs/a/spec.md": "alpha"})
    age(root)
    assert cli(root, "run").exit_code == 0
    assert (root / "artifacts/a-build/out.txt").read_text() == "alpha"
    assert verdicts(root)["a:build"] == ("stale", ("input specs/a/spec.md changed",))


def test_failed_job_is_retried_and_its_dependants_wait(project) -> None:  # type: ignore[no-untyped-def]
    failing = TWO_PHASES.replace(
        "cat {spec}/spec.md >", "grep -q beta {spec}/spec.md && cat {spec}/spec.md >"
    )
    root = project(failing, {"specs/a/spec.md": "alpha", "specs/b/spec.md": "beta"})
    result = cli(root, "run")
    assert result.exit_code == 1
    assert "a:check" in result.stdout and "skipped" in result.stdout
    v = verdicts(root)
    assert v["a:build"][0] == "failed" and v["a:build"][1][0].startswith("last run failed: exit 1")
    assert v["a:check"] == ("stale", ("never run",))
    assert v["b:check"][0] == "up-to-date"
    # watch retries nothing without a change, and runs nothing on top of what it holds back
    state, plan = plan_of(root)
    verdicts_now = plan.evaluate(state.jobs())
    assert plan.select(verdicts_now, retry=False) == []
    assert plan.select(verdicts_now) == ["a:build", "a:check"]


def test_prompt_model_task_untick_and_upstream_changes_are_named(project) -> None:  # type: ignore[no-untyped-def]
    root = project(
        AGENT_PHASES,
        {
            "specs/a/spec.md": "spec",
            "specs/a/tasks.md": TASKS,
            "agent-os/agents/designer.md": "---\nname: designer\n---\nDesign {{spec}}.",
        },
    )
    age(root)
    settle(root)
    v = verdicts(root)
    assert set(v) == {"a:design", "a:implement:1", "a:implement:2"}
    assert {s for s, _ in v.values()} == {"up-to-date"}

    ticked = (root / "specs/a/tasks.md").read_text()
    write(root, {"specs/a/tasks.md": ticked.replace("- [x] 2.", "- [ ] 2.")})
    v = verdicts(root)
    assert v["a:implement:2"] == ("stale", ("a task of this group was unticked since it ran",))
    assert v["a:design"][0] == "up-to-date"  # a box is not content
    write(root, {"specs/a/tasks.md": ticked})

    write(root, {"agent-os/agents/designer.md": "---\nname: designer\n---\nDesign {{spec}} carefully."})
    v = verdicts(root)
    assert v["a:design"] == ("stale", ("the agent definition changed",))
    assert v["a:implement:2"] == ("up-to-date", ("its tasks are ticked",))  # ticked is done
    settle(root)

    write(
        root,
        {"agent-os/agents/designer.md": "---\nname: designer\nmodel: opus\n---\nDesign {{spec}} carefully."},
    )
    assert "model changed from claude-sonnet-5-5 to claude-opus-5-5" in verdicts(root)["a:design"][1]
    settle(root)

    write(
        root, {"specs/a/tasks.md": ticked.replace("- [x] 2. Second group", "- [ ] 2. Second group, reworded")}
    )
    v = verdicts(root)
    assert "the task's text changed" in v["a:implement:2"][1]
    assert v["a:design"] == ("stale", ("input specs/a/tasks.md changed",))
    assert v["a:implement:1"] == ("up-to-date", ("its tasks are ticked",))
    settle(root)

    # The design job runs again while group 2 is open again: group 2 says both, the untick first.
    ticked = (root / "specs/a/tasks.md").read_text()
    write(root, {"specs/a/tasks.md": ticked.replace("- [x] 2.", "- [ ] 2.")})
    state, plan = plan_of(root)
    from runner.plan import signature

    comps = plan.components(plan.jobs["a:design"], state.jobs())
    state.finish_job("a:design", state.start_job("a:design", signature(comps), comps), "done")
    assert verdicts(root)["a:implement:2"] == (
        "stale",
        ("a task of this group was unticked since it ran", "upstream job a:design ran again"),
    )


def test_ticking_a_box_changes_no_signature(project) -> None:  # type: ignore[no-untyped-def]
    root = project(
        AGENT_PHASES,
        {
            "specs/a/spec.md": "spec",
            "specs/a/tasks.md": TASKS,
            "agent-os/agents/designer.md": "Design {{spec}}.",
        },
    )
    age(root)
    settle(root)  # the design ran; both groups were done and ticked
    assert "- [ ]" not in (root / "specs/a/tasks.md").read_text()
    for boxes in (TASKS, TASKS.replace("- [ ] 1.1", "- [x] 1.1"), TASKS.replace("- [ ] 1.", "- [x] 1.")):
        write(root, {"specs/a/tasks.md": boxes})
        assert verdicts(root)["a:design"] == (
            "up-to-date",
            (),
        )  # it reads tasks.md, yet boxes are not content
    v = verdicts(root)
    # Group 1 is ticked (done, whoever ticked it); group 2 was unticked, so it runs again.
    assert v["a:implement:1"] == ("up-to-date", ("its tasks are ticked",))
    assert v["a:implement:2"] == ("stale", ("a task of this group was unticked since it ran",))


def test_task_groups_run_in_order_unless_dependencies_or_P_markers_say_otherwise(project) -> None:  # type: ignore[no-untyped-def]
    spec_kit = """\
## Phase 1: Setup
- [ ] T001 Create project
- [ ] T002 [P] Lint config
- [ ] T003 [P] Test config
- [ ] T004 Wire CI
"""
    root = project(
        AGENT_PHASES,
        {"specs/a/spec.md": "s", "specs/a/tasks.md": spec_kit, "agent-os/agents/designer.md": "x"},
    )
    assert task_order(root) == {"T001": [], "T002": ["T001"], "T003": ["T001"], "T004": ["T002", "T003"]}

    # A stated dependency holds back its own task only; a later sequential task still waits for it.
    write(
        root,
        {
            "specs/a/tasks.md": "- [ ] T001 [P] One\n- [ ] T002 [P] Two (depends on T003)\n"
            "- [ ] T003 [P] Three\n- [ ] T004 Wire them together\n"
        },
    )
    assert task_order(root) == {"T001": [], "T002": ["T003"], "T003": [], "T004": ["T001", "T002", "T003"]}

    # A [P] task with a stated dependency may open the batch: the next [P] tasks run beside it.
    write(
        root,
        {
            "specs/a/tasks.md": "## Phase 1\n- [ ] T001 Setup\n- [ ] T002 [P] A (depends on T001)\n"
            "- [ ] T003 [P] B\n- [ ] T004 [P] C\n"
        },
    )
    assert task_order(root) == {"T001": [], "T002": ["T001"], "T003": ["T001"], "T004": ["T001"]}


def task_order(root: Path) -> dict[str, list[str]]:
    """Each task job's id, with the tasks it waits for."""
    _, plan = plan_of(root)
    return {j.task_id: sorted(a.rsplit(":", 1)[1] for a in j.after) for j in plan.jobs.values() if j.group}


def test_implicit_dependency_from_outputs_to_inputs(project) -> None:  # type: ignore[no-untyped-def]
    wf = """
specs: ["specs/*"]
phases:
  report:
    inputs: ["artifacts/{name}-build/*.txt"]
    outputs: ["artifacts/{name}-report/r"]
    run: "true"
  build:
    outputs: ["artifacts/{name}-build/out.txt"]
    run: "true"
"""
    root = project(wf, {"specs/a/spec.md": "s"})
    _, plan = plan_of(root)
    assert plan.jobs["a:report"].upstream == ["a:build"]


def test_ticks_are_progress_not_content_in_block_quotes_too() -> None:
    from runner.fingerprint import content_digest

    text = b"- [ ] 1. Top\n> - [ ] 2. Quoted\n>> 1. [ ] 3. Deeper\n"
    ticked = text.replace(b"[ ]", b"[x]")
    assert content_digest(text, "tasks.md") == content_digest(ticked, "tasks.md")
    assert content_digest(text, "tasks.md") != content_digest(text.replace(b"Quoted", b"Other"), "tasks.md")


def test_feature_statuses_are_progress_not_content() -> None:
    from runner.fingerprint import content_digest

    before = b'{"features": [{"id": "F1", "name": "Login", "status": "pending", "tasks": ["1"]}]}'
    after = b'{"features": [{"id": "F1", "name": "Login", "status": "done", "reason": "x", "tasks": ["1"]}]}'
    renamed = before.replace(b"Login", b"Sign-in")
    assert content_digest(before, "features.json") == content_digest(after, "features.json")
    assert content_digest(before, "features.json") != content_digest(renamed, "features.json")
    harness = b'[{"description": "Opens", "passes": false}]'
    assert content_digest(harness, "feature_list.json") == content_digest(
        harness.replace(b"false", b"true"), "feature_list.json"
    )
