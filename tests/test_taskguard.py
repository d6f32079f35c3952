from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.taskguard import TasksDiff, diff_tasks, reconcile
from runner.tasks import parse_tasks

BEFORE = """\
# Tasks

## Phase 1

- [ ] 1. Set up
  - details of one
- [ ] 2. Build
- [ ] 2.1 Build the parser
- [ ]* 2.2 Optional tests

Some prose about phase 1.

## Phase 2

- [ ] Plain task without an id
- [ ] T010 [P] Spec Kit task
"""


def test_only_ticks() -> None:
    after = BEFORE.replace("- [ ] 2.1", "- [x] 2.1").replace("- [ ] T010", "- [X] T010")
    diff = diff_tasks(BEFORE, after)
    assert diff.ticked == ["2.1", "T010"]
    assert diff.only_ticks
    assert diff.describe() == "ticked tasks 2.1, T010"


def test_unticks_are_ticks_too() -> None:
    before = BEFORE.replace("- [ ] 1.", "- [x] 1.")
    diff = diff_tasks(before, BEFORE)
    assert diff.unticked == ["1"] and diff.only_ticks


def test_no_change() -> None:
    diff = diff_tasks(BEFORE, BEFORE)
    assert diff == TasksDiff() and diff.only_ticks and diff.describe() == "no changes"


def test_whitespace_line_endings_and_blank_lines_do_not_count() -> None:
    after = BEFORE.replace("\n", "\r\n").replace(
        "Some prose about phase 1.", "Some prose about phase 1.   \r\n"
    )
    assert diff_tasks(BEFORE, after).only_ticks


def test_removed_task() -> None:
    diff = diff_tasks(BEFORE, BEFORE.replace("- [ ] 2.1 Build the parser\n", ""))
    assert diff.removed == ["2.1"] and not diff.only_ticks
    assert diff.describe() == "removed task 2.1"


def test_added_task() -> None:
    diff = diff_tasks(BEFORE, BEFORE + "- [ ] T011 New work\n")
    assert diff.added == ["T011"] and not diff.only_ticks


def test_reworded_title_and_details() -> None:
    after = BEFORE.replace("Build the parser", "Build a lexer").replace("details of one", "other details")
    diff = diff_tasks(BEFORE, after)
    assert diff.reworded == ["1", "2.1"] and not diff.removed and not diff.added
    assert diff.describe() == "reworded tasks 1, 2.1"


def test_reworded_task_with_a_derived_id() -> None:
    diff = diff_tasks(BEFORE, BEFORE.replace("Plain task without an id", "Plain task, reworded"))
    assert diff.reworded == ["plain-task-without-an-id"]
    assert not diff.added and not diff.removed


def test_a_different_task_in_the_place_of_one_without_id_is_not_a_rewording() -> None:
    diff = diff_tasks(BEFORE, BEFORE.replace("Plain task without an id", "Deploy to staging"))
    assert diff.removed == ["plain-task-without-an-id"] and diff.added == ["deploy-to-staging"]
    text, _ = reconcile(
        BEFORE, BEFORE.replace("Plain task without an id", "Deploy to staging"), allowed_ticks=set()
    )
    assert "Plain task without an id" in text and "Deploy to staging" in text


def test_optional_flag_change_is_a_rewording() -> None:
    assert diff_tasks(BEFORE, BEFORE.replace("[ ]* 2.2", "[ ] 2.2")).reworded == ["2.2"]


def test_moved_and_reparented_tasks() -> None:
    moved = BEFORE.replace("- [ ] T010 [P] Spec Kit task\n", "").replace(
        "## Phase 2\n", "## Phase 2\n\n- [ ] T010 [P] Spec Kit task\n"
    )
    diff = diff_tasks(BEFORE, moved)
    assert diff.moved == ["T010"] and not diff.only_ticks
    nested = BEFORE.replace("- [ ] T010", "  - [ ] T010")
    diff = diff_tasks(BEFORE, nested)
    assert diff.moved == ["T010"] and not diff.reworded


def test_in_progress_mark_is_not_a_tick() -> None:
    diff = diff_tasks(BEFORE, BEFORE.replace("- [ ] 2. Build", "- [-] 2. Build"))
    assert diff.restated == ["2"] and not diff.ticked and not diff.only_ticks


def test_other_text() -> None:
    diff = diff_tasks(BEFORE, BEFORE.replace("Some prose", "Other prose"))
    assert diff.other_text_changed and not diff.only_ticks
    assert diff.describe() == "changed text outside the tasks"


def test_describe_everything() -> None:
    after = (
        BEFORE.replace("- [ ] 2.1 Build the parser\n", "")
        .replace("- [ ] 1. Set up", "- [x] 1. Set up properly")
        .replace("Some prose", "Other prose")
    ) + "- [ ] T011 New\n"
    assert diff_tasks(BEFORE, after).describe() == (
        "ticked task 1; added task T011; removed task 2.1; reworded task 1; changed text outside the tasks"
    )


# --- reconcile ---------------------------------------------------------------------------------------


def test_reconcile_allowed_ticks_pass_through() -> None:
    after = BEFORE.replace("- [ ] 2.1", "- [x] 2.1")
    text, diff = reconcile(BEFORE, after, allowed_ticks={"2.1"})
    assert text == after and diff.ticked == ["2.1"]


def test_reconcile_reverts_disallowed_ticks_and_unticks() -> None:
    before = BEFORE.replace("- [ ] 1.", "- [x] 1.")
    after = (
        before.replace("- [ ] 2.1", "- [x] 2.1")
        .replace("- [x] 1.", "- [ ] 1.")
        .replace("- [ ] T010", "- [x] T010")
    )
    text, diff = reconcile(before, after, allowed_ticks={"T010"})
    assert text == before.replace("- [ ] T010", "- [x] T010")
    assert diff.ticked == ["2.1", "T010"] and diff.unticked == ["1"]


def test_reconcile_puts_removed_tasks_back_and_restores_wording() -> None:
    after = (
        BEFORE.replace("- [ ] 2.1 Build the parser\n", "")
        .replace("Set up", "Set things up")
        .replace("Plain task without an id", "Plain task renamed")
    )
    text, diff = reconcile(BEFORE, after, allowed_ticks=set())
    assert text == BEFORE
    assert diff.removed == ["2.1"] and diff.reworded == ["1", "plain-task-without-an-id"]


def test_reconcile_keeps_other_changes() -> None:
    after = (
        BEFORE.replace("Some prose about phase 1.", "A person's new note.")
        .replace("- [ ] 2.1 Build the parser\n", "- [x] 2.1 Parser (done)\n")
        .replace(
            "- [ ] T010 [P] Spec Kit task\n", "- [ ] T010 [P] Spec Kit task\n- [ ] T011 Added by someone\n"
        )
    )
    text, _ = reconcile(BEFORE, after, allowed_ticks={"2.1"})
    assert text == (
        BEFORE.replace("Some prose about phase 1.", "A person's new note.")
        .replace("- [ ] 2.1 Build the parser", "- [x] 2.1 Build the parser")
        .replace(
            "- [ ] T010 [P] Spec Kit task\n", "- [ ] T010 [P] Spec Kit task\n- [ ] T011 Added by someone\n"
        )
    )


def test_reconcile_undoes_a_move() -> None:
    moved = BEFORE.replace("- [ ] T010 [P] Spec Kit task\n", "").replace(
        "## Phase 2\n", "## Phase 2\n\n- [ ] T010 [P] Spec Kit task\n"
    )
    text, _ = reconcile(BEFORE, moved, allowed_ticks=set())
    assert [t.id for t in parse_tasks(text).tasks] == [t.id for t in parse_tasks(BEFORE).tasks]


def test_reconcile_keeps_crlf_and_bom_of_the_original() -> None:
    before = "\ufeff" + BEFORE.replace("\n", "\r\n")
    after = BEFORE.replace("- [ ] 2.1 Build the parser\n", "") + "\nNote from the agent\n"
    text, _ = reconcile(before, after, allowed_ticks=set())
    assert text == before + "\r\nNote from the agent\r\n"


lines_pool = st.sampled_from(
    ["- [ ] T001 a", "- [x] T002 b", "- [ ] T003 c", "  - detail", "Prose.", "## Head", "", "- [ ] T004 d"]
)


# Task lines are unique within a file (duplicate explicit ids are a different problem).
documents = st.lists(
    lines_pool, min_size=1, max_size=12, unique_by=lambda x: x if x.startswith("- [") else object()
)


@settings(max_examples=300, deadline=None)
@given(documents, documents)
def test_property_reconcile_never_loses_a_task(a: list[str], b: list[str]) -> None:
    before, after = "\n".join(a) + "\n", "\n".join(b) + "\n"
    text, diff = reconcile(before, after, allowed_ticks=set())
    old = {t.id: t for t in parse_tasks(before).tasks}
    new = {t.id: t for t in parse_tasks(text).tasks}
    for task_id, task in old.items():
        assert task_id in new
        assert new[task_id].title == task.title and new[task_id].checked == task.checked
    # Running it again keeps the same tasks; where added text lands next to restored tasks may differ.
    again = reconcile(before, text, allowed_ticks=set())[0]

    def tasks_of(doc: str) -> list:
        return sorted((t.id, t.title, t.state, t.parent) for t in parse_tasks(doc).tasks)

    assert tasks_of(again) == tasks_of(text)
    if diff.only_ticks and not diff.ticked and not diff.unticked:
        assert text == after


def test_reconcile_tells_apart_tasks_worded_alike() -> None:
    before = "### Backend\n- [ ] Run tests\n### Frontend\n- [ ] Build UI\n- [ ] Run tests\n"
    after = before.replace("- [ ] Run tests", "- [x] Run tests", 1).replace(
        "- [ ] Build UI", "- [x] Build UI"
    )
    text, _ = reconcile(before, after, allowed_ticks={"build-ui"})
    assert text == before.replace("- [ ] Build UI", "- [x] Build UI")


agent_lines = st.sampled_from(
    ["- [ ] Run tests", "- [ ] Build", "- [ ] 1. Alpha", "  - [ ] 1.1 Beta", "  - detail", "", "### Section",
     "Some paragraph.", "- plain item", "---", "- [ ] T001 Setup", "  _Requirements: 1.1_"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(agent_lines, st.sampled_from(["keep", "tick", "delete"])), min_size=1, max_size=10))
def test_property_reconcile_undoes_an_agents_ticks_and_deleted_task_lines(
    edits: list[tuple[str, str]],
) -> None:
    """Tasks may repeat (a file may hold two "Run tests"): each comes back where it was."""
    before = "".join(line + "\n" for line, _ in edits)
    after = "".join(
        (line.replace("[ ]", "[x]") if action == "tick" else line) + "\n"
        for line, action in edits
        if not (action == "delete" and "[ ]" in line)
    )
    assert reconcile(before, after, allowed_ticks=set())[0] == before


def test_reconcile_undoes_an_agents_line_endings_and_tick_style() -> None:
    """A CLI agent that rewrites the file with its own newlines and `[x]` changed nothing but ticks."""
    before = "# Tasks\r\n\r\n- [X] T001 Done already\r\n- [ ] T002 Next\r\n- [ ] T003 Later\r\n"
    after = before.replace("\r\n", "\n").replace("[ ] T002", "[x] T002").replace("[ ] T003", "[x] T003")
    text, diff = reconcile(before, after, allowed_ticks={"T002"})
    assert diff.ticked == ["T002", "T003"]
    assert text == before.replace("[ ] T002", "[X] T002")


def test_a_line_that_becomes_a_task_without_changing_is_an_added_task() -> None:
    # "2. [ ] x" continues the paragraph before it; after a blank line it is a list item of its own.
    assert diff_tasks("para\n2. [ ] x\n", "para\n\n2. [ ] x\n").describe() == (
        "added task x; changed text outside the tasks"
    )
    assert diff_tasks("```\n- [ ] a\n```\n- [ ] b\n", "- [ ] a\n```\n- [ ] b\n").added == ["a"]
