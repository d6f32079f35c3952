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
