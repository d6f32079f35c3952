from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import UserError
from runner.features import STATUSES, FeatureList

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "specs"
HARNESS_FILE = CORPUS / "AnEntrypoint__autoplaywriter__feature_list.json"

STATUS = """{
    "features": [
        {"id": "F1", "name": "Login", "status": "done", "owner": "ana"},
        {"id": "F2", "name": "Logout", "status": "blocked", "reason": "needs F1"},
        {"name": "Profile page"}
    ],
    "version": 3
}
"""

HARNESS = """[
  {
    "category": "functional",
    "description": "User can log in",
    "steps": ["open /login", "submit the form"],
    "passes": false
  },
  {
    "category": "style",
    "description": "Buttons are blue",
    "steps": [],
    "passes": true
  }
]
"""


def test_status_shape() -> None:
    fl = FeatureList.parse(STATUS)
    assert fl.shape == "status"
    assert [fl.key(f) for f in fl.features] == ["F1", "F2", "Profile page"]
    assert fl.status("F1") == "done" and fl.status("F2") == "blocked"
    assert fl.status("Profile page") == "pending"
    with pytest.raises(KeyError):
        fl.status("F9")


def test_status_update_keeps_order_unknown_fields_and_indentation() -> None:
    fl = FeatureList.parse(STATUS)
    fl.set_status("F2", "done")
    fl.set_status("Profile page", "partial", "only the avatar")
    out = fl.dumps()
    data = json.loads(out)
    assert data["version"] == 3 and list(data) == ["features", "version"]
    assert data["features"][0] == {"id": "F1", "name": "Login", "status": "done", "owner": "ana"}
    assert data["features"][1] == {"id": "F2", "name": "Logout", "status": "done"}  # stale reason gone
    assert data["features"][2] == {"name": "Profile page", "status": "partial", "reason": "only the avatar"}
    # Only what changed is rewritten: the one-line objects stay on their lines.
    assert out == STATUS.replace('"blocked", "reason": "needs F1"', '"done"').replace(
        '{"name": "Profile page"}',
        '{"name": "Profile page", "status": "partial", "reason": "only the avatar"}',
    )


def test_harness_shape() -> None:
    fl = FeatureList.parse(HARNESS)
    assert fl.shape == "harness"
    assert fl.status("User can log in") == "pending" and fl.status("Buttons are blue") == "done"
    fl.set_status("User can log in", "done")
    fl.set_status("Buttons are blue", "blocked", "the palette changed")
    data = json.loads(fl.dumps())
    assert data[0] == {
        "category": "functional",
        "description": "User can log in",
        "steps": ["open /login", "submit the form"],
        "passes": True,
    }
    assert data[1]["passes"] is False and data[1]["status"] == "blocked"
    assert data[1]["reason"] == "the palette changed"
    assert FeatureList.parse(fl.dumps()).status("Buttons are blue") == "blocked"
    # Back to a state "passes" can say: the extra fields go again.
    fl.set_status("Buttons are blue", "done")
    assert json.loads(fl.dumps())[1] == {
        "category": "style",
        "description": "Buttons are blue",
        "steps": [],
        "passes": True,
    }
    assert fl.dumps().startswith('[\n  {\n    "category"')


def test_wrapped_harness_shape_from_the_corpus(tmp_path: Path) -> None:
    if not HARNESS_FILE.is_file():
        pytest.skip("the shared corpus is not present")
    path = tmp_path / "feature_list.json"
    shutil.copy(HARNESS_FILE, path)
    fl = FeatureList.load(path)
    assert fl.shape == "harness" and len(fl.features) == 10
    assert [fl.key(f) for f in fl.features] == [f"feat-{n:03d}" for n in range(1, 11)]
    assert all(fl.status(fl.key(f)) == "done" for f in fl.features)
    # Writing it back unchanged reproduces the file byte for byte.
    fl.write(path)
    assert path.read_bytes() == HARNESS_FILE.read_bytes()
    fl.set_status("feat-003", "partial", "port 80 needs root")
    fl.write(path)
    changed = json.loads(path.read_text())
    assert changed["features"][2]["passes"] is False and changed["features"][2]["status"] == "partial"
    assert list(changed["features"][2])[:7] == [
        "id",
        "category",
        "description",
        "steps",
        "passes",
        "priority",
        "completed_at",
    ]


def test_tabs_and_crlf_are_kept() -> None:
    text = (
        '{\r\n\t"features": [\r\n\t\t{\r\n\t\t\t"id": "A",\r\n\t\t\t"status": "pending"\r\n\t\t}\r\n\t]\r\n}'
    )
    fl = FeatureList.parse(text)
    assert fl.dumps() == text
    fl.set_status("A", "in-progress")
    assert fl.dumps() == text.replace("pending", "in-progress")


def test_compact_and_non_ascii() -> None:
    text = '{"features":[{"id":"Ü1","description":"Grüße","status":"pending"}]}'
    assert FeatureList.parse(text).dumps() == text
    escaped = '{"features": [{"id": "a", "description": "Gr\\u00fc\\u00dfe"}]}\n'
    assert FeatureList.parse(escaped).dumps() == escaped


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"features": [', "invalid JSON"),
        ('{"items": []}', 'expected {"features": [...]}'),
        ('{"features": [1]}', "feature 1 is not an object"),
        ('{"features": [{"status": "done"}]}', 'feature 1 has no "id", "name" or "description"'),
        ('{"features": [{"id": "A", "status": "finished"}]}', "feature 1 ('A'): \"status\" must be one of"),
        ('[{"description": "x", "passes": "yes"}]', '"passes" must be true or false'),
        ('[{"description": "x"}]', "feature 1 ('x') has no \"passes\""),
        ('{"features": [{"id": "A"}, {"id": "A"}]}', "feature 2 ('A') appears twice"),
        ('{"features": [{"id": "A", "id": "B"}]}', "key 'id' appears twice"),
    ],
)
def test_invalid_files_are_user_errors(text: str, message: str) -> None:
    with pytest.raises(UserError) as e:
        FeatureList.parse(text, "spec/features.json")
    assert message in str(e.value) and str(e.value).startswith("spec/features.json")


def test_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "features.json"
    path.write_text('{\n  "features": [\n    {"id": "A",}\n  ]\n}\n')
    with pytest.raises(UserError) as e:
        FeatureList.load(path)
    assert str(e.value).startswith(f"{path}:3:16: invalid JSON")
    assert (e.value.line, e.value.column) == (3, 16)


def test_invalid_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "features.json"
    broken = '{"features": [{"id": "A", "status": "pending"},]}'
    path.write_text(broken)
    with pytest.raises(UserError):
        FeatureList.load(path).write(path)
    assert path.read_text() == broken


def test_edited_into_an_invalid_list_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "features.json"
    path.write_text(STATUS)
    fl = FeatureList.load(path)
    fl.features[0]["status"] = "finished"
    with pytest.raises(UserError):
        fl.write(path)
    assert path.read_text() == STATUS


def test_unknown_status_is_refused() -> None:
    fl = FeatureList.parse(STATUS)
    with pytest.raises(ValueError, match="unknown feature status"):
        fl.set_status("F1", "finished")
    assert fl.status("F1") == "done"


def test_write_is_atomic_and_creates_folders(tmp_path: Path) -> None:
    fl = FeatureList.parse(STATUS)
    target = tmp_path / "artifacts" / "spec-design" / "features.json"
    fl.write(target)
    assert target.read_text() == STATUS
    assert sorted(p.name for p in target.parent.iterdir()) == ["features.json"]


def test_missing_file() -> None:
    with pytest.raises(UserError, match="no such file"):
        FeatureList.load("/nonexistent/features.json")


def test_an_update_changes_only_the_values_it_changes() -> None:
    text = (
        "[\n"
        '  {"category": "core", "description": "Login works", "steps": ["open", "type"], "passes": false},\n'
        '  {"category": "core", "description": "Logout", "steps": [], "passes": true, "score": 1.50},\n'
        '  {"id" : "a", "description": "Limits", "steps": ["x"], "passes": false, "n": 1e3}\n'
        "]\n"
    )
    fl = FeatureList.parse(text)
    fl.set_status("Login works", "done")
    ticked = text.replace('"type"], "passes": false', '"type"], "passes": true')
    assert fl.dumps() == ticked
    # New keys go on the object's own line, spaced as its other keys are.
    fl.set_status("a", "blocked", "no API yet")
    assert fl.dumps() == ticked.replace("1e3}", '1e3, "status": "blocked", "reason": "no API yet"}')
    fl.set_status("a", "pending")
    assert fl.dumps() == ticked


def test_bom_crlf_tabs_and_multi_line_objects_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "features.json"
    raw = '\ufeff{\r\n\t"features": [\r\n\t\t{\r\n\t\t\t"id": "A",\r\n\t\t\t"status": "pending"\r\n\t\t}\r\n\t]\r\n}'
    path.write_bytes(raw.encode())
    fl = FeatureList.load(path)
    fl.set_status("A", "blocked", "waits for B")
    fl.write(path)
    new = raw.replace('"pending"', '"blocked",\r\n\t\t\t"reason": "waits for B"')
    assert path.read_bytes() == new.encode()


def test_a_key_added_again_goes_last_with_its_own_text() -> None:
    text = '{"features": [{"id": "A", "status": "blocked", "reason": "why", "owner": "ana"}]}'
    fl = FeatureList.parse(text)
    fl.set_status("A", "done")
    fl.set_status("A", "blocked", "why")
    assert fl.dumps() == text.replace('"reason": "why", "owner": "ana"', '"owner": "ana", "reason": "why"')


def test_a_key_taken_out_takes_one_separator_with_it() -> None:
    text = '{"features": [\n  {"id": "A", "status": "blocked",\n   "reason": "why", "owner": "ana"}\n]}\n'
    fl = FeatureList.parse(text)
    fl.set_status("A", "done")
    assert fl.dumps() == text.replace('"blocked",\n   "reason": "why", ', '"done",\n   ')


def test_an_equal_value_of_another_type_is_a_change() -> None:
    fl = FeatureList.parse('{"features": [{"id": "A", "n": 1, "m": 1.0}]}')
    fl.features[0].update(n=True, m=1)
    assert fl.dumps() == '{"features": [{"id": "A", "n": true, "m": 1}]}'


def test_features_taken_out_and_put_in_leave_the_others_alone() -> None:
    fl = FeatureList.parse(STATUS)
    fl.features.pop(1)
    fl.features.insert(0, {"id": "F0", "status": "pending"})
    fl.features[-1]["steps"] = ["one", "two"]
    assert fl.dumps() == STATUS.replace(
        '        {"id": "F2", "name": "Logout", "status": "blocked", "reason": "needs F1"},\n', ""
    ).replace('{"name": "Profile page"}', '{"name": "Profile page", "steps": ["one", "two"]}').replace(
        '"features": [\n', '"features": [\n        {"id": "F0", "status": "pending"},\n'
    )
    # In a multi-line object, a new list is laid out with the file's indentation.
    fl = FeatureList.parse(HARNESS)
    fl.features[1]["tasks"] = ["1.1"]
    assert fl.dumps() == HARNESS.replace(
        '"passes": true\n', '"passes": true,\n    "tasks": [\n      "1.1"\n    ]\n'
    )


# Generated feature files: the test lays them out itself, so it can lay out the expected result too.

NAMES = ['"Login works"', '"Gr\\u00fc\\u00dfe"', '"Grüße"', '"a\\/b"', '"tab\\there"']
NUMBERS = ["1.50", "1e3", "-0", "10", "2.5E-3", "null", "true"]
STEPS = ['["open", "type"]', "[]", '[ "a" ,"b" ]', '["x"]']
REASONS = [None, "why", 'needs "F1"']


@dataclass
class Layout:
    newline: str  # "" for a file on one line
    unit: str  # one level of indentation
    key_separator: str
    item_separator: str
    pad: str  # inside the braces of a one-line object
    wrapped: bool
    bom: bool
    end: str  # after the closing bracket

    def object(self, members: list[tuple[str, str]], inline: bool, depth: int) -> str:
        pairs = [json.dumps(key) + self.key_separator + value for key, value in members]
        if inline or not self.newline:
            return "{" + self.pad + self.item_separator.join(pairs) + self.pad + "}"
        inner = self.newline + self.unit * (depth + 1)
        return "{" + inner + ("," + inner).join(pairs) + self.newline + self.unit * depth + "}"

    def document(self, features: list[list[tuple[str, str]]], inline: list[bool]) -> str:
        depth = 1 if self.wrapped else 0
        items = [self.object(f, i, depth + 1) for f, i in zip(features, inline, strict=True)]
        if self.newline:
            inner = self.newline + self.unit * (depth + 1)
            array = "[" + inner + ("," + inner).join(items) + self.newline + self.unit * depth + "]"
        else:
            array = "[" + self.item_separator.join(items) + "]"
        body = self.object([("features", array), ("version", "3")], False, 0) if self.wrapped else array
        return ("\ufeff" if self.bom else "") + body + self.end


@dataclass
class Generated:
    layout: Layout
    features: list[list[tuple[str, str]]]  # each feature's members: key and value text
    inline: list[bool]  # which features are on one line

    @property
    def text(self) -> str:
        return self.layout.document(self.features, self.inline)


@st.composite
def feature_files(draw: st.DrawFn) -> Generated:
    """A features.json in either shape, laid out in one of many ways."""
    harness = draw(st.booleans())
    key_separator = draw(st.sampled_from([": ", ":", " : "]))
    one_line = draw(st.booleans())
    layout = Layout(
        newline="" if one_line else draw(st.sampled_from(["\n", "\r\n"])),
        unit=draw(st.sampled_from(["  ", "    ", "\t"])),
        key_separator=key_separator,
        # A file spaces its commas as it spaces its colons.
        item_separator="," if key_separator == ":" else ", ",
        pad=draw(st.sampled_from(["", " "])),
        wrapped=not harness or draw(st.booleans()),  # a bare list is the harness shape
        bom=draw(st.booleans()),
        end=draw(st.sampled_from(["", "\n", "\n\n"])),
    )
    features = []
    for n in range(draw(st.integers(1, 5))):
        name = draw(st.sampled_from(NAMES))[:-1] + f' {n}"'
        members = [("id", f'"F{n}"')] if draw(st.booleans()) else []
        if harness:
            steps, passes = draw(st.sampled_from(STEPS)), draw(st.sampled_from(["true", "false"]))
            members += [("category", '"core"'), ("description", name), ("steps", steps), ("passes", passes)]
        elif not members or draw(st.booleans()):
            members.append((draw(st.sampled_from(["name", "description"])), name))
        status = draw(st.sampled_from([None, *STATUSES]))
        if status:
            members.append(("status", json.dumps(status)))
            reason = draw(st.sampled_from(REASONS))
            if reason:
                members.append(("reason", json.dumps(reason)))
        if draw(st.booleans()):
            members.append(("score", draw(st.sampled_from(NUMBERS))))
        if draw(st.booleans()):
            members.append(("owner", '"ana"'))
        features.append(draw(st.permutations(members)))
    inline = draw(st.lists(st.booleans(), min_size=len(features), max_size=len(features)))
    return Generated(layout, features, inline)


def _set_status(
    members: list[list[Any]], harness: bool, native: bool, status: str, reason: str | None
) -> None:
    """What set_status does to a feature, on [key, value] pairs."""

    def put(key: str, value: Any) -> None:
        for member in members:
            if member[0] == key:
                member[1] = value
                return
        members.append([key, value])

    def drop(key: str) -> None:
        members[:] = [m for m in members if m[0] != key]

    if harness:
        put("passes", status == "done")
        if native or status not in ("done", "pending"):
            put("status", status)
        else:
            drop("status")
    else:
        put("status", status)
    if reason:
        put("reason", reason)
    else:
        drop("reason")


@settings(max_examples=400, deadline=None)
@given(doc=feature_files(), data=st.data())
def test_property_an_update_rewrites_only_what_it_changes(doc: Generated, data: st.DataObject) -> None:
    """(a) The result holds the updated features, keys in order; (b) it is the old text with the
    changed values respelled, a dropped key taken out and a new key added after the object's last
    one, spelled as its neighbours are. Everything else (numbers, escapes, layout) is the old text."""
    old = doc.text
    fl = FeatureList.parse(old)
    keys = [fl.key(f) for f in fl.features]
    harness = fl.shape == "harness"
    before = [[[key, json.loads(text)] for key, text in feature] for feature in doc.features]
    after = [[list(m) for m in feature] for feature in before]
    updates = st.tuples(st.integers(0, len(keys) - 1), st.sampled_from(STATUSES), st.sampled_from(REASONS))
    for n, status, reason in data.draw(st.lists(updates, min_size=1, max_size=4)):
        fl.set_status(keys[n], status, reason)
        native = any(key == "status" for key, _ in doc.features[n])
        _set_status(after[n], harness, native, status, reason)
    out = fl.dumps()

    as_pairs = json.loads(out.lstrip("\ufeff"), object_pairs_hook=list)
    features = as_pairs[0][1] if doc.layout.wrapped else as_pairs
    assert features == [[tuple(m) for m in feature] for feature in after]

    def spelled(n: int, key: str, value: Any) -> str:
        old_text = dict(doc.features[n]).get(key)
        same = any(k == key and type(v) is type(value) and v == value for k, v in before[n])
        return old_text if old_text is not None and same else json.dumps(value)

    expected = [[(key, spelled(n, key, value)) for key, value in feature] for n, feature in enumerate(after)]
    assert out == doc.layout.document(expected, doc.inline)


@settings(max_examples=200, deadline=None)
@given(doc=feature_files(), data=st.data())
def test_property_features_taken_out_and_put_in(doc: Generated, data: st.DataObject) -> None:
    """Features removed from and added to the live list: the result holds the new list, and every
    feature nobody touched is still there, spelled as it was, in order."""
    fl = FeatureList.parse(doc.text)
    depth = 2 if doc.layout.wrapped else 1
    originals = [doc.layout.object(f, i, depth) for f, i in zip(doc.features, doc.inline, strict=True)]
    kept = data.draw(st.lists(st.booleans(), min_size=len(originals), max_size=len(originals)))
    fl.features[:] = [f for f, keep in zip(fl.features, kept, strict=True) if keep]
    for n in range(data.draw(st.integers(0 if any(kept) else 1, 2))):
        at = data.draw(st.integers(0, len(fl.features)))
        fl.features.insert(at, {"id": f"new-{n}", "status": "pending"})
    out = fl.dumps()

    result = json.loads(out.lstrip("\ufeff"))
    assert json.dumps(result["features"] if doc.layout.wrapped else result) == json.dumps(fl.features)
    pos = 0
    for text in (text for text, keep in zip(originals, kept, strict=True) if keep):
        pos = out.find(text, pos)
        assert pos >= 0, f"{text!r} is not in {out!r} where it should be"
        pos += len(text)
