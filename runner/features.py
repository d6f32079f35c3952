"""features.json: the feature list a phase reports on.

Two shapes are in use and both are kept as they are:

- status: `{"features": [{"id", "name"|"description", "status", "reason"?}]}` with a status of
  pending, in-progress, done, partial or blocked;
- harness (Anthropic's long-running agent harness): `[{"category", "description", "steps",
  "passes": bool}]`, also wrapped as `{"features": [...]}` and often with an "id".

Updates keep unknown fields, key order, the file's indentation and its final newline. A file
that does not parse or validate is reported (file:line:column for JSON syntax) and never written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from runner.errors import UserError
from runner.fsutil import atomic_write

STATUSES = ("pending", "in-progress", "done", "partial", "blocked")


class FeatureList:
    def __init__(
        self,
        data: Any,
        features: list[dict],
        shape: Literal["status", "harness"],
        style: dict[str, Any],
        path: Path | None,
    ) -> None:
        self._data = data
        self.features = features
        self.shape = shape
        self._style = style
        self.path = path
        # Harness files that carry a "status" of their own keep it; ours comes and goes.
        self._native_status = {id(f) for f in features if "status" in f}

    @classmethod
    def parse(cls, text: str, path: str | Path | None = None) -> FeatureList:
        path = Path(path) if path is not None else None
        if text.startswith("\ufeff"):
            text = text[1:]
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as e:
            raise UserError(f"invalid JSON: {e.msg}", path=path, line=e.lineno, column=e.colno) from None
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
        result = cls(data, features, "harness" if harness else "status", _style(text), path)
        result._validate()
        return result

    @classmethod
    def load(cls, path: str | Path) -> FeatureList:
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UserError("no such file", path=path) from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise UserError(f"not UTF-8 text (bad byte at offset {e.start})", path=path) from None
        return cls.parse(text, path)

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
        style = self._style
        text = json.dumps(
            self._data,
            indent=style["indent"],
            separators=style["separators"],
            ensure_ascii=style["ensure_ascii"],
        )
        if style["newline"] != "\n":
            text = text.replace("\n", style["newline"])
        return text + (style["newline"] if style["final_newline"] else "")

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
    """How the file is laid out, so a rewrite looks like the original."""
    indent: str | int | None = None
    m = re.search(r"[\[{][ \t]*\r?\n([ \t]+)\S", text)
    if m:
        unit = m.group(1)
        indent = "\t" * len(unit) if "\t" in unit else len(unit)
    compact = re.search(r'"\s*:\s', text) is None and re.search(r'"\s*:', text) is not None
    if indent is None:
        separators = (",", ":") if compact else (", ", ": ")
    else:
        separators = (",", ":") if compact else (",", ": ")
    return {
        "indent": indent,
        "separators": separators,
        # Keep non-ASCII characters as they are, unless the file spelled them as \u escapes.
        "ensure_ascii": bool(re.search(r"\\u[0-9a-fA-F]{4}", text)) and not re.search(r"[^\x00-\x7f]", text),
        "newline": "\r\n" if "\r\n" in text else "\n",
        "final_newline": text.endswith(("\n", "\r")),
    }
