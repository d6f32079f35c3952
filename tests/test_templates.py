"""Agent definitions and template filling, including every seed prompt the user wrote."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runner.agents.definitions import agent_path, load_agent, parse_definition
from runner.agents.templates import PromptValues, render
from runner.errors import UserError
from tests.conftest import SHARED, needs_shared, write

VALUES = PromptValues(
    spec="agent-os/specs/auth",
    name="auth",
    phase="implement",
    task="Task 1.0: Build login\n  - [ ] 1.1 Write tests",
    task_id="1.0",
    notes="use bcrypt",
    feedback="1. Missing rate limit",
)

# What a placeholder looks like in the seeds: {{name}}, [this-spec], and the orchestrator's bracket line.
LEFTOVER = re.compile(
    r"\{\{\s*[A-Za-z][\w-]*\s*\}\}|\[this-spec\]|^\[[A-Z ]*INSERTED[A-Z ]*\]$", re.MULTILINE
)


def seeds() -> list[Path]:
    return sorted((SHARED / "seeds").glob("*")) if SHARED.is_dir() else []


@needs_shared
@pytest.mark.parametrize("seed", seeds(), ids=lambda p: p.name[:3])
def test_every_seed_renders_with_no_placeholder_left(seed: Path) -> None:
    agent = load_agent(seed)
    rendered = render(agent.body, VALUES, agent.argument_hint)
    assert not LEFTOVER.search(rendered.text), LEFTOVER.search(rendered.text)
    assert rendered.unknown == ()
    # Only a whole task block counts as placed ({{issue-id}} alone is just the id).
    assert rendered.task_placed == ("{{task}}" in agent.body or "INSERTED HERE" in agent.body)


@needs_shared
def test_seed_front_matter_is_read_like_claude_code() -> None:
    implementer = load_agent(next(p for p in seeds() if p.name.startswith("001")))
    assert implementer.name == "implementer"
    assert implementer.model is None  # inherit
    assert implementer.tools is not None and "WebFetch" in implementer.tools and "Bash" in implementer.tools
    command = load_agent(next(p for p in seeds() if p.name.startswith("004")))
    assert command.model == "haiku"
    assert command.argument_hint == ("spec-name", "issue-id", "notes")
    plain = load_agent(next(p for p in seeds() if p.name.startswith("000")))
    assert plain.fields == {} and plain.body.startswith("You are a DEVELOPER AGENT")


def test_slash_command_placeholders_are_filled_from_the_run() -> None:
    body = "Implement {{issue-id}} of {{spec-name}}.\n\nNotes:\n\n{{notes}}"
    text = render(body, VALUES, ("spec-name", "issue-id", "notes")).text
    assert text == "Implement 1.0 of agent-os/specs/auth.\n\nNotes:\n\nuse bcrypt\n\n1. Missing rate limit"


def test_bracket_line_is_replaced_by_the_task_block() -> None:
    body = "TASK DETAILS\n\n[TASK WILL BE INSERTED HERE BY ORCHESTRATOR]\n\nGo."
    rendered = render(body, VALUES)
    assert rendered.task_placed
    assert rendered.text == f"TASK DETAILS\n\n{VALUES.task}\n\nGo."


def test_feedback_goes_to_its_own_placeholder_and_not_into_notes() -> None:
    rendered = render("{{notes}} | {{feedback}} | {{ Spec_Name }} | [this-spec] | {{phase}}", VALUES)
    assert rendered.text == "use bcrypt | 1. Missing rate limit | agent-os/specs/auth | auth | implement"
    assert rendered.feedback_placed


def test_a_prompt_without_a_task_slot_reports_it_and_keeps_unknown_placeholders() -> None:
    rendered = render("You are a developer. Use {{tool_name}} wisely.", VALUES)
    assert not rendered.task_placed and not rendered.feedback_placed
    assert rendered.unknown == ("tool_name",)
    assert "{{tool_name}}" in rendered.text


def test_positional_arguments_of_slash_commands() -> None:
    text = render("Do $2 in $1 ($ARGUMENTS)", VALUES, ("spec-name", "issue-id")).text
    assert text == "Do 1.0 in agent-os/specs/auth (agent-os/specs/auth 1.0)"


def test_front_matter_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.md"
    path.write_text("---\nname: x\njust words\n---\nbody\n", encoding="utf-8")
    with pytest.raises(UserError) as e:
        load_agent(path)
    assert "bad.md:" in str(e.value) and "front matter" in str(e.value)


def test_yaml_dates_at_any_depth_become_text(tmp_path: Path) -> None:
    from runner.state import State

    write(
        tmp_path,
        {"agent-os/agents/dev.md": "---\nreviewed: [2024-05-01]\nmeta: {since: 2023-01-02}\n---\nGo."},
    )
    state = State.open(tmp_path)  # definitions are cached in the state database, which needs plain data
    agent = load_agent(tmp_path / "agent-os/agents/dev.md", state.cached)
    assert agent.fields == {"reviewed": ["2024-05-01"], "meta": {"since": "2023-01-02"}}


def test_agent_lookup_order_and_name_field(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".claude/agents/impl.md": "---\nname: implementer\n---\nclaude",
            "agent-os/agents/reviewer.md": "---\nname: reviewer\n---\nours",
        },
    )
    assert agent_path(tmp_path, "implementer") == tmp_path / ".claude/agents/impl.md"
    assert agent_path(tmp_path, "reviewer") == tmp_path / "agent-os/agents/reviewer.md"
    builtin = agent_path(tmp_path, "architect")
    assert builtin is not None and builtin.name == "architect.md"
    assert agent_path(tmp_path, "nobody") is None


def test_plain_prompt_and_crlf_front_matter() -> None:
    assert parse_definition(Path("x.txt"), "Just do it.\n") == {"fields": {}, "body": "Just do it.\n"}
    parsed = parse_definition(Path("x.md"), "---\r\nmodel: opus\r\n---\r\nBody\r\n")
    assert parsed == {"fields": {"model": "opus"}, "body": "Body\r\n"}


def test_builtin_agents_render_completely() -> None:
    for name in ("architect", "implementer", "tester", "reviewer"):
        path = agent_path(Path("/nonexistent"), name)
        assert path is not None
        rendered = render(load_agent(path).body, VALUES)
        assert not LEFTOVER.search(rendered.text), name


def test_values_filled_in_are_not_read_for_placeholders_again() -> None:
    values = PromptValues(
        spec="specs/a",
        name="a",
        phase="implement",
        task="Run awk '{print $1}' on [this-spec]",
        notes="use $ARGUMENTS",
    )
    text = render("{{task}} | {{notes}} | $1", values, ("spec-name",)).text
    assert text == "Run awk '{print $1}' on [this-spec] | use $ARGUMENTS | specs/a"


def test_task_block_uses_the_files_own_line_breaks() -> None:
    from runner.agents.context import task_block
    from runner.tasks import parse_tasks

    tasks = parse_tasks(
        "- [ ] 1.0 Title with\u2028a line separator\n  - [ ] 1.1 a\n- [ ] 2.0 Next\n  - [ ] 2.1 b\n"
    )
    block = task_block(tasks, "2.0", "tasks.md")
    assert block.splitlines()[2:] == ["- [ ] 2.0 Next", "  - [ ] 2.1 b"]


def test_task_block_keeps_code_with_comments_and_stops_at_the_next_heading() -> None:
    from runner.agents.context import task_block
    from runner.tasks import parse_tasks

    text = (
        "## Task Group 1\n- [ ] 1.0 Set up\n  - [ ] 1.1 Pin the tool\n    ```bash\n    # pin the version\n"
        "    pip install tool==1.2\n    ```\n  - [ ] 1.2 Check it\n\n**Acceptance Criteria:** it runs\n\n"
        "## Task Group 2\n- [ ] 2.0 Next\n"
    )
    block = task_block(parse_tasks(text), "1.0", "tasks.md").splitlines()
    assert block[2:] == [
        "- [ ] 1.0 Set up",
        "  - [ ] 1.1 Pin the tool",
        "    ```bash",
        "    # pin the version",
        "    pip install tool==1.2",
        "    ```",
        "  - [ ] 1.2 Check it",
        "",
        "**Acceptance Criteria:** it runs",
    ]
