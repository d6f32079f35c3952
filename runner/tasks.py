"""tasks.md: the task model and safe ticking.

A task is a Markdown list item whose first paragraph starts with a box: `[ ]` open, `[x]`/`[X]`
done, `[-]` in progress (Kiro), optionally followed by `*` (Kiro's optional tasks). Structure
comes from markdown-it's block tokens and their line maps, so code fences, indented code, HTML
blocks, tables and inline text are never tasks. The rules (ids, titles, parents, groups, how
ticking stays safe while a person edits the same file) are described in docs/documents.md.
"""

from __future__ import annotations

import bisect
import codecs
import contextlib
import ctypes
import difflib
import errno
import fcntl
import functools
import gc
import itertools
import operator
import os
import re
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, NamedTuple

from runner.errors import UserError
from runner.fsutil import temp_beside
from runner.markdown import BlockParser
from runner.text import LINE_BREAK, decode_utf8

TaskState = Literal["open", "done", "in-progress"]

_STATES: dict[str, TaskState] = {" ": "open", "x": "done", "X": "done", "-": "in-progress"}

# GFM tables on, so that a file parses as GitHub shows it.
_MD = BlockParser(tables=True)

# What may stand before a box on its line: indentation, quote marks and list markers. markdown-it
# strips any Unicode space from a paragraph's start; CommonMark, and GitHub, only spaces and tabs.
_CONTAINER = re.compile(r"[ \t>*+\-.)0-9]*")
_BOX = re.compile(r"\[([ xX-])\](\*?)(?:[ \t]+|(?=\n)|$)")
_HEAD = re.compile(
    r"(?:(?:(?P<t>T\d+[A-Z]?)|(?P<n>\d+(?:\.\d+)+)\.?|(?P<d>\d+)\.|(?P<w>Task[ \t]+\d+(?:\.\d+)*)):?(?=[ \t]|$)[ \t]*)?"
    r"(?P<markers>(?:\[[A-Za-z0-9][\w.-]{0,19}\](?![(\[:])[ \t]*)*)"
)
_MARKER = re.compile(r"\[([^\]]+)\]")
_SEPARATOR = re.compile(r"^(?:[-–—:]|\|)[ \t]+")
_NUMERIC_ID = re.compile(r"\d+(?:\.\d+)+")
_REQUIREMENTS = re.compile(
    r"^[ \t>]*(?:(?:[-*+]|\d+[.)])[ \t]+)?[_*]*(?:validates:[ \t]*requirements?\b|requirements?\b[_*]*:)[_*]*[ \t]*(.*)$",
    re.IGNORECASE,
)
_REF_SEPARATOR = re.compile(r",|;|\band\b")
_REF = re.compile(r"[\w.\-–]*\d[\w.\-–]*")
_DEPENDS = re.compile(r"\bdepend(?:s|encies|ency)?\b(?:[ \t]+on\b)?[_*]*:?[_*]*(.*)$", re.IGNORECASE)
_DEP_REF = re.compile(
    r"(?P<groups>task[ \t]+groups?[ \t]+(?:\d+(?:[ \t]*(?:[-–,&]|and)[ \t]*\d+)*))"
    r"|(?P<trange>T(?P<a>\d+)[ \t]*[-–][ \t]*T(?P<b>\d+))"
    r"|(?P<id>\bT\d+[A-Z]?\b|\b\d+(?:\.\d+)+\b|\bTask[ \t]+\d+(?:\.\d+)*\b)",
    re.IGNORECASE,
)
# Words that start a requirements or dependency line, in lower case; re.IGNORECASE lets "ı" stand
# for "i" (and "İ", which lowers to two characters).
_KEYWORDS = re.compile(r"requ[iı]re|depend")
_KEYWORDS_ANY_CASE = re.compile(r"require|depend", re.IGNORECASE)
_TASK_GROUP_HEADING = re.compile(r"\btask[ \t]+group[ \t]+(\d+)\b", re.IGNORECASE)
_SLUG = re.compile(r"[^\w]+")
_TYPE = operator.attrgetter("type")
_BOXES_BYTES = re.compile(rb"\[[xX-]\]")
_ANY_BOX_BYTES = re.compile(rb"\[[ xX-]\]")


class Task(NamedTuple):
    """One task of a tasks.md (a named tuple: a parse makes thousands, and a frozen dataclass's
    `__init__` took a twentieth of the time)."""

    id: str
    title: str
    checked: bool
    state: TaskState
    optional: bool
    line: int
    parent: str | None
    markers: tuple[str, ...]
    requirements: tuple[str, ...]
    depends_on: tuple[str, ...]
    section: str | None

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "checked": self.checked,
            "state": self.state,
            "optional": self.optional,
            "line": self.line,
            "parent": self.parent,
            "markers": list(self.markers),
            "requirements": list(self.requirements),
            "depends_on": list(self.depends_on),
            "section": self.section,
        }


@dataclass(frozen=True)
class TaskGroup:
    """A top-level task with all its descendants: the unit of one `each: task` job."""

    root: Task
    tasks: tuple[Task, ...]
    text: str
    depends_on: tuple[str, ...]

    @property
    def id(self) -> str:
        return self.root.id

    @property
    def title(self) -> str:
        return self.root.title

    @property
    def done(self) -> bool:
        return _complete(self.tasks)

    @property
    def optional(self) -> bool:
        return all(t.optional for t in self.tasks)


def id_forms(task_id: str) -> tuple[str, ...]:
    """The ids a reference to a task may mean, best first: Kiro's `2.` is `2`, a bare number may
    name an Agent OS group's parent task (`3` -> `3.0`), and a number a `Task 3` (or `Task 1.2`)."""
    task_id = task_id.strip()
    forms = [task_id]
    if task_id.endswith(".") and task_id[:-1]:
        task_id = task_id[:-1]
        forms.append(task_id)
    if task_id.isdigit():
        forms += [task_id + ".0", f"Task {task_id}"]
    elif _NUMERIC_ID.fullmatch(task_id):
        forms.append(f"Task {task_id}")
    return tuple(forms)


def _complete(tasks: Iterable[Task]) -> bool:
    """Every required task is checked; a set of only optional tasks needs all of them checked."""
    tasks = list(tasks)
    required = [t for t in tasks if not t.optional]
    return all(t.checked for t in (required or tasks))


@dataclass(frozen=True)
class _Doc:
    """One parse of a tasks.md text, with what ticking and the guard need besides the tasks."""

    text: str
    lines: tuple[str, ...]
    line_starts: tuple[int, ...]
    tasks: tuple[Task, ...]
    index: dict[str, int]
    columns: tuple[int, ...]  # column of each task's "[" on its line
    spans: tuple[tuple[int, int], ...]  # each task's list item, 0-based [start, end) lines
    owner: tuple[int, ...]  # per line: the innermost task whose item holds it, or -1
    explicit: tuple[bool, ...]

    def find(self, task_id: str) -> int | None:
        return next((self.index[f] for f in id_forms(task_id) if f in self.index), None)

    def box(self, i: int) -> str:
        return self.lines[self.tasks[i].line - 1][self.columns[i] + 1]

    def wording(self, li: int) -> str:
        """Line li with the state in its task box, if it has one, blanked: what the line says."""
        line = self.lines[li]
        i = self.box_at.get(li)
        if i is None:
            return line
        col = self.columns[i] + 1
        return line[:col] + " " + line[col + 1 :]

    @functools.cached_property
    def box_at(self) -> dict[int, int]:
        """The task whose box is on each 0-based line."""
        return {t.line - 1: i for i, t in enumerate(self.tasks)}

    def box_offset(self, i: int) -> int:
        """Character offset of the state character inside task i's brackets."""
        return self.line_starts[self.tasks[i].line - 1] + self.columns[i] + 1

    def tick_char(self) -> str:
        upper = sum(1 for i, t in enumerate(self.tasks) if t.checked and self.box(i) == "X")
        lower = sum(1 for i, t in enumerate(self.tasks) if t.checked and self.box(i) == "x")
        return "X" if upper > lower else "x"

    def with_boxes(self, changes: dict[int, str]) -> _Doc:
        """The parse of this text with some box characters replaced (offsets do not move)."""
        text = self.text
        lines = list(self.lines)
        tasks = list(self.tasks)
        for i, char in changes.items():
            pos = self.box_offset(i)
            text = text[:pos] + char + text[pos + 1 :]
            li = tasks[i].line - 1
            col = self.columns[i] + 1
            lines[li] = lines[li][:col] + char + lines[li][col + 1 :]
            state = _STATES[char]
            tasks[i] = tasks[i]._replace(checked=state == "done", state=state)
        return replace(self, text=text, lines=tuple(lines), tasks=tuple(tasks))


class TaskList:
    """The tasks of one tasks.md, in document order."""

    def __init__(self, doc: _Doc, path: Path | None) -> None:
        self._doc = doc
        self.path = path
        self.text = doc.text  # what was parsed (BOM removed)
        self.tasks: list[Task] = list(doc.tasks)

    @property
    def lines(self) -> tuple[str, ...]:
        """The file's lines, split as task line numbers count them (CR, LF or CRLF; nothing else)."""
        return self._doc.lines

    def get(self, task_id: str) -> Task:
        i = self._doc.find(task_id)
        if i is None:
            raise KeyError(task_id)
        return self._doc.tasks[i]

    def children(self, task_id: str) -> list[Task]:
        parent = self.get(task_id).id
        return [t for t in self._doc.tasks if t.parent == parent]

    def groups(self) -> list[TaskGroup]:
        doc = self._doc
        root_of: dict[str, str] = {}
        members: dict[str, list[int]] = {}
        for i, t in enumerate(doc.tasks):
            root = t.id if t.parent is None else root_of[t.parent]
            root_of[t.id] = root
            members.setdefault(root, []).append(i)
        groups = []
        for root_id, indices in members.items():
            deps: list[str] = []
            for i in indices:
                for dep in doc.tasks[i].depends_on:
                    target = root_of.get(dep)
                    if target is not None and target != root_id and target not in deps:
                        deps.append(target)
            groups.append(
                TaskGroup(
                    root=doc.tasks[indices[0]],
                    tasks=tuple(doc.tasks[i] for i in indices),
                    text=_group_text(doc, indices),
                    depends_on=tuple(deps),
                )
            )
        return groups

    def to_json(self) -> list[dict]:
        return [t.to_json() for t in self._doc.tasks]


def _group_text(doc: _Doc, indices: list[int]) -> str:
    lines: set[int] = set()
    for i in indices:
        start, end = doc.spans[i]
        lines.update(range(start, end))
    out = []
    for li in sorted(lines):
        line = doc.wording(li).rstrip()
        # Blank lines carry no wording; Kiro leaves runs of them behind when it toggles boxes.
        if line:
            out.append(line + "\n")
    return "".join(out)


# --- parsing -----------------------------------------------------------------------------------

_CACHE: OrderedDict[str, _Doc] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8


def _remember(doc: _Doc) -> None:
    with _CACHE_LOCK:
        _CACHE[doc.text] = doc
        _CACHE.move_to_end(doc.text)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)


_GC_LOCK = threading.Lock()
_gc_pauses = 0  # parses running now, in any thread
_gc_was_enabled = False


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while tasks.md files are parsed, in any thread.

    A big file makes ~20 block tokens per task, and the collector's passes over them (which find
    nothing: tokens form no cycles) took a third of the parse time. Parses in parallel threads
    share one pause, so the last to end turns the collector back on, if it was on.
    """
    global _gc_pauses, _gc_was_enabled
    with _GC_LOCK:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _document(text: str) -> _Doc:
    """Parse `text` (cached: the planner, the guard and ticking often look at the same bytes)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    with _CACHE_LOCK:
        doc = _CACHE.get(text)
    if doc is None:
        with _collector_paused():
            doc = _parse(text)
        _remember(doc)
    return doc


class _Raw(NamedTuple):
    line: int  # 0-based
    column: int
    box: str
    optional: bool
    explicit_id: str | None
    title: str
    markers: tuple[str, ...]
    span: tuple[int, int]
    struct_parent: int | None
    section: int  # index into the heading list, -1 before the first heading


def _parse(text: str) -> _Doc:
    if "\r" in text:
        lines = LINE_BREAK.split(text)
        starts = [0, *(m.end() for m in LINE_BREAK.finditer(text))]
    else:  # the common case, in a third of the time
        lines = text.split("\n")
        starts = list(itertools.accumulate(map((1).__add__, map(len, lines[:-1])), initial=0))  # len + "\n"
    if text.endswith(("\n", "\r")):
        # The split leaves an empty last element after a final newline: it is not a line.
        lines.pop()
        starts.pop()
    tokens = _MD.parse(text)
    # A big file has ~16 tokens per task; of those, only list items and headings are looked at.
    types = list(map(_TYPE, tokens))
    heading_at = _positions(types, "heading_open")
    headings = [(tokens[i].map[0], " ".join(tokens[i + 1].content.split())) for i in heading_at]  # type: ignore[index]

    raws: list[_Raw] = []
    owner = [-1] * len(lines)
    holding: list[tuple[int, int]] = []  # (task, end line) of the task items that hold this point
    for i in _positions(types, "list_item_open"):
        if types[i + 1] != "paragraph_open":
            continue
        content = tokens[i + 2].content
        if not content.startswith("["):
            continue  # most items are not tasks
        m = _BOX.match(content)
        item, para = tokens[i].map, tokens[i + 1].map
        if not (m and item and para and _CONTAINER.fullmatch(lines[para[0]].partition("[")[0])):
            continue
        # Items nest as their line ranges do: the ones that end before this one starts are closed.
        while holding and holding[-1][1] <= item[0]:
            holding.pop()
        parent = holding[-1][0] if holding else None
        section = bisect.bisect_right(heading_at, i) - 1
        holding.append((len(raws), item[1]))
        raw = _raw_task(content, m, lines, para, item, parent, section)
        start, end = raw.span
        owner[start:end] = [len(raws)] * (end - start)  # an inner task's lines are its own
        raws.append(raw)

    requirements: list[list[str]] = [[] for _ in raws]
    task_deps: list[list[tuple[str, str]]] = [[] for _ in raws]
    section_deps: dict[int, list[tuple[str, str]]] = {}
    heading_lines = [h[0] for h in headings]
    # Few lines mention requirements or dependencies: find them in one pass over the whole text.
    candidates = sorted({bisect.bisect_right(starts, at) - 1 for at in _keyword_offsets(text)})
    for li in candidates:
        line = lines[li]
        m = _REQUIREMENTS.match(line)
        if m and owner[li] >= 0:
            _extend_unique(requirements[owner[li]], _requirement_refs(m.group(1)))
        m = _DEPENDS.search(line) if "depend" in line.lower() else None
        if m:
            refs = _dependency_refs(m.group(1))
            if owner[li] >= 0:
                _extend_unique(task_deps[owner[li]], refs)
            else:
                section = bisect.bisect_right(heading_lines, li) - 1
                _extend_unique(section_deps.setdefault(section, []), refs)

    ids, parents, explicit = _assign_ids(raws)
    index = {task_id: i for i, task_id in enumerate(ids)}
    group_roots: dict[str, str] = {}
    for i, raw in enumerate(raws):
        if parents[i] is None and raw.section >= 0:
            m = _TASK_GROUP_HEADING.search(headings[raw.section][1])
            if m:
                group_roots.setdefault(m.group(1).lstrip("0") or "0", ids[i])

    tasks = []
    for i, raw in enumerate(raws):
        refs = task_deps[i]
        if parents[i] is None and raw.section in section_deps:
            refs = [*refs]
            _extend_unique(refs, section_deps[raw.section])
        depends: list[str] = []
        for kind, value in refs:
            target = group_roots.get(value) if kind == "group" else (value if value in index else None)
            if target is not None and target != ids[i] and target not in depends:
                depends.append(target)
        state = _STATES[raw.box]
        parent = parents[i]
        tasks.append(
            Task(
                ids[i],
                raw.title,
                state == "done",
                state,
                raw.optional,
                raw.line + 1,
                None if parent is None else ids[parent],
                raw.markers,
                tuple(requirements[i]),
                tuple(depends),
                headings[raw.section][1] if raw.section >= 0 else None,
            )
        )
    return _Doc(
        text=text,
        lines=tuple(lines),
        line_starts=tuple(starts),
        tasks=tuple(tasks),
        index=index,
        columns=tuple(r.column for r in raws),
        spans=tuple(r.span for r in raws),
        owner=tuple(owner),
        explicit=tuple(explicit),
    )


def _keyword_offsets(text: str) -> Iterator[int]:
    lowered = text.lower()  # a search in lower case is three times faster than one in any case
    if len(lowered) != len(text):  # a character lowered to two: the offsets would not be text's
        return (m.start() for m in _KEYWORDS_ANY_CASE.finditer(text))
    return (m.start() for m in _KEYWORDS.finditer(lowered))


def _positions(types: list[str], kind: str) -> list[int]:
    """Where tokens of one kind stand (list.index scans at C speed)."""
    found = []
    i = -1
    try:
        while True:
            i = types.index(kind, i + 1)
            found.append(i)
    except ValueError:
        return found


def _raw_task(
    content: str,
    m: re.Match[str],
    lines: list[str],
    para_map: list[int],
    item_map: list[int],
    parent: int | None,
    section: int,
) -> _Raw:
    line = para_map[0]
    # Only container syntax (spaces, tabs, ">", list markers) precedes the box, and none has "[".
    column = lines[line].index("[")
    first_end = content.find("\n", m.end())
    if first_end < 0:
        first_end = len(content)
    h = _HEAD.match(content, m.end(), first_end)
    t, n, d, w, markers = h.groups()  # type: ignore[union-attr]  # _HEAD matches any text
    task_id = " ".join(w.split()) if w else t or n or d
    head = content[h.end() : first_end]  # type: ignore[union-attr]
    if task_id and (sep := _SEPARATOR.match(head)):
        head = head[sep.end() :]
    title = head.strip()
    if first_end < len(content):
        rest = content[first_end + 1 :].split("\n")
        words = [title, *(r.strip() for r in rest if not _REQUIREMENTS.match(r))]
        title = " ".join(word for word in words if word)
    start, end = item_map
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    box, star = m.groups()
    markers = tuple(_MARKER.findall(markers)) if markers else ()
    return _Raw(line, column, box, star == "*", task_id, title, markers, (start, end), parent, section)


def _assign_ids(raws: list[_Raw]) -> tuple[list[str], list[int | None], list[bool]]:
    ids: list[str] = []
    parents: list[int | None] = []
    # Explicit ids are claimed first, so a derived id can never take one that is written later.
    owners: dict[str, int] = {}
    for i, raw in enumerate(raws):
        if raw.explicit_id:
            owners.setdefault(raw.explicit_id, i)
    used: set[str] = set(owners)
    latest: dict[str, int] = {}  # explicit id as written -> the latest task that carries it
    for i, raw in enumerate(raws):
        explicit = raw.explicit_id
        parent = raw.struct_parent
        if parent is None and explicit and _NUMERIC_ID.fullmatch(explicit):
            # Kiro writes sub-tasks as a flat list: "- [ ] 2." then "- [ ] 2.1"; the id says whose.
            prefix = explicit.rsplit(".", 1)[0]
            found = [latest[c] for c in (prefix, prefix + ".0") if c != explicit and c in latest]
            if found:
                parent = max(found)
        if explicit:
            base = explicit
        else:
            slug = _SLUG.sub("-", raw.title.lower()).strip("-")[:48].rstrip("-") or "task"
            base = slug if parent is None else f"{ids[parent]}/{slug}"
        task_id = base
        if not (explicit and owners[explicit] == i):
            n = 1
            while task_id in used:
                n += 1
                task_id = f"{base}-{n}"
            used.add(task_id)
        if explicit:
            latest[explicit] = i
        ids.append(task_id)
        parents.append(parent)
    return ids, parents, [r.explicit_id is not None for r in raws]


def _extend_unique(target: list, items: Iterable) -> None:
    for item in items:
        if item not in target:
            target.append(item)


def _requirement_refs(refs: str) -> list[str]:
    refs = refs.strip().rstrip("_*").strip()
    # Without an "and" the separators are plain characters: str.split is much faster.
    parts = _REF_SEPARATOR.split(refs) if "and" in refs else refs.replace(";", ",").split(",")
    out = []
    for part in parts:
        part = part.strip().strip("_*").strip()
        if part not in out and _REF.fullmatch(part):
            out.append(part)
    return out


def _dependency_refs(text: str) -> list[tuple[str, str]]:
    """("id", "T003") and ("group", "2") references named in a dependency statement."""
    refs: list[tuple[str, str]] = []
    for m in _DEP_REF.finditer(text):
        if m.group("groups"):
            numbers = m.group("groups").split(None, 2)[2]
            for a, b in re.findall(r"(\d+)(?:[ \t]*[-–][ \t]*(\d+))?", numbers):
                lo, hi = int(a), int(b or a)
                refs.extend(("group", str(n)) for n in range(lo, min(hi, lo + 1000) + 1))
        elif m.group("trange"):
            lo, hi = int(m.group("a")), int(m.group("b"))
            width = len(m.group("a"))
            refs.extend(("id", f"T{n:0{width}d}") for n in range(lo, min(hi, lo + 1000) + 1))
        else:
            value = m.group("id")
            if value[0] in "tT" and value[1:2].isalpha():
                value = " ".join(["Task", *value.split()[1:]])
            refs.append(("id", value))
    return refs


def parse_tasks(text: str, path: str | Path | None = None) -> TaskList:
    """The tasks of a tasks.md text (a leading BOM is ignored)."""
    return TaskList(_document(text), Path(path) if path is not None else None)


def load_tasks(path: str | Path) -> TaskList:
    """Read and parse a tasks.md; UTF-8 with or without a BOM, any line endings."""
    path = Path(path)
    return TaskList(_document(decode_utf8(_read(path), path)), path)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError("no such file", path=path) from None
    except IsADirectoryError:
        raise UserError("is a folder, expected a tasks.md file", path=path) from None


# --- ticking -------------------------------------------------------------------------------------


def set_checked(path: str | Path, task_id: str, checked: bool = True, *, tick_parents: bool = False) -> bool:
    """Tick (or untick) one task's box in the file at `path`; True when the file changed.

    The file is re-read now and the task found by id. Only the byte inside the brackets changes
    (more when `tick_parents` ticks parents whose required sub-tasks are all done). The write is
    atomic, keeps line endings, BOM and permissions, and never drops a concurrent edit.
    """
    shown = Path(path)

    def tick(data: bytes) -> bytes:
        return _tick(data, task_id, checked, tick_parents, shown)

    return rewrite(shown, tick)


def with_ticked(text: str, task_ids: Iterable[str]) -> str:
    """`text` with the boxes of these tasks ticked: those it has that are not ticked yet."""
    return with_marks(text, dict.fromkeys(task_ids, True))


def with_marks(text: str, marks: dict[str, bool]) -> str:
    """`text` with these tasks' boxes ticked (True) or open (False), those it has; the rest as they are."""
    doc = _document(text)
    changes = {}
    for task_id, checked in marks.items():
        i = doc.find(task_id)
        if i is not None and doc.tasks[i].checked != checked:
            changes[i] = doc.tick_char() if checked else " "
    return doc.with_boxes(changes).text if changes else text


def _tick(data: bytes, task_id: str, checked: bool, tick_parents: bool, path: Path) -> bytes:
    bom = data.startswith(codecs.BOM_UTF8)  # the one BOM _document drops; a second one is text
    doc = _document(decode_utf8(data, path))
    i = doc.find(task_id)
    if i is None:
        raise UserError(f"no task with id {task_id!r}; `runner tasks {path}` lists the ids", path=path)
    task = doc.tasks[i]
    char = doc.tick_char() if checked else " "
    changes: dict[int, str] = {}
    if (checked and not task.checked) or (not checked and task.state != "open"):
        changes[i] = char
    if checked and tick_parents:
        changes.update(_parents_to_tick(doc, i, char))
    if not changes:
        return data
    out = bytearray(data)
    for j in changes:
        pos = doc.box_offset(j)
        out[len(doc.text[:pos].encode("utf-8")) + (3 if bom else 0)] = ord(changes[j])
    _remember(doc.with_boxes(changes))
    return bytes(out)


def _parents_to_tick(doc: _Doc, i: int, char: str) -> dict[int, str]:
    ticked = {i}
    changes: dict[int, str] = {}
    parent = doc.tasks[i].parent
    while parent is not None:
        p = doc.index[parent]
        task = doc.tasks[p]
        children = [
            t._replace(checked=True) if j in ticked else t
            for j, t in enumerate(doc.tasks)
            if t.parent == parent
        ]
        if task.optional or not _complete(children):
            break
        if not task.checked:
            changes[p] = char
        ticked.add(p)
        parent = task.parent
    return changes


# --- race-safe rewriting ---------------------------------------------------------------------------
#
# Someone may edit the file while we tick it: an editor saving by rename, a tool writing in place,
# or another runner ticking. We never write from a stale read: the new content goes to a temporary
# file that is *exchanged* with the target in one step (renameat2 RENAME_EXCHANGE), so afterwards
# the temporary name holds exactly what the target was at that instant. If that is not what we
# based our change on, someone wrote in between: their change is merged into ours and we swap
# again, until what we swap out is what we last put in. A read lease (fcntl F_SETLEASE) makes each
# read wait until nobody has the file open for writing, so an in-place write that is under way is
# never read half-done, and one that lands on the old file after the swap is still seen. Runner
# threads and processes take turns (flock on the folder), so at most one copy is ever set aside.

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_F_SETLEASE = getattr(fcntl, "F_SETLEASE", None)
_F_SETSIG = getattr(fcntl, "F_SETSIG", None)
_MAX_ROUNDS = 1000
_LEASE_PATIENCE = 2.0


def _load_renameat2() -> Callable[..., int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _load_renameat2()


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap the files at a and b; False when this system cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def _no_writers(fd: int):
    """Wait until no process has the file open for writing, and keep it so while inside.

    A read lease is refused while a writer has the file open, and while we hold it a process that
    opens the file for writing waits until we let go. Where leases are unavailable (not the owner,
    a filesystem without them) this is a no-op.
    """
    held = False
    if _F_SETLEASE is not None:
        if _F_SETSIG is not None:
            # A lease break is announced by a signal, SIGIO by default, which would kill us; SIGURG
            # is ignored unless someone asks for it.
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, _F_SETSIG, signal.SIGURG)
        deadline = time.monotonic() + _LEASE_PATIENCE
        delay = 0.0002
        while True:
            try:
                fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_RDLCK)
                held = True
                break
            except OSError as e:
                if e.errno != errno.EAGAIN or time.monotonic() > deadline:
                    break
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
    try:
        yield
    finally:
        if held:
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_UNLCK)


def _snapshot(path: Path) -> tuple[bytes, os.stat_result]:
    """The file's complete content, read while nobody writes it, and its stat."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _no_writers(fd):
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
            st = os.fstat(fd)
        return b"".join(chunks), st
    finally:
        os.close(fd)


def _temp_copy(path: Path, data: bytes, st: os.stat_result) -> Path:
    fd, tmp = temp_beside(path)
    try:
        os.fchmod(fd, st.st_mode & 0o7777)
        if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
            os.fchown(fd, st.st_uid, st.st_gid)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return Path(tmp)


def rewrite(path: str | Path, edit: Callable[[bytes], bytes]) -> bool:
    """Replace the file's content by edit(content), losing no concurrent write; True if it changed.

    This is how ticking writes (see the notes above); anything else that must change a file
    people edit at the same time can use it too. A symlink's target is what changes. `edit` must
    be idempotent, as it is re-applied to later versions of the file (which may already carry its
    change, restored from a copy set aside). It may raise UserError: on the first read that leaves
    the file untouched; later (say the task vanished meanwhile) the other writer's content is still
    put back before the error is raised.
    """
    shown = Path(path)
    real = Path(os.path.realpath(shown))
    with _serialised(real.parent):
        return _rewrite_locked(real, edit, shown)


@contextlib.contextmanager
def _serialised(folder: Path) -> Iterator[None]:
    """One rewrite at a time per folder, among threads and processes that use this code.

    While a rewrite has a copy set aside, the file shows a version without it; a second careful
    writer that read that version would fork the content again, and forks of forks do not merge
    cleanly. Writers that do not take the lock (people, editors, other tools) only ever add one.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        fd = None
    try:
        if fd is not None:
            with contextlib.suppress(OSError):  # a filesystem without locks
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _rewrite_locked(path: Path, edit: Callable[[bytes], bytes], name: Path) -> bool:
    try:
        shown, st = _snapshot(path)
    except FileNotFoundError:
        raise UserError("no such file", path=name) from None
    want = edit(shown)
    if want == shown:
        return False
    merged = shown  # everything others wrote that we know of, without our edit
    failure: UserError | None = None
    pending: Path | None = None  # a copy we set aside whose content is not back in place yet
    for _ in range(_MAX_ROUNDS):
        tmp = _temp_copy(path, want, st)
        try:
            swapped = _exchange(tmp, path)
        except BaseException as e:
            tmp.unlink(missing_ok=True)
            if isinstance(e, FileNotFoundError):
                raise UserError("the file was deleted while the runner was writing it", path=name) from None
            raise
        if not swapped:
            return _replace_unswappable(path, tmp, shown, want, edit)
        if pending is not None:
            pending.unlink()
            pending = None
        # Now `tmp` holds what the file was a moment ago. Should we be interrupted, it stays on
        # disk (a dot-file next to the target) until its content is back in place.
        out, _ = _snapshot(tmp)
        if out == shown:
            tmp.unlink()
            if failure is not None:
                raise failure
            return True
        merged = _merge3(shown, merged, out)
        shown = want
        try:
            want = edit(merged)
            failure = None
        except UserError as e:
            want, failure = merged, e
        pending = tmp
    raise UserError(
        f"the file kept changing while the runner wrote it; another version was kept in {pending}", path=name
    )


def _replace_unswappable(
    path: Path, tmp: Path, shown: bytes, want: bytes, edit: Callable[[bytes], bytes]
) -> bool:
    """Fallback without RENAME_EXCHANGE: re-check just before the rename (a small window remains)."""
    try:
        for _ in range(_MAX_ROUNDS):
            current, st = _snapshot(path)
            if current == shown:
                os.replace(tmp, path)
                return True
            tmp.unlink()
            shown = current
            want = edit(current)
            if want == current:
                return False
            tmp = _temp_copy(path, want, st)
    finally:
        tmp.unlink(missing_ok=True)
    raise UserError("the file kept changing while the runner wrote it; try again", path=path)


def _merge3(base: bytes, ours: bytes, theirs: bytes) -> bytes:
    """Line-based three-way merge that keeps every change of both sides.

    Changes to different lines (adjacent ones included) are all applied. Where both sides changed
    the same lines, a side that only flipped boxes has its boxes carried over to the other side's
    text; otherwise both versions are kept, lines they share only once.
    """
    if ours == base:
        return theirs
    if theirs in (base, ours):
        return ours
    b = base.splitlines(keepends=True)
    o = ours.splitlines(keepends=True)
    t = theirs.splitlines(keepends=True)
    # Edits are local: only the stretch between the common head and tail needs diffing.
    head = 0
    while head < min(len(b), len(o), len(t)) and b[head] == o[head] == t[head]:
        head += 1
    tail = 0
    while tail < min(len(b), len(o), len(t)) - head and b[-1 - tail] == o[-1 - tail] == t[-1 - tail]:
        tail += 1
    middle = _merge_lines(b[head : len(b) - tail], o[head : len(o) - tail], t[head : len(t) - tail])
    return b"".join([*b[:head], *middle, *b[len(b) - tail :]])


_Edit = tuple[int, int, list[bytes]]  # replace base[i1:i2] by these lines


def _edits(base: list[bytes], other: list[bytes]) -> list[_Edit]:
    matcher = difflib.SequenceMatcher(None, base, other, autojunk=False)
    return [(i1, i2, other[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def _merge_lines(b: list[bytes], o: list[bytes], t: list[bytes]) -> list[bytes]:
    events = sorted([(e, 0) for e in _edits(b, o)] + [(e, 1) for e in _edits(b, t)], key=lambda x: x[0][:2])
    out: list[bytes] = []
    pos = k = 0
    while k < len(events):
        lo, hi = events[k][0][:2]
        cluster = [events[k]]
        k += 1
        # Edits overlap when they share base lines or one inserts where the other starts or ends
        # (the order of the two is then unknown). Edits of adjacent lines do not overlap.
        while k < len(events):
            i1, i2 = events[k][0][:2]
            if not (i1 < hi or (i1 == hi and (i1 == i2 or lo == hi))):
                break
            hi = max(hi, i2)
            cluster.append(events[k])
            k += 1
        out.extend(b[pos:lo])
        regions = []
        for side in (0, 1):
            region: list[bytes] = []
            at = lo
            for (i1, i2, lines), s in cluster:
                if s == side:
                    region.extend(b[at:i1])
                    region.extend(lines)
                    at = i2
            region.extend(b[at:hi])
            regions.append(region)
        out.extend(_resolve(b[lo:hi], regions[0], regions[1]))
        pos = hi
    out.extend(b[pos:])
    return out


def _resolve(base: list[bytes], ours: list[bytes], theirs: list[bytes]) -> list[bytes]:
    if ours == theirs or theirs == base:
        return ours
    if ours == base:
        return theirs
    if len(base) == len(ours) == len(theirs):
        return [line for trio in zip(base, ours, theirs, strict=True) for line in _resolve_line(*trio)]
    return _union(ours, theirs)


def _resolve_line(base: bytes, ours: bytes, theirs: bytes) -> list[bytes]:
    if ours == theirs or theirs == base:
        return [ours]
    if ours == base:
        return [theirs]
    if _unboxed(ours) == _unboxed(base):
        return [_carry_boxes(base, ours, theirs)]
    if _unboxed(theirs) == _unboxed(base):
        return [_carry_boxes(base, theirs, ours)]
    return [ours, theirs]


def _union(ours: list[bytes], theirs: list[bytes]) -> list[bytes]:
    """Both versions, in order, with the lines they share kept once."""
    out: list[bytes] = []
    matcher = difflib.SequenceMatcher(None, ours, theirs, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        mine, other = ours[i1:i2], theirs[j1:j2]
        if tag == "equal":
            out.extend(mine)
        elif tag == "replace" and [_unboxed(x) for x in mine] == [_unboxed(x) for x in other]:
            # The same lines, boxed differently: a tick on either side stands.
            out.extend(_carry_boxes(_unboxed(m), m, x) for m, x in zip(mine, other, strict=True))
        else:
            out.extend(mine + other)
    return out


def _unboxed(line: bytes) -> bytes:
    return _BOXES_BYTES.sub(b"[ ]", line)


def _carry_boxes(base: bytes, changed: bytes, onto: bytes) -> bytes:
    """`onto` with the box characters that `changed` altered relative to `base`."""
    out = bytearray(onto)
    for m in _ANY_BOX_BYTES.finditer(changed):
        pos = m.start() + 1
        if base[pos : pos + 1] != changed[pos : pos + 1] and _ANY_BOX_BYTES.match(onto, m.start()):
            out[pos] = changed[pos]
    return bytes(out)
