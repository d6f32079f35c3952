"""The whole default pipeline (design -> implement -> test -> review) on the example spec.

The fake Messages API plays the architect, the implementer and a reviewer that first requests
changes, then approves. Everything else is real: the runner, its tools and verify, pytest in the
test phase, git.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import SHARED, cli, needs_shared, write
from tests.fakeapi import FakeAnthropic, Recorded, Turn, text, tool_use, turn
from tests.test_agent import KEY, SLUG_TESTS, SLUGIFY

SPEC = "agent-os/specs/example-slugify"
DESIGN_FEATURES = json.dumps(
    {
        "features": [
            {"id": "F1", "name": "slugify()", "status": "pending", "tasks": ["1.0"], "tests": ["test_words"]},
            {
                "id": "F2",
                "name": "command line",
                "status": "pending",
                "tasks": ["2.0"],
                "tests": ["test_cli"],
            },
        ]
    }
)
CLI_TESTS = (
    SLUG_TESTS
    + """

def test_missing_argument():
    out = subprocess.run([sys.executable, "-m", "slugify"], capture_output=True, text=True)
    assert out.returncode == 2 and "usage" in out.stderr
"""
)
REVIEW_POINTS = (
    "CHANGES_REQUESTED\n\n1. [Task 2.0] There is no test for a missing argument; add one.\n"
    "2. Keep the module free of print statements outside __main__.\n"
)


def finish(summary: str, status: str = "done") -> Turn:
    return turn(tool_use("Finish", {"status": status, "summary": summary, "changes": ["slugify.py"]}))


def job_of(rec: Recorded) -> str:
    return rec.body["messages"][0]["content"][0]["text"].split("`")[1]


def step_of(rec: Recorded) -> int:
    return sum(1 for m in rec.body["messages"] if m["role"] == "assistant")


def scripted_team(implementer_final: Callable[[str], Turn] | None = None) -> Callable[[Recorded], Turn]:
    """Architect, implementer and a reviewer who asks for changes once, then approves."""
    reviews: list[int] = []

    def answer(rec: Recorded) -> Turn:
        job, step = job_of(rec), step_of(rec)
        system = rec.body["system"][0]["text"]
        done = implementer_final or (lambda summary: finish(summary))
        if job.endswith(":design"):
            return [
                turn(
                    tool_use(
                        "Write",
                        {"file_path": "artifacts/example-slugify-design/design.md", "content": "# Design\n"},
                    ),
                    tool_use(
                        "Write",
                        {
                            "file_path": "artifacts/example-slugify-design/features.json",
                            "content": DESIGN_FEATURES,
                        },
                    ),
                ),
                finish("Designed."),
            ][step]
        if job.endswith(":implement:1.0"):
            return [
                # Claiming too early: verify (pytest) fails, so nothing is ticked yet.
                turn(tool_use("CompleteTask", {"task_id": "1.0", "evidence": "looks done"})),
                turn(
                    tool_use("Write", {"file_path": "slugify.py", "content": SLUGIFY}),
                    tool_use("Write", {"file_path": "tests/test_slugify.py", "content": SLUG_TESTS}),
                ),
                turn(tool_use("CompleteTask", {"task_id": "1.0", "evidence": "pytest: 2 passed"})),
                done("slugify() with tests"),
            ][step]
        if (
            job.endswith(":implement:2.0")
            and "Review round 1" in system + rec.body["messages"][0]["content"][0]["text"]
        ):
            return [
                turn(tool_use("Read", {"file_path": "tests/test_slugify.py"})),
                turn(
                    tool_use(
                        "Edit",
                        {
                            "file_path": "tests/test_slugify.py",
                            "old_string": SLUG_TESTS,
                            "new_string": CLI_TESTS,
                        },
                    )
                ),
                done("Added the missing-argument test"),
            ][step]
        if job.endswith(":implement:2.0"):
            return [
                turn(tool_use("CompleteTask", {"task_id": "2.0", "evidence": "test_cli passes"})),
                done("CLI"),
            ][step]
        if job.endswith(":review"):
            if step == 0:
                reviews.append(1)
            verdict = REVIEW_POINTS if len(reviews) == 1 else "APPROVED\n"
            path = "artifacts/example-slugify-review/review.md"
            write_review = [tool_use("Write", {"file_path": path, "content": verdict})]
            if len(reviews) > 1:  # the file exists now: read it before overwriting, as Claude Code requires
                write_review.insert(0, tool_use("Read", {"file_path": path}))
            return [turn(*write_review), finish(verdict.splitlines()[0])][step]
        raise AssertionError(f"unexpected job {job}")

    return answer


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(min_cache_tokens=0) as fake:
        yield fake


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def pipeline_project(tmp_path: Path, git_config: str = "") -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    assert cli(root, "init").exit_code == 0
    workflow = root / "workflows/spec-driven.yaml"
    text_ = workflow.read_text()
    assert 'verify: ["python -m pytest -q"]' in text_  # the default checks before ticking
    workflow.write_text(text_ + git_config)
    write(
        root,
        {"conftest.py": "import os, sys\nsys.path.insert(0, os.path.dirname(__file__))\n", "tests/.keep": ""},
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "config", "user.name", "Dev")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    return root


def run(root: Path, api: FakeAnthropic, *args: str):  # type: ignore[no-untyped-def]
    return cli(root, "run", *args, env={"ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": KEY})


def requests_of(api: FakeAnthropic, job: str) -> list[Recorded]:
    return [r for r in api.requests if job_of(r) == job]


def test_the_default_pipeline_with_a_review_round_and_git(tmp_path: Path, api: FakeAnthropic) -> None:
    root = pipeline_project(tmp_path, "\ngit: {branch: spec}\n")
    api.respond_with(scripted_team())
    result = run(root, api)
    assert result.exit_code == 0, result.stdout + result.stderr
    art = root / "artifacts"

    # design
    assert (art / "example-slugify-design/design.md").read_text() == "# Design\n"
    # one implement job per task group, ticked only after verify passed
    assert sorted(p.name for p in (art / "example-slugify-implement").iterdir() if p.is_dir()) == [
        "1.0",
        "2.0",
    ]
    first_claim = requests_of(api, "example-slugify:implement:1.0")[1].body["messages"][-1]["content"][0]
    assert first_claim["is_error"] and "Not ticked" in first_claim["content"]
    assert "- [ ]" not in (root / SPEC / "tasks.md").read_text()

    # the review round: feedback for task 2.0 reached its prompt, then the reviewer approved
    fix = [
        r
        for r in requests_of(api, "example-slugify:implement:2.0")
        if "Review round 1" in r.body["system"][0]["text"]
    ]
    assert fix and "[Task 2.0] There is no test for a missing argument" in fix[0].body["system"][0]["text"]
    assert "Keep the module free of print statements" in fix[0].body["system"][0]["text"]
    assert not any(
        "Review round" in r.body["system"][0]["text"]
        for r in requests_of(api, "example-slugify:implement:1.0")
    )
    assert "done      changes requested (round 1 of 2), for example-slugify:implement:2.0" in result.stdout
    assert (art / "example-slugify-review/round-1/review.md").read_text().startswith("CHANGES_REQUESTED")
    assert (art / "example-slugify-review/round-2/review.md").read_text() == "APPROVED\n"
    review = json.loads((art / "example-slugify-review/run.json").read_text())
    assert review["status"] == "done" and review["verdict"] == "APPROVED" and review["round"] == 2
    assert "test_missing_argument" in (root / "tests/test_slugify.py").read_text()

    # final artifacts
    impl = (art / "example-slugify-implement/implementation.md").read_text()
    assert "### Task 1.0" in impl and "### Task 2.0" in impl and "Added the missing-argument test" in impl
    assert "3 tests, 3 passed" in (art / "example-slugify-test/summary.md").read_text()
    features = json.loads((art / "example-slugify-test/features.json").read_text())["features"]
    assert [f["status"] for f in features] == ["done", "done"]

    # git: a branch for the spec, a commit per ticked task and one for the review fix, nothing pushed
    assert git(root, "rev-parse", "--abbrev-ref", "HEAD") == "runner/example-slugify"
    assert git(root, "log", "--format=%s", "main..HEAD").splitlines() == [
        "runner: example-slugify task 2.0: Add the command line",
        "runner: example-slugify task 2.0: Add the command line",
        "runner: example-slugify task 1.0: Implement `slugify()`",
    ]
    assert git(root, "log", "-1", "--format=%b") == "Addresses review feedback."
    assert "- task 1.1: Write tests in" in git(root, "log", "-1", "--format=%b", "HEAD~2")
    assert "slugify.py" in git(root, "show", "--name-only", "--format=", "HEAD~2").split()

    # the feedback was addressed: a later run of task 2.0 would not be told it again
    from runner.state import State

    assert State.open(root).feedback(pending=True) == {}

    # and the second run has nothing to do
    sent = len(api.requests)
    assert run(root, api).exit_code == 0 and len(api.requests) == sent


def test_approval_pauses_before_the_commit_and_resumes(tmp_path: Path, api: FakeAnthropic) -> None:
    root = pipeline_project(tmp_path, "\ngit: {branch: spec, approve: true}\n")
    api.respond_with(scripted_team())
    first = run(root, api)
    assert first.exit_code == 1
    states = {r["job"]: r["state"] for r in json.loads(cli(root, "status", "--json").stdout)}
    assert states["example-slugify:implement:1.0"] == "awaiting-approval"
    assert states["example-slugify:implement:2.0"] == "stale" and states["example-slugify:test"] == "blocked"
    assert git(root, "log", "--format=%s", "main..HEAD") == ""  # nothing committed yet
    assert (root / "slugify.py").exists()

    approved = cli(root, "approve", "example-slugify:implement:1.0")
    assert approved.exit_code == 0 and "committed" in approved.stdout
    assert (
        git(root, "log", "--format=%s", "main..HEAD")
        == "runner: example-slugify task 1.0: Implement `slugify()`"
    )

    second = run(root, api)
    assert second.exit_code == 1
    rejected = cli(
        root, "reject", "example-slugify:implement:2.0", "--notes", "Name the usage line after the module."
    )
    assert rejected.exit_code == 0 and "unticked 2.0" in rejected.stdout
    assert "- [ ] 2.0" in (root / SPEC / "tasks.md").read_text()
    third = run(root, api)
    assert third.exit_code == 1  # awaiting approval again
    retry = requests_of(api, "example-slugify:implement:2.0")[-2]
    assert "Name the usage line after the module." in retry.body["system"][0]["text"]
    assert cli(root, "approve", "example-slugify:implement:2.0").exit_code == 0
    # The reviewer asks for changes once; the fix waits for approval like any other work.
    assert run(root, api).exit_code == 1
    assert cli(root, "approve", "example-slugify:implement:2.0").exit_code == 0
    assert run(root, api).exit_code == 0
    assert git(root, "log", "--format=%s", "main..HEAD").splitlines() == [
        "runner: example-slugify task 2.0: Add the command line",
        "runner: example-slugify task 2.0: Add the command line",
        "runner: example-slugify task 1.0: Implement `slugify()`",
    ]
    assert git(root, "log", "-1", "--format=%b") == "Addresses review feedback."


# --- each seed prompt as the implementer of the pipeline ------------------------------------------


def seeds() -> list[Path]:
    return sorted((SHARED / "seeds").glob("*")) if SHARED.is_dir() else []


SEED_FINALS = {
    "000": "IMPLEMENTATION COMPLETE\n\nSummary: {s}\n\nFiles Modified:\n- slugify.py (created)\n\nStatus: READY_FOR_REVIEW",
    "001": "Implemented the assigned task group: {s}.",
    "002": "Task completed: {s}\nFiles created/modified: slugify.py",
    "003": "{s}. Wrote the implementation; see implementation.md.",
    "004": "The phase is complete: {s}.",
}


@needs_shared
@pytest.mark.parametrize("seed", seeds(), ids=lambda p: p.name[:3])
def test_each_seed_plays_the_implementer_in_the_pipeline(
    tmp_path: Path, api: FakeAnthropic, seed: Path
) -> None:
    root = pipeline_project(tmp_path)
    shutil.copyfile(seed, root / "agent-os/agents/implementer.md")  # the user's prompt, byte for byte
    final = SEED_FINALS[seed.name[:3]]
    api.respond_with(scripted_team(lambda summary: turn(text(final.format(s=summary)))))
    result = run(root, api)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "- [ ]" not in (root / SPEC / "tasks.md").read_text()
    implement = requests_of(api, "example-slugify:implement:1.0")
    body = seed.read_text(encoding="utf-8")
    body = body.split("---", 2)[2].lstrip("\n") if body.startswith("---") else body
    assert (
        implement[0].body["system"][0]["text"].startswith(body.splitlines()[0])
    )  # the user's prompt, as written
    review = json.loads((root / "artifacts/example-slugify-review/run.json").read_text())
    assert review["verdict"] == "APPROVED"
    if seed.name.startswith("004"):
        assert implement[0].body["model"] == "claude-haiku-5-5"


def test_the_tester_agent_can_take_the_test_phase(tmp_path: Path, api: FakeAnthropic) -> None:
    """docs/workflows.md: swap the test command for the `tester` agent."""
    root = pipeline_project(tmp_path)
    workflow = root / "workflows/spec-driven.yaml"
    command_phase = (
        '    run: "python -m pytest -q --junitxml artifacts/{name}-test/junit.xml"\n'
        '    outputs: ["artifacts/{name}-test/junit.xml"]\n'
    )
    agent_phase = (
        "    agent: tester\n"
        '    inputs: ["artifacts/{name}-implement/implementation.md"]\n'
        '    outputs: ["artifacts/{name}-test/report.md"]\n'
    )
    assert command_phase in workflow.read_text()
    workflow.write_text(workflow.read_text().replace(command_phase, agent_phase))
    team = scripted_team()
    report = "artifacts/example-slugify-test/report.md"

    def answer(rec: Recorded) -> Turn:
        if not job_of(rec).endswith(":test"):
            return team(rec)
        assert "You are the tester" in rec.body["system"][0]["text"]
        return [
            turn(tool_use("Bash", {"command": "python -m pytest -q"})),
            turn(tool_use("Write", {"file_path": report, "content": "python -m pytest -q: 3 passed\n"})),
            finish("3 passed"),
        ][step_of(rec)]

    api.respond_with(answer)
    result = run(root, api)
    assert result.exit_code == 0, result.stdout + result.stderr
    ran = requests_of(api, "example-slugify:test")[1].body["messages"][-1]["content"][0]["content"]
    assert "passed" in ran
    assert (root / report).read_text() == "python -m pytest -q: 3 passed\n"
    assert json.loads((root / "artifacts/example-slugify-test/run.json").read_text())["status"] == "done"
