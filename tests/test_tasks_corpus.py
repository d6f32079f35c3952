"""Real tasks.md files from public repositories (see ../shared/corpus/specs/SOURCES.txt).

The expected counts were checked by reading each file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runner.tasks import load_tasks, set_checked

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "specs"

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is not present")

SPEC_KIT = "microsoft__CommunityManagement-Sample-Spec-Kit__010-events-explorer-tasks.md"
SPEC_KIT_SUFFIXED = "GutMutCode__spec-life__001-tasks-progress-header.md"
AGENT_OS = "jc7k__ColorFocus__agentos-additional-language-support-tasks.md"
KIRO = "RockyBoyRC__SpaceWeirdos__kiro-game-rules-tasks.md"
KIRO_FLAT = "RockyBoyRC__SpaceWeirdos__kiro-realtime-feedback-polish-tasks.md"

# file: (tasks, done, open, in progress, optional, groups, groups not done)
COUNTS = {
    SPEC_KIT: (84, 77, 7, 0, 0, 84, 7),
    SPEC_KIT_SUFFIXED: (128, 105, 23, 0, 0, 128, 23),
    AGENT_OS: (21, 21, 0, 0, 0, 4, 0),
    KIRO: (27, 24, 3, 0, 14, 12, 0),
    KIRO_FLAT: (50, 43, 7, 0, 7, 13, 0),
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_counts(name: str) -> None:
    tl = load_tasks(CORPUS / name)
    groups = tl.groups()
    states = [t.state for t in tl.tasks]
    assert (
        len(tl.tasks),
        states.count("done"),
        states.count("open"),
        states.count("in-progress"),
        sum(t.optional for t in tl.tasks),
        len(groups),
        sum(not g.done for g in groups),
    ) == COUNTS[name]
    assert len({t.id for t in tl.tasks}) == len(tl.tasks)


def test_every_markdown_file_in_the_corpus_is_covered() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.md")) == sorted(COUNTS)


def test_spec_kit_details() -> None:
    tl = load_tasks(CORPUS / SPEC_KIT)
    assert "\r\n" in tl.text
    assert [t.id for t in tl.tasks] == [f"T{i:03d}" for i in range(1, 85)]
    deferred = ["T021", "T037", "T046", "T063", "T064", "T065", "T066"]
    assert [t.id for t in tl.tasks if not t.checked] == deferred
    assert sum("P" in t.markers for t in tl.tasks) == 37
    assert sum(any(m.startswith("US") for m in t.markers) for t in tl.tasks) == 58
    t019 = tl.get("T019")
    assert t019.markers == ("P", "US1") and t019.line == 83
    assert t019.section == "Tests for User Story 1"
    assert t019.title.startswith("Unit tests for CalendarPanel — renders month grid")
    assert tl.get("T001").section == "Phase 1: Setup (Shared Infrastructure)"
    assert all(t.parent is None and t.depends_on == () for t in tl.tasks)


def test_spec_kit_suffixed_ids() -> None:
    tl = load_tasks(CORPUS / SPEC_KIT_SUFFIXED)
    suffixed = [t.id for t in tl.tasks if not t.id[1:].isdigit()]
    assert suffixed == ["T037A", "T038A", "T042A", "T046A", "T046B"]
    assert tl.tasks[-1].id == "T123" and tl.tasks[-1].line == 287
    assert tl.get("T046B").markers == ("US2",)
    assert sum("P" in t.markers for t in tl.tasks) == 51


def test_agent_os_details() -> None:
    tl = load_tasks(CORPUS / AGENT_OS)
    roots = [t for t in tl.tasks if t.parent is None]
    assert [t.id for t in roots] == ["1.0", "2.0", "3.0", "4.0"]
    assert [len(tl.children(r.id)) for r in roots] == [5, 3, 5, 4]
    assert [t.section for t in roots] == [
        "Task Group 1: Shared JSON Data Updates",
        "Task Group 2: Backend Language Enum Update",
        "Task Group 3: Frontend Language Support",
        "Task Group 4: Test Review and Gap Analysis",
    ]
    assert [g.depends_on for g in tl.groups()] == [(), ("1.0",), ("1.0", "2.0"), ("1.0", "2.0", "3.0")]
    assert tl.get("1.4").title == "Add `language_descriptor_spanish` entry to `shared/ui_text.json`"
    # The non-ASCII sub-bullets of 1.4 are part of group 1's text.
    assert '"西班牙语单词"' in tl.groups()[0].text


def test_kiro_details() -> None:
    tl = load_tasks(CORPUS / KIRO)
    assert [t.id for t in tl.tasks if t.parent is None] == [str(n) for n in range(1, 13)]
    assert [t.id for t in tl.tasks if not t.checked] == ["2.1", "2.2", "6.3"]
    assert all(t.optional for t in tl.tasks if not t.checked)
    assert tl.get("6.2").parent == "6" and not tl.get("6.2").optional
    assert tl.get("3").requirements == ("1.1-1.15", "2.5", "3.6", "4.2", "8.1", "9.1", "9.2", "9.3")
    assert tl.get("2.1").requirements == ("6.1", "6.2", "6.3", "6.4", "6.5", "6.6", "6.7", "6.8", "6.9")
    assert tl.get("8.1").requirements == ()  # "All validation requirements" names no requirement
    # Blank lines between "12." and its sub-bullets do not cut the item short.
    assert "Confirm all 11 correctness properties are tested" in tl.groups()[-1].text


def test_kiro_flat_subtasks() -> None:
    tl = load_tasks(CORPUS / KIRO_FLAT)
    assert [t.id for t in tl.tasks if t.parent is None] == [str(n) for n in range(1, 14)]
    assert [len(tl.children(str(n))) for n in range(1, 14)] == [3, 3, 2, 3, 3, 5, 2, 4, 2, 2, 3, 2, 3]
    assert [t.id for t in tl.tasks if not t.checked] == ["4.3", "5.3", "6.3", "6.5", "8.4", "10.2", "11.3"]
    assert tl.get("9.1").requirements == ("6.5",)
    assert tl.get("13.2").requirements == ("6.1-6.7", "7.1-7.7")
    assert tl.get("1.1").line == 10


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_ticking_every_open_task_changes_one_byte_each(tmp_path: Path, name: str) -> None:
    path = tmp_path / "tasks.md"
    shutil.copy(CORPUS / name, path)
    original = path.read_bytes()
    habit = b"X" if b"- [X]" in original else b"x"
    open_ids = [t.id for t in load_tasks(path).tasks if not t.checked]
    for task_id in open_ids:
        before = path.read_bytes()
        assert set_checked(path, task_id)
        after = path.read_bytes()
        diff = [i for i in range(len(before)) if before[i] != after[i]]
        assert len(diff) == 1 and after[diff[0] : diff[0] + 1] == habit
    assert all(t.checked for t in load_tasks(path).tasks)
    for task_id in open_ids:
        set_checked(path, task_id, False)
    assert path.read_bytes() == original
