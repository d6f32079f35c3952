"""The agent's tools: Read, Write, Edit, Glob, Grep and Bash, with Claude Code's names and inputs.

`Tools.execute(name, input)` runs one tool call and returns a `ToolResult`; anything that goes wrong
(bad input, a missing file, a sandbox refusal, a timeout) comes back as an `is_error` result for the
model to read, never as an exception. `CompleteTask` and `Finish` are only described here: the agent
loop handles them, and `execute` raises KeyError for them.

The protocol is deliberately small (mini-swe-agent style): a tool gets a dict and returns text. The
behaviour copies what works in Claude Code: numbered, paged reads; edits by unique exact string;
read-before-overwrite; .gitignore-aware search; a shell with a timeout that kills the whole process
group, a scrubbed environment and truncated output.
"""

from __future__ import annotations

import bisect
import codecs
import contextlib
import copy
import difflib
import hashlib
import os
import re
import selectors
import signal
import stat
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runner.agents.sandbox import Sandbox, SandboxError
from runner.fsutil import atomic_write
from runner.globs import compile_glob, fixed_folder
from runner.ignore import IgnoreRules
from runner.secrets import scrubbed_env


@dataclass
class ToolResult:
    content: str
    is_error: bool = False


class TasksGuard(Protocol):
    """The runner's tasks.md guard, as the tools see it."""

    def covers(self, path: Path) -> bool:
        """Is this (resolved) path a guarded tasks.md?"""
        ...

    def write(self, path: Path, new_text: str) -> ToolResult:
        """Called instead of writing a guarded file; its result is the Write or Edit result."""
        ...

    def before_shell(self) -> None:
        """Called before every Bash command (to note what the command may change)."""
        ...

    def after_shell(self) -> str | None:
        """Called after every Bash command; a note to append to its output, if any."""
        ...


# -- limits ----------------------------------------------------------------------------------------

READ_DEFAULT_LIMIT = 2000
READ_MAX_LINE_CHARS = 2000
# About 25k tokens, Claude Code's cap for one Read; past it the output stops at a line boundary
# with a note on how to read on.
READ_MAX_CHARS = 100_000
GLOB_MAX_RESULTS = 100
GREP_MAX_LINE_CHARS = 500
# Larger files are skipped by Grep: they are logs or data, and reading them would stall the turn.
GREP_MAX_FILE_BYTES = 10 * 1024 * 1024
BASH_MAX_TIMEOUT_S = 600.0
# How long output may keep arriving after the shell itself exited (from `cmd &`) before the
# stragglers are stopped.
_LINGER_S = 0.5
# Between SIGTERM and SIGKILL for a process group that has to go.
_KILL_GRACE_S = 1.0
_SNIFF_BYTES = 8192

FILE_TOOLS = ("Read", "Write", "Edit", "Glob", "Grep", "Bash")
LOOP_TOOLS = ("CompleteTask", "Finish")
TOOL_ORDER = FILE_TOOLS + LOOP_TOOLS


# -- tool definitions ------------------------------------------------------------------------------

_READ_DESCRIPTION = """\
Reads a text file from the project.

Usage:
- file_path is relative to the project root (e.g. `src/app.py`); an absolute path works only if it \
is inside the project.
- By default it reads up to 2000 lines from the start of the file. For a long file, pass offset \
(the 1-based line number to start at) and limit (how many lines) to read the part you need.
- Output is `cat -n` style: the line number, a tab, then the line exactly as in the file. Lines \
longer than 2000 characters are cut.
- Read a file before you Edit or overwrite it: Edit and Write refuse existing files you have not read.
- Folders and binary files cannot be read; list a folder with Glob or with `ls` through Bash.
- You can call several tools in one response; read all the files you need at once."""

_WRITE_DESCRIPTION = """\
Writes a file in the project, replacing it if it exists.

Usage:
- file_path is relative to the project root; missing parent folders are created.
- An existing file must have been Read in this session first, or the write is refused; it is also \
refused if the file changed since you read it.
- Prefer Edit for changing part of an existing file: it sends only the change.
- An existing file's line endings (CRLF) are kept.
- tasks.md files are guarded: do not rewrite them; tick a task with CompleteTask."""

_EDIT_DESCRIPTION = """\
Replaces exact text in a file.

Usage:
- Read the file first in this session: Edit refuses files you have not read.
- old_string must match the file exactly, indentation and whitespace included. When copying from \
Read output, leave out the line-number prefix (spaces, line number, tab); copy only what follows it.
- The edit fails if old_string occurs more than once: add surrounding lines to make it unique, or \
set replace_all to change every occurrence (e.g. to rename a variable).
- new_string must differ from old_string. To create a new file, use Write.
- file_path is relative to the project root.
- tasks.md files are guarded: tick boxes only with CompleteTask; other changes to tasks.md are refused."""

_GLOB_DESCRIPTION = """\
Finds files by name pattern, e.g. `**/*.py`, `src/**/*.ts`, `specs/*/tasks.md`, `**/*.{yml,yaml}`.

Usage:
- The pattern is matched against paths relative to `path` (default: the project root). `*` matches \
within one folder, `**` across any number of folders, `{a,b}` either alternative.
- Files ignored by .gitignore are skipped, and so are .git/ and .runner/.
- Returns project-root-relative paths, most recently modified first, at most 100."""

_GREP_DESCRIPTION = """\
Searches file contents with a regular expression. Use it instead of running grep or rg through Bash.

Usage:
- Regex syntax is Python's `re`, close to ripgrep's (e.g. `log.*Error`, `def\\s+\\w+`). Escape \
metacharacters for literal text: `foo\\(` finds `foo(`, `interface\\{\\}` finds `interface{}`.
- Respects .gitignore and skips binary files.
- Narrow the search with path (a folder or file, relative to the project root), glob (e.g. `*.py`, \
`**/*.{ts,tsx}`) or type (e.g. `py`, `js`, `ts`, `md`, `rust`, `go`).
- output_mode: "files_with_matches" (default) lists matching files, newest first; "content" shows \
matching lines as `path:line:text` (-A/-B/-C add context lines); "count" shows matches per file.
- Patterns match within single lines unless multiline is true (then `.` matches newlines and a \
match may span lines).
- head_limit keeps only the first N lines, files or entries of the output."""

_BASH_DESCRIPTION = """\
Runs a shell command (`bash -c`) in the project root and returns its output, stdout and stderr \
together, with the exit code when it is not 0.

Usage:
- Every call starts a new shell in the project root: `cd` and variables do not carry over; chain \
commands with `&&` (e.g. `cd web && npm test`).
- timeout is in milliseconds: default 120000 (2 minutes), at most 600000. A command still running \
then is stopped together with every process it started; so are background processes (`&`) still \
running when the command ends.
- Commands get no input: anything that prompts reads end-of-file. Use non-interactive flags \
(`-y`, `--no-pager`, `CI=1`).
- Long output is cut in the middle, keeping its start and its end; filter it (`| tail -50`, `-q`) \
when you expect a lot.
- Use Read, Edit, Write, Glob and Grep for files rather than cat, sed, echo >, find or grep: they \
are cheaper and their results are clearer. Never change tasks.md through the shell: such changes are \
reverted.
- The environment holds no API keys or other secrets."""

_COMPLETE_TASK_DESCRIPTION = """\
Marks one task of the spec's tasks.md as done. tasks.md is guarded: this is the only way to tick \
its boxes (edits of tasks.md with Edit, Write or Bash are refused or reverted). The runner ticks \
the box itself once the phase's verify commands pass, so call this only when the task is \
implemented and you have checked it works. One call per task or sub-task id."""

_FINISH_DESCRIPTION = """\
Ends your work on this job with a report. Call it once, as your last action. status: "done" when \
everything asked is complete and verified; "partial" when part of it is done (say what is left); \
"blocked" when you cannot go on (say why, and what is needed)."""


def _string_list(description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "description": description}


TOOL_SCHEMAS: dict[str, dict[str, Any]] = {
    "Read": {
        "name": "Read",
        "description": _READ_DESCRIPTION,
        "input_schema": {
            "type": "object",
            "properties": {
                "file_path": {
                    "type": "string",
                    "description": "Path of the file to read, relative to the project root",
                },
                "offset": {
                    "type": "number",
                    "description": "The line number to start reading from (1-based). Only provide if the "
                    "file is too large to read at once",
                },
                "limit": {
                    "type": "number",
                    "description": "The number of lines to read. Only provide if the file is too large to "
                    "read at once",
                },
            },
            "required": ["file_path"],
            "additionalProperties": False,
        },
    },
    "Write": {
        "name": "Write",
        "description": _WRITE_DESCRIPTION,
        "input_schema": {
            "type": "object",
            "properties": {
                "file_path": {
                    "type": "string",
                    "description": "Path of the file to write, relative to the project root",
                },
                "content": {"type": "string", "description": "The content to write to the file"},
            },
            "required": ["file_path", "content"],
            "additionalProperties": False,
        },
    },
    "Edit": {
        "name": "Edit",
        "description": _EDIT_DESCRIPTION,
        "input_schema": {
            "type": "object",
            "properties": {
                "file_path": {
                    "type": "string",
                    "description": "Path of the file to modify, relative to the project root",
                },
                "old_string": {"type": "string", "description": "The text to replace"},
                "new_string": {
                    "type": "string",
                    "description": "The text to replace it with (must be different from old_string)",
                },
                "replace_all": {
                    "type": "boolean",
                    "default": False,
                    "description": "Replace all occurrences of old_string (default false)",
                },
            },
            "required": ["file_path", "old_string", "new_string"],
            "additionalProperties": False,
        },
    },
    "Glob": {
        "name": "Glob",
        "description": _GLOB_DESCRIPTION,
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "The glob pattern to match files against"},
                "path": {
                    "type": "string",
                    "description": "The folder to search in, relative to the project root. Omit it to "
                    'search the whole project; do not pass "undefined" or "null".',
                },
            },
            "required": ["pattern"],
            "additionalProperties": False,
        },
    },
    "Grep": {
        "name": "Grep",
        "description": _GREP_DESCRIPTION,
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {
                    "type": "string",
                    "description": "The regular expression pattern to search for in file contents",
                },
                "path": {
                    "type": "string",
                    "description": "File or folder to search in, relative to the project root. Defaults "
                    "to the whole project.",
                },
                "glob": {
                    "type": "string",
                    "description": 'Glob pattern to filter files (e.g. "*.js", "*.{ts,tsx}"); a leading '
                    '"!" excludes',
                },
                "output_mode": {
                    "type": "string",
                    "enum": ["content", "files_with_matches", "count"],
                    "description": 'Output mode: "content" shows matching lines, "files_with_matches" '
                    'shows file paths (default), "count" shows match counts',
                },
                "-B": {
                    "type": "number",
                    "description": 'Number of lines to show before each match. Requires output_mode: "content"',
                },
                "-A": {
                    "type": "number",
                    "description": 'Number of lines to show after each match. Requires output_mode: "content"',
                },
                "-C": {
                    "type": "number",
                    "description": "Number of lines to show before and after each match. Requires "
                    'output_mode: "content"',
                },
                "-n": {
                    "type": "boolean",
                    "description": 'Show line numbers in output. Requires output_mode: "content". '
                    "Defaults to true",
                },
                "-i": {"type": "boolean", "description": "Case insensitive search"},
                "type": {
                    "type": "string",
                    "description": "File type to search, e.g. py, js, ts, md, go, rust, java. More "
                    "efficient than glob for standard file types",
                },
                "head_limit": {
                    "type": "number",
                    "description": "Limit output to the first N lines, files or count entries",
                },
                "multiline": {
                    "type": "boolean",
                    "description": "Enable multiline mode where . matches newlines and patterns can span "
                    "lines. Default: false",
                },
            },
            "required": ["pattern"],
            "additionalProperties": False,
        },
    },
    "Bash": {
        "name": "Bash",
        "description": _BASH_DESCRIPTION,
        "input_schema": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The command to execute"},
                "timeout": {
                    "type": "number",
                    "description": "Optional timeout in milliseconds (max 600000)",
                },
                "description": {
                    "type": "string",
                    "description": "Clear, concise description of what this command does in 5-10 words",
                },
            },
            "required": ["command"],
            "additionalProperties": False,
        },
    },
    "CompleteTask": {
        "name": "CompleteTask",
        "description": _COMPLETE_TASK_DESCRIPTION,
        "input_schema": {
            "type": "object",
            "properties": {
                "task_id": {
                    "type": "string",
                    "description": "The task's id as written in tasks.md, e.g. T001, 1.1, 2",
                },
                "evidence": {
                    "type": "string",
                    "description": "How you know it is done: the files changed and the checks you ran "
                    "with their results",
                },
            },
            "required": ["task_id", "evidence"],
            "additionalProperties": False,
        },
    },
    "Finish": {
        "name": "Finish",
        "description": _FINISH_DESCRIPTION,
        "input_schema": {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["done", "partial", "blocked"]},
                "summary": {"type": "string", "description": "What you did and the outcome, briefly"},
                "changes": _string_list("The changes made, one entry per file or change"),
                "deviations": _string_list("Where and why the work departs from the spec or design"),
                "limitations": _string_list("Known limitations and unfinished parts"),
                "concerns": _string_list("Risks or open questions for a reviewer"),
            },
            "required": ["status", "summary"],
            "additionalProperties": False,
        },
    },
}


# Keep tools that page or colour their output from stalling or flooding the transcript.
_SHELL_DEFAULTS = {
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "MANPAGER": "cat",
    "GIT_TERMINAL_PROMPT": "0",
    "TERM": "dumb",
    "NO_COLOR": "1",
    "PYTHONUNBUFFERED": "1",
}


# -- globs -----------------------------------------------------------------------------------------


def _split_top_level_commas(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for c in text:
        if c == "{":
            depth += 1
        elif c == "}":
            depth = max(0, depth - 1)
        if c == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


# ripgrep's names for the common file types.
FILE_TYPES: dict[str, tuple[str, ...]] = {
    "c": ("*.c", "*.h"),
    "cpp": ("*.cpp", "*.cc", "*.cxx", "*.c++", "*.hpp", "*.hh", "*.hxx", "*.h", "*.inl"),
    "cs": ("*.cs",),
    "css": ("*.css", "*.scss", "*.sass", "*.less"),
    "dart": ("*.dart",),
    "docker": ("Dockerfile", "Dockerfile.*", "*.dockerfile"),
    "elixir": ("*.ex", "*.exs"),
    "go": ("*.go",),
    "graphql": ("*.graphql", "*.gql"),
    "html": ("*.html", "*.htm", "*.xhtml"),
    "java": ("*.java",),
    "js": ("*.js", "*.jsx", "*.mjs", "*.cjs", "*.vue"),
    "json": ("*.json", "*.jsonl", "*.json5"),
    "kotlin": ("*.kt", "*.kts"),
    "lua": ("*.lua",),
    "make": ("Makefile", "makefile", "GNUmakefile", "*.mk", "*.mak"),
    "md": ("*.md", "*.markdown", "*.mdx", "*.mdown", "*.mkd"),
    "php": ("*.php", "*.phtml"),
    "proto": ("*.proto",),
    "py": ("*.py", "*.pyi"),
    "r": ("*.r", "*.R", "*.Rmd"),
    "rst": ("*.rst",),
    "ruby": ("*.rb", "*.rake", "*.gemspec", "Gemfile", "Rakefile"),
    "rust": ("*.rs",),
    "scala": ("*.scala", "*.sbt"),
    "sh": ("*.sh", "*.bash", "*.zsh", "*.ksh", ".bashrc", ".zshrc", ".profile"),
    "sql": ("*.sql",),
    "svelte": ("*.svelte",),
    "swift": ("*.swift",),
    "terraform": ("*.tf", "*.tfvars"),
    "toml": ("*.toml",),
    "ts": ("*.ts", "*.tsx", "*.mts", "*.cts"),
    "txt": ("*.txt",),
    "vue": ("*.vue",),
    "xml": ("*.xml", "*.xsd", "*.xsl", "*.svg"),
    "yaml": ("*.yaml", "*.yml"),
}
_TYPE_ALIASES = {
    "python": "py",
    "javascript": "js",
    "typescript": "ts",
    "markdown": "md",
    "rs": "rust",
    "rb": "ruby",
    "yml": "yaml",
    "csharp": "cs",
    "shell": "sh",
    "bash": "sh",
    "c++": "cpp",
    "kt": "kotlin",
    "text": "txt",
}


# -- the tools -------------------------------------------------------------------------------------


class _InputError(Exception):
    """Bad tool input; the message is for the model."""


@dataclass
class _Seen:
    mtime_ns: int
    size: int
    digest: str


class Tools:
    """One agent job's tool belt: which tools it offers, and their state (files read and changed)."""

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        names: Sequence[str] | None = None,
        guard: TasksGuard | None = None,
        outputs: Sequence[str] = (),
        bash_timeout: float = 120.0,
        max_output_chars: int = 30000,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`names` is the agent definition's `tools:` list (None: all). `env` is the environment
        to scrub for Bash (default os.environ): it always goes through `scrubbed_env`."""
        self.sandbox = sandbox
        self.guard = guard
        # The job's own outputs: overwriting the previous run's copy is the point, so no Read first.
        self._outputs = {os.path.realpath(sandbox.root / o) for o in outputs}
        self.bash_timeout = float(bash_timeout)
        self.max_output_chars = max(1000, int(max_output_chars))
        self.unknown: list[str] = []
        self.changed_files: set[str] = set()
        self.offered = self._select(names)
        self.ignore = IgnoreRules(sandbox.root)
        self._seen: dict[str, _Seen] = {}
        # Without Read, an agent could never overwrite a file; the read-first rule would only block it.
        self._require_read = "Read" in self.offered
        shell_env = scrubbed_env(os.environ if env is None else env)
        for name, value in _SHELL_DEFAULTS.items():
            shell_env.setdefault(name, value)
        shell_env["PWD"] = str(sandbox.root)
        self._env = shell_env

    def _select(self, names: Sequence[str] | str | None) -> tuple[str, ...]:
        if names is None:
            return TOOL_ORDER
        if isinstance(names, str):  # front matter `tools: Read, Write` read as one string
            names = names.split(",")
        by_lower = {n.lower(): n for n in TOOL_ORDER}
        chosen: set[str] = set(LOOP_TOOLS)
        for raw in names:
            name = str(raw).strip()
            if not name:
                continue
            # Claude Code permission forms such as `Bash(git diff:*)` name the tool before the "(".
            base = name.split("(", 1)[0].strip()
            known = by_lower.get(base.lower())
            if known is not None:
                chosen.add(known)
            elif name not in self.unknown:
                self.unknown.append(name)
        return tuple(n for n in TOOL_ORDER if n in chosen)

    # -- public ---------------------------------------------------------------------------------

    def schemas(self) -> list[dict[str, Any]]:
        """The offered tools' definitions, always in the same order (it keeps the prompt cache warm)."""
        return [copy.deepcopy(TOOL_SCHEMAS[name]) for name in self.offered]

    def execute(self, name: str, input: dict[str, Any]) -> ToolResult:
        if name in LOOP_TOOLS:
            raise KeyError(name)
        handler = {
            "Read": self._read,
            "Write": self._write,
            "Edit": self._edit,
            "Glob": self._glob,
            "Grep": self._grep,
            "Bash": self._bash,
        }.get(name)
        available = ", ".join(self.offered)
        if handler is None:
            return ToolResult(f"Unknown tool `{name}`. The tools available are: {available}.", True)
        if name not in self.offered:
            return ToolResult(
                f"The tool `{name}` is not available to this agent. Use one of: {available}.", True
            )
        if not isinstance(input, dict):
            return ToolResult(f"{name} expects its input as an object, got {type(input).__name__}.", True)
        try:
            return handler(input)
        except (_InputError, SandboxError) as e:
            return ToolResult(str(e), True)
        except OSError as e:
            return ToolResult(self._os_error(e), True)
        except Exception as e:  # a tool bug must not end the job; the model can often route around it
            return ToolResult(f"{name} failed: {type(e).__name__}: {e}", True)

    # -- Read -----------------------------------------------------------------------------------

    def _read(self, inp: dict[str, Any]) -> ToolResult:
        path = self._path(inp)
        offset = max(1, _int(inp, "offset", 1, minimum=0))
        limit = _int(inp, "limit", READ_DEFAULT_LIMIT, minimum=1)
        rel = self.sandbox.rel(path)
        problem = self._not_a_file(path, rel)
        if problem:
            return ToolResult(problem, True)
        shown: list[str] = []
        chars = 0
        cut_at_line = 0
        total = 0
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            head = f.read(_SNIFF_BYTES)
            if b"\x00" in head:
                # Counts as read, so Write may replace it; no digest, so any later change is a change.
                self._seen[str(path)] = _Seen(st.st_mtime_ns, st.st_size, "")
                return ToolResult(
                    f"{rel} is a binary file ({st.st_size} bytes); Read shows text files only.", True
                )
            f.seek(0)
            end = offset + limit
            for raw in f:
                digest.update(raw)
                total += 1
                if total < offset or total >= end or cut_at_line:
                    continue
                line = raw.decode("utf-8", "replace").removesuffix("\n").removesuffix("\r")
                if total == 1:
                    line = line.removeprefix("\ufeff")
                if len(line) > READ_MAX_LINE_CHARS:
                    line = f"{line[:READ_MAX_LINE_CHARS]} [... line cut: {len(line)} characters]"
                entry = f"{total:>6}\t{line}"
                if shown and chars + len(entry) > READ_MAX_CHARS:
                    cut_at_line = total
                    continue
                shown.append(entry)
                chars += len(entry) + 1
        self._seen[str(path)] = _Seen(st.st_mtime_ns, st.st_size, digest.hexdigest())
        if total == 0:
            return ToolResult(f"{rel} is empty (0 lines).")
        if offset > total:
            return ToolResult(
                f"{rel} has {total} line{_s(total)}; offset {offset} is past the end. "
                f"Use an offset from 1 to {total}.",
                True,
            )
        last = offset + len(shown) - 1
        text = "\n".join(shown)
        remaining = total - last
        if cut_at_line:
            text += (
                f"\n... output stopped at {READ_MAX_CHARS} characters; {remaining} more "
                f"line{_s(remaining)}; use offset={last + 1} to read on"
            )
        elif remaining > 0:
            text += f"\n... {remaining} more line{_s(remaining)}; use offset={last + 1} to read on"
        return ToolResult(text)

    # -- Write ----------------------------------------------------------------------------------

    def _write(self, inp: dict[str, Any]) -> ToolResult:
        path = self._path(inp, write=True)
        content = _str(inp, "content")
        rel = self.sandbox.rel(path)
        exists = os.path.lexists(path)
        if exists:
            problem = self._not_a_file(path, rel) or self._stale(path, rel, writing=True)
            if problem:
                return ToolResult(problem, True)
            old = path.read_bytes().decode("utf-8", "surrogateescape")
            if _is_crlf(old) and "\r\n" not in content:
                content = content.replace("\n", "\r\n")
            if old.startswith("\ufeff") and not content.startswith("\ufeff"):
                content = "\ufeff" + content
        routed = self._route(path, content)
        if routed is not None:
            return routed
        self._store(path, rel, content)
        lines = _line_count(content)
        verb = "Updated" if exists else "Created"
        return ToolResult(f"{verb} {rel} ({lines} line{_s(lines)}).")

    # -- Edit -----------------------------------------------------------------------------------

    def _edit(self, inp: dict[str, Any]) -> ToolResult:
        path = self._path(inp, write=True)
        old = _str(inp, "old_string")
        new = _str(inp, "new_string")
        replace_all = _bool(inp, "replace_all", False)
        rel = self.sandbox.rel(path)
        if old == new:
            return ToolResult("No changes to make: old_string and new_string are exactly the same.", True)
        if not os.path.lexists(path):
            if old == "":
                routed = self._route(path, new)
                if routed is not None:
                    return routed
                self._store(path, rel, new)
                return ToolResult(f"Created {rel} ({_line_count(new)} line{_s(_line_count(new))}).")
            return ToolResult(self._missing(rel) + " To create a file, use Write.", True)
        problem = self._not_a_file(path, rel)
        if problem:
            return ToolResult(problem, True)
        data = path.read_bytes()
        if b"\x00" in data[:_SNIFF_BYTES]:
            return ToolResult(f"{rel} is a binary file; Edit changes text files only.", True)
        problem = self._stale(path, rel, writing=False)
        if problem:
            return ToolResult(problem, True)
        # surrogateescape round-trips bytes that are not UTF-8, so an edit never corrupts the rest.
        text = data.decode("utf-8", "surrogateescape")
        if old == "":
            if text.strip():
                return ToolResult(
                    f"old_string is empty but {rel} is not. Give the exact text to replace, "
                    "or overwrite the whole file with Write.",
                    True,
                )
            new_text, count, first = new, 1, 0
        else:
            found = _find(text, old, new)
            if found is None:
                return ToolResult(self._not_found(text, old, rel, path), True)
            old, new, count = found
            if count > 1 and not replace_all:
                lines = _occurrence_lines(text, old, 10)
                where = ", ".join(map(str, lines)) + (", ..." if count > len(lines) else "")
                return ToolResult(
                    f"Found {count} matches of old_string in {rel} (at lines {where}), but replace_all "
                    "is false. Include more surrounding lines to make it unique, or set replace_all "
                    "to true to replace every one.",
                    True,
                )
            first = text.index(old)
            new_text = text.replace(old, new) if replace_all else text.replace(old, new, 1)
        routed = self._route(path, new_text)
        if routed is not None:
            return routed
        self._store(path, rel, new_text)
        start = text.count("\n", 0, first) + 1
        span = new.count("\n")
        at = f"line {start}" if span == 0 else f"lines {start}-{start + span}"
        if replace_all and count > 1:
            return ToolResult(f"Edited {rel}: replaced {count} occurrences (the first now at {at}).")
        return ToolResult(f"Edited {rel}: the change is at {at}.")

    def _not_found(self, text: str, old: str, rel: str, path: Path) -> str:
        message = f"old_string was not found in {rel}."
        old_lines = old.split("\n")
        if all(re.match(r"^ *\d+\t", line) for line in old_lines if line.strip()):
            return (
                message + " It seems to include the line-number prefixes of Read output (spaces, "
                "number, tab); leave them out and copy only the text after the tab."
            )
        file_lines = [line.removesuffix("\r") for line in text.split("\n")]
        hint = _whitespace_hint(file_lines, old_lines)
        if hint is None:
            hint = _nearest_line_hint(file_lines, old_lines)
        if hint:
            message += " " + hint
        seen = self._seen.get(str(path))
        st = path.stat()
        if seen is not None and (st.st_mtime_ns, st.st_size) != (seen.mtime_ns, seen.size):
            message += " The file has changed since you last read it; Read it again."
        else:
            message += " Check it against the file's current text (Read it again if unsure)."
        return message

    # -- Glob -----------------------------------------------------------------------------------

    def _glob(self, inp: dict[str, Any]) -> ToolResult:
        pattern = _str(inp, "pattern").strip()
        if not pattern:
            raise _InputError("pattern is empty; give a glob such as `**/*.py`.")
        base = self._search_base(inp)
        if os.path.isabs(pattern):
            rel_pattern = self.sandbox.rel(pattern)
            if os.path.isabs(rel_pattern):
                raise _InputError(
                    f"The pattern `{pattern}` is outside the project. Patterns are relative to `path` "
                    "(default: the project root), e.g. `src/**/*.py`."
                )
            pattern, base = rel_pattern, self.sandbox.root
        while pattern.startswith("./"):
            pattern = pattern[2:]
        if ".." in pattern.split("/"):
            raise _InputError("Glob patterns may not contain `..`; pass a different `path` instead.")
        matches = self._glob_files(base, pattern)
        if not matches:
            message = "No files found"
            if "/" not in pattern and "**" not in pattern and self._glob_files(base, "**/" + pattern):
                message += (
                    f" (`{pattern}` matches only directly inside the folder; `**/{pattern}` would "
                    "search its subfolders too)"
                )
            return ToolResult(message)
        dated = sorted(matches, key=lambda p: (-_mtime(p), str(p)))
        shown = [self.sandbox.rel(p) for p in dated[:GLOB_MAX_RESULTS]]
        text = "\n".join(shown)
        if len(dated) > GLOB_MAX_RESULTS:
            text += (
                f"\n(Results are truncated: showing {GLOB_MAX_RESULTS} of {len(dated)} files. "
                "Use a more specific path or pattern.)"
            )
        return ToolResult(self._clip(text))

    def _glob_files(self, base: Path, pattern: str) -> list[Path]:
        regex = compile_glob(pattern)
        # Walk only below the pattern's fixed folders (`src/**/*.ts` walks `src`).
        folder = fixed_folder(pattern)
        start = base
        if folder:
            # The fixed folders are a path like any other: no way out, nor into .git/ or .runner/.
            start = self.sandbox.resolve(self.sandbox.rel(base / folder))
        if not start.is_dir():
            return []
        prefix = folder + "/" if folder else ""
        found = []
        for file in self.ignore.walk(start):
            if regex.fullmatch(prefix + file.relative_to(start).as_posix()):
                found.append(file)
        return found

    # -- Grep -----------------------------------------------------------------------------------

    def _grep(self, inp: dict[str, Any]) -> ToolResult:
        pattern = _str(inp, "pattern")
        if pattern == "":
            raise _InputError("pattern is empty; give a regular expression to search for.")
        mode = inp.get("output_mode") or "files_with_matches"
        if mode not in ("content", "files_with_matches", "count"):
            raise _InputError('output_mode must be "content", "files_with_matches" or "count".')
        multiline = _bool(inp, "multiline", False)
        flags = re.IGNORECASE if _bool(inp, "-i", False) else 0
        if multiline:
            flags |= re.MULTILINE | re.DOTALL
        try:
            regex = re.compile(pattern, flags)
        except re.error as e:
            raise _InputError(
                f"Invalid regular expression {pattern!r}: {e}. Escape metacharacters such as ( [ {{ . * "
                "with a backslash to match them literally."
            ) from None
        numbers = _bool(inp, "-n", True)
        context = _int(inp, "-C", 0, minimum=0)
        after = _int(inp, "-A", context, minimum=0)
        before = _int(inp, "-B", context, minimum=0)
        head_limit = _int(inp, "head_limit", 0, minimum=0)
        base = self._search_base(inp, allow_file=True)
        filters = self._grep_filters(inp)
        # A whole-file search rejects most files at C speed. It can only differ from the per-line
        # search for anchors and lookarounds that see past a line end, so those skip the shortcut.
        prefilter = None
        if not multiline and not re.search(r"\\[AZz]|\(\?<?[=!]", pattern):
            prefilter = re.compile(pattern, flags | re.MULTILINE)
        budget = self.max_output_chars * 2 if not head_limit else None

        hits: list[tuple[Path, int]] = []
        counts: list[tuple[str, int]] = []
        content: list[str] = []
        content_chars = 0
        stopped = False
        for file in self._grep_candidates(base, filters):
            text = _read_text_for_search(file)
            if text is None:
                continue
            if prefilter is not None:
                # Lines are matched without their "\r"; the probe must agree for `$` to work.
                probe = text.replace("\r\n", "\n") if "\r" in text else text
                if not prefilter.search(probe):
                    continue
            rel = self.sandbox.rel(file)
            if mode == "files_with_matches":
                if _has_match(regex, text, multiline):
                    hits.append((file, _mtime(file)))
                continue
            lines = [line.removesuffix("\r") for line in text.split("\n")]
            if lines and lines[-1] == "" and text.endswith("\n"):
                lines.pop()
            matched = _matching_lines(regex, text, lines, multiline)
            if not matched:
                continue
            if mode == "count":
                n = len(list(regex.finditer(text))) if multiline else len(matched)
                counts.append((rel, n))
                continue
            block = _content_block(rel, lines, matched, before, after, numbers)
            if content and (before or after):
                content.append("--")
            content.extend(block)
            content_chars += sum(len(line) + 1 for line in block)
            if head_limit and len(content) > head_limit:
                break  # _head cuts it to the limit and notes that there is more
            if budget and content_chars > budget:
                stopped = True
                break

        if mode == "files_with_matches":
            if not hits:
                return ToolResult("No files found")
            hits.sort(key=lambda h: (-h[1], str(h[0])))
            paths = [self.sandbox.rel(p) for p, _ in hits]
            shown, more = _head(paths, head_limit)
            text = f"Found {len(paths)} file{_s(len(paths))}\n" + "\n".join(shown)
            if more:
                text += f"\n(showing the first {len(shown)}; raise head_limit or narrow the search)"
            return ToolResult(self._clip(text))
        if mode == "count":
            if not counts:
                return ToolResult("No matches found")
            entries = [f"{rel}:{n}" for rel, n in counts]
            shown, more = _head(entries, head_limit)
            total = sum(n for _, n in counts)
            text = "\n".join(shown)
            if more:
                text += f"\n(showing the first {len(shown)} of {len(entries)} files)"
            text += f"\n\nFound {total} match{'es' if total != 1 else ''} across {len(counts)} file{_s(len(counts))}."
            return ToolResult(self._clip(text))
        if not content:
            return ToolResult("No matches found")
        shown, more = _head(content, head_limit)
        text = "\n".join(shown)
        if more or stopped:
            text += "\n(more matches not shown; raise head_limit or narrow the search)"
        return ToolResult(self._clip(text))

    def _grep_filters(self, inp: dict[str, Any]) -> _FileFilter | None:
        globs = _str(inp, "glob", required=False)
        kind = _str(inp, "type", required=False)
        if not globs and not kind:
            return None
        selection = _FileFilter()
        for g in _split_top_level_commas(globs):
            exclude = g.startswith("!")
            g = g.removeprefix("!")
            while g.startswith("./"):
                g = g[2:]
            # As in ripgrep, a glob without "/" matches the file name at any depth.
            entry = ("/" not in g, compile_glob(g))
            (selection.excludes if exclude else selection.includes).append(entry)
        if kind:
            key = kind.lower().lstrip(".")
            key = _TYPE_ALIASES.get(key, key)
            type_globs = FILE_TYPES.get(key)
            if type_globs is None:
                raise _InputError(
                    f"Unknown file type `{kind}`. Known types: {', '.join(sorted(FILE_TYPES))}; "
                    "or use glob (e.g. `*.ext`)."
                )
            selection.type_name = compile_glob("{" + ",".join(type_globs) + "}")
        return selection

    def _grep_candidates(self, base: Path, selection: _FileFilter | None) -> Iterator[Path]:
        search_root = base if base.is_dir() else base.parent
        for file in self.ignore.walk(base):
            if selection is not None and not selection.accepts(
                file.name, file.relative_to(search_root).as_posix()
            ):
                continue
            if file.is_symlink():
                try:
                    self.sandbox.resolve(str(file))
                except SandboxError:
                    continue  # a link out of the project: its content is not ours to show
            yield file

    # -- Bash -----------------------------------------------------------------------------------

    def _bash(self, inp: dict[str, Any]) -> ToolResult:
        command = _str(inp, "command")
        if not command.strip():
            raise _InputError("command is empty.")
        timeout_s = self.bash_timeout
        if inp.get("timeout") is not None:
            ms = _number(inp, "timeout")
            if ms <= 0:
                raise _InputError("timeout must be a positive number of milliseconds (at most 600000).")
            timeout_s = ms / 1000.0
        timeout_s = min(timeout_s, BASH_MAX_TIMEOUT_S)
        if self.guard is not None:
            self.guard.before_shell()
        run = run_shell(command, self.sandbox.root, self._env, timeout_s, self.max_output_chars)
        self.ignore.reload()  # the command may have changed a .gitignore
        text = run.output.rstrip("\n") or "(no output)"
        is_error = False
        if run.timed_out:
            is_error = True
            text += (
                f"\n[Command timed out after {_seconds(timeout_s)} and was stopped, together with every "
                "process it started.]"
            )
        elif run.returncode:
            is_error = True
            if run.returncode < 0:
                try:
                    name = signal.Signals(-run.returncode).name
                except ValueError:
                    name = f"signal {-run.returncode}"
                text += f"\n[killed by {name}]"
            else:
                text += f"\n[exit code {run.returncode}]"
        if run.stopped_background:
            text += "\n[Background processes still running when the command ended were stopped.]"
        if self.guard is not None:
            note = self.guard.after_shell()
            if note:
                text += "\n" + note
        return ToolResult(text, is_error)

    # -- shared helpers -------------------------------------------------------------------------

    def _path(self, inp: dict[str, Any], *, write: bool = False) -> Path:
        raw = inp.get("file_path")
        if raw is None and isinstance(inp.get("path"), str):
            raw = inp["path"]  # a common slip; the intent is clear
        if not isinstance(raw, str):
            raise _InputError("file_path is required: the path of the file, relative to the project root.")
        return self.sandbox.resolve(raw, write=write)

    def _search_base(self, inp: dict[str, Any], *, allow_file: bool = False) -> Path:
        raw = inp.get("path")
        if raw is None or (isinstance(raw, str) and raw.strip() in ("", ".", "undefined", "null")):
            return self.sandbox.root
        if not isinstance(raw, str):
            raise _InputError("path must be a string: a folder relative to the project root.")
        base = self.sandbox.resolve(raw)
        rel = self.sandbox.rel(base)
        if not base.exists():
            raise _InputError(f"Path does not exist: {rel}. Paths are relative to the project root.")
        if not base.is_dir() and not allow_file:
            raise _InputError(f"path must be a folder, but {rel} is a file.")
        return base

    def _not_a_file(self, path: Path, rel: str) -> str | None:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            return self._missing(rel)
        if stat.S_ISDIR(mode):
            return (
                f"{rel} is a folder, not a file. List it with Glob (pattern `{rel}/*`) or `ls` through Bash."
            )
        if not stat.S_ISREG(mode):
            return f"{rel} is not a regular file (a device, socket or pipe)."
        return None

    def _missing(self, rel: str) -> str:
        message = f"File does not exist: {rel}."
        similar = self._similar(rel)
        if similar:
            message += " Did you mean " + " or ".join(f"`{s}`" for s in similar) + "?"
        else:
            message += " Paths are relative to the project root."
        return message

    def _similar(self, rel: str, *, limit: int = 3, scan: int = 20000) -> list[str]:
        """Files elsewhere in the project with the same name (bounded, so a huge tree stays cheap)."""
        name = rel.rsplit("/", 1)[-1].lower()
        found: list[str] = []
        for i, file in enumerate(self.ignore.walk(self.sandbox.root)):
            if i >= scan:
                break
            if file.name.lower() == name:
                found.append(self.sandbox.rel(file))
                if len(found) >= limit:
                    break
        return found

    def _stale(self, path: Path, rel: str, *, writing: bool) -> str | None:
        """Why this existing file may not be changed yet, or None."""
        if not self._require_read or str(path) in self._outputs:
            return None
        seen = self._seen.get(str(path))
        if seen is None:
            what = "overwriting" if writing else "editing"
            return f"{rel} has not been read in this session. Read it first before {what} it."
        if not writing:
            # Edit matches old_string against the current text, so a change made since the Read
            # cannot be lost; only a full overwrite could clobber it.
            return None
        st = path.stat()
        if (st.st_mtime_ns, st.st_size) == (seen.mtime_ns, seen.size):
            return None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest == seen.digest:
            self._seen[str(path)] = _Seen(st.st_mtime_ns, st.st_size, digest)
            return None
        return (
            f"{rel} has changed since you last read it (by a person, a command or a formatter). "
            "Read it again before overwriting it."
        )

    def _route(self, path: Path, new_text: str) -> ToolResult | None:
        """Hand a guarded file's new text to the guard; None when the file is not guarded."""
        if self.guard is not None and self.guard.covers(path):
            return self.guard.write(path, new_text)
        return None

    def _store(self, path: Path, rel: str, text: str) -> None:
        data = text.encode("utf-8", "surrogateescape")
        atomic_write(path, data)
        st = path.stat()
        self._seen[str(path)] = _Seen(st.st_mtime_ns, st.st_size, hashlib.sha256(data).hexdigest())
        self.changed_files.add(rel)
        if IgnoreRules.is_rules_file(rel):
            self.ignore.reload()

    def _clip(self, text: str) -> str:
        limit = self.max_output_chars
        if len(text) <= limit:
            return text
        cut = text[:limit].rsplit("\n", 1)[0]
        return cut + f"\n(output cut at {limit} characters; narrow the search or use head_limit)"

    def _os_error(self, e: OSError) -> str:
        where = f": {self.sandbox.rel(e.filename)}" if e.filename else ""
        return f"{e.strerror or e}{where}"


# -- Read/Edit helpers ------------------------------------------------------------------------------


def _is_crlf(text: str) -> bool:
    crlf = text.count("\r\n")
    return crlf > 0 and crlf * 2 >= text.count("\n")


def _to_crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def _find(text: str, old: str, new: str) -> tuple[str, str, int] | None:
    """(old, new, count) in the file's own line endings, or None when old is absent.

    Models send LF; a CRLF file gets CRLF in both strings. The form as sent is tried too, for
    files with mixed endings.
    """
    given = (old, new)
    lf = (old.replace("\r\n", "\n"), new.replace("\r\n", "\n"))
    crlf = (_to_crlf(old), _to_crlf(new))
    order = (crlf, given, lf) if _is_crlf(text) else (lf, given, crlf)
    for o, n in order:
        count = text.count(o)
        if count:
            return o, n, count
    return None


def _occurrence_lines(text: str, needle: str, limit: int) -> list[int]:
    lines, start = [], 0
    while len(lines) < limit:
        i = text.find(needle, start)
        if i < 0:
            break
        lines.append(text.count("\n", 0, i) + 1)
        start = i + max(1, len(needle))
    return lines


def _whitespace_hint(file_lines: list[str], old_lines: list[str]) -> str | None:
    want = [line.strip() for line in old_lines]
    while want and not want[0]:
        want.pop(0)
    while want and not want[-1]:
        want.pop()
    if not want or len(file_lines) * len(want) > 2_000_000:
        return None
    have = [line.strip() for line in file_lines]
    first = want[0]
    for i, line in enumerate(have):
        if line == first and have[i : i + len(want)] == want:
            return (
                f"Lines {i + 1}-{i + len(want)} match it when leading and trailing whitespace is ignored: "
                "copy the indentation exactly (tabs vs spaces) from the Read output."
            )
    return None


def _nearest_line_hint(file_lines: list[str], old_lines: list[str]) -> str | None:
    first = next((line.strip() for line in old_lines if line.strip()), "")
    if not first:
        return None
    for i, line in enumerate(file_lines):
        if first in line:
            return (
                f"Its first line occurs at line {i + 1}, but the text after it differs; "
                "Read that part of the file again and copy it exactly."
            )
    if len(file_lines) > 5000:
        return None
    stripped = [line.strip() for line in file_lines]
    close = difflib.get_close_matches(first, stripped, n=1, cutoff=0.6)
    if not close:
        return None
    index = stripped.index(close[0])
    return f"The closest line is {index + 1}: `{file_lines[index].strip()[:200]}`."


def _line_count(text: str) -> int:
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


# -- Grep helpers ----------------------------------------------------------------------------------


@dataclass
class _FileFilter:
    """Grep's file selection: include globs (any of), exclude globs (none of), a file type."""

    includes: list[tuple[bool, re.Pattern[str]]] = field(default_factory=list)
    excludes: list[tuple[bool, re.Pattern[str]]] = field(default_factory=list)
    type_name: re.Pattern[str] | None = None

    def accepts(self, name: str, rel: str) -> bool:
        if self.type_name is not None and not self.type_name.fullmatch(name):
            return False
        if self.includes and not any(rx.fullmatch(name if by_name else rel) for by_name, rx in self.includes):
            return False
        return not any(rx.fullmatch(name if by_name else rel) for by_name, rx in self.excludes)


def _read_text_for_search(file: Path) -> str | None:
    try:
        with open(file, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size > GREP_MAX_FILE_BYTES:
                return None
            data = f.read()
    except OSError:
        return None
    if b"\x00" in data[:_SNIFF_BYTES]:
        return None
    return data.decode("utf-8", "replace")


def _has_match(regex: re.Pattern[str], text: str, multiline: bool) -> bool:
    if multiline:
        return regex.search(text) is not None
    return any(regex.search(line.removesuffix("\r")) for line in text.split("\n"))


def _matching_lines(regex: re.Pattern[str], text: str, lines: list[str], multiline: bool) -> list[int]:
    """0-based indexes of the lines holding a match (every line a multiline match spans)."""
    if not multiline:
        return [i for i, line in enumerate(lines) if regex.search(line)]
    starts = [0]
    for raw in text.split("\n"):  # raw lengths: `lines` lost their "\r"
        starts.append(starts[-1] + len(raw) + 1)
    found: set[int] = set()
    for m in regex.finditer(text):
        first = bisect.bisect_right(starts, m.start()) - 1
        last = bisect.bisect_right(starts, max(m.start(), m.end() - 1)) - 1
        found.update(range(first, min(last, len(lines) - 1) + 1))
    return sorted(i for i in found if i < len(lines))


def _content_block(
    rel: str, lines: list[str], matched: list[int], before: int, after: int, numbers: bool
) -> list[str]:
    matched_set = set(matched)
    wanted: list[int] = []
    last = -1
    for i in matched:
        for j in range(max(i - before, last + 1), min(i + after, len(lines) - 1) + 1):
            wanted.append(j)
            last = j
    out: list[str] = []
    previous = None
    for j in wanted:
        if (before or after) and previous is not None and j != previous + 1:
            out.append("--")
        previous = j
        sep = ":" if j in matched_set else "-"
        line = lines[j]
        if len(line) > GREP_MAX_LINE_CHARS:
            line = f"{line[:GREP_MAX_LINE_CHARS]} [... line cut: {len(line)} characters]"
        out.append(f"{rel}{sep}{j + 1}{sep}{line}" if numbers else f"{rel}{sep}{line}")
    return out


def _head(items: list[str], head_limit: int) -> tuple[list[str], bool]:
    if head_limit and len(items) > head_limit:
        return items[:head_limit], True
    return items, False


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


# -- input coercion --------------------------------------------------------------------------------


def _str(inp: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = inp.get(key)
    if value is None:
        if required:
            raise _InputError(f"{key} is required.")
        return ""
    if not isinstance(value, str):
        raise _InputError(f"{key} must be a string, got {type(value).__name__}.")
    return value


def _number(inp: dict[str, Any], key: str) -> float:
    value = inp.get(key)
    if isinstance(value, bool):
        raise _InputError(f"{key} must be a number, got a boolean.")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _InputError(f"{key} must be a number, got {value!r}.")


def _int(inp: dict[str, Any], key: str, default: int, *, minimum: int) -> int:
    if inp.get(key) is None:
        return default
    number = _number(inp, key)
    if number != int(number):
        raise _InputError(f"{key} must be a whole number, got {inp[key]!r}.")
    if number < minimum:
        raise _InputError(f"{key} must be at least {minimum}, got {int(number)}.")
    return int(number)


def _bool(inp: dict[str, Any], key: str, default: bool) -> bool:
    value = inp.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _InputError(f"{key} must be true or false, got {value!r}.")


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _seconds(s: float) -> str:
    return f"{s:g} s"


# -- the shell -------------------------------------------------------------------------------------


@dataclass
class ShellRun:
    output: str
    returncode: int | None
    timed_out: bool
    stopped_background: bool


_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def _clean(text: str) -> str:
    """Drop colour codes, and keep only the final state of lines redrawn with \\r (progress bars)."""
    text = _ANSI.sub("", text)
    if "\r" not in text:
        return text
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(line.rsplit("\r", 1)[-1] if "\r" in line else line for line in lines)


class _Capture:
    """Keeps the start and the end of a stream of any size, in bounded memory, and counts it."""

    def __init__(self, limit_chars: int) -> None:
        self.cap = limit_chars * 4  # UTF-8 needs at most 4 bytes per character
        self.head = bytearray()
        self.tail = bytearray()
        self.chars = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def add(self, chunk: bytes) -> None:
        self.chars += len(self._decoder.decode(chunk))
        room = self.cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > 2 * self.cap:
                del self.tail[: -self.cap]

    def text(self, limit: int) -> str:
        half = limit // 2
        if not self.tail:
            text = _clean(self.head.decode("utf-8", "replace"))
            if len(text) <= limit:
                return text
            return text[:half] + _cut_note(len(text) - 2 * half) + text[-half:]
        head = self.head.decode("utf-8", "replace")[:half]
        tail = self.tail[-self.cap :].decode("utf-8", "replace")[-half:]
        cut = max(0, self.chars - len(head) - len(tail))
        return _clean(head) + _cut_note(cut) + _clean(tail)


def _cut_note(cut: int) -> str:
    return f"\n\n[... {cut} characters of output cut here; the start and the end are shown ...]\n\n"


def _kill_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    """Does the group still have a running member? Zombies do not count.

    Orphaned children that exit stay zombies until init reaps them, which can take seconds in a
    container; kill(0) alone would count them, so on Linux /proc is asked about each member's state.
    """
    if not _kill_group(pgid, 0):
        return False
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses.
        fields = data[data.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def run_shell(command: str, cwd: Path, env: Mapping[str, str], timeout: float, limit: int) -> ShellRun:
    """Run `bash -c command` in its own process group; stop the whole group on timeout.

    Never waits much longer than `timeout`: output is read with a deadline, and a process that keeps
    the output pipe open after the shell exits (`cmd &`) is stopped shortly after.
    """
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so a timeout can kill everything it started
    )
    pgid = proc.pid
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    capture = _Capture(limit)
    deadline = time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ, "out")
    # A pidfd wakes the loop the moment the shell exits; without one, poll a few times a second.
    pidfd = -1
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(proc.pid)
            selector.register(pidfd, selectors.EVENT_READ, "exit")
        except OSError:
            pidfd = -1
    timed_out = False
    eof = False
    exited_at: float | None = None
    try:
        while not eof:
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at >= _LINGER_S:
                break
            if now >= deadline:
                timed_out = True
                break
            wait = deadline - now
            if exited_at is not None:
                wait = min(wait, _LINGER_S - (now - exited_at))
            elif pidfd < 0:
                wait = min(wait, 0.05)
            for key, _ in selector.select(wait):
                if key.data == "exit":
                    selector.unregister(pidfd)
                    os.close(pidfd)
                    pidfd = -1
                    if exited_at is None:
                        exited_at = time.monotonic()
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    eof = True
                    break
                capture.add(chunk)

        stopped_background = False
        if timed_out:
            _stop_group(pgid, proc, fd, capture)
        else:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # The shell closed its output but kept running.
                timed_out = True
                _stop_group(pgid, proc, fd, capture)
            else:
                if _group_alive(pgid):
                    stopped_background = True
                    _stop_group(pgid, proc, fd, capture)
        return ShellRun(capture.text(limit), proc.returncode, timed_out, stopped_background)
    finally:
        selector.close()
        if pidfd >= 0:
            os.close(pidfd)
        proc.stdout.close()
        if proc.poll() is None:
            _kill_group(pgid, signal.SIGKILL)
            proc.wait()


def _stop_group(pgid: int, proc: subprocess.Popen[bytes], fd: int, capture: _Capture) -> None:
    """SIGTERM the group, collect what it prints while it exits, SIGKILL whatever is left."""
    _kill_group(pgid, signal.SIGTERM)
    end = time.monotonic() + _KILL_GRACE_S
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        pipe_open = True
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            # Short ticks: the group has no exit notification, so it is polled while it shuts down.
            if pipe_open and selector.select(min(remaining, 0.02)):
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    chunk = None
                if chunk == b"":
                    pipe_open = False
                    selector.unregister(fd)
                elif chunk:
                    capture.add(chunk)
                continue
            if proc.poll() is not None and not _group_alive(pgid):
                break
            if not pipe_open:
                time.sleep(min(remaining, 0.02))
    _kill_group(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=_KILL_GRACE_S)
