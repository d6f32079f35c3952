from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runner.errors import UserError
from runner.features import FeatureList

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
    assert out.startswith('{\n    "features": [\n        {\n            "id": "F1",')
    assert out.endswith("}\n")


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
    assert json.loads(target.read_text()) == json.loads(STATUS)
    assert target.read_text().startswith('{\n    "features": [\n        {\n')
    assert sorted(p.name for p in target.parent.iterdir()) == ["features.json"]


def test_missing_file() -> None:
    with pytest.raises(UserError, match="no such file"):
        FeatureList.load("/nonexistent/features.json")
