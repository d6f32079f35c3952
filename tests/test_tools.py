from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.agents.sandbox import Sandbox
from runner.agents.tools import (
    GLOB_MAX_RESULTS,
    TOOL_SCHEMAS,
    ToolResult,
    Tools,
)
from runner.globs import compile_glob
from runner.secrets import scrubbed_env

# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return root.resolve()


def put(root: Path, rel: str, text: str | bytes = "") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode())
    return path


def make_tools(root: Path, **kwargs: Any) -> Tools:
    return Tools(Sandbox(root), **kwargs)


def ok(result: ToolResult) -> str:
    assert not result.is_error, result.content
    return result.content


def err(result: ToolResult) -> str:
    assert result.is_error, result.content
    return result.content


class FakeGuard:
    """The tasks.md guard protocol, recording what the tools hand it."""

    def __init__(self, *, shell_note: str | None = None) -> None:
        self.writes: list[tuple[Path, str]] = []
        self.shell_calls = 0
        self.before_calls = 0
        self.shell_note = shell_note

    def covers(self, path: Path) -> bool:
        return path.name == "tasks.md"

    def write(self, path: Path, new_text: str) -> ToolResult:
        self.writes.append((path, new_text))
        return ToolResult("guard: tick recorded; it is applied after verify passes")

    def before_shell(self) -> None:
        self.before_calls += 1

    def after_shell(self) -> str | None:
        self.shell_calls += 1
        return self.shell_note


# -- selection and schemas -------------------------------------------------------------------------


def test_schemas_match_claude_code_shapes() -> None:
    props = {name: set(s["input_schema"]["properties"]) for name, s in TOOL_SCHEMAS.items()}
    assert props["Read"] == {"file_path", "offset", "limit"}
    assert props["Write"] == {"file_path", "content"}
    assert props["Edit"] == {"file_path", "old_string", "new_string", "replace_all"}
    assert props["Glob"] == {"pattern", "path"}
    assert props["Grep"] == {
        "pattern", "path", "glob", "output_mode", "-B", "-A", "-C", "-n", "-i", "type", "head_limit", "multiline",
    }  # fmt: skip
    assert props["Bash"] == {"command", "timeout", "description"}
    assert props["CompleteTask"] == {"task_id", "evidence"}
    assert props["Finish"] == {"status", "summary", "changes", "deviations", "limitations", "concerns"}
    assert TOOL_SCHEMAS["Finish"]["input_schema"]["properties"]["status"]["enum"] == [
        "done",
        "partial",
        "blocked",
    ]
    for name, schema in TOOL_SCHEMAS.items():
        assert schema["name"] == name
        assert set(schema) == {"name", "description", "input_schema"}
        assert schema["input_schema"]["type"] == "object"
    required = {name: s["input_schema"]["required"] for name, s in TOOL_SCHEMAS.items()}
    assert required["Edit"] == ["file_path", "old_string", "new_string"]
    assert required["Finish"] == ["status", "summary"]
    assert "relative to the project root" in TOOL_SCHEMAS["Read"]["description"]
    assert "Read" in TOOL_SCHEMAS["Edit"]["description"]
    assert "CompleteTask" in TOOL_SCHEMAS["Edit"]["description"]


def test_all_tools_by_default(root: Path) -> None:
    tools = make_tools(root)
    assert [s["name"] for s in tools.schemas()] == [
        "Read", "Write", "Edit", "Glob", "Grep", "Bash", "CompleteTask", "Finish",
    ]  # fmt: skip
    assert tools.unknown == []


def test_selection_from_a_seed_tools_list(root: Path) -> None:
    names = ["Write", "Read", "Bash", "WebFetch", "mcp__playwright__browser_close", "WebFetch", "Task"]
    tools = make_tools(root, names=names)
    assert [s["name"] for s in tools.schemas()] == ["Read", "Write", "Bash", "CompleteTask", "Finish"]
    assert tools.unknown == ["WebFetch", "mcp__playwright__browser_close", "Task"]
    assert "not available" in err(
        tools.execute("Edit", {"file_path": "x", "old_string": "a", "new_string": "b"})
    )
    assert "Unknown tool" in err(tools.execute("WebFetch", {"url": "x"}))


def test_empty_tools_list_still_offers_the_loop_tools(root: Path) -> None:
    assert [s["name"] for s in make_tools(root, names=[]).schemas()] == ["CompleteTask", "Finish"]


def test_selection_leniency(root: Path) -> None:
    tools = make_tools(root, names="Read, grep, Bash(git diff:*)")  # type: ignore[arg-type]
    assert [s["name"] for s in tools.schemas()] == ["Read", "Grep", "Bash", "CompleteTask", "Finish"]
    assert tools.unknown == []


def test_loop_tools_are_not_executed_here(root: Path) -> None:
    tools = make_tools(root)
    with pytest.raises(KeyError):
        tools.execute("CompleteTask", {"task_id": "1", "evidence": "x"})
    with pytest.raises(KeyError):
        tools.execute("Finish", {"status": "done", "summary": "x"})


def test_schemas_are_copies(root: Path) -> None:
    tools = make_tools(root)
    tools.schemas()[-1]["cache_control"] = {"type": "ephemeral"}
    assert "cache_control" not in tools.schemas()[-1]
    assert "cache_control" not in TOOL_SCHEMAS["Finish"]


def test_bad_inputs_are_errors(root: Path) -> None:
    tools = make_tools(root)
    assert "object" in err(tools.execute("Read", "src/app.py"))  # type: ignore[arg-type]
    assert "file_path is required" in err(tools.execute("Read", {}))
    assert "must be a string" in err(tools.execute("Write", {"file_path": "a.txt", "content": 3}))
    assert "whole number" in err(tools.execute("Read", {"file_path": "a", "offset": 1.5}))
    assert "true or false" in err(
        tools.execute(
            "Edit", {"file_path": "a", "old_string": "x", "new_string": "y", "replace_all": "maybe"}
        )
    )


# -- Read ------------------------------------------------------------------------------------------


def test_read_numbers_lines_like_cat_n(root: Path) -> None:
    put(root, "src/app.py", "import os\n\tindented\n\nlast")
    out = ok(make_tools(root).execute("Read", {"file_path": "src/app.py"}))
    assert out == "     1\timport os\n     2\t\tindented\n     3\t\n     4\tlast"


def test_read_pages_long_files(root: Path) -> None:
    put(root, "big.txt", "".join(f"line {i}\n" for i in range(1, 2501)))
    tools = make_tools(root)
    first = ok(tools.execute("Read", {"file_path": "big.txt"}))
    lines = first.split("\n")
    assert lines[0] == "     1\tline 1"
    assert lines[1999] == "  2000\tline 2000"
    assert lines[-1] == "... 500 more lines; use offset=2001 to read on"
    part = ok(tools.execute("Read", {"file_path": "big.txt", "offset": 2001, "limit": 3}))
    assert part.split("\n") == [
        "  2001\tline 2001",
        "  2002\tline 2002",
        "  2003\tline 2003",
        "... 497 more lines; use offset=2004 to read on",
    ]
    tail = ok(tools.execute("Read", {"file_path": "big.txt", "offset": 2499}))
    assert tail == "  2499\tline 2499\n  2500\tline 2500"
    assert "past the end" in err(tools.execute("Read", {"file_path": "big.txt", "offset": 2501}))


def test_read_cuts_long_lines_and_huge_output(root: Path) -> None:
    put(root, "wide.txt", "x" * 5000 + "\nshort\n")
    out = ok(make_tools(root).execute("Read", {"file_path": "wide.txt"}))
    first, second = out.split("\n")
    assert first.startswith("     1\t" + "x" * 2000 + " [... line cut: 5000 characters]")
    assert second == "     2\tshort"
    put(root, "heavy.txt", ("y" * 1999 + "\n") * 1000)
    out = ok(make_tools(root).execute("Read", {"file_path": "heavy.txt"}))
    assert len(out) < 110_000
    assert "use offset=" in out.splitlines()[-1]


def test_read_special_cases(root: Path) -> None:
    put(root, "empty.txt", "")
    put(root, "img.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    put(root, "crlf.txt", "a\r\nb\r\n")
    put(root, "bom.txt", "\ufeffhello\n")
    put(root, "latin1.txt", b"caf\xe9\n")
    (root / "folder").mkdir()
    tools = make_tools(root)
    assert "empty" in ok(tools.execute("Read", {"file_path": "empty.txt"}))
    assert "binary" in err(tools.execute("Read", {"file_path": "img.png"}))
    assert "folder" in err(tools.execute("Read", {"file_path": "folder"}))
    assert ok(tools.execute("Read", {"file_path": "crlf.txt"})) == "     1\ta\n     2\tb"
    assert ok(tools.execute("Read", {"file_path": "bom.txt"})) == "     1\thello"
    assert ok(tools.execute("Read", {"file_path": "latin1.txt"})) == "     1\tcaf\ufffd"


def test_read_missing_file_suggests_same_name(root: Path) -> None:
    put(root, "tasks/backend_tasks.md", "- [ ] 1\n")
    tools = make_tools(root)
    assert "Did you mean `tasks/backend_tasks.md`?" in err(
        tools.execute("Read", {"file_path": "backend_tasks.md"})
    )
    assert "does not exist" in err(tools.execute("Read", {"file_path": "nope.md"}))


def test_read_refusals_come_back_as_errors(root: Path) -> None:
    put(root, ".git/config", "[core]\n")
    put(root, "tasks/backend_tasks.md", "x\n")
    tools = make_tools(root)
    assert ".git/" in err(tools.execute("Read", {"file_path": ".git/config"}))
    assert "outside the project" in err(tools.execute("Read", {"file_path": "../x"}))
    assert "tasks/backend_tasks.md" in err(tools.execute("Read", {"file_path": "/tasks/backend_tasks.md"}))


# -- Write -----------------------------------------------------------------------------------------


def test_write_creates_file_and_parents(root: Path) -> None:
    tools = make_tools(root)
    assert ok(tools.execute("Write", {"file_path": "a/b/c.txt", "content": "one\ntwo\n"})) == (
        "Created a/b/c.txt (2 lines)."
    )
    assert (root / "a/b/c.txt").read_text() == "one\ntwo\n"
    assert tools.changed_files == {"a/b/c.txt"}
    # Having written it, the agent may overwrite it without reading.
    ok(tools.execute("Write", {"file_path": "a/b/c.txt", "content": "three\n"}))
    assert (root / "a/b/c.txt").read_text() == "three\n"


def test_write_existing_requires_read(root: Path) -> None:
    put(root, "notes.md", "keep me\n")
    tools = make_tools(root)
    message = err(tools.execute("Write", {"file_path": "notes.md", "content": "gone\n"}))
    assert "Read it first" in message
    assert (root / "notes.md").read_text() == "keep me\n"
    ok(tools.execute("Read", {"file_path": "notes.md"}))
    assert (
        ok(tools.execute("Write", {"file_path": "notes.md", "content": "new\n"}))
        == "Updated notes.md (1 line)."
    )
    assert (root / "notes.md").read_text() == "new\n"


def test_write_refuses_a_file_changed_since_read(root: Path) -> None:
    path = put(root, "spec.md", "v1\n")
    tools = make_tools(root)
    ok(tools.execute("Read", {"file_path": "spec.md"}))
    path.write_text("v2 by a person, longer\n")
    assert "changed since you last read it" in err(
        tools.execute("Write", {"file_path": "spec.md", "content": "x"})
    )
    assert path.read_text() == "v2 by a person, longer\n"
    # Same bytes with a new mtime (a `touch`) is not a change.
    ok(tools.execute("Read", {"file_path": "spec.md"}))
    os.utime(path, ns=(1, 1))
    ok(tools.execute("Write", {"file_path": "spec.md", "content": "agent\n"}))


def test_write_keeps_crlf_and_bom(root: Path) -> None:
    put(root, "win.txt", "\ufeffa\r\nb\r\n")
    tools = make_tools(root)
    ok(tools.execute("Read", {"file_path": "win.txt"}))
    ok(tools.execute("Write", {"file_path": "win.txt", "content": "x\ny\n"}))
    assert (root / "win.txt").read_bytes() == "\ufeffx\r\ny\r\n".encode()


def test_write_refusals(root: Path) -> None:
    (root / "folder").mkdir()
    tools = make_tools(root)
    assert ".git/" in err(tools.execute("Write", {"file_path": ".git/hooks/pre-commit", "content": "x"}))
    assert ".runner/" in err(tools.execute("Write", {"file_path": ".runner/state.db", "content": "x"}))
    assert "folder" in err(tools.execute("Write", {"file_path": "folder", "content": "x"}))
    assert "outside" in err(tools.execute("Write", {"file_path": "/tmp/evil.txt", "content": "x"}))
    assert not (root / ".git").exists()
    assert tools.changed_files == set()


def test_write_without_read_tool_offered(root: Path) -> None:
    put(root, "a.txt", "old\n")
    tools = make_tools(root, names=["Write"])
    ok(tools.execute("Write", {"file_path": "a.txt", "content": "new\n"}))
    assert (root / "a.txt").read_text() == "new\n"


# -- Edit ------------------------------------------------------------------------------------------


def test_edit_replaces_a_unique_string(root: Path) -> None:
    put(root, "app.py", "def f():\n    return 1\n\n\ndef g():\n    return 2\n")
    tools = make_tools(root)
    ok(tools.execute("Read", {"file_path": "app.py"}))
    out = ok(
        tools.execute("Edit", {"file_path": "app.py", "old_string": "return 2", "new_string": "return 3"})
    )
    assert out == "Edited app.py: the change is at line 6."
    assert (root / "app.py").read_text() == "def f():\n    return 1\n\n\ndef g():\n    return 3\n"
    assert tools.changed_files == {"app.py"}


def test_edit_requires_read(root: Path) -> None:
    put(root, "app.py", "x = 1\n")
    tools = make_tools(root)
    assert "Read it first" in err(
        tools.execute("Edit", {"file_path": "app.py", "old_string": "x = 1", "new_string": "x = 2"})
    )
    assert (root / "app.py").read_text() == "x = 1\n"


def test_edit_tolerates_changes_since_read(root: Path) -> None:
    path = put(root, "app.py", "a = 1\nb = 2\n")
    tools = make_tools(root)
    ok(tools.execute("Read", {"file_path": "app.py"}))
    path.write_text("a = 1\nb = 2\nc = 3\n")  # e.g. a formatter or a person added a line
    ok(tools.execute("Edit", {"file_path": "app.py", "old_string": "b = 2", "new_string": "b = 20"}))
    assert path.read_text() == "a = 1\nb = 20\nc = 3\n"


def test_edit_uniqueness_and_replace_all(root: Path) -> None:
    put(root, "app.py", "x = 1\ny = x\nz = x\n")
    tools = make_tools(root)
    ok(tools.execute("Read", {"file_path": "app.py"}))
    message = err(tools.execute("Edit", {"file_path": "app.py", "old_string": "x", "new_string": "w"}))
    assert "Found 3 matches" in message
    assert "lines 1, 2, 3" in message
    assert "replace_all" in message
    out = ok(
        tools.execute(
            "Edit", {"file_path": "app.py", "old_string": "x", "new_string": "w", "replace_all": True}
        )
    )
    assert "replaced 3 occurrences" in out
    assert (root / "app.py").read_text() == "w = 1\ny = w\nz = w\n"


def test_edit_error_messages(root: Path) -> None:
    put(root, "app.py", "def f():\n\treturn 1\n")
    tools = make_tools(root)
    ok(tools.execute("Read", {"file_path": "app.py"}))

    def edit(old: str, new: str = "zzz") -> str:
        return err(tools.execute("Edit", {"file_path": "app.py", "old_string": old, "new_string": new}))

    assert "exactly the same" in edit("return 1", "return 1")
    assert "line-number prefixes" in edit("     2\treturn 1")
    assert "whitespace is ignored" in edit("def f():\n    return 1")
    assert "closest line is 2" in edit("retrun 1")
    assert "occurs at line 1" in edit("def f():\n    pass")
    assert "old_string is empty" in edit("", "x")
    assert (root / "app.py").read_text() == "def f():\n\treturn 1\n"


def test_edit_missing_file_and_creation(root: Path) -> None:
    tools = make_tools(root)
    assert "use Write" in err(
        tools.execute("Edit", {"file_path": "new.py", "old_string": "a", "new_string": "b"})
    )
    ok(tools.execute("Edit", {"file_path": "new.py", "old_string": "", "new_string": "print(1)\n"}))
    assert (root / "new.py").read_text() == "print(1)\n"


def test_edit_crlf_file_with_lf_strings(root: Path) -> None:
    put(root, "win.py", "a = 1\r\nb = 2\r\nc = 3\r\n")
    tools = make_tools(root)
    ok(tools.execute("Read", {"file_path": "win.py"}))
    ok(
        tools.execute(
            "Edit",
            {"file_path": "win.py", "old_string": "a = 1\nb = 2", "new_string": "a = 10\nb = 20\nb2 = 21"},
        )
    )
    assert (root / "win.py").read_bytes() == b"a = 10\r\nb = 20\r\nb2 = 21\r\nc = 3\r\n"
    ok(tools.execute("Edit", {"file_path": "win.py", "old_string": "c = 3", "new_string": "c = 3\nd = 4"}))
    assert (root / "win.py").read_bytes() == b"a = 10\r\nb = 20\r\nb2 = 21\r\nc = 3\r\nd = 4\r\n"


def test_edit_lf_file_with_crlf_strings(root: Path) -> None:
    put(root, "unix.py", "a = 1\nb = 2\n")
    tools = make_tools(root)
    ok(tools.execute("Read", {"file_path": "unix.py"}))
    ok(
        tools.execute(
            "Edit", {"file_path": "unix.py", "old_string": "a = 1\r\nb = 2", "new_string": "a = 1\r\nb = 3"}
        )
    )
    assert (root / "unix.py").read_bytes() == b"a = 1\nb = 3\n"


def test_edit_keeps_bytes_that_are_not_utf8(root: Path) -> None:
    put(root, "legacy.txt", b"caf\xe9 = 1\nvalue = 2\n")
    tools = make_tools(root)
    ok(tools.execute("Read", {"file_path": "legacy.txt"}))
    ok(
        tools.execute(
            "Edit", {"file_path": "legacy.txt", "old_string": "value = 2", "new_string": "value = 3"}
        )
    )
    assert (root / "legacy.txt").read_bytes() == b"caf\xe9 = 1\nvalue = 3\n"


def test_edit_refuses_binary(root: Path) -> None:
    put(root, "blob.bin", b"\x00\x01abc")
    tools = make_tools(root)
    err(tools.execute("Read", {"file_path": "blob.bin"}))
    assert "binary" in err(
        tools.execute("Edit", {"file_path": "blob.bin", "old_string": "abc", "new_string": "x"})
    )


def test_edit_of_gitignore_reloads_ignore_rules(root: Path) -> None:
    put(root, ".gitignore", "*.log\n")
    put(root, "a.log", "needle\n")
    put(root, "b.txt", "needle\n")
    tools = make_tools(root)
    assert ok(tools.execute("Grep", {"pattern": "needle"})).splitlines()[1:] == ["b.txt"]
    ok(tools.execute("Read", {"file_path": ".gitignore"}))
    ok(tools.execute("Edit", {"file_path": ".gitignore", "old_string": "*.log", "new_string": "*.txt"}))
    assert ok(tools.execute("Grep", {"pattern": "needle"})).splitlines()[1:] == ["a.log"]


# -- guard -----------------------------------------------------------------------------------------


def test_guard_receives_writes_instead_of_disk(root: Path) -> None:
    tasks = put(root, "specs/x/tasks.md", "- [ ] 1. First\n- [ ] 2. Second\n")
    guard = FakeGuard()
    tools = make_tools(root, guard=guard)
    ok(tools.execute("Read", {"file_path": "specs/x/tasks.md"}))
    out = ok(
        tools.execute(
            "Edit", {"file_path": "specs/x/tasks.md", "old_string": "- [ ] 1.", "new_string": "- [x] 1."}
        )
    )
    assert out.startswith("guard:")
    assert guard.writes == [(tasks, "- [x] 1. First\n- [ ] 2. Second\n")]
    ok(tools.execute("Write", {"file_path": "specs/x/tasks.md", "content": "rewritten\n"}))
    assert guard.writes[-1] == (tasks, "rewritten\n")
    assert tasks.read_text() == "- [ ] 1. First\n- [ ] 2. Second\n"
    assert tools.changed_files == set()
    # Files the guard does not cover are written normally.
    ok(tools.execute("Write", {"file_path": "specs/x/notes.md", "content": "n\n"}))
    assert tools.changed_files == {"specs/x/notes.md"}


def test_guard_sees_new_tasks_file_too(root: Path) -> None:
    guard = FakeGuard()
    tools = make_tools(root, guard=guard)
    ok(tools.execute("Write", {"file_path": "specs/y/tasks.md", "content": "- [ ] 1\n"}))
    assert not (root / "specs/y/tasks.md").exists()
    assert guard.writes == [((root / "specs/y/tasks.md"), "- [ ] 1\n")]


def test_guard_after_every_shell_command(root: Path) -> None:
    guard = FakeGuard(shell_note="[runner] tasks.md edits made through the shell were reverted.")
    tools = make_tools(root, guard=guard)
    out = ok(tools.execute("Bash", {"command": "echo hi"}))
    assert out == "hi\n[runner] tasks.md edits made through the shell were reverted."
    err(tools.execute("Bash", {"command": "exit 1"}))
    assert guard.shell_calls == guard.before_calls == 2


# -- Glob ------------------------------------------------------------------------------------------


def test_glob_patterns_and_order(root: Path) -> None:
    for i, rel in enumerate(["src/a.py", "src/pkg/b.py", "c.py", "docs/d.md", "src/e.ts"]):
        path = put(root, rel, "x")
        os.utime(path, ns=(10**18 + i, 10**18 + i))
    tools = make_tools(root)
    assert ok(tools.execute("Glob", {"pattern": "**/*.py"})).split("\n") == [
        "c.py",
        "src/pkg/b.py",
        "src/a.py",
    ]
    assert ok(tools.execute("Glob", {"pattern": "*.py"})) == "c.py"
    assert ok(tools.execute("Glob", {"pattern": "src/**/*.{py,ts}"})).split("\n") == [
        "src/e.ts", "src/pkg/b.py", "src/a.py",
    ]  # fmt: skip
    assert ok(tools.execute("Glob", {"pattern": "*.py", "path": "src"})) == "src/a.py"
    assert ok(tools.execute("Glob", {"pattern": "**/*.py", "path": "src/pkg"})) == "src/pkg/b.py"
    assert ok(tools.execute("Glob", {"pattern": f"{root}/docs/*.md"})) == "docs/d.md"
    assert ok(tools.execute("Glob", {"pattern": "./docs/*.md"})) == "docs/d.md"


def test_glob_respects_gitignore(root: Path) -> None:
    put(root, ".gitignore", "node_modules/\n*.pyc\n")
    put(root, "node_modules/lib/index.js")
    put(root, "app.js")
    put(root, "a.pyc")
    put(root, ".git/HEAD")
    tools = make_tools(root)
    assert ok(tools.execute("Glob", {"pattern": "**/*.js"})) == "app.js"
    assert sorted(ok(tools.execute("Glob", {"pattern": "**/*"})).split("\n")) == [".gitignore", "app.js"]
    # Asking for the ignored folder explicitly searches it (as ripgrep does).
    assert (
        ok(tools.execute("Glob", {"pattern": "**/*.js", "path": "node_modules"}))
        == "node_modules/lib/index.js"
    )


def test_glob_no_results_and_hint(root: Path) -> None:
    put(root, "src/a.py")
    tools = make_tools(root)
    assert ok(tools.execute("Glob", {"pattern": "**/*.rs"})) == "No files found"
    assert "`**/*.py` would search" in ok(tools.execute("Glob", {"pattern": "*.py"}))


def test_glob_truncates_at_100(root: Path) -> None:
    for i in range(130):
        put(root, f"many/f{i:03}.txt")
    out = ok(make_tools(root).execute("Glob", {"pattern": "many/*.txt"}))
    lines = out.split("\n")
    assert len(lines) == GLOB_MAX_RESULTS + 1
    assert lines[-1].startswith(f"(Results are truncated: showing {GLOB_MAX_RESULTS} of 130 files")


def test_glob_errors(root: Path) -> None:
    put(root, "a.txt")
    tools = make_tools(root)
    assert "may not contain `..`" in err(tools.execute("Glob", {"pattern": "../*"}))
    assert "outside the project" in err(tools.execute("Glob", {"pattern": "/etc/*"}))
    assert "does not exist" in err(tools.execute("Glob", {"pattern": "*", "path": "nope"}))
    assert "is a file" in err(tools.execute("Glob", {"pattern": "*", "path": "a.txt"}))
    assert "outside" in err(tools.execute("Glob", {"pattern": "*", "path": "/etc"}))
    assert "empty" in err(tools.execute("Glob", {"pattern": " "}))
    assert ok(tools.execute("Glob", {"pattern": "*.txt", "path": "undefined"})) == "a.txt"


def test_glob_lists_nothing_outside_the_sandbox(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("x")
    (root / "link").symlink_to(outside)
    put(root, ".git/config", "[core]")
    put(root, ".runner/state.db", "")
    put(root, "src/a.py")
    tools = make_tools(root)
    assert "outside the project root through a symbolic link" in err(
        tools.execute("Glob", {"pattern": "link/*"})
    )
    for pattern in (".git/*", ".runner/*"):
        assert "config" not in tools.execute("Glob", {"pattern": pattern}).content
        assert "state.db" not in tools.execute("Glob", {"pattern": pattern}).content
    assert ok(tools.execute("Glob", {"pattern": "**/*"})) == "src/a.py"


def test_compile_glob() -> None:
    assert compile_glob("**/*.py").fullmatch("a.py")
    assert compile_glob("**/*.py").fullmatch("a/b/c.py")
    assert not compile_glob("*.py").fullmatch("a/b.py")
    assert compile_glob("src/**").fullmatch("src/a/b")
    assert compile_glob("a/**/b").fullmatch("a/b")
    assert compile_glob("a/**/b").fullmatch("a/x/y/b")
    assert compile_glob("*.{ts,tsx}").fullmatch("x.tsx")
    assert compile_glob("{src,lib}/**/*.{py,pyi}").fullmatch("lib/q/w.pyi")
    assert compile_glob("[!a]*.md").fullmatch("b.md")
    assert not compile_glob("[!a]*.md").fullmatch("a.md")
    assert compile_glob("file?.txt").fullmatch("file1.txt")
    assert compile_glob("{unclosed").fullmatch("{unclosed")


# -- Grep ------------------------------------------------------------------------------------------


@pytest.fixture
def grep_root(root: Path) -> Path:
    files = {
        ".gitignore": "dist/\n",
        "src/app.py": "import os\n\ndef main():\n    print('Hello')\n    return 0\n",
        "src/util.py": "def helper():\n    return 'hello'\n",
        "web/index.ts": "export function main() {}\n",
        "docs/readme.md": "# Hello docs\n",
        "dist/bundle.js": "function main() {}\n",
        "data.bin": "main",
    }
    for i, (rel, text) in enumerate(files.items()):
        path = put(root, rel, text)
        os.utime(path, ns=(10**18 + i, 10**18 + i))
    (root / "data.bin").write_bytes(b"\x00\x01main\x00")
    return root


def test_grep_files_with_matches_newest_first(grep_root: Path) -> None:
    out = ok(make_tools(grep_root).execute("Grep", {"pattern": "main"}))
    assert out.split("\n") == ["Found 2 files", "web/index.ts", "src/app.py"]


def test_grep_content_mode(grep_root: Path) -> None:
    tools = make_tools(grep_root)
    out = ok(tools.execute("Grep", {"pattern": "hello", "-i": True, "output_mode": "content"}))
    assert out.split("\n") == [
        "docs/readme.md:1:# Hello docs",
        "src/app.py:4:    print('Hello')",
        "src/util.py:2:    return 'hello'",
    ]
    out = ok(tools.execute("Grep", {"pattern": "print", "output_mode": "content", "-n": False}))
    assert out == "src/app.py:    print('Hello')"
    out = ok(tools.execute("Grep", {"pattern": "print", "output_mode": "content", "-B": 1, "-A": 1}))
    assert out.split("\n") == [
        "src/app.py-3-def main():",
        "src/app.py:4:    print('Hello')",
        "src/app.py-5-    return 0",
    ]
    out = ok(tools.execute("Grep", {"pattern": "def", "output_mode": "content", "-C": 0, "path": "src"}))
    assert out.split("\n") == ["src/app.py:3:def main():", "src/util.py:1:def helper():"]


def test_grep_context_separators(root: Path) -> None:
    put(root, "a.txt", "".join(f"{'hit' if i in (2, 10) else 'x'}{i}\n" for i in range(1, 13)))
    out = ok(make_tools(root).execute("Grep", {"pattern": "hit", "output_mode": "content", "-C": 1}))
    assert out.split("\n") == [
        "a.txt-1-x1",
        "a.txt:2:hit2",
        "a.txt-3-x3",
        "--",
        "a.txt-9-x9",
        "a.txt:10:hit10",
        "a.txt-11-x11",
    ]


def test_grep_no_separators_without_context(root: Path) -> None:
    put(root, "a.txt", "hit\nx\nx\nhit\n")
    out = ok(make_tools(root).execute("Grep", {"pattern": "hit", "output_mode": "content"}))
    assert out.split("\n") == ["a.txt:1:hit", "a.txt:4:hit"]


def test_grep_multiline_in_a_crlf_file(root: Path) -> None:
    put(root, "w.txt", "one\r\ntwo\r\nthree\r\nfour\r\n")
    out = ok(
        make_tools(root).execute(
            "Grep", {"pattern": r"three\r?\nfour", "multiline": True, "output_mode": "content"}
        )
    )
    assert out.split("\n") == ["w.txt:3:three", "w.txt:4:four"]


def test_grep_end_anchor_in_a_crlf_file(root: Path) -> None:
    put(root, "w.txt", "foo\r\nbar\r\n")
    out = ok(make_tools(root).execute("Grep", {"pattern": "foo$", "output_mode": "content"}))
    assert out == "w.txt:1:foo"


def test_grep_count_mode(grep_root: Path) -> None:
    out = ok(make_tools(grep_root).execute("Grep", {"pattern": "return", "output_mode": "count"}))
    assert out.split("\n") == ["src/app.py:1", "src/util.py:1", "", "Found 2 matches across 2 files."]


def test_grep_filters(grep_root: Path) -> None:
    tools = make_tools(grep_root)
    assert ok(tools.execute("Grep", {"pattern": "main", "glob": "*.py"})).split("\n")[1:] == ["src/app.py"]
    assert ok(tools.execute("Grep", {"pattern": "main", "type": "ts"})).split("\n")[1:] == ["web/index.ts"]
    assert ok(tools.execute("Grep", {"pattern": "main", "type": "python"})).split("\n")[1:] == ["src/app.py"]
    assert ok(tools.execute("Grep", {"pattern": "main", "glob": "*.{ts,md}"})).split("\n")[1:] == [
        "web/index.ts"
    ]
    assert ok(tools.execute("Grep", {"pattern": "main", "glob": "!*.ts"})).split("\n")[1:] == ["src/app.py"]
    assert ok(tools.execute("Grep", {"pattern": "main", "glob": "src/*.py"})).split("\n")[1:] == [
        "src/app.py"
    ]
    assert ok(tools.execute("Grep", {"pattern": "main", "path": "src/app.py"})).split("\n")[1:] == [
        "src/app.py"
    ]
    # The ignored folder can still be searched by naming it.
    assert ok(tools.execute("Grep", {"pattern": "main", "path": "dist"})).split("\n")[1:] == [
        "dist/bundle.js"
    ]
    assert "Unknown file type" in err(tools.execute("Grep", {"pattern": "x", "type": "cobol"}))


def test_grep_head_limit(root: Path) -> None:
    put(root, "a.txt", "".join(f"hit {i}\n" for i in range(50)))
    tools = make_tools(root)
    out = ok(tools.execute("Grep", {"pattern": "hit", "output_mode": "content", "head_limit": 3}))
    assert out.split("\n")[:3] == ["a.txt:1:hit 0", "a.txt:2:hit 1", "a.txt:3:hit 2"]
    assert "more matches not shown" in out


def test_grep_multiline(root: Path) -> None:
    put(root, "s.go", "type T struct {\n\tA int\n\tfield string\n}\n")
    tools = make_tools(root)
    assert ok(tools.execute("Grep", {"pattern": r"struct \{.*?field"})) == "No files found"
    out = ok(
        tools.execute("Grep", {"pattern": r"struct \{.*?field", "multiline": True, "output_mode": "content"})
    )
    assert out.split("\n") == ["s.go:1:type T struct {", "s.go:2:\tA int", "s.go:3:\tfield string"]


def test_grep_errors_and_no_matches(grep_root: Path) -> None:
    tools = make_tools(grep_root)
    assert "Invalid regular expression" in err(tools.execute("Grep", {"pattern": "foo("}))
    assert ok(tools.execute("Grep", {"pattern": "zzz"})) == "No files found"
    assert ok(tools.execute("Grep", {"pattern": "zzz", "output_mode": "content"})) == "No matches found"
    assert "output_mode" in err(tools.execute("Grep", {"pattern": "x", "output_mode": "lines"}))
    assert "does not exist" in err(tools.execute("Grep", {"pattern": "x", "path": "nope"}))


def test_grep_skips_symlinks_out_of_the_project(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    (root / "leak.txt").symlink_to(secret)
    put(root, "ok.txt", "password=placeholder\n")
    out = ok(make_tools(root).execute("Grep", {"pattern": "password", "output_mode": "content"}))
    assert out == "ok.txt:1:password=placeholder"


def test_grep_lookahead_at_line_end(root: Path) -> None:
    # Patterns that look past the line end skip the whole-file shortcut and still work per line.
    put(root, "a.txt", "foo\nfoobar\n")
    out = ok(make_tools(root).execute("Grep", {"pattern": r"foo(?!bar)\Z", "output_mode": "content"}))
    assert out == "a.txt:1:foo"


# -- Bash ------------------------------------------------------------------------------------------


def test_bash_runs_in_project_root(root: Path) -> None:
    put(root, "marker.txt", "here\n")
    tools = make_tools(root)
    assert (
        ok(tools.execute("Bash", {"command": "pwd; cat marker.txt", "description": "show"}))
        == f"{root}\nhere"
    )
    ok(tools.execute("Bash", {"command": "cd /tmp"}))
    assert ok(tools.execute("Bash", {"command": "pwd"})) == str(root)  # each call starts afresh


def test_bash_output_and_exit_codes(root: Path) -> None:
    tools = make_tools(root)
    assert ok(tools.execute("Bash", {"command": "true"})) == "(no output)"
    assert ok(tools.execute("Bash", {"command": "echo out; echo err >&2"})) == "out\nerr"
    assert err(tools.execute("Bash", {"command": "echo failing; exit 3"})) == "failing\n[exit code 3]"
    assert err(tools.execute("Bash", {"command": "exit 1"})) == "(no output)\n[exit code 1]"
    assert "SIGKILL" in err(tools.execute("Bash", {"command": "kill -9 $$"}))
    assert "end-of-file" not in ok(tools.execute("Bash", {"command": "cat"}))  # stdin is empty, not a hang


def test_bash_strips_ansi_and_progress_redraws(root: Path) -> None:
    out = ok(
        make_tools(root).execute("Bash", {"command": r"printf '\033[31mred\033[0m\n10%%\r50%%\r100%%\n'"})
    )
    assert out == "red\n100%"


def test_bash_timeout_kills_the_process_group(root: Path) -> None:
    tools = make_tools(root)
    start = time.monotonic()
    message = err(
        tools.execute("Bash", {"command": "sleep 30 & echo $! > bg.pid; sleep 30", "timeout": 1000})
    )
    elapsed = time.monotonic() - start
    assert "timed out after 1 s" in message
    assert elapsed < 5
    background = int((root / "bg.pid").read_text())
    assert not _running(background)


def test_bash_timeout_kills_a_process_that_ignores_sigterm(root: Path) -> None:
    start = time.monotonic()
    err(make_tools(root).execute("Bash", {"command": "trap '' TERM; echo started; sleep 30", "timeout": 500}))
    assert time.monotonic() - start < 5


def test_bash_default_timeout_from_constructor(root: Path) -> None:
    tools = make_tools(root, bash_timeout=0.5)
    start = time.monotonic()
    assert "timed out" in err(tools.execute("Bash", {"command": "sleep 30"}))
    assert time.monotonic() - start < 5


def test_bash_stops_background_leftovers(root: Path) -> None:
    tools = make_tools(root)
    start = time.monotonic()
    out = ok(tools.execute("Bash", {"command": "sleep 30 >/dev/null 2>&1 & echo $! > bg.pid; echo started"}))
    assert time.monotonic() - start < 5
    assert out.startswith("started")
    assert "Background processes" in out
    assert not _running(int((root / "bg.pid").read_text()))
    # A background process holding the output pipe does not hold the tool up either.
    start = time.monotonic()
    ok(tools.execute("Bash", {"command": "sleep 30 & echo started"}))
    assert time.monotonic() - start < 5


def test_bash_finished_background_job_is_not_reported(root: Path) -> None:
    # The orphaned `true` ends as a zombie that init may take seconds to reap; it is not "running".
    # The shell waits until that has happened, so the check below sees exactly that state.
    command = (
        "(true & echo $! > bg.pid); p=$(cat bg.pid); "
        "while [ -e /proc/$p ] && [ \"$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null)\" != Z ]; do sleep 0.01; done; "
        "echo done"
    )
    assert ok(make_tools(root).execute("Bash", {"command": command})) == "done"


def test_bash_truncates_long_output(root: Path) -> None:
    tools = make_tools(root, max_output_chars=2000)
    out = ok(tools.execute("Bash", {"command": "seq 1 100000"}))
    assert len(out) < 2300
    assert out.startswith("1\n2\n3\n")
    assert out.endswith("99999\n100000")
    assert "of output cut here" in out
    # The note says how much went.
    total = len("\n".join(str(i) for i in range(1, 100001)) + "\n")
    assert f"[... {total - 2000} characters of output cut here" in out


def test_bash_truncates_a_flood_in_bounded_memory(root: Path) -> None:
    tools = make_tools(root, max_output_chars=1000)
    out = ok(tools.execute("Bash", {"command": "head -c 30000000 /dev/zero | tr '\\0' 'a'; echo; echo END"}))
    assert out.startswith("a" * 400)
    assert out.endswith("END")
    assert "characters of output cut here" in out


def test_bash_timeout_input_validation(root: Path) -> None:
    tools = make_tools(root)
    assert "positive" in err(tools.execute("Bash", {"command": "true", "timeout": -5}))
    assert "number" in err(tools.execute("Bash", {"command": "true", "timeout": "soon"}))
    assert "empty" in err(tools.execute("Bash", {"command": "  "}))
    assert ok(tools.execute("Bash", {"command": "echo x", "timeout": "5000"})) == "x"


def test_bash_environment_is_scrubbed(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-very-secret-value")
    monkeypatch.setenv("FOO_TOKEN", "foo-token-value-123")
    monkeypatch.setenv("INNOCENT_COPY", "sk-ant-api03-very-secret-value")
    monkeypatch.setenv("RUNNER_JOB", "spec:implement")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    out = ok(make_tools(root).execute("Bash", {"command": "env"}))
    for leaked in ("ANTHROPIC_API_KEY", "sk-ant-api03", "FOO_TOKEN", "foo-token-value", "INNOCENT_COPY"):
        assert leaked not in out
    assert "RUNNER_JOB=spec:implement" in out
    assert "LC_ALL=C.UTF-8" in out
    assert f"PWD={root}" in out
    assert "PATH=" in out


def test_bash_env_argument_is_scrubbed_too(root: Path) -> None:
    env = {"PATH": os.environ["PATH"], "ANTHROPIC_API_KEY": "sk-ant-xyz-123456", "RUNNER_SPEC": "demo"}
    out = ok(make_tools(root, env=env).execute("Bash", {"command": "env"}))
    assert "sk-ant" not in out
    assert "RUNNER_SPEC=demo" in out


def test_scrubbed_env_rules() -> None:
    base = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LC_CTYPE": "UTF-8",
        "RUNNER_X": "1",
        "RUNNER_API_KEY": "abcdefghijkl",
        "GITHUB_TOKEN": "ghp_abcdefghijkl",
        "AWS_SECRET_ACCESS_KEY": "abcdefghijkl",
        "DB_PASSWORD": "abcdefghijkl",
        "HTTPS_PROXY": "http://user:pass@proxy:8080",
        "HTTP_PROXY": "http://proxy:8080",
        "RANDOM_THING": "x",
        "TMPDIR": "/tmp",
    }
    assert scrubbed_env(base) == {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LC_CTYPE": "UTF-8",
        "RUNNER_X": "1",
        "HTTP_PROXY": "http://proxy:8080",
        "TMPDIR": "/tmp",
    }


def test_bash_reloads_ignore_rules(root: Path) -> None:
    put(root, "a.log", "x")
    tools = make_tools(root)
    assert ok(tools.execute("Glob", {"pattern": "*.log"})) == "a.log"
    ok(tools.execute("Bash", {"command": "echo '*.log' > .gitignore"}))
    assert ok(tools.execute("Glob", {"pattern": "*.log"})) == "No files found"


def _running(pid: int) -> bool:
    """Is the process alive? A zombie awaiting its reaper counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return False
    state = data[data.rfind(b")") + 2 :].split()[0]
    return state not in (b"Z", b"X")


# -- robustness ------------------------------------------------------------------------------------

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.lists(st.text(max_size=5), max_size=3),
    st.sampled_from(
        ["", ".", "..", "/", "/etc/passwd", ".git/config", "a/../../b", "**/*", "x.txt", "~", "C:\\"]
    ),
)
_keys = st.sampled_from(
    ["file_path", "offset", "limit", "content", "old_string", "new_string", "replace_all", "pattern", "path",
     "glob", "output_mode", "-A", "-B", "-C", "-n", "-i", "type", "head_limit", "multiline", "junk"]
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(["Read", "Write", "Edit", "Glob", "Grep"]),
    data=st.dictionaries(_keys, _values, max_size=6),
)
def test_execute_never_raises(
    tmp_path_factory: pytest.TempPathFactory, name: str, data: dict[str, Any]
) -> None:
    box = tmp_path_factory.mktemp("fuzz")
    root = box / "project"
    root.mkdir()
    (root / "x.txt").write_text("hello\n")
    result = Tools(Sandbox(root)).execute(name, data)
    assert isinstance(result, ToolResult)
    assert isinstance(result.content, str) and result.content
    assert [p.name for p in box.iterdir()] == ["project"]  # nothing was written outside the project
