from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from runner.errors import UserError
from runner.tasks import Task, load_tasks, parse_tasks, set_checked


def ids(text: str) -> list[str]:
    return [t.id for t in parse_tasks(text).tasks]


def write(tmp_path: Path, data: str | bytes, name: str = "tasks.md") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# --- formats ---------------------------------------------------------------------------------------

SPEC_KIT = """\
# Tasks: Demo

## Format: `[ID] [P?] [Story] Description`

- **[P]**: Can run in parallel
- [P] tasks = different files

## Phase 1: Setup (Shared Infrastructure)

- [X] T001 Create project structure
- [ ] T002 [P] [US1] Create model in src/models/user.py
- [x] T003 [P] Configure linting
- [ ] T004 [US1] Wire the service (depends on T002, T003)
- [ ] T046B [US2] Suffixed id

## Notes

Depends on T001 for everything.
"""


def test_spec_kit() -> None:
    tl = parse_tasks(SPEC_KIT)
    assert [t.id for t in tl.tasks] == ["T001", "T002", "T003", "T004", "T046B"]
    t2 = tl.get("T002")
    assert t2.title == "Create model in src/models/user.py"
    assert t2.markers == ("P", "US1")
    assert t2.section == "Phase 1: Setup (Shared Infrastructure)"
    assert t2.line == 11
    assert tl.get("T001").checked and tl.get("T001").state == "done"
    assert tl.get("T003").checked
    assert tl.get("T004").depends_on == ("T002", "T003")
    assert tl.get("T004").title == "Wire the service (depends on T002, T003)"
    # A dependency stated outside any task, in a section without tasks, binds nothing.
    assert all(t.depends_on == () for t in tl.tasks if t.id != "T004")
    groups = tl.groups()
    assert [g.id for g in groups] == ["T001", "T002", "T003", "T004", "T046B"]
    assert groups[3].depends_on == ("T002", "T003")


AGENT_OS = """\
# Task Breakdown: Example

### Data Layer

#### Task Group 1: Shared JSON Data Updates
**Dependencies:** None

- [x] 1.0 Complete shared data layer updates
  - [x] 1.1 Write 2-3 focused tests
    - Test that `a.json` has key
  - [ ] 1.2 Update `a.json`
    - Add "spanish" key
    - _Requirements: FR-1, FR-2_

**Acceptance Criteria:**
- The tests written in 1.1 pass

#### Task Group 2: Backend
**Dependencies:** Task Group 1

- [ ] 2.0 Complete backend updates
  - [ ] 2.1 Write tests

#### Task Group 3: Frontend
**Dependencies:** Task Groups 1-2

- [ ] 3.0 Complete frontend
"""


def test_agent_os() -> None:
    tl = parse_tasks(AGENT_OS)
    assert [t.id for t in tl.tasks] == ["1.0", "1.1", "1.2", "2.0", "2.1", "3.0"]
    assert [t.parent for t in tl.tasks] == [None, "1.0", "1.0", None, "2.0", None]
    assert tl.get("1.2").requirements == ("FR-1", "FR-2")
    assert tl.get("1.0").section == "Task Group 1: Shared JSON Data Updates"
    assert tl.get("1.0").depends_on == ()
    assert tl.get("2.0").depends_on == ("1.0",)
    assert tl.get("2.1").depends_on == ()
    assert tl.get("3.0").depends_on == ("1.0", "2.0")
    assert [c.id for c in tl.children("1.0")] == ["1.1", "1.2"]
    g1, g2, g3 = tl.groups()
    assert [t.id for t in g1.tasks] == ["1.0", "1.1", "1.2"]
    assert not g1.done  # 1.2 is open although 1.0 is ticked
    assert g2.depends_on == ("1.0",) and g3.depends_on == ("1.0", "2.0")
    # Plain sub-bullets belong to the group's text, boxes all read "[ ]".
    assert g1.text == (
        "- [ ] 1.0 Complete shared data layer updates\n"
        "  - [ ] 1.1 Write 2-3 focused tests\n"
        "    - Test that `a.json` has key\n"
        "  - [ ] 1.2 Update `a.json`\n"
        '    - Add "spanish" key\n'
        "    - _Requirements: FR-1, FR-2_\n"
    )


KIRO = """\
# Implementation Plan

- [x] 1. Set up API integration



- [x] 1.1 Add endpoint


  - Implement POST /api/cost
  - _Requirements: 6.1, 6.3_

- [-] 2. Implement display
  - Create `Display.tsx`
  - _Requirements: 1.1-1.15, 2.5_

- [ ]* 2.1 Write property test
  - **Property 3: Modified costs are visually indicated**
  - **Validates: Requirements 1.5**

- [x]* 2.2 Write unit tests
- [ ] 3. Checkpoint - Ensure all tests pass
"""


def test_kiro() -> None:
    tl = parse_tasks(KIRO)
    assert [t.id for t in tl.tasks] == ["1", "1.1", "2", "2.1", "2.2", "3"]
    assert [t.parent for t in tl.tasks] == [None, "1", None, "2", "2", None]
    t2 = tl.get("2")
    assert t2.state == "in-progress" and not t2.checked
    assert t2.requirements == ("1.1-1.15", "2.5")
    t21 = tl.get("2.1")
    assert t21.optional and t21.title == "Write property test" and t21.requirements == ("1.5",)
    assert tl.get("2.2").optional and tl.get("2.2").checked
    assert tl.get("1.1").requirements == ("6.1", "6.3")
    assert tl.get("3").title == "Checkpoint - Ensure all tests pass"
    assert tl.get("2.").id == "2"
    g1, g2, g3 = tl.groups()
    assert g1.done and not g2.done and not g3.done
    assert [t.id for t in g2.tasks] == ["2", "2.1", "2.2"]
    # Flat sub-tasks are part of their parent's group; runs of blank lines are not.
    assert g1.text == (
        "- [ ] 1. Set up API integration\n"
        "- [ ] 1.1 Add endpoint\n"
        "  - Implement POST /api/cost\n"
        "  - _Requirements: 6.1, 6.3_\n"
    )


def test_optional_groups_and_done() -> None:
    tl = parse_tasks(
        "- [x] 1. Core\n- [ ]* 1.1 Optional test\n- [ ]* 2. Optional group\n- [x]* 3. Done optional\n"
    )
    g1, g2, g3 = tl.groups()
    assert g1.done and not g1.optional
    assert g2.optional and not g2.done
    assert g3.optional and g3.done


def test_list_markers_tabs_and_nesting() -> None:
    text = (
        "* [ ] Star task\n"
        "\t* [x] Tabbed child\n"
        "+ [ ] Plus task\n"
        "\n"
        "1. [ ] Ordered one\n"
        "2) [X] Ordered two\n"
        "   - [ ] Nested under ordered\n"
        "> - [ ] Quoted task\n"
    )
    tl = parse_tasks(text)
    assert [(t.title, t.parent, t.checked) for t in tl.tasks] == [
        ("Star task", None, False),
        ("Tabbed child", "star-task", True),
        ("Plus task", None, False),
        ("Ordered one", None, False),
        ("Ordered two", None, True),
        ("Nested under ordered", "ordered-two", False),
        ("Quoted task", None, False),
    ]
    assert tl.get("star-task/tabbed-child").line == 2


def test_things_that_are_not_tasks() -> None:
    text = """\
Inline [ ] box and [x] another in a paragraph.

```
- [ ] fenced
```

~~~md
- [x] tilde fenced
~~~

    - [ ] indented code

<!--
- [ ] in a comment
-->

<div>
- [ ] in html
</div>

| a | b |
|---|---|
| - [ ] cell | x |

- [P] marker-looking bracket
- [x](link) a link
- [ ]no space after the box
- plain bullet [ ] later
- [ ] The only task
"""
    assert ids(text) == ["the-only-task"]


def test_crlf_bom_and_non_ascii() -> None:
    text = "\ufeff# Aufgaben\r\n\r\n- [ ] T001 Übersetzung prüfen\r\n- [x] T002 日本語のタイトル\r\n"
    tl = parse_tasks(text)
    assert [(t.id, t.title, t.line) for t in tl.tasks] == [
        ("T001", "Übersetzung prüfen", 3),
        ("T002", "日本語のタイトル", 4),
    ]
    assert tl.text.startswith("# Aufgaben\r\n")
    assert tl.tasks[0].section == "Aufgaben"


def test_lone_cr_line_endings() -> None:
    assert [t.line for t in parse_tasks("# T\r\r- [ ] a\r- [ ] b\r").tasks] == [3, 4]


def test_explicit_id_forms() -> None:
    text = (
        "- [ ] Task 3: Write docs\n"
        "- [ ] 2. Kiro top\n"
        "- [ ] 1.0 Agent OS top\n"
        "- [ ] 4.1.2. Deep\n"
        "- [ ] 3 tests for the parser\n"
        "- [ ] T12 - Dashed title\n"
    )
    assert [(t.id, t.title) for t in parse_tasks(text).tasks] == [
        ("Task 3", "Write docs"),
        ("2", "Kiro top"),
        ("1.0", "Agent OS top"),
        ("4.1.2", "Deep"),
        ("3-tests-for-the-parser", "3 tests for the parser"),
        ("T12", "Dashed title"),
    ]
    tl = parse_tasks(text)
    assert tl.get("3").id == "Task 3"  # as `runner check tasks.md 3` and review points find it
    assert parse_tasks("- [ ] Task 1.2: Nested\n").get("1.2").id == "Task 1.2"
    assert parse_tasks("- [ ] 3.0 Group\n- [ ] Task 3: Other\n").get("3").id == "3.0"  # best first


def test_derived_ids_are_slugs_deduplicated_and_nested() -> None:
    text = "- [ ] Write docs!\n- [ ] Write docs\n  - [ ] Review `README`\n- [ ] \n"
    assert ids(text) == ["write-docs", "write-docs-2", "write-docs-2/review-readme", "task"]


def test_duplicate_explicit_ids_stay_addressable() -> None:
    assert ids("- [ ] T001 a\n- [ ] T001 b\n- [ ] T001-2 c\n") == ["T001", "T001-2", "t001-2-c"]
    # Explicit ids are claimed before derived ones, wherever they are written.
    assert ids("- [ ] 2\n- [ ] 2. Kiro\n") == ["2-2", "2"]


def test_title_continuation_lines() -> None:
    tl = parse_tasks("- [ ] T001 First line\n  continues here\n  _Requirements: 1.2_\n")
    t = tl.get("T001")
    assert t.title == "First line continues here"
    assert t.requirements == ("1.2",)


def test_to_json_shape() -> None:
    item = parse_tasks(SPEC_KIT).to_json()[1]
    assert item == {
        "id": "T002",
        "title": "Create model in src/models/user.py",
        "checked": False,
        "state": "open",
        "optional": False,
        "line": 11,
        "parent": None,
        "markers": ["P", "US1"],
        "requirements": [],
        "depends_on": [],
        "section": "Phase 1: Setup (Shared Infrastructure)",
    }


def test_get_unknown_raises_key_error() -> None:
    with pytest.raises(KeyError):
        parse_tasks(SPEC_KIT).get("T999")


def test_group_text_is_stable_across_ticks_and_changes_when_reworded() -> None:
    before = parse_tasks(AGENT_OS).groups()[0].text
    ticked = AGENT_OS.replace("- [ ] 1.2", "- [x] 1.2").replace("- [x] 1.1", "- [ ] 1.1")
    assert parse_tasks(ticked).groups()[0].text == before
    assert parse_tasks(AGENT_OS.replace('Add "spanish" key', "Add key")).groups()[0].text != before
    # Other groups are not affected by a change in group 1.
    other = parse_tasks(AGENT_OS.replace('Add "spanish" key', "Add key")).groups()[1].text
    assert other == parse_tasks(AGENT_OS).groups()[1].text


def test_load_tasks_decodes_bom_and_reports_bad_files(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf- [ ] T001 a\r\n")
    tl = load_tasks(path)
    assert tl.path == path and tl.get("T001").line == 1 and tl.text == "- [ ] T001 a\r\n"
    with pytest.raises(UserError, match="not UTF-8"):
        load_tasks(write(tmp_path, b"- [ ] \xff\n", "bad.md"))
    # where: line and column in characters, whatever the line endings
    with pytest.raises(UserError, match=r"bad\.md:2:12: not UTF-8"):
        load_tasks(write(tmp_path, b"- [ ] a\r- [ ] caf\xc3\xa9 \xff\r", "bad.md"))
    with pytest.raises(UserError, match="no such file"):
        load_tasks(tmp_path / "missing.md")


# --- ticking ---------------------------------------------------------------------------------------


def diff_bytes(a: bytes, b: bytes) -> list[int]:
    assert len(a) == len(b)
    return [i for i in range(len(a)) if a[i] != b[i]]


def test_tick_changes_exactly_one_byte(tmp_path: Path) -> None:
    path = write(tmp_path, KIRO)
    before = path.read_bytes()
    assert set_checked(path, "2.1") is True
    after = path.read_bytes()
    [pos] = diff_bytes(before, after)
    assert after[pos - 1 : pos + 3] == b"[x]*"
    assert load_tasks(path).get("2.1").checked


def test_tick_follows_the_files_habit(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC_KIT.replace("[x] T003", "[X] T003"))
    set_checked(path, "T002")
    assert b"- [X] T002" in path.read_bytes()
    path = write(tmp_path, "- [x] a\n- [x] b\n- [X] c\n- [ ] d\n")
    set_checked(path, "d")
    assert path.read_bytes().endswith(b"- [x] d\n")


def test_in_progress_box_is_ticked_and_unticked(tmp_path: Path) -> None:
    path = write(tmp_path, KIRO)
    set_checked(path, "2")
    assert load_tasks(path).get("2").state == "done"
    path = write(tmp_path, KIRO)
    assert set_checked(path, "2", False) is True
    assert load_tasks(path).get("2").state == "open"


def test_untick_and_no_op(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC_KIT)
    before = path.read_bytes()
    inode = path.stat().st_ino
    assert set_checked(path, "T001") is False
    assert set_checked(path, "T002", False) is False
    assert path.read_bytes() == before and path.stat().st_ino == inode
    assert set_checked(path, "T001", False) is True
    [pos] = diff_bytes(before, path.read_bytes())
    assert path.read_bytes()[pos] == ord(" ")


def test_tick_keeps_crlf_bom_and_permissions(tmp_path: Path) -> None:
    data = "\ufeff# Tâches\r\n\r\n- [ ] T001 Première\r\n- [ ] T002 Deuxième — fin\r\n".encode()
    path = write(tmp_path, data)
    path.chmod(0o640)
    set_checked(path, "T002")
    after = path.read_bytes()
    [pos] = diff_bytes(data, after)
    assert after.startswith(b"\xef\xbb\xbf") and after.count(b"\r\n") == data.count(b"\r\n")
    assert after[pos : pos + 1] == b"x" and after[pos - 1 :].startswith(b"[x] T002")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name != "tasks.md"]  # no temporary files left


def test_a_second_bom_is_text_and_ticking_still_changes_one_byte(tmp_path: Path) -> None:
    # Only the first BOM is the encoding's mark; GitHub shows the second as a character of line 1.
    data = b"\xef\xbb\xbf\xef\xbb\xbf- [ ] a\n- [ ] b\n"
    path = write(tmp_path, data)
    assert [t.title for t in load_tasks(path).tasks] == ["b"]
    set_checked(path, "b")
    assert path.read_bytes() == data.replace(b"[ ] b", b"[x] b")


def test_tick_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    real = write(tmp_path, SPEC_KIT, "real.md")
    link = tmp_path / "tasks.md"
    link.symlink_to(real.name)
    set_checked(link, "T002")
    assert link.is_symlink()
    assert load_tasks(real).get("T002").checked


def test_unknown_id_is_a_user_error_and_leaves_the_file_alone(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC_KIT)
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    with pytest.raises(UserError) as e:
        set_checked(path, "T999")
    assert e.value.exit_code == 2
    assert str(path) in str(e.value) and "runner tasks" in str(e.value) and "T999" in str(e.value)
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        set_checked(tmp_path / "nope.md", "T001")


def test_tick_parents(tmp_path: Path) -> None:
    text = "- [ ] 1. Parent\n- [x] 1.1 Done\n- [ ] 1.2 Last\n- [ ]* 1.3 Optional\n- [ ] 2. Other\n"
    path = write(tmp_path, text)
    set_checked(path, "1.2", tick_parents=True)
    tl = load_tasks(path)
    assert tl.get("1").checked and not tl.get("1.3").checked and not tl.get("2").checked
    # Without the flag only the one box changes.
    path = write(tmp_path, text)
    set_checked(path, "1.2")
    assert not load_tasks(path).get("1").checked


def test_tick_parents_is_transitive_and_skips_optional_parents(tmp_path: Path) -> None:
    text = "- [ ] A\n  - [ ] B\n    - [ ] C\n- [ ]* D\n  - [ ] E\n"
    path = write(tmp_path, text)
    set_checked(path, "a/b/c", tick_parents=True)
    assert all(t.checked for t in load_tasks(path).tasks[:3])
    set_checked(path, "d/e", tick_parents=True)
    assert not load_tasks(path).get("d").checked
    # A parent with an open sub-task stays open.
    path = write(tmp_path, "- [ ] P\n  - [ ] Q\n  - [ ] R\n")
    set_checked(path, "p/q", tick_parents=True)
    assert not load_tasks(path).get("p").checked


def test_tick_by_kiro_id_with_trailing_dot(tmp_path: Path) -> None:
    path = write(tmp_path, KIRO)
    assert set_checked(path, "3.") is True
    assert load_tasks(path).get("3").checked


def test_an_agent_os_group_can_be_named_by_its_number(tmp_path: Path) -> None:
    path = write(tmp_path, "- [ ] 1.0 Group\n  - [ ] 1.1 Step\n- [ ] 2.0 Next\n")
    assert set_checked(path, "2") is True and set_checked(path, "1.") is True
    assert path.read_text() == "- [x] 1.0 Group\n  - [ ] 1.1 Step\n- [x] 2.0 Next\n"


# --- property-based --------------------------------------------------------------------------------

words = st.text(alphabet="abcdefghij éü日本", min_size=1, max_size=12).map(str.strip).filter(bool)
markers = st.lists(st.sampled_from(["[P]", "[US1]", "[US2]"]), max_size=2).map(" ".join)
box = st.sampled_from([" ", "x", "X", "-"])
noise = st.sampled_from(
    [
        "Some prose.",
        "```\n- [ ] fenced\n```",
        "<!-- - [ ] hidden -->",
        "## Heading",
        "| a | b |\n|---|---|\n| [ ] | c |",
        "    indented code [x]",
        "- plain bullet",
        "",
    ]
)


@st.composite
def task_docs(draw: st.DrawFn) -> tuple[str, int]:
    """A tasks.md in a random mix of formats, and how many tasks it has."""
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.booleans())
    parts: list[str] = []
    count = 0
    for n in range(draw(st.integers(1, 8))):
        parts.append(draw(noise))
        parts.append("")
        style = draw(st.sampled_from(["speckit", "kiro", "agentos", "plain"]))
        marker = draw(st.sampled_from(["-", "*", "+", "1."]))
        title = draw(words)
        if style == "speckit":
            parts.append(f"{marker} [{draw(box)}] T{n:03d} {draw(markers)} {title}")
            count += 1
        elif style == "kiro":
            star = "*" if draw(st.booleans()) else ""
            parts.append(f"- [{draw(box)}] {n + 1}. {title}")
            parts.append(f"- [{draw(box)}]{star} {n + 1}.1 {draw(words)}")
            parts.append(f"  - _Requirements: {n}.1_")
            count += 2
        elif style == "agentos":
            parts.append(f"- [{draw(box)}] {n + 1}.0 {title}")
            parts.append(f"  - [{draw(box)}] {n + 1}.1 {draw(words)}")
            parts.append("    - detail")
            count += 2
        else:
            parts.append(f"{marker} [{draw(box)}] {title} {n}")
            count += 1
        parts.append("")
    text = newline.join("\n".join(parts).split("\n")) + newline
    return ("\ufeff" if bom else "") + text, count


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=task_docs(), data=st.data())
def test_property_tick_changes_one_byte_and_nothing_else(tmp_path: Path, doc: tuple[str, int], data) -> None:
    text, count = doc
    path = write(tmp_path, text)
    before = path.read_bytes()
    tasks = load_tasks(path).tasks
    assert len(tasks) == count
    target = data.draw(st.sampled_from(tasks))
    checked = data.draw(st.booleans())
    changed = set_checked(path, target.id, checked)
    after = path.read_bytes()
    positions = diff_bytes(before, after)
    expected_change = target.checked != checked or (not checked and target.state == "in-progress")
    assert changed == expected_change
    assert len(positions) == (1 if changed else 0)
    new_tasks = load_tasks(path).tasks
    for old, new in zip(tasks, new_tasks, strict=True):
        if old.id == target.id:
            assert new.checked == checked
            assert _same(old, new, ignore_state=True)
        else:
            assert old == new


def _same(a: Task, b: Task, *, ignore_state: bool) -> bool:
    fields = ["id", "title", "optional", "line", "parent", "markers", "requirements", "depends_on", "section"]
    if not ignore_state:
        fields += ["checked", "state"]
    return all(getattr(a, f) == getattr(b, f) for f in fields)


@settings(max_examples=150, deadline=None)
@given(doc=task_docs(), data=st.data())
def test_property_ids_stable_across_unrelated_edits(doc: tuple[str, int], data) -> None:
    text, _ = doc
    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    original = parse_tasks(text).tasks
    assume(original)
    lines = text.split("\n")
    # An edit elsewhere: a new task, a paragraph, or a deleted task line, between top-level blocks.
    blank_lines = [i for i, line in enumerate(lines) if line == ""]
    where = data.draw(st.sampled_from(blank_lines))
    insert = data.draw(
        st.sampled_from(
            ["- [ ] T900 Brand new", "Another paragraph.", "## New heading", "- [x] Zz unrelated 42"]
        )
    )
    edited = "\n".join([*lines[:where], "", insert, "", *lines[where:]])
    after = {t.id: t for t in parse_tasks(edited).tasks}
    for task in original:
        assert task.id in after
        assert after[task.id].title == task.title
    # Rewording or ticking one task changes no other task's id.
    victim = data.draw(st.sampled_from(original))
    line = lines[victim.line - 1]
    reworded = "\n".join([*lines[: victim.line - 1], line + " extra", *lines[victim.line :]])
    others = [t.id for t in original if t.id != victim.id and not t.id.startswith(victim.id + "/")]
    assert set(others) <= {t.id for t in parse_tasks(reworded).tasks}


def test_permissions_of_new_content_follow_the_original(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC_KIT)
    os.chmod(path, 0o600)
    set_checked(path, "T004")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_box_after_a_unicode_space_is_text_as_on_github() -> None:
    tasks = parse_tasks(
        "- \u00a0[ ] after a no-break space\n- \u3000[ ] after an ideographic space\n- [ ] real\n"
    )
    assert [t.title for t in tasks.tasks] == ["real"]


def test_a_title_line_may_start_with_the_word_requirements() -> None:
    text = (
        "- [ ] 1.1 Make sure the parser handles\n"
        "  requirements listed in the design doc\n"
        "  - _Requirements: 1.1, 2.3_\n"
    )
    [task] = parse_tasks(text).tasks
    assert task.title == "Make sure the parser handles requirements listed in the design doc"
    assert task.requirements == ("1.1", "2.3")
