"""The command line as a new user meets it: init, dry runs, status, explain, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from runner import __version__
from tests.conftest import cli


def test_init_in_an_empty_folder_gives_a_project_that_plans_at_once(tmp_path: Path) -> None:
    result = cli(tmp_path, "init")
    assert result.exit_code == 0
    for rel in (
        "workflows/spec-driven.yaml",
        "agent-os/agents/architect.md",
        "agent-os/agents/implementer.md",
        "agent-os/agents/tester.md",
        "agent-os/agents/reviewer.md",
        "agent-os/specs/example-slugify/spec.md",
        "agent-os/specs/example-slugify/tasks.md",
        "artifacts/.gitkeep",
    ):
        assert (tmp_path / rel).is_file(), rel
    assert ".runner/" in (tmp_path / ".gitignore").read_text()
    dry = cli(tmp_path, "run", "--dry-run", env={"ANTHROPIC_API_KEY": None, "ANTHROPIC_AUTH_TOKEN": None})
    assert dry.exit_code == 0, dry.stderr
    *lines, note = dry.stdout.splitlines()
    assert note.startswith("a real run would stop here: example-slugify:design runs an agent")
    assert "set ANTHROPIC_API_KEY" in note
    planned = [line.split()[0] for line in lines]
    assert planned == [
        "example-slugify:design",
        "example-slugify:implement:1.0",
        "example-slugify:implement:2.0",
        "example-slugify:test",
        "example-slugify:review",
    ]
    assert not (tmp_path / ".runner").exists()  # a dry run writes nothing


def test_init_keeps_existing_files(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows/spec-driven.yaml").write_text("# mine\nphases:\n  x:\n    run: 'true'\n")
    (tmp_path / ".gitignore").write_text("node_modules/")
    result = cli(tmp_path, "init")
    assert "kept     workflows/spec-driven.yaml" in result.stdout
    assert (tmp_path / "workflows/spec-driven.yaml").read_text().startswith("# mine")
    assert (tmp_path / ".gitignore").read_text().startswith("node_modules/\n# runner\n.runner/")


def test_init_adds_no_example_to_a_project_with_specs(tmp_path: Path) -> None:
    (tmp_path / "specs/001-life").mkdir(parents=True)
    (tmp_path / "specs/001-life/spec.md").write_text("# Life\n")
    result = cli(tmp_path, "init")
    assert "skipped  agent-os/specs/example-slugify (the project has specs: specs/001-life)" in result.stdout
    assert not (tmp_path / "agent-os/specs").exists()
    assert (tmp_path / "agent-os/agents/implementer.md").is_file()


def test_agent_run_without_a_key_says_what_to_set(tmp_path: Path) -> None:
    cli(tmp_path, "init")
    result = cli(tmp_path, "run", env={"ANTHROPIC_API_KEY": "", "ANTHROPIC_AUTH_TOKEN": ""})
    assert result.exit_code == 2
    assert "set ANTHROPIC_API_KEY" in result.stderr and result.stderr.count("\n") == 1


def test_status_and_explain(tmp_path: Path) -> None:
    cli(tmp_path, "init")
    rows = json.loads(cli(tmp_path, "status", "--json").stdout)
    assert [r["state"] for r in rows] == ["stale"] * 5
    assert rows[1] == {
        "job": "example-slugify:implement:1.0",
        "spec": "example-slugify",
        "phase": "implement",
        "task": "1.0",
        "state": "stale",
        "reasons": ["never run"],
        "last_run": None,
    }
    text = cli(tmp_path, "explain", "example-slugify:implement:2.0").stdout
    assert "is stale" in text and "never run" in text and "Depends on: example-slugify:design" in text
    wrong = cli(tmp_path, "explain", "example-slugify:desing")
    assert wrong.exit_code == 2 and "did you mean example-slugify:design" in wrong.stderr


def test_version_help_and_missing_directory() -> None:
    out = subprocess.run([sys.executable, "-m", "runner", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"runner, version {__version__}"
    helped = subprocess.run([sys.executable, "-m", "runner", "--help"], capture_output=True, text=True)
    for command in ("init", "run", "status", "explain", "watch", "tasks", "check", "uncheck", "log", "clean"):
        assert f"  {command}" in helped.stdout, command
    missing = subprocess.run(
        [sys.executable, "-m", "runner", "-C", "/nonexistent/x", "status"], capture_output=True
    )
    assert missing.returncode == 2


def test_clean_removes_artifacts_and_state_of_one_spec(project) -> None:  # type: ignore[no-untyped-def]
    wf = 'specs: ["specs/*"]\nphases:\n  p:\n    outputs: ["artifacts/{name}-p/x"]\n    run: "mkdir -p $RUNNER_ARTIFACTS && touch $RUNNER_ARTIFACTS/x"\n'
    root = project(wf, {"specs/a/spec.md": "x", "specs/b/spec.md": "x"})
    assert cli(root, "run").exit_code == 0
    result = cli(root, "clean", "a")
    assert result.stdout.strip() == "removed 1 artifact folder and 1 job records"
    assert not (root / "artifacts/a-p").exists() and (root / "artifacts/b-p/x").exists()
    states = {r["job"]: r["state"] for r in json.loads(cli(root, "status", "--json").stdout)}
    assert states == {"a:p": "stale", "b:p": "up-to-date"}


def test_a_run_that_finds_no_specs_says_where_it_looked(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows/w.yaml").write_text('specs: ["nothing/*"]\nphases:\n  p:\n    run: "true"\n')
    for args in (("run", "--dry-run"), ("run",)):
        result = cli(tmp_path, *args)
        assert result.exit_code == 0
        assert result.stdout.startswith("no specs found under nothing/* (a spec folder holds one of spec.md,")


def test_check_uncheck_and_tasks_from_the_command_line(tmp_path: Path) -> None:
    spec = tmp_path / "agent-os/specs/s"
    spec.mkdir(parents=True)
    text = "## Task Group 1\n- [ ] 1.0 Build\n  - [ ] 1.1 Step\n- [ ] 2.0 Ship\n"
    (spec / "tasks.md").write_text(text)
    assert cli(tmp_path, "check", "agent-os/specs/s/tasks.md", "2").stdout == "ticked 2.0\n"
    assert cli(tmp_path, "check", "agent-os/specs/s/tasks.md", "2.0").stdout == "2.0 was already ticked\n"
    unknown = cli(tmp_path, "check", "agent-os/specs/s/tasks.md", "9.9")
    assert unknown.exit_code == 2 and unknown.stderr.startswith(
        "runner: agent-os/specs/s/tasks.md: no task with id '9.9'"
    )
    assert cli(tmp_path, "uncheck", "agent-os/specs/s/tasks.md", "2.0").stdout == "unticked 2.0\n"
    assert (spec / "tasks.md").read_text() == text
    listed = cli(tmp_path, "tasks", "agent-os/specs/s").stdout.splitlines()
    assert listed == ["    2  [ ] 1.0  Build", "    3  [ ]   1.1  Step", "    4  [ ] 2.0  Ship"]
    folder = cli(tmp_path, "tasks", "agent-os/specs")
    assert folder.exit_code == 2 and "agent-os/specs is a folder without a tasks.md" in folder.stderr
    assert cli(tmp_path, "check", "agent-os/specs/s", "1.1").stdout == "ticked 1.1\n"  # a spec folder will do
    assert cli(tmp_path, "check", "agent-os/specs/s", "1.0").exit_code == 0
    explained = cli(tmp_path, "explain", "s:implement:1.0").stdout
    assert explained.startswith("s:implement:1.0 is up to date: its tasks are ticked.\n")
    unknown = cli(tmp_path, "uncheck", "agent-os/specs/s", "7")
    assert unknown.exit_code == 2 and unknown.stderr.startswith(
        "runner: agent-os/specs/s/tasks.md: no task with id '7'"
    )


def test_a_tasks_md_that_is_not_utf8_stops_the_plan(tmp_path: Path) -> None:
    spec = tmp_path / "specs/s"
    spec.mkdir(parents=True)
    (spec / "spec.md").write_text("# S\n")
    (spec / "tasks.md").write_bytes(b"# Tasks\n\n- [ ] T001 Caf\xe9 task\n")
    result = cli(tmp_path, "run", "--dry-run")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "runner: specs/s/tasks.md:3:15: not UTF-8 text (byte 0xe9); save the file as UTF-8"
    )
    # `runner status` shows the other specs, and names the one it leaves out
    other = tmp_path / "specs/t"
    other.mkdir()
    (other / "spec.md").write_text("# T\n")
    (other / "tasks.md").write_text("- [ ] T001 Fine task\n")
    status = cli(tmp_path, "status")
    assert status.exit_code == 2
    assert status.stdout.startswith("t:")
    assert "s:" not in status.stdout
    assert status.stderr == (
        "runner: specs/s/tasks.md:3:15: not UTF-8 text (byte 0xe9); save the file as UTF-8 "
        "(that spec is left out)\n"
    )
    # `runner tasks` names it the same way, however the file was given
    for given in ("specs/s", str(spec / "tasks.md")):
        shown = cli(tmp_path, "tasks", given)
        assert shown.exit_code == 2 and shown.stderr.startswith("runner: specs/s/tasks.md:3:15: not UTF-8"), (
            given
        )


def test_option_values_are_checked(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows/w.yaml").write_text('specs: ["specs/*"]\nphases:\n  build:\n    run: "true"\n')
    assert cli(tmp_path, "run", "-j", "0").exit_code == 2
    assert cli(tmp_path, "watch", "--debounce", "-5").exit_code == 2
    typo = cli(tmp_path, "run", "--phase", "biuld")
    assert typo.exit_code == 2 and "no phase named 'biuld' (did you mean 'build'?)" in typo.stderr


def test_a_broken_spec_feature_list_stops_the_plan(tmp_path: Path) -> None:
    spec = tmp_path / "specs/s"
    spec.mkdir(parents=True)
    (spec / "spec.md").write_text("# S\n")
    broken = '{"features": [\n  {"id": "F2", "name": "map" "status": "done"}\n]}\n'
    (spec / "features.json").write_text(broken)
    result = cli(tmp_path, "run", "--dry-run")  # the default workflow starts its features.json from it
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "runner: specs/s/features.json:2:30: invalid JSON: Expecting ',' delimiter"
    )
    assert (spec / "features.json").read_text() == broken
