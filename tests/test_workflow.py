"""Loading and validating workflows: the built-in default, several files, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import UserError
from runner.state import State
from runner.workflow import load_workflow
from tests.conftest import age, cli, write

RUN_PHASE = """
specs: ["specs/*"]
phases:
  build:
    inputs: ["{spec}/spec.md"]
    outputs: ["artifacts/{name}-build/out"]
    run: "true"
"""


def test_project_without_workflow_uses_the_builtin_default(tmp_path: Path) -> None:
    wf = load_workflow(tmp_path)
    assert list(wf.phases) == ["design", "implement", "test", "review"]
    assert wf.spec_roots == ("agent-os/specs/*", "specs/*", ".kiro/specs/*")
    implement = wf.phases["implement"]
    assert implement.each == "task" and implement.needs == ("design",) and implement.agent == "implementer"
    assert wf.phases["test"].run and wf.phases["review"].reviews == "implement"


def test_phases_come_in_dependency_order_and_inherit_file_defaults(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "workflows/a.yaml": """
            specs: ["docs/*"]
            model: opus
            budget: {max_turns: 5}
            phases:
              late:
                needs: [early]
                agent: architect
                budget: {max_cost_usd: 1.5}
            """,
            "workflows/b.yaml": """
            phases:
              early:
                run: "true"
            """,
        },
    )
    wf = load_workflow(tmp_path)
    assert list(wf.phases) == ["early", "late"]
    late = wf.phases["late"]
    assert late.model == "opus" and late.spec_roots == ("docs/*",)
    assert late.budget.max_turns == 5 and late.budget.max_cost_usd == 1.5
    assert wf.phases["early"].spec_roots == ("agent-os/specs/*", "specs/*", ".kiro/specs/*")
    assert set(wf.spec_roots) == {"docs/*", "agent-os/specs/*", "specs/*", ".kiro/specs/*"}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            "phases:\n  build:\n    run: x\n    inptus: [a]\n",
            4,
            ["unknown key 'inptus'", "did you mean 'inputs'"],
        ),
        ("phases:\n  a:\n    agent: architect\n    run: x\n", 2, ["both 'agent' and 'run'"]),
        ("phases:\n  a:\n    inputs: [x]\n", 2, ["neither 'agent' nor 'run'"]),
        (
            "phases:\n  a:\n    run: x\n    needs: [b]\n  b:\n    run: y\n    needs: [a]\n",
            4,
            ["cycle in needs", "a -> b -> a"],
        ),
        ("phases:\n  a:\n    run: x\n    needs: [nope]\n", 4, ["needs unknown phase 'nope'"]),
        ("phases:\n  a:\n    run: x\n    each: file\n", 4, ["each must be 'task'"]),
        ("phases:\n  a:\n    run: [x\n", 4, ["invalid YAML", "at line 3"]),
        ("phases:\n  a:\n    run: x\n    budget: {max_turns: -1}\n", 4, ["must be a number > 0"]),
        ("phases:\n  a:\n    run: x\n    inputs: [o]\n    outputs: [o]\n", 5, ["both input and output"]),
        ("specs: x\nphase:\n  a: {}\n", 2, ["unknown key 'phase'"]),
        ("phases:\n  a:\n    run: x\n  a:\n    run: y\n", 4, ["'a' is given twice (first at line 2)"]),
        (
            "phases:\n  a:\n    run: x\n    outputs: [o]\n  b:\n    run: y\n    outputs: [o]\n",
            7,
            ["phases 'a' and 'b' both write o"],
        ),
        ("phases:\n  a:\n    run: x\n    needs: [aa]\n  bb:\n    run: y\n", 4, ["did you mean 'a'"]),
        (
            "phases:\n  a:\n    agent: architect\n    model: sonet\n",
            4,
            ["'sonet' is not a Claude model", "'sonnet'"],
        ),
        ("model: gpt-5\nphases:\n  a:\n    agent: architect\n", 1, ["'gpt-5' is not a Claude model"]),
        (
            "phases:\n  a:\n    run: x\n    inputs:\n      - '{spec}/a.md'\n      - '{spce}/tasks.md'\n",
            6,
            ["unknown placeholder {spce}", "did you mean spec"],
        ),
        (
            "phases:\n  a:\n    run: x\n    outputs: ['out/{task}.md']\n",
            4,
            ["{task} in 'out/{task}.md' needs `each: task`"],
        ),
        ("phases:\n  a:\n    run: x\n    verify: [pytest]\n", 4, ["verify checks an agent's work"]),
    ],
)
def test_invalid_workflow_is_one_line_naming_file_line_and_key(
    tmp_path: Path, text: str, line: int, words: list[str]
) -> None:
    write(tmp_path, {"workflows/w.yaml": text})
    with pytest.raises(UserError) as e:
        load_workflow(tmp_path)
    message = str(e.value)
    assert "\n" not in message
    assert f"w.yaml:{line}:" in message, message
    for w in words:
        assert w in message


def test_unknown_agent_is_reported_at_its_line_with_exit_2_and_nothing_written(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "workflows/w.yaml": "specs: [specs/*]\nphases:\n  design:\n    agent: archtect\n",
            "specs/a/spec.md": "x",
        },
    )
    result = cli(tmp_path, "run")
    assert result.exit_code == 2
    assert (
        "w.yaml:4:" in result.stderr and "agent 'archtect'" in result.stderr and "architect" in result.stderr
    )
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "artifacts").exists()


def test_model_names_are_checked_where_claude_reads_them(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "workflows/w.yaml": """
            specs: [specs/*]
            models: {fast: my-proxy-model}
            phases:
              plan: {agent: planner}
              quick: {agent: architect, model: fast}
              cli: {agent: helper, provider: command, command: "cat"}
            """,
            "agent-os/agents/planner.md": "---\nname: planner\nmodel: claude-opus-4-1@20250805\n---\nPlan.\n",
            "agent-os/agents/helper.md": "---\nname: helper\nmodel: gpt-5\n---\nHelp.\n",
            "specs/a/spec.md": "x",
        },
    )
    # Full ids (here Vertex's), `models:` names and other providers' models all pass.
    assert cli(tmp_path, "status").exit_code == 0
    write(tmp_path, {"agent-os/agents/planner.md": "---\nname: planner\nmodel: hiaku\n---\nPlan.\n"})
    result = cli(tmp_path, "run")
    assert result.exit_code == 2
    assert "planner.md:3: model 'hiaku' is not a Claude model (did you mean 'haiku'?)" in result.stderr
    assert not (tmp_path / "artifacts").exists()


def test_an_agent_given_by_path_that_does_not_exist(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "workflows/w.yaml": "specs: [specs/*]\nphases:\n  r:\n    agent: prompts/review.txt\n",
            "specs/a/spec.md": "x",
        },
    )
    result = cli(tmp_path, "status")
    assert (
        result.exit_code == 2
        and "w.yaml:4: phase 'r' uses agent file prompts/review.txt: no such file" in result.stderr
    )


def test_duplicate_phase_across_files_is_an_error(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "workflows/a.yaml": "phases:\n  build:\n    run: x\n",
            "workflows/b.yaml": "phases:\n  other:\n    run: y\n  build:\n    run: z\n",
        },
    )
    with pytest.raises(UserError, match=r"b\.yaml:4: phase 'build' is also defined in"):
        load_workflow(tmp_path)


def test_parsed_workflow_is_cached_by_stat_and_reparsed_after_an_edit(tmp_path: Path) -> None:
    write(tmp_path, {"workflows/w.yaml": RUN_PHASE})
    age(tmp_path)
    state = State.open(tmp_path)
    parses: list[str] = []

    def counting(path, kind, parse):  # type: ignore[no-untyped-def]
        def counted(data: bytes):  # type: ignore[no-untyped-def]
            parses.append(kind)
            return parse(data)

        return state.cached(path, kind, counted)

    assert load_workflow(tmp_path, counting).phases["build"].run == "true"
    assert load_workflow(tmp_path, counting).phases["build"].run == "true"
    assert parses == ["workflow"]
    (tmp_path / "workflows/w.yaml").write_text(
        RUN_PHASE.replace('run: "true"', 'run: "false"'), encoding="utf-8"
    )
    assert load_workflow(tmp_path, counting).phases["build"].run == "false"
    assert parses == ["workflow", "workflow"]
