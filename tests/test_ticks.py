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
