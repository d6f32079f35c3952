"""The replay and command providers, through `runner run` on real projects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli, write

TASKS = """\
# Tasks

- [ ] 1. Write hello.txt
- [ ] 2. Write bye.txt
- [ ] 3. Document it
"""

REPLAY_WORKFLOW = """
specs: ["specs/*"]
phases:
  implement:
    agent: dev
    each: task
    provider: replay
    replay: "scripts/{name}-{task}.yaml"
    inputs: ["{spec}/tasks.md"]
    outputs: ["artifacts/{name}-implement/implementation.md"]
    verify: ["test -f hello.txt"]
"""

SCRIPT_1 = """
- text: "Writing the file."
  tool_use:
    - {name: Write, input: {file_path: hello.txt, content: "hello\\n"}}
- tool_use: [{name: CompleteTask, input: {task_id: "1", evidence: "hello.txt written"}}]
- tool_use: [{name: Finish, input: {status: done, summary: "Wrote hello.txt"}}]
"""


def test_replay_runs_a_script_through_the_real_loop_and_tools(project) -> None:  # type: ignore[no-untyped-def]
    root = project(
        REPLAY_WORKFLOW,
        {
            "specs/greet/tasks.md": "- [ ] 1. Write hello.txt\n",
            "agent-os/agents/dev.md": "Do {{task}}",
            "scripts/greet-1.yaml": SCRIPT_1,
        },
    )
    result = cli(root, "run")  # no API key needed
    assert result.exit_code == 0, result.stdout + result.stderr
    assert (root / "hello.txt").read_text() == "hello\n"
    assert (root / "specs/greet/tasks.md").read_text() == "- [x] 1. Write hello.txt\n"
    run = json.loads((root / "artifacts/greet-implement/1/run.json").read_text())
    assert run["status"] == "done" and run["model"] == "replay" and run["turns"] == 3 and run["cost_usd"] == 0
    log = cli(root, "log", "greet:implement:1").stdout
    assert log.startswith("job greet:implement:1 · agent dev · replay")
    assert (
        "→ Write" in log and "→ CompleteTask" in log and log.endswith("the agent ended: done\nresult: done\n")
    )


def test_a_job_short_of_its_own_output_stays_stale_though_it_ticked(project) -> None:  # type: ignore[no-untyped-def]
    workflow = REPLAY_WORKFLOW.replace(
        'outputs: ["artifacts/{name}-implement/implementation.md"]',
        'outputs: ["artifacts/{name}-implement/implementation.md", "notes/{task}.md"]',
    )
    root = project(
        workflow,
        {
            "specs/greet/tasks.md": "- [ ] 1. Write hello.txt\n",
            "agent-os/agents/dev.md": "Do {{task}}",
            "scripts/greet-1.yaml": SCRIPT_1,  # ticks task 1, but never writes notes/1.md
        },
    )
    assert cli(root, "run").exit_code == 1
    run = json.loads((root / "artifacts/greet-implement/1/run.json").read_text())
    assert run["status"] == "partial" and run["reason"] == "reported done but did not write notes/1.md"
    assert (
        root / "specs/greet/tasks.md"
    ).read_text() == "- [x] 1. Write hello.txt\n"  # CompleteTask verified it
    status = json.loads(cli(root, "status", "--json").stdout)
    assert [(r["job"], r["state"]) for r in status] == [("greet:implement:1", "stale")]


def test_a_missing_replay_script_names_the_file(project) -> None:  # type: ignore[no-untyped-def]
    root = project(REPLAY_WORKFLOW, {"specs/greet/tasks.md": "- [ ] 1. x\n", "agent-os/agents/dev.md": "x"})
    result = cli(root, "run")
    assert result.exit_code == 1
    assert (
        "replay script not found"
        in json.loads((root / "artifacts/greet-implement/1/run.json").read_text())["reason"]
    )


DISPUTING_EDIT = """
- tool_use:
    - {name: Write, input: {file_path: hello.txt, content: "hello\\n"}}
    - {name: Read, input: {file_path: specs/greet/tasks.md}}
    - {name: Edit, input: {file_path: specs/greet/tasks.md, old_string: "  - [ ] 1.2 Write bye.txt\\n", new_string: ""}}
- tool_use: [{name: CompleteTask, input: {task_id: "1.1", evidence: "hello.txt written"}}]
- tool_use: [{name: Finish, input: {status: done, summary: "1.1 done"}}]
"""
DISPUTING_SHELL = DISPUTING_EDIT.replace(
    """    - {name: Read, input: {file_path: specs/greet/tasks.md}}
    - {name: Edit, input: {file_path: specs/greet/tasks.md, old_string: "  - [ ] 1.2 Write bye.txt\\n", new_string: ""}}""",
    """    - {name: Bash, input: {command: "sed -i '/1.2/d' specs/greet/tasks.md"}}""",
)


@pytest.mark.parametrize(
    ("script", "told"),
    [
        (DISPUTING_EDIT, "refused the agent's edit of specs/greet/tasks.md (removed task 1.2)"),
        (DISPUTING_SHELL, "undid a shell command's changes to specs/greet/tasks.md (removed task 1.2)"),
    ],
)
def test_a_task_the_agent_tried_to_remove_is_not_ticked_by_its_report_of_done(
    project, script: str, told: str
) -> None:  # type: ignore[no-untyped-def]
    tasks = "- [ ] 1. Greet\n  - [ ] 1.1 Write hello.txt\n  - [ ] 1.2 Write bye.txt\n"
    root = project(
        REPLAY_WORKFLOW,
        {
            "specs/greet/tasks.md": tasks,
            "agent-os/agents/dev.md": "Do {{task}}",
            "scripts/greet-1.yaml": script,
        },
    )
    result = cli(root, "run")
    assert (root / "specs/greet/tasks.md").read_text() == tasks.replace("[ ] 1.1", "[x] 1.1")
    run = json.loads((root / "artifacts/greet-implement/1/run.json").read_text())
    assert run["status"] == "partial", result.stdout
    assert run["reason"].startswith("left unticked: 1, 1.2: a report of done does not cover 1.2"), run[
        "reason"
    ]
    assert result.exit_code == 1
    assert f"greet:implement:1: {told}" in result.stdout  # on the terminal, as for a CLI agent


CLI_AGENT = """
import os, sys
prompt = sys.stdin.read()
assert "Write hello.txt" in prompt, prompt
open("hello.txt", "w").write("hello\\n")
path = "specs/greet/tasks.md"
text = open(path).read()
text = text.replace("- [ ] 1.", "- [x] 1.")            # its own task: kept (verify passes)
text = text.replace("- [ ] 2. Write bye.txt\\n", "")    # removing a task: restored
text = text.replace("- [ ] 3.", "- [x] 3.")            # someone else's task: reverted
text += "\\nNotes from the agent.\\n"                    # other text: kept
open(path, "w").write(text)
open(os.environ["RUNNER_REPORT"], "w").write('{"status": "done", "summary": "wrote hello.txt"}')
print("all good")
"""

COMMAND_WORKFLOW = f"""
specs: ["specs/*"]
phases:
  implement:
    agent: dev
    each: task
    provider: command
    command: "{sys.executable} agent.py"
    inputs: ["{{spec}}/tasks.md"]
    outputs: ["artifacts/{{name}}-implement/implementation.md"]
    verify: ["test -f hello.txt"]
"""


def test_command_provider_keeps_verified_own_ticks_and_restores_the_rest(project) -> None:  # type: ignore[no-untyped-def]
    root = project(
        COMMAND_WORKFLOW,
        {
            "specs/greet/tasks.md": TASKS,
            "agent-os/agents/dev.md": "Implement:\n{{task}}",
            "agent.py": CLI_AGENT,
        },
    )
    result = cli(root, "run", "--task", "1")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert (root / "specs/greet/tasks.md").read_text() == TASKS.replace(
        "- [ ] 1.", "- [x] 1."
    ) + "\nNotes from the agent.\n"
    run = json.loads((root / "artifacts/greet-implement/1/run.json").read_text())
    assert run["status"] == "done" and run["ticked"] == ["1"] and run["summary"] == "wrote hello.txt"
    log = (root / "artifacts/greet-implement/1/log").read_text()
    assert "removed task 2" in log and "ticked task" in log
    # and the terminal says so too, not only the job log
    assert (
        "greet:implement:1: the agent changed tasks.md (ticked tasks 1, 3; removed task 2; changed text "
        "outside the tasks); kept verified ticks of its own tasks, the text outside the tasks; undid the rest"
        in result.stdout
    )
    assert "all good" in (root / "artifacts/greet-implement/1/output.log").read_text()
    shown = cli(root, "log", "greet:implement:1").stdout
    assert (
        shown.startswith(log)
        and "--- the agent's output (artifacts/greet-implement/1/output.log) ---\nall good" in shown
    )


REWORDING_AGENT = """
path = "specs/greet/tasks.md"
text = open(path).read()
open(path, "w").write(text.replace("Document it", "Document it in French"))  # as a person might
open("hello.txt", "w").write("hello")
print("Status: done")
"""


def test_a_reworded_task_put_back_keeps_its_wording_in_the_log_across_runs(project) -> None:  # type: ignore[no-untyped-def]
    files = {"specs/greet/tasks.md": TASKS, "agent-os/agents/dev.md": "Implement:\n{{task}}"}
    root = project(COMMAND_WORKFLOW, {**files, "agent.py": REWORDING_AGENT})
    assert cli(root, "run", "--task", "1").exit_code == 0
    assert (root / "specs/greet/tasks.md").read_text() == TASKS.replace("- [ ] 1.", "- [x] 1.")
    write(root, {"agent.py": "open('hello.txt', 'w').write('hello')\nprint('Status: done')\n"})
    assert cli(root, "uncheck", "specs/greet/tasks.md", "1").exit_code == 0
    assert cli(root, "run", "--task", "1").exit_code == 0
    log = (root / "artifacts/greet-implement/1/log").read_text()
    # The next run (under `watch --on-busy restart`, at once) does not take the wording away.
    assert log.count("== run started ") == 2
    assert "task 3 had been reworded to: Document it in French" in log.split("== run started ")[1]


def test_log_of_a_task_group_that_does_not_exist_names_the_ones_that_do(project) -> None:  # type: ignore[no-untyped-def]
    root = project(COMMAND_WORKFLOW, {"specs/greet/tasks.md": TASKS, "agent-os/agents/dev.md": "x"})
    shown = cli(root, "log", "greet:implement:9")
    assert shown.exit_code == 2
    assert shown.stderr == (
        "runner: no task group '9' in specs/greet/tasks.md "
        "(its task jobs: greet:implement:1, greet:implement:2, greet:implement:3)\n"
    )
    assert "has no transcript or log yet" in cli(root, "log", "greet:implement:1").stderr


STALE_COPY_AGENT = """
import os, sys, time
sys.stdin.read()
path = "specs/greet/tasks.md"
text = open(path, encoding="utf-8").read().replace("- [ ] 1.", "- [x] 1.")  # read before the person's check
open("started", "w").close()
deadline = time.time() + 20
while not os.path.exists("go") and time.time() < deadline:
    time.sleep(0.02)
open("hello.txt", "w").write("hello\\n")
open(path, "w", encoding=os.environ["ENCODING"]).write(text)  # from a stale copy
print("Status: done")
"""


@pytest.mark.parametrize(
    ("encoding", "changed"),
    [("utf-8", "ticked task 1"), ("latin-1", "saved it as text that is not UTF-8")],
)
def test_a_cli_agent_writing_a_stale_copy_keeps_a_persons_check_and_utf8(  # type: ignore[no-untyped-def]
    project, encoding: str, changed: str
) -> None:
    from tests.conftest import cli_process
    from tests.test_execute import wait_for

    tasks = TASKS.replace("Document it", "Document it in the café") + "\nNotas: añadir más pruebas.\n"
    root = project(
        COMMAND_WORKFLOW,
        {
            "specs/greet/tasks.md": tasks,
            "agent-os/agents/dev.md": "Implement:\n{{task}}",
            "agent.py": STALE_COPY_AGENT,
        },
    )
    run = cli_process(root, "run", "--task", "1", env={**os.environ, "ENCODING": encoding})
    assert wait_for((root / "started").exists)
    assert cli(root, "check", "specs/greet/tasks.md", "2").exit_code == 0
    (root / "go").touch()
    out, _ = run.communicate(timeout=30)
    assert run.returncode == 0, out
    # Its own tick stands (verify passed), and the person's; every byte else is as it was, in UTF-8.
    expected = tasks.replace("- [ ] 1.", "- [x] 1.").replace("- [ ] 2.", "- [x] 2.")
    assert (root / "specs/greet/tasks.md").read_bytes() == expected.encode()
    assert (
        f"greet:implement:1: the agent changed tasks.md ({changed}); "
        "kept verified ticks of its own tasks; undid the rest\n" in out
    )
    assert cli(root, "status").exit_code == 0


RACING_AGENT = """
import os, time
task = os.environ["RUNNER_TASK"]
os.makedirs("out", exist_ok=True)
open(f"out/{task}", "w").write("made")
path = "specs/many/tasks.md"
time.sleep(0.3)  # the work; the parallel jobs' agents finish about when this one does
text = open(path).read()
open(path, "w").write(text.replace(f"- [ ] {task} ", f"- [x] {task} "))  # as `sed -i` would
print("Status: done")
"""


def test_parallel_cli_agents_ticking_their_own_boxes_keep_each_others_ticks(project) -> None:  # type: ignore[no-untyped-def]
    workflow = COMMAND_WORKFLOW.replace("agent.py", "racer.py").replace(
        'verify: ["test -f hello.txt"]', 'verify: ["test -f out/{task}"]'
    )
    tasks = "".join(f"- [ ] T00{i} [P] Make {i}\n" for i in range(1, 7))
    root = project(
        workflow,
        {"specs/many/tasks.md": tasks, "agent-os/agents/dev.md": "Do:\n{{task}}", "racer.py": RACING_AGENT},
    )
    result = cli(root, "run", "-j", "3")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert (root / "specs/many/tasks.md").read_text() == tasks.replace("[ ]", "[x]")
    assert result.stdout.count("ticked T001") == 1
    assert cli(root, "run", "--dry-run").stdout.startswith("nothing to do")


def test_a_final_message_says_its_status_on_a_line_or_in_capitals() -> None:
    from runner.agents.loop import report_from_text

    assert report_from_text("Done.\n\n**Status:** blocked\nBlocker: no key")[0] == "blocked"
    assert report_from_text("I cannot do this. Status: BLOCKED - no README template")[0] == "blocked"
    assert report_from_text("The status: blocked earlier, now fixed; all done.")[0] == "done"
    assert report_from_text("IMPLEMENTATION COMPLETE\nStatus: READY_FOR_REVIEW")[0] == "done"


def test_a_loosely_typed_report_is_read_as_meant() -> None:
    from runner.agents.loop import report_from_fields

    status, report = report_from_fields(
        {"status": "done", "summary": None, "changes": None, "concerns": "one"}
    )
    assert status == "done" and report.summary == "" and report.changes == [] and report.concerns == ["one"]
    status, report = report_from_fields(
        {"status": "finished", "changes": "src/a.py", "deviations": [1, None]}
    )
    assert status == "partial" and report.changes == ["src/a.py"] and report.deviations == ["1"]


def test_command_provider_failure_and_timeout(project) -> None:  # type: ignore[no-untyped-def]
    failing = COMMAND_WORKFLOW.replace(f"{sys.executable} agent.py", "echo nope; exit 3")
    root = project(failing, {"specs/greet/tasks.md": TASKS, "agent-os/agents/dev.md": "x"})
    cli(root, "run", "--task", "1")
    run = json.loads((root / "artifacts/greet-implement/1/run.json").read_text())
    assert run["status"] == "failed" and run["reason"].startswith("exit 3")

    slow = COMMAND_WORKFLOW.replace(f"{sys.executable} agent.py", "sleep 30").replace(
        "each: task", "each: task\n    timeout: 0.5"
    )
    root2 = project(slow, {"specs/greet/tasks.md": TASKS, "agent-os/agents/dev.md": "x"})
    (root2 / "workflows/w.yaml").write_text(slow)
    cli(root2, "run", "--task", "1", "--force")
    run = json.loads((root2 / "artifacts/greet-implement/1/run.json").read_text())
    assert run["status"] == "partial" and "timed out after 0.5 s" in run["reason"]


def test_log_renders_a_transcript_readably(tmp_path: Path) -> None:
    from runner.transcript import Transcript, render_transcript

    t = Transcript(tmp_path / "t.jsonl", secrets=["sk-ant-secret-value"])
    t.write("job", job="a:b", agent="dev", provider="anthropic", model="m")
    t.write("start", tools=["Read"])
    t.write(
        "assistant",
        turn=1,
        stop_reason="tool_use",
        content=[{"type": "text", "text": "key sk-ant-secret-value"}],
    )
    t.write("tool", name="Read", input={"file_path": "x"}, result="line1\nline2", is_error=False)
    with open(tmp_path / "t.jsonl", "a") as f:
        f.write('{"type": "assistant", "turn": 2, "cont')  # a line cut short by a kill -9
    lines = list(render_transcript(tmp_path / "t.jsonl"))
    assert lines[:2] == ["job a:b · agent dev · anthropic · m", "tools: Read"]
    assert "  [REDACTED]" not in lines and any("key [REDACTED]" in line for line in lines)
    assert '  → Read {"file_path": "x"}' in lines and "  ← line1 ⏎ line2" in lines
    assert lines[-1] == "  · (a line cut short when the job was killed)"


WAITING_AGENT = """
import os, sys, time
sys.stdin.read()
open("started", "w").close()
deadline = time.time() + 20
while not os.path.exists("go") and time.time() < deadline:
    time.sleep(0.02)
path = "specs/greet/tasks.md"
text = open(path).read()                               # by now a person has ticked task 2
open(path, "w").write(text.replace("- [ ] 1.", "- [x] 1.").replace("- [ ] 3.", "- [x] 3."))
open("hello.txt", "w").write("hi")
"""


def test_a_persons_check_during_a_cli_agent_run_is_kept(project) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import cli_process
    from tests.test_execute import wait_for

    root = project(
        COMMAND_WORKFLOW,
        {
            "specs/greet/tasks.md": TASKS,
            "agent-os/agents/dev.md": "Implement:\n{{task}}",
            "agent.py": WAITING_AGENT,
        },
    )
    (root / "agent.py").write_text(WAITING_AGENT)
    run = cli_process(root, "run", "--task", "1")
    assert wait_for((root / "started").exists)
    assert cli(root, "check", "specs/greet/tasks.md", "2").exit_code == 0
    (root / "go").touch()
    assert run.wait(timeout=30) == 0
    # Its own task: ticked (verified). The person's tick of 2: kept. The agent's tick of 3: undone.
    assert (root / "specs/greet/tasks.md").read_text() == TASKS.replace("- [ ] 1.", "- [x] 1.").replace(
        "- [ ] 2.", "- [x] 2."
    )


OVERLAPPING_AGENT = """
import json, os, sys, time
sys.stdin.read()
me, other = ("a", "b") if os.environ["RUNNER_TASK"] == "T001" else ("b", "a")


def wait_for(name):  # both jobs run at once and write their files while both run
    deadline = time.monotonic() + 20
    while not os.path.exists(name) and time.monotonic() < deadline:
        time.sleep(0.01)


open(f"{me}.started", "w").close()
wait_for(f"{other}.started")
open(f"{me}.txt", "w").write(me)
wait_for(f"{other}.txt")
changes = [f"./{me}.txt"]  # as the agent names it
open(os.environ["RUNNER_REPORT"], "w").write(json.dumps({"status": "done", "summary": me, "changes": changes}))
"""


def test_files_changed_while_other_jobs_ran_are_not_claimed_as_the_jobs_own(project) -> None:  # type: ignore[no-untyped-def]
    workflow = COMMAND_WORKFLOW.replace('    verify: ["test -f hello.txt"]\n', "")
    root = project(
        workflow,
        {
            "specs/greet/tasks.md": "- [ ] T001 [P] Write a\n- [ ] T002 [P] Write b\n",
            "agent-os/agents/dev.md": "Implement:\n{{task}}",
            "agent.py": OVERLAPPING_AGENT,
            ".gitignore": "*.started\n",
        },
    )
    for command in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "s"],
    ):
        subprocess.run(["git", *command], cwd=root, check=True)
    result = cli(root, "run", "-j", "2")
    assert result.exit_code == 0, result.stdout + result.stderr
    text = (root / "artifacts/greet-implement/implementation.md").read_text()
    assert (
        "- **Files changed:** `a.txt`\n- **Also changed while other jobs ran (this job's or theirs):** `b.txt`\n"
        in text
    )
    assert (
        "- **Files changed:** `b.txt`\n- **Also changed while other jobs ran (this job's or theirs):** `a.txt`\n"
        in text
    )


def test_parallel_task_jobs_keep_each_others_ticks(project) -> None:  # type: ignore[no-untyped-def]
    # Each job runs a shell command while its siblings tick their own boxes in the same file.
    script = """
- tool_use: [{name: Bash, input: {command: "sleep 0.4"}}]
- tool_use: [{name: CompleteTask, input: {task_id: "{task}", evidence: "done"}}]
- tool_use: [{name: Bash, input: {command: "sleep 0.4"}}]
- tool_use: [{name: Finish, input: {status: done, summary: ok}}]
"""
    ids = [f"T00{i}" for i in range(1, 6)]
    files = {
        "specs/p/tasks.md": "".join(f"- [ ] {t} [P] Part {t}\n" for t in ids),
        "agent-os/agents/dev.md": "x",
    }
    files |= {f"scripts/p-{t}.yaml": script.replace("{task}", t) for t in ids}
    root = project(REPLAY_WORKFLOW.replace('verify: ["test -f hello.txt"]', "verify: []"), files)
    result = cli(root, "run", "-j", "5")
    assert result.exit_code == 0, result.stdout
    assert (root / "specs/p/tasks.md").read_text() == "".join(f"- [x] {t} [P] Part {t}\n" for t in ids)
    for t in ids:
        run = json.loads((root / f"artifacts/p-implement/{t}/run.json").read_text())
        assert run["ticked"] == [t], (t, run["ticked"])
        assert "undid" not in (root / f"artifacts/p-implement/{t}/log").read_text()


DESIGN_WORKFLOW = """
specs: ["specs/*"]
phases:
  design:
    agent: architect
    provider: replay
    replay: "scripts/design.yaml"
    inputs: ["{spec}/spec.md"]
    outputs: ["artifacts/{name}-design/design.md", "artifacts/{name}-design/features.json"]
"""

DESIGN_SCRIPT = """
- tool_use: [{name: Write, input: {file_path: artifacts/greet-design/design.md, content: "# Design\\n"}}]
- tool_use: [{name: Finish, input: {status: done, summary: "Designed"}}]
"""


def test_a_feature_list_runner_cannot_start_is_the_agents_to_write(project) -> None:  # type: ignore[no-untyped-def]
    files = {
        "specs/greet/spec.md": "# Greet\n",
        "agent-os/agents/architect.md": "Design {{spec}}",
        "scripts/design.yaml": DESIGN_SCRIPT,  # writes design.md only
    }
    root = project(DESIGN_WORKFLOW, files)
    assert cli(root, "run").exit_code == 1
    run = json.loads((root / "artifacts/greet-design/run.json").read_text())
    assert run["status"] == "partial"
    assert run["reason"] == "reported done but did not write artifacts/greet-design/features.json"
    transcript = (root / "artifacts/greet-design/transcript.jsonl").read_text()
    assert (
        "You must write: artifacts/greet-design/design.md, artifacts/greet-design/features.json" in transcript
    )

    # With the spec's own feature list to start from, runner writes the phase's copy.
    (root / "specs/greet/features.json").write_text(
        '{"features": [{"id": "F1", "name": "hi", "status": "pending"}]}\n'
    )
    assert cli(root, "run").exit_code == 0
    assert (
        json.loads((root / "artifacts/greet-design/features.json").read_text())["features"][0]["id"] == "F1"
    )


BROKEN_FEATURES_SCRIPT = """
- tool_use:
    - {name: Write, input: {file_path: artifacts/greet-design/design.md, content: "# Design\\n"}}
    - {name: Write, input: {file_path: artifacts/greet-design/features.json, content: "{\\"features\\": [\\n  {\\"id\\": \\"F1\\",}\\n]}\\n"}}
- tool_use: [{name: Finish, input: {status: done, summary: "Designed"}}]
"""


def test_a_broken_feature_list_the_agent_wrote_is_not_done(project) -> None:  # type: ignore[no-untyped-def]
    files = {
        "specs/greet/spec.md": "# Greet\n",
        "agent-os/agents/architect.md": "Design {{spec}}",
        "scripts/design.yaml": BROKEN_FEATURES_SCRIPT,
    }
    root = project(DESIGN_WORKFLOW, files)
    assert cli(root, "run").exit_code == 1
    run = json.loads((root / "artifacts/greet-design/run.json").read_text())
    assert run["status"] == "partial"
    assert run["reason"].startswith(
        "reported done, but artifacts/greet-design/features.json:2:15: invalid JSON"
    )


SHARED_FEATURES_WORKFLOW = """
specs: ["specs/*"]
phases:
  implement:
    agent: dev
    each: task
    provider: replay
    replay: "scripts/{name}-{task}.yaml"
    inputs: ["{spec}/tasks.md"]
    outputs: ["artifacts/{name}-implement/implementation.md", "artifacts/{name}-implement/features.json"]
"""

WRITES_FEATURES = """
- tool_use: [{name: Write, input: {file_path: artifacts/greet-implement/features.json, content: "{\\"features\\": [{\\"id\\": \\"F1\\", \\"status\\": \\"done\\", \\"tasks\\": [\\"1\\"]}, {\\"id\\": \\"F2\\", \\"status\\": \\"pending\\", \\"tasks\\": [\\"2\\"]}]}\\n"}}]
- tool_use: [{name: CompleteTask, input: {task_id: "1", evidence: "ok"}}]
- tool_use: [{name: Finish, input: {status: done, summary: "one"}}]
"""

ONLY_TICKS = """
- tool_use: [{name: CompleteTask, input: {task_id: "2", evidence: "ok"}}]
- tool_use: [{name: Finish, input: {status: done, summary: "two"}}]
"""


def test_a_phase_feature_list_one_task_job_wrote_is_runners_to_update_for_the_next(project) -> None:  # type: ignore[no-untyped-def]
    root = project(
        SHARED_FEATURES_WORKFLOW,
        {
            "specs/greet/tasks.md": "- [ ] 1. One\n- [ ] 2. Two\n",
            "agent-os/agents/dev.md": "Do {{task}}",
            "scripts/greet-1.yaml": WRITES_FEATURES,
            "scripts/greet-2.yaml": ONLY_TICKS,
        },
    )
    assert cli(root, "run").exit_code == 0
    assert json.loads((root / "artifacts/greet-implement/2/run.json").read_text())["status"] == "done"
    features = json.loads((root / "artifacts/greet-implement/features.json").read_text())["features"]
    assert [f["status"] for f in features] == ["done", "done"]
