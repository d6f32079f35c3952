"""implementation.md: what each job did, in the three sections DESIGN.md names.

The runner adds one entry per job (newest last; a re-run replaces its own entry) to each section
with something to say. An entry runs from its heading, which an HTML comment naming the job follows,
to an end comment, so a re-run removes exactly its own lines (entries from before there was an end
comment run to the next heading). Text that is not one of the runner's entries, such as a file an
agent wrote itself, is left exactly as it is, down to each line's own ending: entries are inserted
at the end of their section, and a missing section is appended. An entry's own text is closed off
so that it cannot take in what follows it.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it.token import Token

from runner.errors import UserError
from runner.fsutil import atomic_write
from runner.markdown import BlockParser
from runner.text import LINE_BREAK, common_ending, decode_utf8, ending, lines_with_endings

SECTIONS = ("Changes Made", "Deviations from Design", "Known Limitations")

_MD = BlockParser(tables=False)
_MARK = re.compile(r"^<!-- runner: job=(.+?) -->$")
_END = "<!-- runner: end -->"
# Summary lines that would open a heading of their own (`#`, a `---`/`===` underline), which would
# split the sections, or pass for one of the runner's comments, which would cut an entry short.
_ESCAPE = re.compile(r"^\s*(?:#|=+\s*$|-+\s*$|<!--\s*runner:)")
_LOCK = threading.Lock()


@dataclass
class Entry:
    job_id: str
    task_id: str | None
    title: str
    status: str
    files: list[str] = field(default_factory=list)
    # Seen changing in the work tree while other jobs ran too: maybe this job's, maybe theirs.
    files_alongside: list[str] = field(default_factory=list)
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
    # A blank line ends whatever the entry's last block is (a list, a paragraph) before the comment.
    tail = f"\n{_END}\n"
    status = entry.status + (f" ({_one_line(entry.reason)})" if entry.reason else "")
    files = ", ".join(f"`{f}`" for f in entry.files) if entry.files else "none"
    body = f"- **Status:** {status}\n- **Files changed:** {files}\n"
    if entry.files_alongside:
        alongside = ", ".join(f"`{f}`" for f in entry.files_alongside)
        body += f"- **Also changed while other jobs ran (this job's or theirs):** {alongside}\n"
    if entry.summary.strip():
        body += "\n" + _paragraphs(entry.summary) + "\n"
    blocks = {SECTIONS[0]: head + body + tail}
    for section, items in ((SECTIONS[1], entry.deviations), (SECTIONS[2], entry.limitations)):
        items = [item for item in items if item.strip()]
        if items:
            blocks[section] = head + "".join(_bullet(item) for item in items) + tail
    return blocks


def missing_sections(text: str) -> list[str]:
    """The required `## ` sections that `text` (with or without a BOM) lacks."""
    present = {name.casefold() for name, _, _ in _sections(lines_with_endings(text.removeprefix("\ufeff")))}
    return [s for s in SECTIONS if s.casefold() not in present]


def upsert_entry(path: str | Path, entry: Entry, *, title: str) -> None:
    """Add (or replace) the job's entry in implementation.md, creating the file if needed.

    A file whose sections cannot be found, or would hide the entry (an unclosed code block or HTML
    comment above them), is left alone with a UserError.
    """
    path = Path(path)
    with _LOCK:
        try:
            text = decode_utf8(path.read_bytes(), path)
        except FileNotFoundError:
            text = f"# Implementation: {_one_line(title)}\n\n" + "\n".join(f"## {s}\n" for s in SECTIONS)
        bom = "\ufeff" if text.startswith("\ufeff") else ""
        try:
            updated = _upsert(text.removeprefix(bom), entry)
        except _Hidden as e:
            raise UserError(
                f"the entry's '## {e}' section cannot be found, or an unclosed code block or HTML "
                "comment above it would hide the entry; not touching it",
                path=path,
            ) from None
        atomic_write(path, bom + updated)


class _Hidden(Exception):
    """The section named would not show the entry."""


def _upsert(text: str, entry: Entry) -> str:
    lines = lines_with_endings(text)
    newline = common_ending(lines)
    for start, end in reversed(_entries(lines, entry.job_id)):
        del lines[start:end]
    for name in missing_sections("".join(lines)):
        gap = [newline] if lines and not _blank(lines[-1]) else []
        _insert(lines, len(lines), [*gap, f"## {name}{newline}"], newline)
    blocks = render_entry(entry)
    for name, block in blocks.items():
        _, start, end = _section(lines, name)
        last = end
        while last > start + 1 and _blank(lines[last - 1]):
            last -= 1
        new = [newline, *(line + newline for line in block.rstrip("\n").split("\n"))]
        _insert(lines, last, new + ([newline] if last == end < len(lines) else []), newline)
    # Something above an entry that stays open (a fence, an HTML comment) would take it in: the
    # entry would not show, and a re-run would not find it to replace it.
    for name in blocks:
        _, start, end = _section(lines, name)
        if not any(start < first < end for first, _ in _entries(lines, entry.job_id)):
            raise _Hidden(name)
    return "".join(lines)


def _blank(line: str) -> bool:
    # CommonMark's blank: spaces and tabs only (a form feed or U+2028 is text).
    return not line.rstrip("\r\n").strip(" \t")


def _insert(lines: list[str], at: int, new: list[str], newline: str) -> None:
    """Insert `new` before line `at`; a last line without an ending gets one only then."""
    if at == len(lines) and lines and not ending(lines[-1]):
        lines[-1] += newline
    lines[at:at] = new


def _tokens(lines: list[str]) -> list[Token]:
    # markdown-it splits lines on \r\n, \r and \n as _lines does, so its line numbers are ours.
    return _MD.parse("".join(lines))


def _headings(tokens: list[Token]) -> list[tuple[int, str, str]]:
    """Top-level headings as (line, tag, text)."""
    return [
        (tok.map[0], tok.tag, " ".join(tokens[i + 1].content.split()))
        for i, tok in enumerate(tokens)
        if tok.type == "heading_open" and tok.level == 0 and tok.map is not None
    ]


def _sections(lines: list[str]) -> list[tuple[str, int, int]]:
    """The `## ` sections as (name, heading line, end line)."""
    heads = _headings(_tokens(lines))
    found = []
    for n, (start, tag, name) in enumerate(heads):
        if tag == "h2":
            end = next((s for s, t, _ in heads[n + 1 :] if t in ("h1", "h2")), len(lines))
            found.append((name, start, end))
    return found


def _section(lines: list[str], name: str) -> tuple[str, int, int]:
    found = next((s for s in _sections(lines) if s[0].casefold() == name.casefold()), None)
    if found is None:
        raise _Hidden(name)
    return found


def _entries(lines: list[str], job_id: str) -> list[tuple[int, int]]:
    """The line ranges of the job's entries, in every section.

    An entry ends with its end comment, and owns the blank line the runner put before it. An entry
    from before there were end comments runs to the next heading.
    """
    tokens = _tokens(lines)
    heads = _headings(tokens)
    ends = [
        tok.map[0]
        for tok in tokens
        if tok.type == "html_block" and tok.level == 0 and tok.map and tok.content.strip() == _END
    ]
    found = []
    for n, (start, tag, _) in enumerate(heads):
        m = _MARK.match(lines[start + 1].strip()) if tag == "h3" and start + 1 < len(lines) else None
        if m and m.group(1) == job_id:
            stop = next((s for s, t, _ in heads[n + 1 :] if t in ("h1", "h2", "h3")), len(lines))
            end = next((e for e in ends if start < e < stop), None)
            if end is None:
                found.append((start, stop))
            else:
                found.append((start - 1 if start > 0 and _blank(lines[start - 1]) else start, end + 1))
    return found


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _paragraphs(text: str) -> str:
    lines = LINE_BREAK.split(text.strip())
    return _contained("\n".join("\\" + line if _ESCAPE.match(line) else line for line in lines))


def _bullet(item: str) -> str:
    first, *rest = _paragraphs(item).split("\n")
    return f"- {first}\n" + "".join(f"  {line}\n" if line.strip() else "\n" for line in rest)


def _contained(text: str) -> str:
    """`text`, closed off so that what follows it cannot end up inside it.

    A fence or an HTML block (`<!--`, `<pre>`) left open would run on through the next sections.
    An open fence gets its closing fence; anything else still open goes inside a fence longer than
    any run of backticks in it, which nothing inside can close.
    """
    if _closed(text):
        return text
    last = _MD.parse(text)[-1]
    if last.type == "fence" and _closed(fenced := f"{text}\n{last.markup}"):
        return fenced
    ticks = "`" * max([3, *(len(run) + 1 for run in re.findall("`+", text))])
    return f"{ticks}\n{text}\n{ticks}"


def _closed(text: str) -> bool:
    """Whether a line after `text` and a blank line starts a block of its own."""
    last = _MD.parse(f"{text}\n\n{_END}")[-1]
    return last.type == "html_block" and last.level == 0 and last.content == _END
