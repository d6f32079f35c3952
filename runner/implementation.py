"""implementation.md: what each job did, in the three sections DESIGN.md names.

The runner adds one entry per job (newest last; a re-run replaces its own entry) to each section
with something to say. Entries are found again by an HTML comment naming the job. Text that is not
one of the runner's entries, such as a file an agent wrote itself, is left exactly as it is: entries
are inserted at the end of their section, and a missing section is appended.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import UserError
from runner.fsutil import atomic_write
from runner.markdown import block_parser

SECTIONS = ("Changes Made", "Deviations from Design", "Known Limitations")

_MD = block_parser(tables=False)
_MARK = re.compile(r"^<!-- runner: job=(.+?) -->$")
_HEADING_LIKE = re.compile(r"^\s*(?:#|=+\s*$|-+\s*$)")
_LOCK = threading.Lock()


@dataclass
class Entry:
    job_id: str
    task_id: str | None
    title: str
    status: str
    files: list[str] = field(default_factory=list)
    summary: str = ""
    deviations: list[str] = field(default_factory=list)
    limitations: list[str] = field(default_factory=list)
    reason: str | None = None


def render_entry(entry: Entry) -> dict[str, str]:
    """The entry's block for each section it has something for (always "Changes Made")."""
    heading = (
        f"### Task {_one_line(entry.task_id)}: {_one_line(entry.title)}"
        if entry.task_id
        else f"### {_one_line(entry.title)}"
    )
    head = f"{heading}\n<!-- runner: job={_one_line(entry.job_id)} -->\n\n"
    status = entry.status + (f" ({_one_line(entry.reason)})" if entry.reason else "")
    files = ", ".join(f"`{f}`" for f in entry.files) if entry.files else "none"
    body = f"- **Status:** {status}\n- **Files changed:** {files}\n"
    if entry.summary.strip():
        body += "\n" + _paragraphs(entry.summary) + "\n"
    blocks = {SECTIONS[0]: head + body}
    for section, items in ((SECTIONS[1], entry.deviations), (SECTIONS[2], entry.limitations)):
        items = [item for item in items if item.strip()]
        if items:
            blocks[section] = head + "".join(_bullet(item) for item in items)
    return blocks


def missing_sections(text: str) -> list[str]:
    """The required `## ` sections that `text` lacks."""
    present = {name.casefold() for name, _, _ in _sections(text.splitlines())}
    return [s for s in SECTIONS if s.casefold() not in present]


def upsert_entry(path: str | Path, entry: Entry, *, title: str) -> None:
    """Add (or replace) the job's entry in implementation.md, creating the file if needed."""
    path = Path(path)
    with _LOCK:
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            text = f"# Implementation: {_one_line(title)}\n\n" + "".join(f"## {s}\n\n" for s in SECTIONS)
        except UnicodeDecodeError:
            raise UserError("not UTF-8 text; not touching it", path=path) from None
        newline = "\r\n" if "\r\n" in text else "\n"
        atomic_write(path, _upsert(text.replace("\r\n", "\n"), entry).replace("\n", newline))


def _upsert(text: str, entry: Entry) -> str:
    lines = _without_entry(text.splitlines(), entry.job_id)
    for name in missing_sections("\n".join(lines)):
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", f"## {name}", ""]
    for name, block in render_entry(entry).items():
        _, start, end = next(s for s in _sections(lines) if s[0].casefold() == name.casefold())
        last = end
        while last > start + 1 and not lines[last - 1].strip():
            last -= 1
        lines[last:last] = ["", *block.rstrip("\n").split("\n")] + ([""] if last == end < len(lines) else [])
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n"


def _headings(lines: list[str]) -> list[tuple[int, str, str]]:
    """Top-level headings as (line, tag, text)."""
    tokens = _MD.parse("\n".join(lines))
    return [
        (tok.map[0], tok.tag, " ".join(tokens[i + 1].content.split()))
        for i, tok in enumerate(tokens)
        if tok.type == "heading_open" and tok.level == 0 and tok.map is not None
    ]


def _sections(lines: list[str]) -> list[tuple[str, int, int]]:
    """The `## ` sections as (name, heading line, end line)."""
    heads = _headings(lines)
    found = []
    for n, (start, tag, name) in enumerate(heads):
        if tag == "h2":
            end = next((s for s, t, _ in heads[n + 1 :] if t in ("h1", "h2")), len(lines))
            found.append((name, start, end))
    return found


def _without_entry(lines: list[str], job_id: str) -> list[str]:
    """`lines` without the job's earlier entries, in every section."""
    heads = _headings(lines)
    drop = []
    for n, (start, tag, _) in enumerate(heads):
        m = _MARK.match(lines[start + 1].strip()) if tag == "h3" and start + 1 < len(lines) else None
        if m and m.group(1) == job_id:
            end = next((s for s, t, _ in heads[n + 1 :] if t in ("h1", "h2", "h3")), len(lines))
            drop.append((start, end))
    for start, end in reversed(drop):
        del lines[start:end]
    return lines


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _paragraphs(text: str) -> str:
    # A summary must not open headings of its own (`#`, or a `---`/`===` underline): they would
    # split the sections.
    return "\n".join("\\" + line if _HEADING_LIKE.match(line) else line for line in text.strip().splitlines())


def _bullet(item: str) -> str:
    first, *rest = _paragraphs(item).splitlines() or [""]
    return f"- {first}\n" + "".join(f"  {line}\n" if line.strip() else "\n" for line in rest)
