from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from runner.cli import main

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is not present (fresh clone)")


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n") if "\n" in text else text, encoding="utf-8")


def age(root: Path, seconds: float = 10.0) -> None:
    """Make every file look older than runner's racy-stat window, as files are in real projects."""
    past = os.stat(root).st_mtime - seconds
    for dirpath, _, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(dirpath, name), (past, past))


def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in-process (fast) against the project at `root`."""
    return CliRunner().invoke(main, ["-C", str(root), *args], env=env, catch_exceptions=False)


def cli_process(root: Path, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Run the CLI as a real process (for locks, signals and kills)."""
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **kwargs}
    return subprocess.Popen([sys.executable, "-m", "runner", "-C", str(root), *args], **options)


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Path]:
    """Build a project: `project(workflow_yaml, {"specs/a/spec.md": "..."})`."""

    def make(workflow: str | None = None, files: dict[str, str] | None = None) -> Path:
        root = tmp_path / "proj"
        root.mkdir(exist_ok=True)
        if workflow is not None:
            write(root, {"workflows/w.yaml": workflow})
        write(root, files or {})
        return root

    return make
