from __future__ import annotations

from pathlib import Path

import pytest

from runner.agents.sandbox import Sandbox, SandboxError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "tasks").mkdir(parents=True)
    (root / "tasks" / "backend_tasks.md").write_text("- [ ] 1. thing\n")
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("print('hi')\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / ".runner").mkdir()
    (root / ".runner" / "state.db").write_text("")
    return root.resolve()


def refused(sandbox: Sandbox, path: str, *, write: bool = False) -> str:
    with pytest.raises(SandboxError) as info:
        sandbox.resolve(path, write=write)
    return str(info.value)


def test_relative_and_absolute_inside(root: Path) -> None:
    sb = Sandbox(root)
    assert sb.root == root
    assert sb.resolve("src/app.py") == root / "src" / "app.py"
    assert sb.resolve("./src/../src/app.py") == root / "src" / "app.py"
    assert sb.resolve(str(root / "src" / "app.py")) == root / "src" / "app.py"
    assert sb.resolve("  src/app.py  ") == root / "src" / "app.py"
    assert sb.resolve("new/file.txt", write=True) == root / "new" / "file.txt"
    assert sb.resolve(".") == root


def test_dotdot_escapes(root: Path) -> None:
    sb = Sandbox(root)
    assert "outside the project root" in refused(sb, "../secret.txt")
    assert "outside the project root" in refused(sb, "src/../../secret.txt")
    assert "outside the project root" in refused(sb, "newdir/../../x", write=True)


def test_absolute_outside_says_relative(root: Path) -> None:
    sb = Sandbox(root)
    message = refused(sb, "/etc/passwd")
    assert "relative to the project root" in message
    assert "Did you mean" not in message


def test_seed_absolute_task_path_gets_a_suggestion(root: Path) -> None:
    # Seed 002 says: Execute tasks from `/tasks/backend_tasks.md`.
    message = refused(Sandbox(root), "/tasks/backend_tasks.md")
    assert "relative to the project root" in message
    assert "did you mean `tasks/backend_tasks.md`?" in message.lower()


def test_suggestion_uses_longest_existing_tail(root: Path) -> None:
    sb = Sandbox(root)
    assert "`src/app.py`" in refused(sb, "/home/someone/proj/src/app.py")
    # For a file about to be written, an existing folder is enough.
    assert "`tasks/frontend_tasks.md`" in refused(sb, "/tasks/frontend_tasks.md", write=True)
    assert "Did you mean" not in refused(sb, "/nowhere/at/all.txt", write=True)


def test_suggestion_never_points_into_git(root: Path) -> None:
    assert "Did you mean" not in refused(Sandbox(root), "/elsewhere/.git/config")


def test_windows_paths(root: Path) -> None:
    sb = Sandbox(root)
    message = refused(sb, "/C:/Users/me/project/tasks/backend_tasks.md")
    assert "Windows-style" in message
    assert "`tasks/backend_tasks.md`" in message
    message = refused(sb, "C:\\Users\\me\\project\\src\\app.py")
    assert "Windows-style" in message
    assert "`src/app.py`" in message
    assert "Windows-style" in refused(sb, "D:/somewhere/else.txt")


def test_symlinked_file_out_of_root(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    (root / "link.txt").symlink_to(secret)
    sb = Sandbox(root)
    assert "symbolic link" in refused(sb, "link.txt")
    assert "symbolic link" in refused(sb, "link.txt", write=True)


def test_symlinked_dir_out_of_root(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.txt").write_text("x")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    sb = Sandbox(root)
    assert "symbolic link" in refused(sb, "linkdir/data.txt")
    assert "symbolic link" in refused(sb, "linkdir/new.txt", write=True)
    assert "symbolic link" in refused(sb, "linkdir/a/b/c.txt", write=True)


def test_dangling_symlink_out_of_root(root: Path, tmp_path: Path) -> None:
    (root / "dangling").symlink_to(tmp_path / "does-not-exist.txt")
    assert "symbolic link" in refused(Sandbox(root), "dangling", write=True)


def test_symlink_inside_root_resolves_to_target(root: Path) -> None:
    (root / "alias.py").symlink_to(root / "src" / "app.py")
    assert Sandbox(root).resolve("alias.py") == root / "src" / "app.py"


def test_git_and_runner_are_off_limits(root: Path) -> None:
    sb = Sandbox(root)
    assert ".git/" in refused(sb, ".git/config")
    assert ".git/" in refused(sb, ".git")
    assert ".git/" in refused(sb, ".GIT/config")
    assert ".git/" in refused(sb, str(root / ".git" / "config"))
    assert ".git/" in refused(sb, "src/../.git/config")
    assert ".git/" in refused(sb, "vendor/lib/.git/HEAD", write=True)
    assert ".runner/" in refused(sb, ".runner/state.db")
    assert ".runner/" in refused(sb, ".runner/new", write=True)
    (root / "gitlink").symlink_to(root / ".git", target_is_directory=True)
    assert ".git/" in refused(sb, "gitlink/config")


def test_lookalikes_are_allowed(root: Path) -> None:
    sb = Sandbox(root)
    assert sb.resolve(".gitignore", write=True) == root / ".gitignore"
    assert sb.resolve(".github/workflows/ci.yml", write=True) == root / ".github/workflows/ci.yml"
    assert sb.resolve("docs/.runner-notes.md", write=True) == root / "docs/.runner-notes.md"


def test_bad_input(root: Path) -> None:
    sb = Sandbox(root)
    assert "empty" in refused(sb, "")
    assert "empty" in refused(sb, "   ")
    assert "NUL" in refused(sb, "a\x00b")
    assert "~" in refused(sb, "~/.ssh/id_rsa")
    assert "string" in refused(sb, 42)  # type: ignore[arg-type]


def test_write_needs_a_file_path(root: Path) -> None:
    sb = Sandbox(root)
    assert "folder" in refused(sb, "src", write=True)
    assert "folder" in refused(sb, ".", write=True)
    assert "is a file" in refused(sb, "src/app.py/inner.txt", write=True)
    # Reading such a path is not refused by the sandbox; the tool reports it missing.
    assert sb.resolve("src/app.py/inner.txt") == root / "src" / "app.py" / "inner.txt"


def test_rel(root: Path) -> None:
    sb = Sandbox(root)
    assert sb.rel(root) == "."
    assert sb.rel(root / "src" / "app.py") == "src/app.py"
    assert sb.rel("src/app.py") == "src/app.py"
    assert sb.rel("/elsewhere/x") == "/elsewhere/x"


def test_root_reached_through_a_symlink(root: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)
    sb = Sandbox(alias)
    assert sb.root == root
    assert sb.resolve(str(alias / "src" / "app.py")) == root / "src" / "app.py"
    assert sb.rel(str(alias / "src" / "app.py")) == "src/app.py"


def test_root_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Sandbox(tmp_path / "missing")


def test_file_url(root: Path) -> None:
    assert Sandbox(root).resolve(f"file://{root}/src/app.py") == root / "src" / "app.py"


def test_error_messages_never_leak_the_target_of_relative_escapes(root: Path) -> None:
    # The message for `..` names the path given, not a resolved location outside the project.
    message = refused(Sandbox(root), "../../../../etc/shadow")
    assert "/etc/shadow" not in message.replace("../../../../etc/shadow", "")
