"""Executing jobs: run phases, -j, dependency order, interrupts and kills (real processes)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import cli, cli_process

PY = sys.executable


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def wait_script(flag: Path) -> str:
    """A command that waits (up to 20 s) for `flag` to exist, then succeeds."""
    return f"{PY} {Path(__file__).with_name('waitfile.py')} {flag}"


def test_run_phase_gets_spec_values_environment_and_a_log(project) -> None:  # type: ignore[no-untyped-def]
    wf = """
specs: ["specs/*"]
phases:
  show:
    outputs: ["artifacts/{name}-show/env.txt"]
    run: "mkdir -p $RUNNER_ARTIFACTS && echo {spec} {name} $RUNNER_SPEC $RUNNER_SPEC_NAME $RUNNER_JOB > $RUNNER_ARTIFACTS/env.txt && echo to-the-log"
"""
    root = project(wf, {"specs/auth/spec.md": "x"})
    assert cli(root, "run").exit_code == 0
    assert (root / "artifacts/auth-show/env.txt").read_text().split() == [
        "specs/auth",
        "auth",
        "specs/auth",
        "auth",
        "auth:show",
    ]
    log = (root / "artifacts/auth-show/log").read_text()
    assert log.startswith("$ mkdir -p") and "to-the-log" in log
    run = json.loads((root / "artifacts/auth-show/run.json").read_text())
    assert run["job"] == "auth:show" and run["status"] == "done" and len(run["signature"]) == 32
    assert cli(root, "log", "auth:show").stdout == log


def test_command_that_does_not_create_its_output_fails(project) -> None:  # type: ignore[no-untyped-def]
    wf = 'specs: ["specs/*"]\nphases:\n  p:\n    outputs: ["artifacts/{name}-p/x"]\n    run: "true"\n'
    root = project(wf, {"specs/a/spec.md": "x"})
    result = cli(root, "run")
    assert result.exit_code == 1
    assert "did not create artifacts/a-p/x" in result.stdout


def test_a_result_that_cannot_be_recorded_fails_the_job_and_the_run_ends(project) -> None:  # type: ignore[no-untyped-def]
    wf = 'specs: ["specs/*"]\nphases:\n  p:\n    run: "true"\n'
    root = project(wf, {"specs/a/spec.md": "x", "artifacts/a-p/run.json/blocker": ""})  # run.json: a folder
    proc = cli_process(root, "run")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, out + err
    assert "a:p: could not record the result: IsADirectoryError" in out + err
    status = json.loads(cli(root, "status", "--json").stdout)
    assert [(r["job"], r["state"]) for r in status] == [("a:p", "failed")]


def test_failure_stops_dependants_while_other_specs_go_on(project) -> None:  # type: ignore[no-untyped-def]
    wf = """
specs: ["specs/*"]
phases:
  build:
    outputs: ["artifacts/{name}-build/ok"]
    run: "grep -q good {spec}/spec.md && mkdir -p $RUNNER_ARTIFACTS && touch $RUNNER_ARTIFACTS/ok"
  ship:
    needs: [build]
    outputs: ["artifacts/{name}-ship/ok"]
    run: "mkdir -p $RUNNER_ARTIFACTS && touch $RUNNER_ARTIFACTS/ok"
"""
    root = project(wf, {"specs/a/spec.md": "bad", "specs/b/spec.md": "good"})
    result = cli(root, "run", "--json")
    assert result.exit_code == 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    finish = {e["job"]: e for e in events if e["event"] == "finish"}
    assert finish["a:build"]["status"] == "failed"
    assert finish["a:ship"]["status"] == "skipped" and finish["a:ship"]["reason"] == "upstream a:build failed"
    assert finish["b:build"]["status"] == finish["b:ship"]["status"] == "done"
    assert events[-1] == {**events[-1], "event": "summary", "counts": {"failed": 1, "skipped": 1, "done": 2}}


MEET = """
import os, sys, time
name = sys.argv[1]
other = "b" if name == "a" else "a"
open(os.path.join("meet", name), "w").close()
deadline = time.time() + 20
while not os.path.exists(os.path.join("meet", other)) and time.time() < deadline:
    time.sleep(0.02)
sys.exit(0 if os.path.exists(os.path.join("meet", other)) else 1)
"""


def test_parallel_jobs_overlap_with_j2_and_upstream_comes_first(project) -> None:  # type: ignore[no-untyped-def]
    # Each build announces itself, then waits for the other: both can only succeed if they run at once.
    wf = f"""
specs: ["specs/*"]
phases:
  build:
    outputs: ["artifacts/{{name}}-build/ok"]
    run: "{PY} meet.py {{name}} && mkdir -p $RUNNER_ARTIFACTS && touch $RUNNER_ARTIFACTS/ok"
  after:
    needs: [build]
    outputs: ["artifacts/{{name}}-after/ok"]
    run: "test -e artifacts/{{name}}-build/ok && mkdir -p $RUNNER_ARTIFACTS && touch $RUNNER_ARTIFACTS/ok"
"""
    root = project(wf, {"specs/a/spec.md": "x", "specs/b/spec.md": "x", "meet.py": MEET, "meet/.keep": ""})
    result = cli(root, "run", "-j", "2", "--json")
    assert result.exit_code == 0, result.stdout
    events = [json.loads(line) for line in result.stdout.splitlines()]
    order = [(e["event"], e["job"]) for e in events if e["event"] in ("start", "finish")]
    assert [j for kind, j in order if kind == "start"][:2] == ["a:build", "b:build"]
    for spec in "ab":
        assert order.index(("finish", f"{spec}:build")) < order.index(("start", f"{spec}:after"))


def test_killed_runner_leaves_no_half_written_output_and_reruns(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    started = tmp_path / "started"
    go = tmp_path / "go"
    wf = f"""
specs: ["specs/*"]
phases:
  slow:
    outputs: ["artifacts/{{name}}-slow/out.txt"]
    run: "mkdir -p $RUNNER_ARTIFACTS && printf HALF >> $RUNNER_ARTIFACTS/out.txt && echo $$ > {started} && {wait_script(go)} && printf FULL >> $RUNNER_ARTIFACTS/out.txt"
"""
    root = project(wf, {"specs/a/spec.md": "x"})
    proc = cli_process(root, "run")
    assert wait_for(lambda: started.exists() and started.read_text().strip() != "")
    child = int(started.read_text())
    os.kill(proc.pid, signal.SIGKILL)
    os.killpg(child, signal.SIGKILL)  # the machine went down: the command dies too
    proc.wait(timeout=10)
    assert (root / "artifacts/a-slow/out.txt").read_text() == "HALF"

    status = cli(root, "status", "--json")
    (row,) = json.loads(status.stdout)
    assert row["state"] == "stale" and row["reasons"] == ["its last run was interrupted"]

    go.touch()
    result = cli(root, "run")
    assert result.exit_code == 0, result.stdout
    assert "a:slow was interrupted last time" in result.stdout
    # Had the half-written file survived, the rerun would have appended to it: HALFHALFFULL.
    assert (root / "artifacts/a-slow/out.txt").read_text() == "HALFFULL"


def test_first_ctrl_c_lets_the_running_job_finish_and_starts_nothing_new(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    started, go = tmp_path / "started", tmp_path / "go"
    wf = f"""
specs: ["specs/*"]
phases:
  first:
    outputs: ["artifacts/{{name}}-first/ok"]
    run: "touch {started} && {wait_script(go)} && mkdir -p $RUNNER_ARTIFACTS && touch $RUNNER_ARTIFACTS/ok"
  second:
    needs: [first]
    outputs: ["artifacts/{{name}}-second/ok"]
    run: "mkdir -p $RUNNER_ARTIFACTS && touch $RUNNER_ARTIFACTS/ok"
"""
    root = project(wf, {"specs/a/spec.md": "x"})
    output = tmp_path / "out.txt"
    proc = cli_process(root, "run", stdout=output.open("w"))
    assert wait_for(started.exists)
    proc.send_signal(signal.SIGINT)
    assert wait_for(lambda: "Ctrl-C again" in output.read_text())
    go.touch()
    proc.wait(timeout=20)
    assert proc.returncode == 130, output.read_text()
    assert (root / "artifacts/a-first/ok").exists()
    assert not (root / "artifacts/a-second").exists()
    assert cli(root, "run").exit_code == 0  # the lock was released; the rest runs now
    assert (root / "artifacts/a-second/ok").exists()


def test_second_ctrl_c_cancels_and_removes_the_partial_output(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    started = tmp_path / "started"
    wf = f"""
specs: ["specs/*"]
phases:
  slow:
    outputs: ["artifacts/{{name}}-slow/out.txt"]
    run: "mkdir -p $RUNNER_ARTIFACTS && printf HALF > $RUNNER_ARTIFACTS/out.txt && touch {started} && sleep 60"
"""
    root = project(wf, {"specs/a/spec.md": "x"})
    output = tmp_path / "out.txt"
    proc = cli_process(root, "run", stdout=output.open("w"))
    assert wait_for(started.exists)
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert wait_for(lambda: "Ctrl-C again" in output.read_text())
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)
    assert proc.returncode == 130, output.read_text()
    assert time.monotonic() - began < 10
    assert not (root / "artifacts/a-slow/out.txt").exists()
    (row,) = json.loads(cli(root, "status", "--json").stdout)
    assert row["state"] == "stale" and row["last_run"]["status"] == "cancelled"


def test_second_runner_in_the_same_project_is_refused_with_the_holder(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    started, go = tmp_path / "started", tmp_path / "go"
    wf = f"""
specs: ["specs/*"]
phases:
  slow:
    outputs: ["artifacts/{{name}}-slow/ok"]
    run: "touch {started} && {wait_script(go)} && mkdir -p $RUNNER_ARTIFACTS && touch $RUNNER_ARTIFACTS/ok"
"""
    root = project(wf, {"specs/a/spec.md": "x"})
    first = cli_process(root, "run")
    assert wait_for(started.exists)
    second = cli_process(root, "run")
    _out, err = second.communicate(timeout=20)
    assert second.returncode == 2
    assert f"pid {first.pid}" in err and "runner -C" in err and "in use by" in err
    go.touch()
    first.communicate(timeout=20)
    assert first.returncode == 0


def test_command_logs_are_redacted_and_background_children_end_with_the_job(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pidfile = tmp_path / "bg.pid"
    wf = f"""
specs: ["specs/*"]
phases:
  leak:
    outputs: ["artifacts/{{name}}-leak/ok"]
    run: "echo key=$MY_API_KEY; (sleep 60 & echo $! > {pidfile}); mkdir -p $RUNNER_ARTIFACTS && touch $RUNNER_ARTIFACTS/ok"
"""
    root = project(wf, {"specs/a/spec.md": "x"})
    secret = "sk-not-anthropic-but-secret-0123456789"
    assert cli(root, "run", env={"MY_API_KEY": secret}).exit_code == 0
    log = (root / "artifacts/a-leak/log").read_text()
    assert "key=[REDACTED]" in log and secret not in log
    pid = int(pidfile.read_text())
    assert wait_for(
        lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


def test_approve_waits_for_running_jobs_and_says_git_trouble_in_one_line(project) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    from runner.state import State

    root = project(
        'specs: ["specs/*"]\ngit: true\nphases:\n  p:\n    run: "true"\n', {"specs/a/spec.md": "x"}
    )
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    state = State.open(root)
    state.set_pending_approval("a:p", [], ["x.txt"], "runner: a")
    state.start_job("b:p", "sig", {})  # running, in this (live) process

    refused = cli_process(root, "approve", "a:p")
    _out, err = refused.communicate(timeout=30)
    assert refused.returncode == 2 and err == "runner: b:p is running; approve a:p once it has finished\n"

    state.finish_job("b:p", 1, "done")
    failed = cli_process(root, "approve", "a:p")  # x.txt does not exist: git cannot add it
    _out, err = failed.communicate(timeout=30)
    assert failed.returncode == 2 and err.startswith("runner: could not commit a:p:") and err.count("\n") == 1
    assert state.pending_approval("a:p") is not None  # still waiting


def test_state_of_another_runner_version_is_reset_only_by_a_run(project) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    root = project('specs: ["specs/*"]\nphases:\n  p:\n    run: "true"\n', {"specs/a/spec.md": "x"})
    db = root / ".runner/state.db"
    db.parent.mkdir()
    old = sqlite3.connect(db)
    old.execute("CREATE TABLE jobs_v1 (id TEXT)")
    old.execute("INSERT INTO jobs_v1 VALUES ('kept')")
    old.execute("PRAGMA user_version=1")
    old.commit()
    old.close()

    def tables() -> list[str]:
        with sqlite3.connect(db) as conn:
            return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]

    for command in (("status",), ("explain", "a:p"), ("run", "--dry-run")):
        assert cli(root, *command).exit_code == 0
        assert tables() == ["jobs_v1"], command  # reading leaves it alone
    assert cli(root, "run").exit_code == 0
    assert "jobs_v1" not in tables() and "jobs" in tables()
