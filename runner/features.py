"""features.json: the feature list a phase reports on.

Two shapes are in use and both are kept as they are:

- status: `{"features": [{"id", "name"|"description", "status", "reason"?}]}` with a status of
  pending, in-progress, done, partial or blocked;
- harness (Anthropic's long-running agent harness): `[{"category", "description", "steps",
  "passes": bool}]`, also wrapped as `{"features": [...]}` and often with an "id".

An update edits the file's text in place: only the values that changed are rewritten, a key that
is added goes in the style of its object, and everything else (unknown fields, key order, layout,
number spellings, escapes, line endings, a BOM) stays byte for byte. A file that does not parse or
validate is reported (file:line:column for JSON syntax) and never written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from json.decoder import scanstring
from pathlib import Path
from typing import Any, Literal

from runner.errors import UserError
from runner.fsutil import atomic_write
from runner.text import decode_utf8

STATUSES = ("pending", "in-progress", "done", "partial", "blocked")


# A spec's own feature list, under the names in use: a phase's features.json starts from it.
SPEC_FEATURE_FILES = ("features.json", "feature_list.json")


class FeatureList:
    def __init__(
        self,
        data: Any,
        features: list[dict],
        shape: Literal["status", "harness"],
        source: _Source,
        path: Path | None,
    ) -> None:
        self._data = data
        self.features = features
        self.shape = shape
        self._source = source
        self.path = path
        # Harness files that carry a "status" of their own keep it; ours comes and goes.
        self._native_status = {id(f) for f in features if "status" in f}

    @classmethod
    def parse(cls, text: str, path: str | Path | None = None) -> FeatureList:
        path = Path(path) if path is not None else None
        bom = text.startswith("\ufeff")
        if bom:
            text = text[1:]
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as e:
            raise UserError(
                f"invalid JSON: {e.msg}; fix the syntax", path=path, line=e.lineno, column=e.colno
            ) from None
        except _DuplicateKey as e:
            raise UserError(
                f"invalid feature list: key {e.key!r} appears twice in one object", path=path
            ) from None
        if isinstance(data, list):
            features = data
        elif isinstance(data, dict) and isinstance(data.get("features"), list):
            features = data["features"]
        else:
            raise UserError(
                'invalid feature list: expected {"features": [...]} or a list of features', path=path
            )
        for n, item in enumerate(features):
            if not isinstance(item, dict):
                raise UserError(f"invalid feature list: feature {n + 1} is not an object", path=path)
        harness = isinstance(data, list) or any("passes" in f for f in features)
        result = cls(data, features, "harness" if harness else "status", _Source(text, data, bom), path)
        result._validate()
        return result

    @classmethod
    def load(cls, path: str | Path) -> FeatureList:
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UserError("no such file", path=path) from None
        # A BOM is kept: parse strips it and dumps puts it back.
        return cls.parse(decode_utf8(data, path), path)

    def _validate(self) -> None:
        seen: set[str] = set()
        for n, feature in enumerate(self.features):
            where = f"feature {n + 1}"
            try:
                key = self.key(feature)
            except ValueError:
                raise UserError(
                    f'invalid feature list: {where} has no "id", "name" or "description"', path=self.path
                ) from None
            where += f" ({key!r})"
            if key in seen:
                raise UserError(f"invalid feature list: {where} appears twice", path=self.path)
            seen.add(key)
            if "passes" in feature and not isinstance(feature["passes"], bool):
                raise UserError(
                    f'invalid feature list: {where}: "passes" must be true or false', path=self.path
                )
            if self.shape == "harness" and "passes" not in feature:
                raise UserError(f'invalid feature list: {where} has no "passes"', path=self.path)
            if "status" in feature and feature["status"] not in STATUSES:
                raise UserError(
                    f'invalid feature list: {where}: "status" must be one of {", ".join(STATUSES)}',
                    path=self.path,
                )
            if "steps" in feature and not isinstance(feature["steps"], list):
                raise UserError(f'invalid feature list: {where}: "steps" must be a list', path=self.path)
            if feature.get("reason") is not None and not isinstance(feature["reason"], str):
                raise UserError(f'invalid feature list: {where}: "reason" must be text', path=self.path)

    def key(self, feature: dict) -> str:
        """How a feature is named: its "id", else its "name", else its "description"."""
        for field in ("id", "name", "description"):
            value = feature.get(field)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
                return str(value)
        raise ValueError("feature has no id, name or description")

    def _find(self, key: str) -> dict:
        for feature in self.features:
            if self.key(feature) == key:
                return feature
        raise KeyError(key)

    def status(self, key: str) -> str:
        feature = self._find(key)
        if "status" in feature:
            return feature["status"]
        if self.shape == "harness":
            return "done" if feature.get("passes") else "pending"
        return "pending"

    def set_status(self, key: str, status: str, reason: str | None = None) -> None:
        """Record a feature's status (and why, for anything but done).

        In the harness shape "passes" becomes `status == "done"`; a "status" field is written only
        where "passes" cannot say it (in-progress, partial, blocked) or where the file had one to
        begin with. A reason replaces the old one; no reason removes a stale one.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown feature status {status!r}; expected one of {', '.join(STATUSES)}")
        feature = self._find(key)
        if self.shape == "harness":
            feature["passes"] = status == "done"
            if id(feature) in self._native_status or status not in ("done", "pending"):
                feature["status"] = status
            else:
                feature.pop("status", None)
        else:
            feature["status"] = status
        if reason:
            feature["reason"] = reason
        else:
            feature.pop("reason", None)

    def dumps(self) -> str:
        return self._source.dumps(self._data)

    def write(self, path: str | Path) -> None:
        self._validate()  # the live dicts may have been edited since parsing
        atomic_write(path, self.dumps())


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    result: dict = {}
    for k, v in pairs:
        if k in result:
            raise _DuplicateKey(k)
        result[k] = v
    return result


def _style(text: str) -> dict[str, Any]:
    """How the file is laid out, so that new values look like the old ones."""
    indent: str | int | None = None
    m = re.search(r"[\[{][ \t]*\r?\n([ \t]+)\S", text)
    if m:
        unit = m.group(1)
        indent = "\t" * len(unit) if "\t" in unit else len(unit)
    compact = re.search(r'"\s*:\s', text) is None and re.search(r'"\s*:', text) is not None
    return {
        "indent": indent,
        "compact": compact,
        # Keep non-ASCII characters as they are, unless the file spelled them as \u escapes.
        "ensure_ascii": bool(re.search(r"\\u[0-9a-fA-F]{4}", text)) and not re.search(r"[^\x00-\x7f]", text),
        "newline": "\r\n" if "\r\n" in text else "\r" if "\r" in text else "\n",
    }


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_INDENT = re.compile(r"[ \t]*")
# Every JSON value that is not a string or a container, as json.loads accepts them.
_SCALAR = re.compile(r"-?Infinity|NaN|true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass
class _Node:
    """Where one parsed value stands: text[start:end]."""

    start: int
    end: int
    # As parsed: a scalar to tell a changed value from an unchanged one, a container to know it by.
    value: Any = None
    members: list[_Member] | None = None  # objects
    items: list[_Node] | None = None  # arrays


@dataclass
class _Member:
    key: str
    start: int  # the key's opening quote
    key_end: int  # just after the key's closing quote
    node: _Node


def _skip(text: str, pos: int) -> int:
    return _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]  # it matches the empty string


def _after(text: str, end: int) -> int:
    """Where the next entry, or the closing bracket, starts after an entry that ends at `end`."""
    pos = _skip(text, end)
    return _skip(text, pos + 1) if text[pos] == "," else pos


def _locate(text: str, start: int, value: Any) -> _Node:
    """Where `value`, which json parsed from `text` at `start`, and its parts stand.

    The text is known to be valid JSON, so this only has to find where things end.
    """
    if isinstance(value, dict):
        members = []
        pos = _skip(text, start + 1)
        for key, item in value.items():
            key_end = scanstring(text, pos + 1)[1]
            node = _locate(text, _skip(text, _skip(text, key_end) + 1), item)
            members.append(_Member(key, pos, key_end, node))
            pos = _after(text, node.end)
        return _Node(start, pos + 1, value, members=members)
    if isinstance(value, list):
        items = []
        pos = _skip(text, start + 1)
        for item in value:
            items.append(_locate(text, pos, item))
            pos = _after(text, items[-1].end)
        return _Node(start, pos + 1, value, items=items)
    if isinstance(value, str):
        return _Node(start, scanstring(text, start + 1)[1], value)
    return _Node(start, _SCALAR.match(text, start).end(), value)  # type: ignore[union-attr]


class _Source:
    """The text a feature list was parsed from, and where each of its values stands in it.

    Writing compares the live data with what was parsed and rewrites only the values that differ,
    the way ticking a box in tasks.md changes one character.
    """

    def __init__(self, text: str, data: Any, bom: bool) -> None:
        self.text = text
        self.bom = bom
        self.style = _style(text)
        self.root = _locate(text, _skip(text, 0), data)

    def dumps(self, data: Any) -> str:
        text, root = self.text, self.root
        body = self._emit(root, data, inline=True)
        return ("\ufeff" if self.bom else "") + text[: root.start] + body + text[root.end :]

    def _emit(self, node: _Node, new: Any, inline: bool) -> str:
        """The text for `new` where `node` was parsed: the old text wherever nothing changed.

        `inline` says whether the container around `node` is on one line.
        """
        unchanged = self.text[node.start : node.end]
        if node.members is not None and isinstance(new, dict):
            if node.members:
                return self._emit_object(node, node.members, new)
            if not new:
                return unchanged
        elif node.items is not None and isinstance(new, list):
            if node.items:
                return self._emit_array(node, node.items, new)
            if not new:
                return unchanged
        elif node.members is None and node.items is None:
            if type(new) is type(node.value) and new == node.value:
                return unchanged
            return self._render(new, node.start, inline)
        # An empty container that got entries, or a container replaced by something else, is
        # written anew, on one line or on several as the container was.
        return self._render(new, node.start, self._inline(node))

    def _emit_object(self, node: _Node, members: list[_Member], new: dict) -> str:
        inline = self._inline(node)
        where = {m.key: n for n, m in enumerate(members)}
        last = members[-1]
        key_separator = self.text[last.key_end : last.node.start]
        parts: list[tuple[int | None, str]] = []
        previous = -1
        for key, value in new.items():
            n = where.get(key)
            if n is None:
                key_text = json.dumps(key, ensure_ascii=self.style["ensure_ascii"])
                parts.append((None, key_text + key_separator + self._render(value, last.start, inline)))
                continue
            m = members[n]
            text = self.text[m.start : m.node.start] + self._emit(m.node, value, inline)
            if n > previous:
                parts.append((n, text))
                previous = n
            else:
                # Deleted and added again, so the dict has it further down: it goes there, as a
                # new key would, keeping its own text.
                parts.append((None, text))
        return self._join(node, [(m.start, m.node.end) for m in members], parts)

    def _emit_array(self, node: _Node, items: list[_Node], new: list) -> str:
        inline = self._inline(node)
        parts: list[tuple[int | None, str]] = []
        # Old and new items are lined up by identity, so that an item taken out or put in leaves
        # the others where they are; within a run of replaced items they pair up in order.
        old_ids = [id(item.value) for item in items]
        matcher = SequenceMatcher(None, old_ids, [id(value) for value in new], autojunk=False)
        for _, i1, i2, j1, j2 in matcher.get_opcodes():
            for n, value in enumerate(new[j1:j2], start=i1):
                if n < i2:
                    parts.append((n, self._emit(items[n], value, inline)))
                else:  # a new item looks like the last old one: on one line if that is
                    parts.append((None, self._render(value, items[-1].start, self._inline(items[-1]))))
        return self._join(node, [(item.start, item.end) for item in items], parts)

    def _join(self, node: _Node, spans: list[tuple[int, int]], parts: list[tuple[int | None, str]]) -> str:
        """A container's new text, from its old entries at `spans` and its new ones, `parts`.

        Each part is (the index of the old entry it stands for, or None where it is new here, its
        text). What stood before the first entry, after the last one and between two old neighbours
        stays. A new entry is separated as the last two old ones were; after a lone old entry, on a
        line of its own where that entry has one, else after ", " (or "," in a compact file).
        """
        text = self.text
        opening, closing = text[node.start], text[node.end - 1]
        if not parts:
            return opening + closing
        gaps = [text[end : spans[n + 1][0]] for n, (_, end) in enumerate(spans[:-1])]
        lead = text[node.start + 1 : spans[0][0]]
        line_break = re.search(r"[\r\n]", lead)
        if gaps:
            gap = gaps[-1]
        elif line_break:
            gap = "," + lead[line_break.start() :]
        else:
            gap = "," if self.style["compact"] else ", "
        out = [opening, lead]
        previous: int | None = None
        for n, (old, part) in enumerate(parts):
            if n:
                out.append(gaps[previous] if previous is not None and previous < len(gaps) else gap)
            out.append(part)
            previous = old
        out += [text[spans[-1][1] : node.end - 1], closing]
        return "".join(out)

    def _render(self, value: Any, at: int, inline: bool) -> str:
        """`value` as new text: on one line in a one-line place, else indented as the file is,
        relative to the line `at` is on."""
        style = self.style
        key_separator = ":" if style["compact"] else ": "
        if inline or style["indent"] is None:
            separators = (",", key_separator) if style["compact"] else (", ", key_separator)
            return json.dumps(value, separators=separators, ensure_ascii=style["ensure_ascii"])
        text = json.dumps(
            value, indent=style["indent"], separators=(",", key_separator), ensure_ascii=style["ensure_ascii"]
        )
        line = max(self.text.rfind("\n", 0, at), self.text.rfind("\r", 0, at)) + 1
        indent = _INDENT.match(self.text, line).group()  # type: ignore[union-attr]  # it matches ""
        return text.replace("\n", style["newline"] + indent)

    def _inline(self, node: _Node) -> bool:
        return re.search(r"[\r\n]", self.text[node.start : node.end]) is None
