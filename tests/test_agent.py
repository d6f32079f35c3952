"""Agent jobs end to end: the real anthropic client against a fake Messages API on 127.0.0.1.

Each scenario runs `runner run` on a small project whose implement phase is an agent; the fake
answers with scripted turns, and the tests check what a user would see: boxes, files, statuses,
artifacts and transcripts.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import SHARED, cli, needs_shared, write
from tests.fakeapi import FakeAnthropic, Recorded, Turn, text, tool_use, turn

KEY = "sk-ant-test-0123456789abcdefSECRET"

WORKFLOW = """
specs: ["specs/*"]
phases:
  implement:
    agent: dev
    each: task
    inputs: ["{spec}/tasks.md", "{spec}/spec.md"]
    outputs: ["artifacts/{name}-implement/implementation.md", "artifacts/{name}-implement/features.json"]
    verify: ["test -f hello.txt"]
    budget: {max_turns: 8}
"""

TASKS = """\
# Tasks

- [ ] 1. Say hello
  - [ ] 1.1 Write hello.txt
- [ ] 2. Say goodbye
"""

FEATURES = '{"features": [{"id": "F1", "name": "Greeting", "status": "pending", "tasks": ["1"]}]}\n'

AGENT = "---\nname: dev\ntools: Read, Write, Edit, Bash, CompleteTask, Finish\nmax_tokens: 4096\n---\nYou implement:\n{{task}}\n"


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(min_cache_tokens=0) as fake:
        yield fake


def make(project, workflow: str = WORKFLOW, agent: str = AGENT, tasks: str = TASKS) -> Path:  # type: ignore[no-untyped-def]
    return project(
        workflow,
        {
            "specs/greet/spec.md": "Greet people.",
            "specs/greet/tasks.md": tasks,
            "specs/greet/features.json": FEATURES,
            "agent-os/agents/dev.md": agent,
        },
    )


def run(root: Path, api: FakeAnthropic, *args: str):  # type: ignore[no-untyped-def]
    return cli(root, "run", *args, env={"ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": KEY})


def finish(status: str = "done", summary: str = "Done.") -> Turn:
    return turn(tool_use("Finish", {"status": status, "summary": summary, "changes": ["hello.txt: new"]}))


def tool_results(rec: Recorded) -> list[dict]:
    last = rec.body["messages"][-1]["content"]
    return [b for b in last if b.get("type") == "tool_result"]


def test_task_done_in_several_turns_is_ticked_and_recorded(project, api: FakeAnthropic) -> None:  # type: ignore[no-untyped-def]
    root = make(project)
    api.script(
        turn(text("Reading the spec."), tool_use("Read", {"file_path": "specs/greet/spec.md"})),
        turn(tool_use("Write", {"file_path": "hello.txt", "content": "hello\n"})),
        turn(tool_use("CompleteTask", {"task_id": "1.1", "evidence": "hello.txt exists"})),
        finish(),
        turn(tool_use("CompleteTask", {"task_id": "2", "evidence": "nothing to do"})),
        finish(),
    )
    result = run(root, api)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert (root / "hello.txt").read_text() == "hello\n"
    tasks = (root / "specs/greet/tasks.md").read_text()
    assert tasks == TASKS.replace("[ ]", "[x]")
    assert len(api.requests) == 6
    # The tick went through CompleteTask, after verify: the tool result says so.
    assert (
        "Ticked 1, 1.1 in specs/greet/tasks.md after `test -f hello.txt` passed"
        in tool_results(api.requests[3])[0]["content"]
    )

    phase = root / "artifacts/greet-implement"
    impl = (phase / "implementation.md").read_text()
    assert "### Task 1: Say hello" in impl and "### Task 2: Say goodbye" in impl and "`hello.txt`" in impl
    features = json.loads((phase / "features.json").read_text())
    assert features["features"][0]["status"] == "done"
    run1 = json.loads((phase / "1/run.json").read_text())
    assert run1["status"] == "done" and run1["turns"] == 4 and run1["ticked"] == ["1", "1.1"]
    assert run1["tokens"]["input"] + run1["tokens"]["cache_read"] + run1["tokens"]["cache_write"] > 0
    assert run1["cost_usd"] > 0
    kinds = [json.loads(line)["type"] for line in (phase / "1/transcript.jsonl").read_text().splitlines()]
    assert (
        kinds[:2] == ["job", "start"] and kinds[-2:] == ["finish", "result"] and kinds.count("assistant") == 4
    )

    again = run(root, api)
    assert again.exit_code == 0 and len(api.requests) == 6  # nothing left to do: no request


def test_a_task_job_cannot_blindly_overwrite_the_phases_shared_record(project, api: FakeAnthropic) -> None:  # type: ignore[no-untyped-def]
    root = make(project, workflow=WORKFLOW.replace('verify: ["test -f hello.txt"]', ""))
    impl = "artifacts/greet-implement/implementation.md"
    api.script(
        turn(tool_use("CompleteTask", {"task_id": "1", "evidence": "said"})),
        finish(summary="Said hello."),
        # Job 2 rewrites the phase's implementation.md, as seed prompts tell agents to.
        turn(tool_use("Write", {"file_path": impl, "content": "# My notes\n"})),
        turn(
            tool_use("Read", {"file_path": impl}),
            tool_use("Write", {"file_path": impl, "content": "# My notes\n"}),
        ),
        turn(tool_use("CompleteTask", {"task_id": "2", "evidence": "said"})),
        finish(summary="Said goodbye."),
    )
    assert run(root, api).exit_code == 0
    blind = tool_results(api.requests[3])[0]
    assert blind["is_error"] and "has not been read" in blind["content"]
    text = (root / impl).read_text()
    assert text.startswith("# My notes\n")  # the agent's file is kept...
    assert "### Task 2: Say goodbye" in text and "Said goodbye." in text  # ...with its job's entry


def test_prompt_caching_marks_tools_system_and_latest_turn(project, api: FakeAnthropic) -> None:  # type: ignore[no-untyped-def]
    root = make(project, tasks="- [ ] 1. Only\n")
    api.script(turn(tool_use("Read", {"file_path": "specs/greet/spec.md"})), finish("partial", "stopping"))
    run(root, api)
    body = api.requests[1].body
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    marked = [b for m in body["messages"] for b in m["content"] if "cache_control" in b]
    assert marked == [body["messages"][-1]["content"][-1]]
    assert [t["name"] for t in body["tools"]] == ["Read", "Write", "Edit", "Bash", "CompleteTask", "Finish"]
    assert "You implement:\nTask 1 of specs/greet/tasks.md" in body["system"][0]["text"]


def test_failing_verify_means_no_tick_and_a_partial_job(project, api: FakeAnthropic) -> None:  # type: ignore[no-untyped-def]
    root = make(project, workflow=WORKFLOW.replace("test -f hello.txt", "echo tests failed && false"))
    api.script(
        turn(tool_use("CompleteTask", {"task_id": "1.1", "evidence": "trust me"})),
        finish(),
    )
    result = run(root, api, "--task", "1")
    assert result.exit_code == 1
    feedback = tool_results(api.requests[1])[0]
    assert (
        feedback["is_error"] and "Not ticked" in feedback["content"] and "tests failed" in feedback["content"]
    )
    assert (root / "specs/greet/tasks.md").read_text() == TASKS
    run1 = json.loads((root / "artifacts/greet-implement/1/run.json").read_text())
    assert run1["status"] == "partial" and "verify failed" in run1["reason"]
    impl = (root / "artifacts/greet-implement/implementation.md").read_text()
    assert "partial (verify failed" in impl


def test_deleting_a_task_and_writing_outside_are_refused(project, api: FakeAnthropic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = make(project)
    outside = tmp_path / "outside.txt"
    api.script(
        turn(tool_use("Read", {"file_path": "specs/greet/tasks.md"})),
        turn(
            tool_use(
                "Edit",
                {
                    "file_path": "specs/greet/tasks.md",
                    "old_string": "- [ ] 2. Say goodbye\n",
                    "new_string": "",
                },
            ),
            tool_use("Write", {"file_path": str(outside), "content": "escaped"}),
            tool_use("Write", {"file_path": "../outside.txt", "content": "escaped"}),
            tool_use("Read", {"file_path": ".git/config"}),
        ),
        finish("blocked", "cannot"),
    )
    result = run(root, api, "--task", "1")
    assert result.exit_code == 1
    results = tool_results(api.requests[2])
    assert all(r.get("is_error") for r in results)
    assert "Refused" in results[0]["content"] and "removed task 2" in results[0]["content"]
    assert (
        "outside the project" in results[1]["content"]
        or "relative to the project root" in results[1]["content"]
    )
    assert (root / "specs/greet/tasks.md").read_text() == TASKS
    assert not outside.exists()


def test_shell_edits_of_tasks_md_are_undone(project, api: FakeAnthropic) -> None:  # type: ignore[no-untyped-def]
    root = make(project)
    api.script(
        turn(
            tool_use(
                "Bash", {"command": "sed -i 's/- \\[ \\] 2. Say goodbye/- [x] 2. Said/' specs/greet/tasks.md"}
            )
        ),
        finish("partial", "stopping here"),
    )
    run(root, api, "--task", "1")
    note = tool_results(api.requests[1])[0]["content"]
    assert "tasks.md is guarded, so the runner undid those changes" in note
    assert (root / "specs/greet/tasks.md").read_text() == TASKS


@pytest.mark.parametrize(
    ("budget", "turns", "reason"),
    [
        (
            "{max_turns: 2}",
            [turn(tool_use("Read", {"file_path": f"specs/greet/{n}"})) for n in ("spec.md", "tasks.md")],
            "max_turns (2) reached",
        ),
        (
            "{max_cost_usd: 0.0000001}",
            [turn(tool_use("Read", {"file_path": "specs/greet/spec.md"}))],
            "max_cost_usd",
        ),
        (
            "{max_turns: 20}",
            [turn(tool_use("Read", {"file_path": "specs/greet/spec.md"}))] * 4,
            "stuck: the same tool call",
        ),
        (
            "{max_turns: 20}",
            [turn(tool_use("Read", {"file_path": f"specs/greet/{n}"})) for n in ("spec.md", "tasks.md") * 3],
            "stuck: two tool calls alternated",
        ),
    ],
    ids=["max-turns", "max-cost", "stuck-repeat", "stuck-alternate"],
)
def test_limits_end_the_job_partial_with_the_reason(
    project, api: FakeAnthropic, budget: str, turns: list[Turn], reason: str
) -> None:  # type: ignore[no-untyped-def]
    root = make(project, workflow=WORKFLOW.replace("{max_turns: 8}", budget), tasks="- [ ] 1. Only\n")
    api.script(*turns)
    result = run(root, api)
    assert result.exit_code == 1
    run1 = json.loads((root / "artifacts/greet-implement/1/run.json").read_text())
    assert run1["status"] == "partial" and reason in run1["reason"]
    assert len(api.requests) == len(turns)


def test_refusal_blocks_the_job_and_it_is_not_retried(project, api: FakeAnthropic) -> None:  # type: ignore[no-untyped-def]
    root = make(project, tasks="- [ ] 1. Only\n")
    api.script(turn(text("I can't help with that."), stop_reason="refusal"))
    assert run(root, api).exit_code == 1
    status = {r["job"]: r for r in json.loads(cli(root, "status", "--json").stdout)}
    assert status["greet:implement:1"]["state"] == "blocked"
    assert run(root, api).exit_code == 1
    assert len(api.requests) == 1


def test_blocked_report_in_the_seed_style_is_understood(project, api: FakeAnthropic) -> None:  # type: ignore[no-untyped-def]
    root = make(project, tasks="- [ ] 1. Only\n")
    report = "BLOCKED\n\nBlocker: the database is down\n\nWhat I tried:\n1. restart\n\nStatus: BLOCKED"
    api.script(turn(text(report)))
    run(root, api)
    run1 = json.loads((root / "artifacts/greet-implement/1/run.json").read_text())
    assert run1["status"] == "blocked" and run1["reason"] == "the database is down"


def test_api_key_never_reaches_the_shell_transcript_or_artifacts(project, api: FakeAnthropic) -> None:  # type: ignore[no-untyped-def]
    root = make(project, tasks="- [ ] 1. Only\n")
    api.script(
        turn(tool_use("Bash", {"command": "env; echo key=$ANTHROPIC_API_KEY"})),
        turn(tool_use("Write", {"file_path": "note.txt", "content": f"I saw {KEY}"})),
        finish(summary=f"the key was {KEY}"),
    )
    run(root, api)
    shell_output = tool_results(api.requests[1])[0]["content"]
    assert KEY not in shell_output and "key=\n" in shell_output + "\n"
    assert api.requests[0].headers.get("authorization") == f"Bearer {KEY}"  # the SDK did send it
    for path in (root / "artifacts").rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path


def test_secrets_the_agent_quotes_are_redacted_everywhere(project, api: FakeAnthropic) -> None:  # type: ignore[no-untyped-def]
    password = 'hunter2"quoted\\pw'  # JSON escapes both: a redaction after encoding would miss it
    root = make(
        project, tasks="- [ ] 1. Only\n", workflow=WORKFLOW.replace('verify: ["test -f hello.txt"]', "")
    )
    api.script(
        turn(tool_use("Bash", {"command": f"echo '{password}' {KEY}"})),
        turn(tool_use("CompleteTask", {"task_id": "1", "evidence": f"checked with {password} and {KEY}"})),
        finish(),
    )
    env = {"ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": KEY, "DB_PASSWORD": password}
    result = cli(root, "run", "--json", env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    for written in [result.stdout, *(p.read_text() for p in (root / "artifacts").rglob("*") if p.is_file())]:
        assert KEY not in written and password not in written and json.dumps(password)[1:-1] not in written
    run_json = json.loads((root / "artifacts/greet-implement/1/run.json").read_text())
    assert run_json["evidence"] == {"1": "checked with [REDACTED] and [REDACTED]"}


def test_unknown_tools_are_logged_once_and_skipped(project, api: FakeAnthropic) -> None:  # type: ignore[no-untyped-def]
    agent = AGENT.replace("tools: Read,", "tools: WebFetch, mcp__playwright__browser_click, Read,")
    root = make(project, agent=agent, tasks="- [ ] 1. Only\n")
    api.script(finish())
    run(root, api)
    log = (root / "artifacts/greet-implement/1/log").read_text()
    assert log.count("skipped: WebFetch, mcp__playwright__browser_click") == 1
    assert "WebFetch" not in [t["name"] for t in api.requests[0].body["tools"]]


def test_missing_key_is_a_one_line_error_before_any_request(project, api: FakeAnthropic) -> None:  # type: ignore[no-untyped-def]
    root = make(project)
    result = cli(
        root,
        "run",
        env={"ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": "", "ANTHROPIC_AUTH_TOKEN": ""},
    )
    assert result.exit_code == 2 and "set ANTHROPIC_API_KEY" in result.stderr
    assert api.requests == []


# --- every seed prompt, unchanged, as an agent definition -------------------------------------------


def seeds() -> list[Path]:
    return sorted((SHARED / "seeds").glob("*")) if SHARED.is_dir() else []


SEED_REPORTS = {
    "000": "IMPLEMENTATION COMPLETE\n\nSummary: wrote hello.txt\n\nFiles Modified:\n- hello.txt (created)\n\nStatus: READY_FOR_REVIEW",
    "004": "Done with the phase.",
}


@needs_shared
@pytest.mark.parametrize("seed", seeds(), ids=lambda p: p.name[:3])
def test_each_seed_prompt_runs_unchanged(project, api: FakeAnthropic, seed: Path) -> None:  # type: ignore[no-untyped-def]
    wf = WORKFLOW.replace("agent: dev", f"agent: agent-os/agents/{seed.name}")
    root = make(project, workflow=wf, tasks="- [ ] 1. Write hello.txt\n")
    shutil.copyfile(seed, root / "agent-os/agents" / seed.name)
    final = SEED_REPORTS.get(seed.name[:3], "All done.\n\nStatus: READY_FOR_REVIEW")
    api.script(
        turn(tool_use("Write", {"file_path": "hello.txt", "content": "hi\n"})),
        turn(text(final)),
    )
    result = run(root, api, "--notes", "keep it short")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert (root / "specs/greet/tasks.md").read_text() == "- [x] 1. Write hello.txt\n"
    system = api.requests[0].body["system"][0]["text"]
    assert "{{" not in system and "[TASK WILL BE INSERTED" not in system and "[this-spec]" not in system
    first = api.requests[0].body["messages"][0]["content"][0]["text"]
    assert "Write hello.txt" in system + first  # the task reached the agent, in the prompt or the message
    if seed.name.startswith("004"):
        assert api.requests[0].body["model"] == "claude-haiku-5-5"
        assert (
            "Your mission is to implement 1 of the Implementation Strategy defined in specs/greet" in system
        )
        assert "keep it short" in system
    if seed.name.startswith("000"):
        assert "Task 1 of specs/greet/tasks.md" in system  # in place of the orchestrator's bracket line
    assert (root / "specs/greet/tasks.md").read_bytes() != TASKS.encode()


# --- the Done-when of the agent issue: the example spec, twice ---------------------------------------


def script_for_example(steps: dict[str, list[Turn]]) -> Callable[[Recorded], Turn]:
    def answer(rec: Recorded) -> Turn:
        first = rec.body["messages"][0]["content"][0]["text"]
        job = first.split("`")[1]
        step = sum(1 for m in rec.body["messages"] if m["role"] == "assistant")
        return steps[job][step]

    return answer


SLUGIFY = """import re
import sys
import unicodedata


def slugify(text, max_length=None):
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if max_length is not None and len(slug) > max_length:
        cut = slug[:max_length]
        slug = cut.rsplit("-", 1)[0] if "-" in cut else cut
    return slug


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m slugify TEXT", file=sys.stderr)
        sys.exit(2)
    print(slugify(sys.argv[1]))
"""

SLUG_TESTS = """import subprocess
import sys

from slugify import slugify


def test_words():
    assert slugify("Hello, World!") == "hello-world"
    assert slugify("Crème Brûlée") == "creme-brulee"
    assert slugify("!!!") == ""


def test_cli():
    out = subprocess.run([sys.executable, "-m", "slugify", "Hello, World!"], capture_output=True, text=True)
    assert out.stdout.strip() == "hello-world"
"""


def test_example_spec_runs_through_the_fake_and_a_second_run_sends_nothing(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    assert cli(root, "init").exit_code == 0
    write(root, {"conftest.py": "import sys, os\nsys.path.insert(0, os.path.dirname(__file__))\n"})
    spec = "agent-os/specs/example-slugify"
    design_features = json.dumps(
        {
            "features": [
                {"id": "F1", "name": "slugify()", "status": "pending", "tasks": ["1.0"]},
                {"id": "F2", "name": "command line", "status": "pending", "tasks": ["2.0"]},
            ]
        }
    )
    api.respond_with(
        script_for_example(
            {
                "example-slugify:design": [
                    turn(tool_use("Read", {"file_path": f"{spec}/spec.md"})),
                    turn(
                        tool_use(
                            "Write",
                            {
                                "file_path": "artifacts/example-slugify-design/design.md",
                                "content": "# Design\n",
                            },
                        ),
                        tool_use(
                            "Write",
                            {
                                "file_path": "artifacts/example-slugify-design/features.json",
                                "content": design_features,
                            },
                        ),
                    ),
                    finish(summary="Designed."),
                ],
                "example-slugify:implement:1.0": [
                    turn(
                        tool_use("Write", {"file_path": "slugify.py", "content": SLUGIFY}),
                        tool_use("Write", {"file_path": "tests/test_slugify.py", "content": SLUG_TESTS}),
                    ),
                    turn(tool_use("Bash", {"command": "python -m pytest -q tests"})),
                    turn(tool_use("CompleteTask", {"task_id": "1.0", "evidence": "2 passed"})),
                    finish(summary="slugify() with tests."),
                ],
                "example-slugify:implement:2.0": [
                    turn(tool_use("CompleteTask", {"task_id": "2.0", "evidence": "test_cli passes"})),
                    finish(summary="Command line."),
                ],
                "example-slugify:review": [
                    turn(
                        tool_use(
                            "Write",
                            {
                                "file_path": "artifacts/example-slugify-review/review.md",
                                "content": "APPROVED\n",
                            },
                        )
                    ),
                    finish(summary="APPROVED"),
                ],
            }
        )
    )
    result = run(root, api)
    assert result.exit_code == 0, result.stdout + result.stderr
    tasks = (root / spec / "tasks.md").read_text()
    assert "- [ ]" not in tasks
    art = root / "artifacts"
    for rel in (
        "example-slugify-design/design.md",
        "example-slugify-design/features.json",
        "example-slugify-design/run.json",
        "example-slugify-design/transcript.jsonl",
        "example-slugify-implement/implementation.md",
        "example-slugify-implement/features.json",
        "example-slugify-implement/1.0/run.json",
        "example-slugify-implement/1.0/transcript.jsonl",
        "example-slugify-test/junit.xml",
        "example-slugify-review/review.md",
    ):
        assert (art / rel).is_file(), rel
    statuses = {
        f["id"]: f["status"]
        for f in json.loads((art / "example-slugify-implement/features.json").read_text())["features"]
    }
    assert statuses == {"F1": "done", "F2": "done"}
    sent = len(api.requests)
    again = run(root, api)
    assert again.exit_code == 0 and "nothing to do" in again.stdout
    assert len(api.requests) == sent
