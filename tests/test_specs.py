"""Spec discovery across Agent OS, Spec Kit, Kiro and custom roots."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import UserError
from runner.specs import discover_specs, select_specs
from tests.conftest import write

DEFAULT_ROOTS = ("agent-os/specs/*", "specs/*", ".kiro/specs/*")


def test_all_three_layouts_are_found_with_their_layout(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "agent-os/specs/2025-01-02-auth/spec.md": "auth",
            "agent-os/specs/2025-01-02-auth/planning/requirements.md": "r",
            "specs/001-photos/spec.md": "photos",
            "specs/001-photos/plan.md": "plan",
            ".kiro/specs/game-rules/requirements.md": "req",
            ".kiro/specs/game-rules/tasks.md": "- [ ] 1. x",
        },
    )
    specs = discover_specs(tmp_path, DEFAULT_ROOTS)
    assert [(s.name, s.path) for s in specs] == [
        ("2025-01-02-auth", "agent-os/specs/2025-01-02-auth"),
        ("001-photos", "specs/001-photos"),
        ("game-rules", ".kiro/specs/game-rules"),
    ]


def test_folders_without_spec_documents_and_hidden_folders_are_not_specs(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "specs/real/tasks.md": "- [ ] T001 x",
            "specs/fixtures/data.csv": "1,2",
            "specs/.cache/spec.md": "x",
            "specs/README.md": "not a folder",
        },
    )
    assert [s.name for s in discover_specs(tmp_path, DEFAULT_ROOTS)] == ["real"]


def test_custom_roots_with_globs(tmp_path: Path) -> None:
    write(tmp_path, {"docs/features/a/spec.md": "a", "docs/features/nested/b/spec.md": "b"})
    specs = discover_specs(tmp_path, ("docs/features/**/*",))
    assert {s.path for s in specs} == {"docs/features/a", "docs/features/nested/b"}


def test_two_specs_with_one_name_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path, {"agent-os/specs/auth/spec.md": "a", "specs/auth/spec.md": "b"})
    with pytest.raises(UserError, match="two specs are named 'auth'"):
        discover_specs(tmp_path, DEFAULT_ROOTS)


def test_select_by_name_or_path_and_unknown_names_fail(tmp_path: Path) -> None:
    write(tmp_path, {"specs/a/spec.md": "a", "specs/b/spec.md": "b"})
    specs = discover_specs(tmp_path, DEFAULT_ROOTS)
    assert [s.name for s in select_specs(specs, ["specs/b/", "a"])] == ["b", "a"]
    with pytest.raises(UserError, match="no spec named 'c'"):
        select_specs(specs, ["c"])
