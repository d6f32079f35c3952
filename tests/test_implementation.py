from __future__ import annotations

import threading
from pathlib import Path

import pytest

from runner.errors import UserError
from runner.implementation import SECTIONS, Entry, missing_sections, render_entry, upsert_entry


def entry(task: str, **kw) -> Entry:
    fields = {
        "job_id": f"login:implement:{task}",
        "task_id": task,
        "title": f"Task title {task}",
        "status": "done",
        "files": ["src/app.py"],
        "summary": "Did the work.",
        "deviations": [],
        "limitations": [],
    }
    fields.update(kw)
    return Entry(**fields)


def test_create(tmp_path: Path) -> None:
    path = tmp_path / "artifacts" / "login-implement" / "implementation.md"
    upsert_entry(path, entry("1.0", deviations=["Used SQLite instead of Postgres"]), title="Login")
    assert path.read_text() == (
        "# Implementation: Login\n"
        "\n"
        "## Changes Made\n"
        "\n"
        "### Task 1.0: Task title 1.0\n"
        "<!-- runner: job=login:implement:1.0 -->\n"
        "\n"
        "- **Status:** done\n"
        "- **Files changed:** `src/app.py`\n"
        "\n"
        "Did the work.\n"
        "\n"
        "## Deviations from Design\n"
        "\n"
        "### Task 1.0: Task title 1.0\n"
        "<!-- runner: job=login:implement:1.0 -->\n"
        "\n"
        "- Used SQLite instead of Postgres\n"
        "\n"
        "## Known Limitations\n"
    )
    assert missing_sections(path.read_text()) == []


def test_entries_newest_last_and_rerun_replaces(tmp_path: Path) -> None:
    path = tmp_path / "implementation.md"
    upsert_entry(path, entry("1", limitations=["slow"]), title="Login")
    upsert_entry(path, entry("2", status="partial", reason="ran out of turns", files=[]), title="Login")
    upsert_entry(path, entry("1", summary="Redone.", files=["a.py", "b.py"]), title="Login")
    text = path.read_text()
    assert text.count("<!-- runner: job=login:implement:1 -->") == 1
    assert text.index("Task 2:") < text.index("Task 1:")
    assert "- **Status:** partial (ran out of turns)\n- **Files changed:** none" in text
    assert "Redone." in text and "Did the work." in text  # task 2's summary stays
    assert "`a.py`, `b.py`" in text
    # The re-run has no limitations any more: its old entry there is gone.
    limitations = text[text.index("## Known Limitations") :]
    assert "slow" not in limitations and "Task 1" not in limitations


def test_job_without_task_and_multiline_items(tmp_path: Path) -> None:
    path = tmp_path / "implementation.md"
    e = Entry(
        job_id="login:design",
        task_id=None,
        title="Design",
        status="done",
        files=[],
        summary="First line.\n## Not a heading\nLast line.\n---",
        deviations=["two\nlines"],
        limitations=[],
    )
    upsert_entry(path, e, title="Login")
    text = path.read_text()
    assert "### Design\n<!-- runner: job=login:design -->" in text
    assert "\\## Not a heading" in text and "\\---" in text
    assert "- two\n  lines\n" in text
    assert missing_sections(text) == []


def test_agent_written_file_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "implementation.md"
    agent_text = (
        "# My implementation notes\n"
        "\n"
        "## Changes Made\n"
        "\n"
        "- Wrote the parser, see `parser.py`.\n"
        "\n"
        "\n"
        "```md\n"
        "## Known Limitations\n"
        "```\n"
    )
    path.write_text(agent_text)
    assert missing_sections(agent_text) == ["Deviations from Design", "Known Limitations"]
    upsert_entry(path, entry("3", limitations=["no undo"]), title="Login")
    text = path.read_text()
    assert text.startswith(agent_text.rstrip("\n") + "\n\n### Task 3: Task title 3\n")
    assert text.endswith(
        "## Deviations from Design\n\n## Known Limitations\n\n### Task 3: Task title 3\n"
        "<!-- runner: job=login:implement:3 -->\n\n- no undo\n"
    )
    assert missing_sections(text) == []


def test_crlf_file_stays_crlf(tmp_path: Path) -> None:
    path = tmp_path / "implementation.md"
    path.write_bytes(b"# Notes\r\n\r\n## Changes Made\r\n\r\n- mine\r\n")
    upsert_entry(path, entry("1"), title="Login")
    data = path.read_bytes()
    assert data.startswith(b"# Notes\r\n\r\n## Changes Made\r\n\r\n- mine\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_missing_sections() -> None:
    assert missing_sections("") == list(SECTIONS)
    assert missing_sections("## changes made\n## Known Limitations ##\n") == ["Deviations from Design"]
    assert missing_sections("### Changes Made\n") == list(SECTIONS)


def test_render_entry_sections() -> None:
    blocks = render_entry(entry("1", limitations=["x"], deviations=["", "  "]))
    assert list(blocks) == ["Changes Made", "Known Limitations"]


def test_concurrent_upserts_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "implementation.md"
    threads = [
        threading.Thread(target=upsert_entry, args=(path, entry(str(n))), kwargs={"title": "Login"})
        for n in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    text = path.read_text()
    assert all(f"<!-- runner: job=login:implement:{n} -->" in text for n in range(20))


def test_not_utf8_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "implementation.md"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UserError):
        upsert_entry(path, entry("1"), title="Login")
    assert path.read_bytes() == b"\xff\xfe"
