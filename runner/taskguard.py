"""Comparing two versions of a tasks.md at task level.

Agents may only tick boxes in a tasks.md. `diff_tasks` tells what an edit did (ticks, unticks,
added, removed, reworded or moved tasks, other text); an edit that is `only_ticks` is replayed by
the runner with `set_checked`, anything else is refused. `reconcile` repairs a file that a CLI
agent edited freely: removed and reworded tasks come back, disallowed ticks are reverted, and every
other change (which may be a person's) is kept.
"""

from __future__ import annotations

import bisect
import difflib
from dataclasses import dataclass, field

from runner.tasks import _Doc, _document
from runner.text import LINE_BREAK, common_ending, lines_with_endings


@dataclass
class TasksDiff:
    ticked: list[str] = field(default_factory=list)
    unticked: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    reworded: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)  # reordered, or under another parent
    restated: list[str] = field(default_factory=list)  # open <-> in progress
    other_text_changed: bool = False

    @property
    def only_ticks(self) -> bool:
        """Nothing but ticks and unticks changed."""
        return not (
            self.added
            or self.removed
            or self.reworded
            or self.moved
            or self.restated
            or self.other_text_changed
        )

    def describe(self) -> str:
        parts = []
        for verb, ids in (
            ("ticked", self.ticked),
            ("unticked", self.unticked),
            ("added", self.added),
            ("removed", self.removed),
            ("reworded", self.reworded),
            ("moved", self.moved),
            ("changed the in-progress mark of", self.restated),
        ):
            if ids:
                parts.append(f"{verb} {'tasks' if len(ids) > 1 else 'task'} {', '.join(ids)}")
        if self.other_text_changed:
            parts.append("changed text outside the tasks")
        return "; ".join(parts) if parts else "no changes"


def diff_tasks(old_text: str, new_text: str) -> TasksDiff:
    return _compare(_document(old_text), _document(new_text))[0]


def _compare(a: _Doc, b: _Doc) -> tuple[TasksDiff, dict[int, int]]:
    """The diff, and which task of `b` (by index) is which task of `a`."""
    diff = TasksDiff()
    old_ids = [t.id for t in a.tasks]
    new_ids = [t.id for t in b.tasks]
    pairs = _aligned(a, b)  # new index -> old index
    # The rest by id: reworded, moved, or among lines that changed around them.
    aligned = set(pairs.values())
    old_rest = [i for i in range(len(old_ids)) if i not in aligned]
    new_rest = [j for j in range(len(new_ids)) if j not in pairs]
    matcher = difflib.SequenceMatcher(
        None, [old_ids[i] for i in old_rest], [new_ids[j] for j in new_rest], autojunk=False
    )
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pairs.update({new_rest[j1 + k]: old_rest[i1 + k] for k in range(i2 - i1)})
        elif tag == "replace":
            # A derived id is a slug of the title: rewording such a task changes its id. A task
            # without an explicit id in the place of a similar one is that task, reworded.
            old_derived = [i for i in old_rest[i1:i2] if not a.explicit[i]]
            new_derived = [j for j in new_rest[j1:j2] if not b.explicit[j]]
            for i, j in zip(old_derived, new_derived, strict=False):
                if difflib.SequenceMatcher(None, a.tasks[i].title, b.tasks[j].title).ratio() >= 0.5:
                    pairs[j] = i
    old_index = {task_id: i for i, task_id in enumerate(old_ids)}
    taken = set(pairs.values())
    for j, task_id in enumerate(new_ids):
        if j not in pairs and old_index.get(task_id, -1) not in taken | {-1}:
            pairs[j] = old_index[task_id]
            taken.add(pairs[j])
    # Tasks worded alike that the alignment left apart: the same words are the same task.
    old_own = _own_lines(a)
    new_own = _own_lines(b)
    unpaired: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(old_ids)):
        if i not in taken:
            unpaired.setdefault(tuple(old_own.get(i, ())), []).append(i)
    for j in range(len(new_ids)):
        same = unpaired.get(tuple(new_own.get(j, ())))
        if j not in pairs and same:
            pairs[j] = same.pop(0)

    new_of_old = {i: j for j, i in pairs.items()}
    for j, i in sorted(pairs.items()):
        old, new = a.tasks[i], b.tasks[j]
        if new.checked and not old.checked:
            diff.ticked.append(old.id)
        elif old.checked and not new.checked:
            diff.unticked.append(old.id)
        elif old.state != new.state:
            diff.restated.append(old.id)
        if old_own.get(i) != new_own.get(j):
            diff.reworded.append(old.id)
        old_parent = None if old.parent is None else new_of_old.get(a.index[old.parent], -1)
        new_parent = None if new.parent is None else b.index[new.parent]
        if old_parent != new_parent:
            diff.moved.append(old.id)
    # Tasks outside the longest run that kept its order were moved.
    sequence = [i for _, i in sorted(pairs.items())]
    ordered = sorted(sequence)
    stayed: set[int] = set()
    for block in difflib.SequenceMatcher(None, ordered, sequence, autojunk=False).get_matching_blocks():
        stayed.update(ordered[block.a : block.a + block.size])
    for i in sequence:
        if i not in stayed and a.tasks[i].id not in diff.moved:
            diff.moved.append(a.tasks[i].id)
    diff.added = [new_ids[j] for j in range(len(new_ids)) if j not in pairs]
    diff.removed = [old_ids[i] for i in range(len(old_ids)) if i not in new_of_old]
    diff.other_text_changed = _other_lines(a) != _other_lines(b)
    return diff, pairs


def _aligned(a: _Doc, b: _Doc) -> dict[int, int]:
    """Tasks whose box line is where it was, among unchanged lines: new index -> old index.

    Lines are compared with their boxes blanked, so a tick keeps a task in place. This tells apart
    tasks worded alike (two "Run tests" under two headings), which ids alone cannot. A large edit
    in the middle of a file is left to the ids: aligning it line by line would cost seconds.
    """
    equal = [op for op in _opcodes(_wordings(a), _wordings(b), exact_only=True) if op[0] == "equal"]
    starts = [op[3] for op in equal]
    pairs: dict[int, int] = {}
    for line, j in b.box_at.items():
        k = bisect.bisect_right(starts, line) - 1
        if k >= 0 and line < equal[k][4]:
            i = a.box_at.get(equal[k][1] + line - equal[k][3])
            if i is not None:  # the same line may be a task in one version only (a lazy line, a fence)
                pairs[j] = i
    return pairs


def _wordings(doc: _Doc) -> list[str]:
    lines = [line.rstrip() for line in doc.lines]
    for li in doc.box_at:
        lines[li] = doc.wording(li).rstrip()
    return lines


# Beyond this many line pairs, an exact longest common subsequence costs too much; difflib's
# faster matching is close enough for edits that large.
_EXACT_MATCH_LIMIT = 40_000


def _opcodes(old: list, new: list, *, exact_only: bool = False) -> list[tuple[str, int, int, int, int]]:
    """How `new` differs from `old`, as difflib's opcodes. The common start and end are taken out
    first and a small middle is matched exactly: among repeated lines ("Run tests" twice) difflib's
    greedy matching may keep the wrong copy. A large middle is matched by difflib, or, with
    `exact_only`, left as one replaced block."""
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end = 0
    while end < min(len(old), len(new)) - start and old[-1 - end] == new[-1 - end]:
        end += 1
    mid_old, mid_new = old[start : len(old) - end], new[start : len(new) - end]
    if len(mid_old) * len(mid_new) <= _EXACT_MATCH_LIMIT:
        matches = _common_subsequence(mid_old, mid_new)
    elif exact_only:
        matches = []
    else:
        blocks = difflib.SequenceMatcher(None, mid_old, mid_new, autojunk=False).get_matching_blocks()
        matches = [(blk.a + k, blk.b + k) for blk in blocks for k in range(blk.size)]
    ops: list[tuple[str, int, int, int, int]] = [("equal", 0, start, 0, start)] if start else []
    i = j = start
    for mi, mj in [*((i + start, j + start) for i, j in matches), (len(old) - end, len(new) - end)]:
        if mi > i or mj > j:
            tag = "replace" if mi > i and mj > j else "delete" if mi > i else "insert"
            ops.append((tag, i, mi, j, mj))
        if (mi, mj) == (len(old) - end, len(new) - end):
            break
        if ops and ops[-1][0] == "equal" and ops[-1][2] == mi and ops[-1][4] == mj:
            ops[-1] = ("equal", ops[-1][1], mi + 1, ops[-1][3], mj + 1)
        else:
            ops.append(("equal", mi, mi + 1, mj, mj + 1))
        i, j = mi + 1, mj + 1
    if end:
        if ops and ops[-1][0] == "equal" and ops[-1][2] == len(old) - end:
            ops[-1] = ("equal", ops[-1][1], len(old), ops[-1][3], len(new))
        else:
            ops.append(("equal", len(old) - end, len(old), len(new) - end, len(new)))
    return ops


def _common_subsequence(old: list, new: list) -> list[tuple[int, int]]:
    """The index pairs of a longest common subsequence (dynamic programming)."""
    n, m = len(old), len(new)
    longest = [[0] * (m + 1) for _ in range(n + 1)]  # longest[i][j]: of old[i:] and new[j:]
    for i in range(n - 1, -1, -1):
        row, below, item = longest[i], longest[i + 1], old[i]
        for j in range(m - 1, -1, -1):
            row[j] = below[j + 1] + 1 if item == new[j] else max(below[j], row[j + 1])
    pairs = []
    i = j = 0
    while i < n and j < m:
        if old[i] == new[j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif longest[i + 1][j] >= longest[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _own_lines(doc: _Doc) -> dict[int, list[str]]:
    """Each task's own lines (its item minus sub-tasks): boxes blanked, indentation and blank lines
    ignored (nesting is compared as parents)."""
    own: dict[int, list[str]] = {}
    for li, owner in enumerate(doc.owner):
        if owner < 0:
            continue
        line = doc.wording(li).strip()
        if line:
            own.setdefault(owner, []).append(line)
    return own


def _other_lines(doc: _Doc) -> list[str]:
    return [line.strip() for li, line in enumerate(doc.lines) if doc.owner[li] < 0 and line.strip()]


def reconcile(
    before: str, after: str, *, allowed_ticks: set[str], only: set[str] | None = None
) -> tuple[str, TasksDiff]:
    """`after` with removed tasks put back, reworded tasks restored, disallowed ticks reverted.

    Everything else `after` changed is kept: added tasks and text outside the tasks may be a
    person's. With `only`, just those tasks are repaired and every other task stays as `after`
    has it (a person may have ticked, reworded or removed it meanwhile). Restored lines keep
    `before`'s bytes; the result uses `before`'s line endings and BOM.
    """
    a, b = _document(before), _document(after)
    diff, pairs = _compare(a, b)
    changed = {
        *diff.unticked, *diff.removed, *diff.reworded, *diff.moved, *diff.restated,
        *(t for t in diff.ticked if t not in allowed_ticks),
    }  # fmt: skip
    if only is not None:
        changed &= only
    ticks = [task_id for task_id in diff.ticked if task_id in allowed_ticks]
    if not changed:
        return _styled_like(a, after, ticks, bom=before.startswith("\ufeff")), diff
    existing = set(pairs)  # tasks of `after` that were already in `before`
    a_lines = lines_with_endings(a.text)
    b_lines = lines_with_endings(b.text)
    newline = common_ending(a_lines)

    def mine(task_id: str) -> bool:
        return only is None or task_id in only

    def keep_before(i: int) -> bool:
        return a.owner[i] >= 0 and mine(a.tasks[a.owner[i]].id)

    def keep_after(j: int) -> bool:
        return b.owner[j] < 0 or b.owner[j] not in existing or not mine(b.tasks[b.owner[j]].id)

    out: list[str] = []
    origin: list[int] = []  # the line's index in `before`, or -1 for a line of `after`
    # A task's box line only matches the same task's: two tasks worded alike stay apart.
    b_tasks = {li: pairs.get(j, -2 - j) for li, j in b.box_at.items()}
    a_keys = [(a.box_at.get(i, -1), line.rstrip()) for i, line in enumerate(a_lines)]
    b_keys = [(b_tasks.get(j, -1), line.rstrip()) for j, line in enumerate(b_lines)]
    for tag, i1, i2, j1, j2 in _opcodes(a_keys, b_keys):
        if tag == "equal":
            out.extend(a_lines[i1:i2])
            origin.extend(range(i1, i2))
            continue
        restored: dict[int, list[int]] = {}
        for i in range(i1, i2):
            if keep_before(i):
                restored.setdefault(a.owner[i], []).append(i)
        placed: list[int] = []  # line of `before` (>= 0) or -1 - line of `after`
        for j in range(j1, j2):
            if keep_after(j):
                placed.append(-1 - j)
            else:
                placed.extend(restored.pop(pairs[b.owner[j]], []))
        # Tasks the agent removed (or moved elsewhere) come back where they were: next to the
        # restored lines that surrounded them.
        for lines in restored.values():
            later = [k for k, i in enumerate(placed) if i > lines[0]]
            earlier = [k for k, i in enumerate(placed) if 0 <= i < lines[0]]
            at = later[0] if later else earlier[-1] + 1 if earlier else 0
            placed[at:at] = lines
        for k in placed:
            out.append(a_lines[k] if k >= 0 else _with_ending(b_lines[-1 - k], newline))
            origin.append(max(k, -1))
    for k in range(len(out) - 1):
        if not out[k].endswith(("\n", "\r")):
            out[k] += newline
    _keep_apart(a, out, origin, newline)
    return _styled_like(a, "".join(out), ticks, bom=before.startswith("\ufeff")), diff


def _styled_like(a: _Doc, text: str, ticks: list[str], *, bom: bool) -> str:
    """`text` with `before`'s BOM, its line endings (where it had one kind), and the allowed
    ticks made, in its x/X habit: an agent that rewrote the file in its own style changed nothing."""
    text = text.removeprefix("\ufeff")
    endings = set(LINE_BREAK.findall(a.text))
    if len(endings) == 1:
        text = LINE_BREAK.sub(endings.pop(), text)
    doc = _document(text)
    char = a.tick_char()
    boxes = {i: char for i in map(doc.find, ticks) if i is not None and doc.box(i) != char}
    if boxes:
        text = doc.with_boxes(boxes).text
    return "\ufeff" + text if bom else text


def _keep_apart(a: _Doc, out: list[str], origin: list[int], newline: str) -> None:
    """Stop lines kept from `after` from rewording a restored task (edits `out` in place).

    Markdown reads a line after a list item as part of it when it is indented, or lazily when it
    is plain text; a kept line between a task's restored lines would split it. Such lines move
    past the task (or, when indented, before it); a blank line ends a lazy continuation.
    """
    want = _own_lines(a)

    def outside(k: int) -> bool:
        """The line was in no task of `before`."""
        return origin[k] < 0 or a.owner[origin[k]] < 0

    for _ in range(2 * len(out) + 1):
        doc = _document("".join(out))
        own = _own_lines(doc)
        at = {origin[t.line - 1]: n for n, t in enumerate(doc.tasks) if origin[t.line - 1] >= 0}
        broken = next(
            (
                i
                for i, t in enumerate(a.tasks)
                if (t.line - 1) in at and own.get(at[t.line - 1]) != want.get(i)
            ),
            None,
        )
        if broken is None:
            return
        family = _family(a, broken)
        mine = [k for k, o in enumerate(origin) if o >= 0 and a.owner[o] == broken]
        lo, hi = mine[0], mine[-1]
        between = [k for k in range(lo, hi + 1) if origin[k] < 0 or a.owner[origin[k]] not in family]
        if between:
            moved = [(out[k], origin[k]) for k in between]
            for k in reversed(between):
                del out[k], origin[k]
            hi -= len(between)
            out[hi + 1 : hi + 1] = [line for line, _ in moved]
            origin[hi + 1 : hi + 1] = [o for _, o in moved]
        elif hi + 1 < len(out) and outside(hi + 1) and out[hi + 1].strip() and not out[hi + 1][:1].isspace():
            out.insert(hi + 1, newline)
            origin.insert(hi + 1, -1)
        elif hi + 1 < len(out) and outside(hi + 1):
            end = hi + 1
            while end < len(out) and outside(end) and (not out[end].strip() or out[end][:1].isspace()):
                end += 1
            run, run_origin = out[hi + 1 : end], origin[hi + 1 : end]
            del out[hi + 1 : end], origin[hi + 1 : end]
            if not run[-1].endswith(("\n", "\r")):
                run[-1] += newline
            out[lo:lo] = run
            origin[lo:lo] = run_origin
        else:
            return


def _family(doc: _Doc, i: int) -> set[int]:
    """Task i and its descendants."""
    family = {i}
    for n, t in enumerate(doc.tasks[i + 1 :], i + 1):
        if t.parent is not None and doc.index[t.parent] in family:
            family.add(n)
    return family


def _with_ending(line: str, newline: str) -> str:
    stripped = line.rstrip("\r\n")
    return stripped + newline if stripped != line else line
