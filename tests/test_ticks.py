"""Verify results are reused only while no job may have changed files."""

from __future__ import annotations

from pathlib import Path

from runner.agents.ticks import TaskTicker
from runner.changes import files_may_change


def test_a_verify_result_lasts_until_files_may_have_changed(tmp_path: Path) -> None:
    ticker = TaskTicker(
        root=tmp_path, tasks_path=None, guarded=set(), allowed=None, verify=["echo ran >> runs"], env={}
    )

    def runs() -> int:
        return len((tmp_path / "runs").read_text().splitlines())

    assert ticker.verify()[0] and runs() == 1
    assert ticker.verify()[0] and runs() == 1  # nothing changed: reused
    with files_may_change():  # another job's Bash, say
        assert ticker.verify()[0] and runs() == 2  # verified while that command ran...
    assert ticker.verify()[0] and runs() == 3  # ...so not trusted once it has ended
    assert ticker.verify()[0] and runs() == 3


def test_a_box_ticked_by_neither_runner_nor_a_person_is_still_the_jobs_to_tick(tmp_path: Path) -> None:
    # With -j, another CLI agent's stale copy of tasks.md may show this job's task ticked (its own
    # agent's tick, say) just when the job looks, and that agent's repair takes it back after: the
    # job must tick it itself, so that the tick counts as runner's and outlives that repair.
    tasks = tmp_path / "tasks.md"
    tasks.write_text("- [ ] T001 First\n- [ ] T002 Second\n")
    events: list[str] = []
    ticker = TaskTicker(
        root=tmp_path,
        tasks_path=tasks,
        guarded={tasks},
        allowed={"T002"},
        verify=[],
        env={},
        emit=lambda kind, **f: events.append(f"{kind} {f.get('task')}"),
    )
    tasks.write_text("- [x] T001 First\n- [x] T002 Second\n")  # not by runner
    assert ticker.open_tasks() == ["T002"]
    assert ticker.complete_rest() == ["T002"]
    assert events == ["tick T002"] and ticker.ticked == ["T002"]
    assert ticker.open_tasks() == []


def test_a_read_that_catches_an_agent_rewriting_tasks_md_in_place_waits_for_the_rest(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    from runner.agents.ticks import tasks_holding
    from runner.tasks import load_tasks

    tasks, ready = tmp_path / "tasks.md", tmp_path / "ready"
    text = "- [ ] T001 First\n- [ ] T002 Second\n"
    tasks.write_text(text)
    # CLI agents saving the file as `open(path, "w").write(...)` does, over and over: each time
    # it is empty for a moment.
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import pathlib, sys, time\n"
            "while True:\n"
            "    f = open(sys.argv[1], 'w'); f.flush(); time.sleep(0.002); f.write(sys.argv[2]); f.close()\n"
            "    pathlib.Path(sys.argv[3]).touch()\n"
            "    time.sleep(0.02)\n",
            str(tasks),
            text,
            str(ready),
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        caught = False  # the race is real: a plain read catches the file empty
        while not caught and time.monotonic() < deadline:
            caught = "T002" not in {t.id for t in load_tasks(tasks).tasks}
        assert caught
        assert all("T002" in {t.id for t in tasks_holding(tasks, {"T002"}).tasks} for _ in range(300))
    finally:
        writer.kill()
        writer.wait()
