from __future__ import annotations

import re
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
        "<!-- runner: end -->\n"
        "\n"
        "## Deviations from Design\n"
        "\n"
        "### Task 1.0: Task title 1.0\n"
        "<!-- runner: job=login:implement:1.0 -->\n"
        "\n"
        "- Used SQLite instead of Postgres\n"
        "\n"
        "<!-- runner: end -->\n"
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
        "<!-- runner: job=login:implement:3 -->\n\n- no undo\n\n<!-- runner: end -->\n"
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


def test_unclosed_fence_in_summary_is_closed(tmp_path: Path) -> None:
    path = tmp_path / "implementation.md"
    upsert_entry(path, entry("1", summary="Run it with:\n```sh\nmake test", deviations=["d1"]), title="Login")
    upsert_entry(path, entry("2", limitations=["l2"]), title="Login")
    text = path.read_text()
    assert "Run it with:\n```sh\nmake test\n```\n" in text
    assert missing_sections(text) == [] and text.count("## Deviations from Design") == 1
    assert text.index("### Task 2") < text.index("## Deviations from Design") < text.index("- d1")
    assert text.index("- d1") < text.index("## Known Limitations") < text.index("- l2")


@pytest.mark.parametrize(
    "summary",
    [
        "Note:\n<!-- todo",
        "<pre>\nno end",
        "<!--\n<!-- runner: end -->\n## Deviations from Design",
        "```\n<pre>\n```\n<pre>\n````",
        "See:\n<!-- runner: end -->\nmore",
    ],
)
def test_summary_swallows_nothing_after_it(tmp_path: Path, summary: str) -> None:
    path = tmp_path / "implementation.md"
    upsert_entry(path, entry("1", summary=summary), title="Login")
    upsert_entry(path, entry("2", deviations=["d2"]), title="Login")
    upsert_entry(path, entry("1", summary=summary, limitations=["l1"]), title="Login")
    text = path.read_text()
    assert missing_sections(text) == [] and text.count("\n## Deviations from Design\n") == 1
    assert text.count("<!-- runner: job=login:implement:1 -->") == 2  # Changes Made, Known Limitations
    assert text.index("### Task 2") < text.index("\n## Deviations from Design\n") < text.index("- d2")
    assert text.index("- d2") < text.index("## Known Limitations") < text.index("- l1")
    # Task 2's entry is not inside task 1's code or HTML block: it is still found and replaced.
    upsert_entry(path, entry("2"), title="Login")
    assert "- d2" not in path.read_text()


@pytest.mark.parametrize(
    "agent_text",
    [
        "## Changes Made\n\n```\nunclosed\n",  # the missing sections would land inside the fence
        "## Changes Made\n## Deviations from Design\n## Known Limitations\n<!--\n",  # ...the entry, too
    ],
)
def test_sections_that_cannot_be_found_leave_the_file_alone(tmp_path: Path, agent_text: str) -> None:
    path = tmp_path / "implementation.md"
    path.write_text(agent_text)
    with pytest.raises(UserError, match="Known Limitations"):
        upsert_entry(path, entry("1", limitations=["l1"]), title="Login")
    assert path.read_text() == agent_text


def test_rerun_keeps_text_added_after_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "implementation.md"
    upsert_entry(path, entry("1"), title="Login")
    added = "Agent: I also refactored utils.py.\n\n"
    path.write_text(
        path.read_text().replace("## Deviations from Design", added + "## Deviations from Design")
    )
    upsert_entry(path, entry("1", summary="Redone."), title="Login")
    upsert_entry(path, entry("1", summary="Redone again."), title="Login")
    text = path.read_text()
    assert "Redone again." in text and "Redone." not in text and "Did the work." not in text
    assert text.count("<!-- runner: job=login:implement:1 -->") == 1
    assert f"## Changes Made\n\n{added}### Task 1: " in text  # no blank lines pile up either


def test_old_entries_without_end_marker_are_replaced(tmp_path: Path) -> None:
    path = tmp_path / "implementation.md"
    old = "### Task 1: Old\n<!-- runner: job=login:implement:1 -->\n\n- **Status:** done\n\nOld summary.\n"
    sections = ("## Changes Made\n\n", "## Deviations from Design\n\n", "## Known Limitations\n\n")
    path.write_text(f"# Implementation: Login\n\n{sections[0]}{old}\n{sections[1]}{sections[2]}{old}")
    upsert_entry(path, entry("1"), title="Login")
    text = path.read_text()
    assert "Old" not in text and text.count("<!-- runner: job=login:implement:1 -->") == 1
    assert text.index("## Changes Made") < text.index("Did the work.") < text.index("## Deviations")


@pytest.mark.parametrize(
    ("original", "newline"),
    [
        (
            "# Notes\u2028x\x0cy\x85z\x1c\x1d\x1e\x0b\u2029\n\n## Changes Made\n\n- mine\u2028\n\n"
            "## Deviations from Design\n\n## Known Limitations\n\n- none\x0c\n\n\n",
            "\n",
        ),
        (
            "# Notes\r\r## Changes Made\r\r- mine\r\r## Deviations from Design\r\r## Known Limitations\r- x",
            "\r",
        ),
        (
            "# Notes\r\n\r\n## Changes Made\n\n- mine\r\n\r\n## Deviations from Design\r\n\r\n"
            "## Known Limitations\r\n",
            "\r\n",
        ),
        ("\ufeff## Changes Made\n\n## Deviations from Design\n\n## Known Limitations\n", "\n"),
    ],
)
def test_text_outside_entries_stays_byte_identical(tmp_path: Path, original: str, newline: str) -> None:
    path = tmp_path / "implementation.md"
    path.write_bytes(original.encode())
    upsert_entry(path, entry("1", summary="Did\x85it.", deviations=["d1"]), title="Login")
    text = path.read_bytes().decode()
    entries = re.compile(f"{newline}### Task 1: .*?<!-- runner: end -->{newline}", re.DOTALL)
    assert len(entries.findall(text)) == 2 and entries.sub("", text) == original
    # The runner's lines take the file's most common line ending.
    assert all(set(re.findall(r"\r\n|\r|\n", e)) == {newline} for e in entries.findall(text))
    assert "Did\x85it." in text and missing_sections(text) == []
