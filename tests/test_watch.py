"""`runner watch`: a real process, real file events, temporary folders.

Tests synchronise on the watcher's JSON events (`watching` means idle again) and on files its jobs
write, always with timeouts, never with fixed sleeps. To show that something ran nothing, a test
then makes a change that does run something and checks that only that ran.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import age, cli, cli_process, write
from tests.test_providers import COMMAND_WORKFLOW

PY = sys.executable
WAIT = Path(__file__).with_name("waitfile.py")


def workflow(counter: Path, *, inputs: str = '["{spec}/spec.md", "{spec}/tasks.md"]') -> str:
    """One `run:` phase per spec that appends "<spec> <first line of spec.md>" to `counter` and
    copies that line to its output; a line with "slow" makes it wait for a file named `go` next to
    the counter, one with "fail" makes it fail. It reads spec.md once: edits while it runs do not
    change what it does."""
    go = counter.with_name("go")
    run = (
        "line=$(head -n1 {spec}/spec.md) && "
        f'echo "{{name}} $line" >> {counter} && '
        f'case "$line" in *slow*) {PY} {WAIT} {go};; esac && '
        'case "$line" in *fail*) false;; esac && '
        'mkdir -p $RUNNER_ARTIFACTS && echo "$line" > $RUNNER_ARTIFACTS/out.txt'
    )
    return f"""
specs: ["specs/*"]
phases:
  build:
    inputs: {inputs}
    outputs: ["artifacts/{{name}}-build/out.txt"]
    run: '{run}'
"""


class Watcher:
    """A `runner watch --json` process whose events are read from a file."""

    def __init__(self, root: Path, folder: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.out = folder / "watch.jsonl"
        self.err = folder / "watch.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = cli_process(
                root, "watch", "--json", *args, stdout=out, stderr=err, env={**os.environ, **(env or {})}
            )

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        lines = self.out.read_text().split("\n")[:-1]  # the last line may be half-written
        events = [json.loads(line) for line in lines]
        return [e for e in events if kind is None or e["event"] == kind]

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None and not condition():
                pytest.fail(
                    f"runner watch exited ({self.proc.returncode}) waiting for {what}\n{self.output()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}\n{self.output()}")
            time.sleep(0.01)

    def idle(self, after: int = 0) -> int:
        """Wait for more than `after` `watching` events (idle again); returns how many there are."""
        self.wait(lambda: len(self.events("watching")) > after, f"watching event #{after + 1}")
        return len(self.events("watching"))

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def exit_code(self, timeout: float = 20) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"runner watch did not exit within {timeout}s\n{self.output()}")

    def output(self) -> str:
        return f"--- stdout\n{self.out.read_text()}--- stderr\n{self.err.read_text()}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def watcher(tmp_path: Path) -> Iterator[Callable[..., Watcher]]:
    started: list[Watcher] = []

    def start(root: Path, *args: str, env: dict[str, str] | None = None) -> Watcher:
        w = Watcher(root, tmp_path, *args, env=env)
        started.append(w)
        return w

    yield start
    for w in started:
        w.close()


@pytest.fixture
def counter(tmp_path: Path) -> Path:
    return tmp_path / "runs.txt"  # outside the project: the watcher does not see it


def runs(counter: Path, spec: str | None = None) -> list[str]:
    lines = counter.read_text().splitlines() if counter.exists() else []
    return [line for line in lines if spec is None or line.split(" ", 1)[0] == spec]


def ran(counter: Path, line: str) -> Callable[[], bool]:
    return lambda: line in runs(counter)


def two_specs(project, counter: Path, **kw: str):  # type: ignore[no-untyped-def]
    root = project(
        workflow(counter, **kw),
        {"specs/a/spec.md": "a1\n", "specs/a/tasks.md": "- [ ] 1. Do\n", "specs/b/spec.md": "b1\n"},
    )
    age(root)
    return root


def control(w: Watcher, root: Path, counter: Path, value: str) -> None:
    """A change that does run a job (spec b): once it ran and watch is idle again, everything
    before it has been looked at."""
    idle = len(w.events("watching"))
    (root / "specs/b/spec.md").write_text(value + "\n")
    w.wait(ran(counter, f"b {value}"), f"b to run with {value}")
    w.idle(idle)


# --- start ------------------------------------------------------------------------------------


def test_catch_up_runs_what_is_stale_then_waits_for_changes_without_retrying_failures(  # type: ignore[no-untyped-def]
    project, watcher, counter: Path
) -> None:
    root = project(
        workflow(counter),
        {"specs/a/spec.md": "a1\n", "specs/b/spec.md": "b1\n", "specs/c/spec.md": "c fail\n"},
    )
    assert cli(root, "run").exit_code == 1  # c failed
    (root / "specs/a/spec.md").write_text("a2\n")
    counter.unlink()

    w = watcher(root)
    w.idle()
    # The catch-up is `runner run`: stale jobs, and the failed one once more.
    assert sorted(runs(counter)) == ["a a2", "c c fail"]
    (watching,) = w.events("watching")
    assert watching["specs"] == 3 and watching["mode"] == "events"
    assert watching["waiting"] == [{"job": "c:build", "state": "failed"}]

    control(w, root, counter, "b2")
    assert sorted(runs(counter)) == ["a a2", "b b2", "c c fail"]  # c failed again: it waits for a change
    w.interrupt()
    assert w.exit_code() == 0


def test_a_spec_folder_dropped_into_a_missing_spec_root_runs(project, watcher, counter: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(workflow(counter))
    w = watcher(root)
    w.idle()
    write(root, {"specs/new/spec.md": "new1\n"})
    w.wait(ran(counter, "new new1"), "the new spec to run")
    assert w.idle(1) == 2


# --- saves --------------------------------------------------------------------------------------


def save_in_place(path: Path, text: str) -> None:
    with open(path, "r+") as f:
        f.truncate(0)
        f.write(text)


def save_by_rename_over(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.12345.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_by_renaming_away(path: Path, text: str) -> None:
    """vim's default: probe with 4913, rename the file to a backup, write a new one, drop the backup."""
    probe = path.with_name("4913")
    probe.touch()
    probe.unlink()
    backup = path.with_name(path.name + "~")
    os.rename(path, backup)
    path.write_text(text)
    backup.unlink()


@pytest.mark.parametrize("save", [save_in_place, save_by_rename_over, save_by_renaming_away])
def test_each_way_of_saving_runs_the_job_once(project, watcher, counter: Path, save) -> None:  # type: ignore[no-untyped-def]
    root = two_specs(project, counter)
    w = watcher(root)
    w.idle()
    save(root / "specs/a/spec.md", "a2\n")
    w.wait(ran(counter, "a a2"), "a to run after the save")
    control(w, root, counter, "b2")
    assert runs(counter, "a") == ["a a1", "a a2"]
    assert (root / "artifacts/a-build/out.txt").read_text() == "a2\n"


def test_a_burst_of_edits_gives_one_replan(project, watcher, counter: Path) -> None:  # type: ignore[no-untyped-def]
    root = two_specs(project, counter)
    w = watcher(root, "--debounce", "1000")
    w.idle()
    for i in range(2, 32):  # an agent or a formatter rewriting the file, every few milliseconds
        save_in_place(root / "specs/a/spec.md", f"a{i}\n")
        (root / "specs/a/tasks.md").write_text(f"- [ ] 1. Do it {i}\n")
        time.sleep(0.005)
    w.wait(ran(counter, "a a31"), "a to run with the last edit")
    control(w, root, counter, "b2")
    assert runs(counter, "a") == ["a a1", "a a31"]
    assert len(w.events("plan")) == 3  # catch-up, the burst, the control change


def test_unrelated_ignored_and_litter_files_run_nothing(project, watcher, counter: Path) -> None:  # type: ignore[no-untyped-def]
    root = two_specs(project, counter)
    write(root, {".gitignore": "build/\n", "README.md": "x"})
    w = watcher(root)
    w.idle()
    write(
        root,
        {
            "README.md": "changed",
            "notes/todo.md": "x",
            "specs/a/notes.md": "not an input",
            "specs/a/build/out.o": "ignored by .gitignore",
            "specs/a/.spec.md.swp": "vim",
            "specs/a/spec.md~": "backup",
            "specs/a/#spec.md#": "emacs",
            "specs/a/.#spec.md": "emacs lock",
            "specs/a/4913": "vim probe",
            "specs/a/x.tmp": "temp",
            "artifacts/a-build/extra.txt": "an artifact",
            "artifacts/a-build/out.txt": "an output rewritten",
        },
    )
    os.utime(root / "specs/a/spec.md")  # touch
    control(w, root, counter, "b2")
    assert runs(counter, "a") == ["a a1"]


# --- own writes ------------------------------------------------------------------------------------

TICK = "import sys; p = sys.argv[1]; t = open(p).read(); open(p, 'w').write(t.replace('[ ]', '[x]', 1))"


def test_own_ticks_and_artifacts_run_nothing_but_a_job_reading_them_runs_once(  # type: ignore[no-untyped-def]
    project, watcher, counter: Path, tmp_path: Path
) -> None:
    tick = tmp_path / "tick.py"
    tick.write_text(TICK)
    # build ticks a task in its own input tasks.md and writes extra artifacts; report reads build's output.
    build = workflow(counter).replace(
        "mkdir -p $RUNNER_ARTIFACTS &&",
        f"{PY} {tick} {{spec}}/tasks.md && mkdir -p $RUNNER_ARTIFACTS && date > $RUNNER_ARTIFACTS/notes.txt &&",
    )
    report = f"""
  report:
    inputs: ["artifacts/{{name}}-build/out.txt"]
    outputs: ["artifacts/{{name}}-report/out.txt"]
    run: 'echo "{{name}} report" >> {counter} && mkdir -p $RUNNER_ARTIFACTS && cp artifacts/{{name}}-build/out.txt $RUNNER_ARTIFACTS/'
"""
    wf = build + report
    root = project(
        wf,
        {
            "specs/a/spec.md": "a1\n",
            "specs/a/tasks.md": "- [ ] 1. One\n- [ ] 2. Two\n",
            "specs/b/spec.md": "b1\n",
        },
    )
    age(root)
    w = watcher(root)
    w.idle()
    assert runs(counter, "a") == ["a a1", "a report"]
    assert (root / "specs/a/tasks.md").read_text() == "- [x] 1. One\n- [ ] 2. Two\n"

    (root / "specs/a/spec.md").write_text("a2\n")
    w.wait(ran(counter, "a a2"), "a to run again")
    control(w, root, counter, "b2")
    # The second tick and the artifacts changed no signature: nothing ran again by itself.
    assert runs(counter, "a") == ["a a1", "a report", "a a2", "a report"]
    assert (root / "specs/a/tasks.md").read_text() == "- [x] 1. One\n- [x] 2. Two\n"


def test_own_ticks_and_artifacts_of_an_agent_make_no_model_requests(project, watcher, counter: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("runner.agents.job")
    from tests.fakeapi import FakeAnthropic, tool_use, turn

    def answer(request: Any) -> Any:
        task = re.search(r"Task (\S+) of", request.body["system"][0]["text"])
        assert task is not None
        if len(request.body["messages"]) == 1:
            return turn(tool_use("CompleteTask", {"task_id": task.group(1), "evidence": "done"}))
        return turn(tool_use("Finish", {"status": "done", "summary": "Done."}))

    wf = """
specs: ["specs/*"]
phases:
  implement:
    agent: dev
    each: task
    inputs: ["{spec}/tasks.md", "{spec}/spec.md"]
    outputs: ["artifacts/{name}-implement/implementation.md"]
"""
    agent = "---\nname: dev\ntools: Read, CompleteTask, Finish\n---\nYou implement:\n{{task}}\n"
    root = project(
        wf,
        {
            "specs/a/spec.md": "Greet.",
            "specs/a/tasks.md": "- [ ] 1. Say hello\n- [ ] 2. Say goodbye\n",
            "agent-os/agents/dev.md": agent,
        },
    )
    age(root)
    with FakeAnthropic(min_cache_tokens=0) as api:
        api.respond_with(answer)
        w = watcher(root, env=api.env())
        w.idle()
        assert len(api.requests) == 4  # two tasks, two turns each
        assert (root / "specs/a/tasks.md").read_text() == "- [x] 1. Say hello\n- [x] 2. Say goodbye\n"
        # The ticks and artifacts were changes too, and were planned before this one: had they
        # started a job, it would have run by the time task 3 is done.
        idle = len(w.events("watching"))
        with open(root / "specs/a/tasks.md", "a") as f:
            f.write("- [ ] 3. Wave\n")
        w.wait(lambda: len(w.events("watching")) > idle and len(api.requests) >= 6, "task 3 to run")
        assert len(api.requests) == 6
        assert [e["job"] for e in w.events("start")] == ["a:implement:1", "a:implement:2", "a:implement:3"]


# --- busy ---------------------------------------------------------------------------------------


def test_queue_mode_lets_the_running_job_finish_then_runs_it_again(project, watcher, counter: Path) -> None:  # type: ignore[no-untyped-def]
    root = two_specs(project, counter)
    w = watcher(root)
    w.idle()
    (root / "specs/a/spec.md").write_text("a2 slow\n")
    w.wait(ran(counter, "a a2 slow"), "the slow run to start")
    (root / "specs/a/spec.md").write_text("a3 slow\n")
    time.sleep(0.3)  # not synchronisation: time in which a wrong restart would show
    assert runs(counter, "a") == ["a a1", "a a2 slow"]
    (counter.with_name("go")).touch()
    w.wait(ran(counter, "a a3 slow"), "a to run again after the first run")
    w.idle(1)
    finishes = [(e["job"], e["status"]) for e in w.events("finish")]
    assert finishes == [("a:build", "done"), ("b:build", "done"), ("a:build", "done"), ("a:build", "done")]
    assert (root / "artifacts/a-build/out.txt").read_text() == "a3 slow\n"


def test_restart_mode_cancels_the_changed_job_and_starts_it_again(project, watcher, counter: Path) -> None:  # type: ignore[no-untyped-def]
    root = two_specs(project, counter)
    w = watcher(root, "--on-busy", "restart")
    w.idle()
    (root / "specs/a/spec.md").write_text("a2 slow\n")
    w.wait(ran(counter, "a a2 slow"), "the slow run to start")
    (root / "specs/a/spec.md").write_text("a3 slow\n")
    w.wait(ran(counter, "a a3 slow"), "the restarted run")
    (counter.with_name("go")).touch()
    w.idle(1)
    (restart,) = w.events("restart")
    assert restart["job"] == "a:build" and restart["reason"] == "input specs/a/spec.md changed"
    finishes = [(e["job"], e["status"]) for e in w.events("finish") if e["job"] == "a:build"]
    assert finishes == [("a:build", "done"), ("a:build", "cancelled"), ("a:build", "done")]
    assert (root / "artifacts/a-build/out.txt").read_text() == "a3 slow\n"


def test_restart_mode_starts_again_a_cli_agent_whose_task_edit_was_undone(
    project, watcher, counter: Path
) -> None:  # type: ignore[no-untyped-def]
    # The edit that calls for the restart is undone when the cancelled CLI agent's changes to
    # tasks.md are repaired (nothing tells it from the agent's): the job is where it was, but it
    # was cancelled, not finished, so it must run again.
    go = counter.with_name("go")
    agent = f"import sys; sys.stdin.read(); open({str(counter)!r}, 'a').write('start\\n')"
    wf = COMMAND_WORKFLOW.replace(f"{PY} agent.py", f"{PY} agent.py && {PY} {WAIT} {go}")
    wf = wf.replace('    verify: ["test -f hello.txt"]\n', "")
    tasks = "- [ ] 1. Write hello\n"
    root = project(
        wf, {"specs/a/tasks.md": tasks, "agent-os/agents/dev.md": "Do:\n{{task}}", "agent.py": agent}
    )
    w = watcher(root, "--on-busy", "restart")
    w.wait(lambda: runs(counter) == ["start"], "the agent to start")
    (root / "specs/a/tasks.md").write_text("- [ ] 1. Write hello and bye\n")
    w.wait(lambda: len(w.events("restart")) == 1, "the restart")
    w.wait(lambda: runs(counter) == ["start", "start"], "the agent to start again")
    go.touch()
    w.idle()
    finishes = [e["status"] for e in w.events("finish")]
    assert finishes == ["cancelled", "done"], w.output()
    assert (root / "specs/a/tasks.md").read_text() == "- [x] 1. Write hello\n"


# --- lock, Ctrl-C, errors ------------------------------------------------------------------------


def test_a_second_runner_in_the_project_is_refused_with_the_holder(project, watcher, counter: Path) -> None:  # type: ignore[no-untyped-def]
    root = two_specs(project, counter)
    w = watcher(root)
    w.idle()
    for command in ("watch", "run"):
        second = cli_process(root, command)
        _out, err = second.communicate(timeout=20)
        assert second.returncode == 2, err
        assert f"pid {w.proc.pid}" in err and "runner -C" in err and "watch" in err and "in use by" in err


def test_ctrl_c_when_idle_exits_0_and_releases_the_lock(project, watcher, counter: Path) -> None:  # type: ignore[no-untyped-def]
    root = two_specs(project, counter)
    w = watcher(root)
    w.idle()
    began = time.monotonic()
    w.interrupt()
    assert w.exit_code() == 0
    assert time.monotonic() - began < 5
    assert cli(root, "run").exit_code == 0


def test_first_ctrl_c_lets_the_running_job_finish_and_starts_nothing_new(
    project, watcher, counter: Path
) -> None:  # type: ignore[no-untyped-def]
    root = two_specs(project, counter)
    w = watcher(root)
    w.idle()
    (root / "specs/a/spec.md").write_text("a2 slow\n")
    w.wait(ran(counter, "a a2 slow"), "the slow run to start")
    w.interrupt()
    w.wait(lambda: any("Ctrl-C again" in e["message"] for e in w.events("note")), "the stopping message")
    (root / "specs/b/spec.md").write_text("b2\n")  # would run, were watch not stopping
    (counter.with_name("go")).touch()
    assert w.exit_code() == 0, w.output()
    assert runs(counter) == ["a a1", "b b1", "a a2 slow"]
    assert (root / "artifacts/a-build/out.txt").read_text() == "a2 slow\n"
    assert cli(root, "run").exit_code == 0  # the lock was released


def test_a_stop_counts_the_job_it_kept_from_starting(project, watcher, counter: Path) -> None:  # type: ignore[no-untyped-def]
    # Both slow, one at a time: whichever starts first waits for `go`, the other for a free slot.
    root = project(workflow(counter), {"specs/a/spec.md": "a1 slow\n", "specs/b/spec.md": "b1 slow\n"})
    w = watcher(root, "-j", "1")
    w.wait(lambda: len(runs(counter)) == 1, "the first slow run to start")
    w.interrupt()
    w.wait(lambda: any("Ctrl-C again" in e["message"] for e in w.events("note")), "the stopping message")
    (counter.with_name("go")).touch()
    assert w.exit_code() == 0, w.output()
    assert len(runs(counter)) == 1
    assert w.events("summary")[-1]["counts"] == {"done": 1, "skipped": 1}, w.output()


def test_second_ctrl_c_cancels_the_running_job_and_exits_130(project, watcher, counter: Path) -> None:  # type: ignore[no-untyped-def]
    root = two_specs(project, counter)
    w = watcher(root)
    w.idle()
    (root / "specs/a/spec.md").write_text("a2 slow\n")
    w.wait(ran(counter, "a a2 slow"), "the slow run to start")
    began = time.monotonic()
    w.interrupt()
    w.wait(lambda: any("Ctrl-C again" in e["message"] for e in w.events("note")), "the stopping message")
    w.interrupt()
    assert w.exit_code() == 130, w.output()
    assert time.monotonic() - began < 10
    assert [e["status"] for e in w.events("finish")][-1] == "cancelled"
    status = {row["job"]: row for row in json.loads(cli(root, "status", "--json").stdout)}
    assert status["a:build"]["state"] == "stale" and status["a:build"]["last_run"]["status"] == "cancelled"


def test_bad_input_at_the_start_is_an_error_exit_2(project, counter: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(workflow(counter), {"specs/a/spec.md": "a1\n"})
    unknown = cli_process(root, "watch", "nope")
    _out, err = unknown.communicate(timeout=20)
    assert unknown.returncode == 2 and "no spec named 'nope'" in err
    (root / "workflows/w.yaml").write_text("phases: [oops\n")
    broken = cli_process(root, "watch")
    _out, err = broken.communicate(timeout=20)
    assert broken.returncode == 2 and "w.yaml:" in err and len(err.splitlines()) == 1


def test_a_broken_workflow_is_reported_and_watching_goes_on(project, watcher, counter: Path) -> None:  # type: ignore[no-untyped-def]
    root = two_specs(project, counter)
    w = watcher(root)
    idle = w.idle()
    good = (root / "workflows/w.yaml").read_text()
    (root / "workflows/w.yaml").write_text(good.replace("phases:", "phases: [oops"))
    w.wait(lambda: len(w.events("error")) == 1, "the workflow error")
    (error,) = w.events("error")
    assert "w.yaml:" in error["message"] and "\n" not in error["message"]
    idle = w.idle(idle)
    assert w.events("watching")[-1]["error"] == error["message"]  # idle, but not healthy
    # Fixed, with a changed command: the phase's settings changed, so every job runs again.
    (root / "workflows/w.yaml").write_text(good.replace("head -n1", "head -n 1"))
    w.wait(lambda: len(runs(counter)) == 4, "both jobs to run with the fixed workflow")
    idle = w.idle(idle)
    assert w.events("watching")[-1]["error"] is None
    # The same mistake made again is reported again.
    (root / "workflows/w.yaml").write_text(good.replace("phases:", "phases: [oops"))
    w.wait(lambda: len(w.events("error")) == 2, "the workflow error, again")
    assert w.proc.poll() is None


def task_agent_workflow(command: str) -> str:
    """A workflow of one phase whose CLI agent, per task group, runs `command`."""
    return f"""
specs: ["specs/*"]
phases:
  build:
    agent: dev
    each: task
    provider: command
    command: 'cat > /dev/null && {command}'
    inputs: ["{{spec}}/spec.md"]
    outputs: ["artifacts/{{name}}-build/implementation.md"]
"""


def test_a_task_group_after_a_failed_one_waits_with_it_for_a_change(project, watcher, counter: Path) -> None:  # type: ignore[no-untyped-def]
    fails_on_1 = (
        f'echo "$RUNNER_TASK" >> {counter} && (grep -q fixed {{spec}}/spec.md || test "$RUNNER_TASK" != 1)'
    )
    wf = task_agent_workflow(fails_on_1)
    tasks = "- [ ] 1. Do\n- [ ] 2. Then\n"
    root = project(
        wf, {"specs/a/spec.md": "a", "specs/a/tasks.md": tasks, "agent-os/agents/dev.md": "Do {{task}}"}
    )
    w = watcher(root)
    idle = w.idle()
    assert runs(counter) == ["1"]  # 2 waits for 1, as in `runner run`, and not only in the first plan
    assert [(e["job"], e["status"]) for e in w.events("finish")] == [
        ("a:build:1", "failed"),
        ("a:build:2", "skipped"),
    ]
    write(root, {"specs/a/spec.md": "fixed"})
    w.wait(ran(counter, "2"), "task 2 to run once task 1 is done")
    w.idle(idle)
    assert runs(counter) == ["1", "1", "2"]


def test_a_spec_with_an_unreadable_tasks_md_waits_and_the_others_run(project, watcher, counter: Path) -> None:  # type: ignore[no-untyped-def]
    wf = task_agent_workflow(f'echo "{{name}} {{task}}" >> {counter}')
    task = "- [ ] 1. Do\n"
    files = {"specs/a/tasks.md": task, "specs/b/tasks.md": task, "agent-os/agents/dev.md": "Do {{task}}"}
    root = project(wf, {**files, "specs/a/spec.md": "a", "specs/b/spec.md": "b"})
    w = watcher(root)
    idle = w.idle()
    assert sorted(runs(counter)) == ["a 1", "b 1"]
    (root / "specs/a/tasks.md").write_bytes(b"- [x] 1. Do\n- [ ] 2. Caf\xe9\n")
    w.wait(lambda: len(w.events("error")) == 1, "the error")
    (error,) = w.events("error")
    assert error["message"].startswith("specs/a/tasks.md:2:13: not UTF-8 text"), error
    assert error["message"].endswith("(that spec waits until it is fixed; the others run)")
    idle = w.idle(idle)
    write(root, {"specs/b/tasks.md": "- [x] 1. Do\n- [ ] 2. More\n"})
    w.wait(ran(counter, "b 2"), "b's new task to run")
    idle = w.idle(idle)
    assert len(w.events("error")) == 1  # not repeated at every plan
    write(root, {"specs/a/tasks.md": "- [x] 1. Do\n- [ ] 2. Café\n"})
    w.wait(ran(counter, "a 2"), "a's new task to run once the file is fixed")
    w.idle(idle)
    assert sorted(runs(counter)) == ["a 1", "a 2", "b 1", "b 2"]


def test_inputs_outside_the_spec_folders_are_watched(project, watcher, counter: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(
        workflow(counter, inputs='["{spec}/spec.md", "CONSTITUTION.md", "standards/**/*.md"]'),
        {"specs/a/spec.md": "a1\n", "CONSTITUTION.md": "c1", "standards/code/style.md": "s1"},
    )
    age(root)
    w = watcher(root)
    w.idle()
    (root / "CONSTITUTION.md").write_text("c2")
    w.wait(lambda: len(runs(counter)) == 2, "a run after CONSTITUTION.md changed")
    w.idle(1)
    write(root, {"standards/new/naming.md": "n1"})
    w.wait(lambda: len(runs(counter)) == 3, "a run after a new standards file")


def test_poll_mode_sees_saves_too(project, watcher, counter: Path) -> None:  # type: ignore[no-untyped-def]
    root = two_specs(project, counter)
    w = watcher(root, "--poll")
    w.idle()
    assert w.events("watching")[0]["mode"] == "poll"
    save_by_renaming_away(root / "specs/a/spec.md", "a2\n")
    w.wait(ran(counter, "a a2"), "a to run after the save")


# --- in-process: what matters, and when the OS watcher gives out ---------------------------------


def test_which_changed_paths_matter(project) -> None:  # type: ignore[no-untyped-def]
    from runner.ignore import IgnoreRules
    from runner.project import Project
    from runner.state import State
    from runner.watch import interest

    wf = """
specs: ["specs/*", "docs/specs/*"]
phases:
  design:
    run: "true"
    inputs: ["{spec}/spec.md", "{spec}/gen/*.json", "CLAUDE.md", "artifacts/{name}-plan/plan.md"]
"""
    files = {"specs/a/spec.md": "x", "docs/index.md": "x", ".gitignore": "artifacts/\nbuild/\ngen/\n"}
    root = project(wf, files)
    what = interest(Project(root, State(None, root)))
    ignore = IgnoreRules(root)

    def matters(rel: str, is_dir: bool = False) -> bool:
        return what.matters(rel, is_dir, ignore)

    assert matters("specs/a/spec.md") and matters("specs/a/notes.md") and matters("specs/b", True)
    assert matters("CLAUDE.md") and matters("workflows/w.yaml") and matters("agent-os/agents/dev.md")
    # Declared inputs, though .gitignore (and the artifacts rule) would hide them:
    assert matters("artifacts/a-plan/plan.md") and matters("specs/a/gen/api.json")
    assert not matters("specs/a/gen/notes.txt") and not matters("other/a/gen/api.json")
    assert matters("docs") and matters("docs/specs", True)  # on the way to a spec root yet to exist
    for rel in (
        "README.md",
        "src/main.py",
        "artifacts/a-design/run.json",
        "specs/a/build/x.o",
        "specs/a/.spec.md.swp",
        "specs/a/.spec.md.swx",
        "specs/a/spec.md~",
        "specs/a/.#spec.md",
        "specs/a/#spec.md#",
        "specs/a/4913",
        "specs/a/spec.md.tmp",
        "specs/a/.spec.md.1234.tmp",
        ".runner/state.db",
        ".git/index",
    ):
        assert not matters(rel), rel
    assert ("specs", True) in what.folders and ("", False) in what.folders
    assert ("docs", False) in what.folders and ("artifacts", True) not in what.folders  # not there yet


class Collector:
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.said: list[str] = []
        self.changed = threading.Event()

    def on_event(self, rel: str, is_dir: bool) -> None:
        self.paths.append(rel)
        self.changed.set()

    def say(self, message: str) -> None:
        self.said.append(message)


def test_out_of_inotify_watches_falls_back_to_polling_and_says_so_once(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from watchdog.observers import Observer

    from runner.watch import Watches

    def no_more_watches(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(Observer, "schedule", no_more_watches)
    (tmp_path / "specs").mkdir()
    seen = Collector()
    watches = Watches(tmp_path, seen.on_event, seen.say, lambda: None, poll=False)
    try:
        watches.update(frozenset({("specs", True), ("", False)}))
        watches.update(frozenset({("specs", True), ("", False), ("specs", False)}))
        assert watches.polling
        assert len(seen.said) == 1 and "polling" in seen.said[0] and "inotify watch limit" in seen.said[0]
        (tmp_path / "specs/spec.md").write_text("x")
        assert seen.changed.wait(10) and "specs/spec.md" in seen.paths
    finally:
        watches.close()


def test_lost_events_ask_for_a_rescan_and_a_failing_watcher_gives_way_to_polling(tmp_path: Path) -> None:
    from runner.watch import Watches

    seen = Collector()
    woken = threading.Event()
    watches = Watches(tmp_path, seen.on_event, seen.say, woken.set, poll=False)
    log = logging.getLogger("watchdog.observers.inotify_c")  # where watchdog reports both
    try:
        assert not watches.recover()
        for _ in range(2):
            log.warning("Inotify queue overflowed; filesystem events were lost")
            assert woken.wait(5) and watches.recover()
            woken.clear()
        assert len(seen.said) == 1 and "lost" in seen.said[0] and "rescanning" in seen.said[0]
        log.error("Unable to rebuild recursive inotify watches below %r", "x")
        assert woken.wait(5) and watches.recover() and watches.polling
        assert len(seen.said) == 2 and "polling" in seen.said[1]
    finally:
        watches.close()


# --- the live view --------------------------------------------------------------------------------


def screen(output: str) -> list[str]:
    """What a terminal shows after `output`: enough of one for \\n, \\r, cursor-up and clear-below."""
    lines, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[(\d*)([AJ])|(\r)|(\n)|([^\x1b\r\n]+)", output):
        count, code, cr, nl, text = token
        if code == "A":
            row -= int(count or 1)
        elif code == "J":
            lines[row] = lines[row][:col]
            del lines[row + 1 :]
        elif cr:
            col = 0
        elif nl:
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        else:
            lines[row] = lines[row][:col] + text
            col += len(text)
    return lines


def test_the_live_view_shows_a_line_per_job_and_a_summary_then_clears(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import io

    from runner.display import Console

    monkeypatch.setenv("COLUMNS", "160")  # the view cuts its lines to the terminal's width
    out = io.StringIO()
    console = Console(out, live=True)
    try:
        console(
            "plan", jobs=[{"job": "auth:implement:1.2", "reasons": []}, {"job": "auth:test", "reasons": []}]
        )
        console("start", job="auth:implement:1.2", position=1, total=2, model="claude-x", agent="dev")
        console("start", job="auth:test", position=2, total=2, model=None, agent=None)
        console("turn", job="auth:implement:1.2", turn=3, tokens=12100, cost_usd=0.02)
        shown = screen(out.getvalue())
        assert shown[0].startswith("> auth:implement:1.2") and "dev · claude-x [1/2]" in shown[0]
        assert re.fullmatch(r"> auth:test +run \[2/2\]", shown[1])  # a `run:` job counts, and shows, too
        assert re.fullmatch(r"> auth  implement  1\.2  turn 3 · 12\.1k tokens · \$0\.020 · 0\.\ds", shown[2])
        assert re.fullmatch(r"> auth  test       -    0\.\ds", shown[3])
        assert shown[4] == "2 running"

        console("finish", job="auth:test", status="failed", reason="exit 1", seconds=0.5, turns=0, tokens=0)
        shown = screen(out.getvalue())
        assert shown[2].startswith("x auth:test") and "failed" in shown[2] and "exit 1" in shown[2]
        assert shown[-2] == "x auth  test       -    failed · 0.5s" and shown[-1] == "1 running · 1 failed"

        console(
            "finish", job="auth:implement:1.2", status="done", seconds=2, turns=4, tokens=20000, cost_usd=0.03
        )
        console("summary", counts={"failed": 1, "done": 1})
        console("watching", specs=1, mode="events", waiting=[{"job": "auth:test", "state": "failed"}])
        shown = screen(out.getvalue())
        assert shown[-1] == (
            "watching 1 spec for changes · 1 job failed or blocked, waiting for a change"
            " · 1 done, 1 failed · 20.0k tokens · $0.030"
        )
        assert shown[-3] == "+ auth  implement  1.2  done · 4 turns · 20.0k tokens · $0.030 · 2.0s"
    finally:
        console.close()
    shown = screen(out.getvalue())
    assert not any(line.startswith(("> auth ", "x auth ")) for line in shown)  # the live part is gone
    assert "(Ctrl-C to stop)" in shown[-2] and shown[-1] == ""
