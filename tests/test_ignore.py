from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.ignore import IgnoreRules


def make(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def walked(rules: IgnoreRules, start: Path | None = None) -> list[str]:
    return [p.relative_to(rules.root).as_posix() for p in rules.walk(start or rules.root)]


def test_root_gitignore_patterns(tmp_path: Path) -> None:
    make(tmp_path, {".gitignore": "*.log\nbuild/\n/root_only\n!keep.log\n"})
    rules = IgnoreRules(tmp_path)
    assert rules.matches("a.log")
    assert rules.matches("deep/down/a.log")
    assert not rules.matches("keep.log")
    assert rules.matches("build", is_dir=True)
    assert rules.matches("src/build", is_dir=True)
    assert rules.matches("build/out.o")
    assert not rules.matches("build")  # a *file* named build is not matched by `build/`
    assert rules.matches("root_only")
    assert not rules.matches("sub/root_only")
    assert not rules.matches("src/main.py")


def test_git_and_runner_always_ignored(tmp_path: Path) -> None:
    rules = IgnoreRules(tmp_path)
    assert rules.matches(".git", is_dir=True)
    assert rules.matches(".git/config")
    assert rules.matches("vendor/lib/.git/HEAD")
    assert rules.matches(".runner/state.db")
    assert not rules.matches(".github/workflows/ci.yml")
    assert not rules.matches(".gitignore")


def test_nested_gitignore_overrides_parent(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            ".gitignore": "*.tmp\n",
            "sub/.gitignore": "!keep.tmp\nlocal.txt\n",
        },
    )
    rules = IgnoreRules(tmp_path)
    assert rules.matches("x.tmp")
    assert rules.matches("sub/x.tmp")
    assert not rules.matches("sub/keep.tmp")
    assert rules.matches("sub/local.txt")
    assert not rules.matches("local.txt")  # the nested file only speaks for its own folder


def test_info_exclude_is_read(tmp_path: Path) -> None:
    make(tmp_path, {".git/info/exclude": "secret.txt\n", ".gitignore": "!other\n"})
    rules = IgnoreRules(tmp_path)
    assert rules.matches("secret.txt")
    assert rules.matches("a/secret.txt")


def test_gitignore_beats_info_exclude(tmp_path: Path) -> None:
    make(tmp_path, {".git/info/exclude": "*.txt\n", ".gitignore": "!notes.txt\n"})
    rules = IgnoreRules(tmp_path)
    assert rules.matches("a.txt")
    assert not rules.matches("notes.txt")


def test_cannot_reinclude_inside_ignored_folder(tmp_path: Path) -> None:
    make(tmp_path, {".gitignore": "dist/\n!dist/keep.js\n"})
    rules = IgnoreRules(tmp_path)
    assert rules.matches("dist/keep.js")


def test_directory_negation_idiom(tmp_path: Path) -> None:
    # "ignore everything but folders and .py files": pathspec's own check gets folders wrong here.
    make(tmp_path, {"y/.gitignore": "*\n!*/\n!*.py\n"})
    rules = IgnoreRules(tmp_path)
    assert not rules.matches("y/d", is_dir=True)
    assert not rules.matches("y/d/e.py")
    assert rules.matches("y/d/f.txt")


def test_trailing_double_star_keeps_negated_children(tmp_path: Path) -> None:
    make(tmp_path, {".gitignore": "logs/*\n!logs/.gitkeep\nfoo/**\n!foo/keep\n"})
    rules = IgnoreRules(tmp_path)
    assert not rules.matches("logs/.gitkeep")
    assert rules.matches("logs/today.log")
    assert not rules.matches("foo/keep")
    assert rules.matches("foo/other")


def test_absolute_and_odd_spellings(tmp_path: Path) -> None:
    make(tmp_path, {".gitignore": "*.log\n"})
    rules = IgnoreRules(tmp_path)
    assert rules.matches(str(tmp_path / "x.log"))
    assert not rules.matches(str(tmp_path / "x.py"))
    assert rules.matches("./x.log")
    assert not rules.matches("")
    assert not rules.matches(".")
    assert not rules.matches(str(tmp_path))
    assert rules.matches("/somewhere/else/x.py")  # not part of the project


def test_reload_picks_up_changes(tmp_path: Path) -> None:
    make(tmp_path, {".gitignore": "*.log\n"})
    rules = IgnoreRules(tmp_path)
    assert rules.matches("a.log")
    assert not rules.matches("sub/a.txt")
    make(tmp_path, {".gitignore": "*.txt\n"})
    assert rules.matches("a.log")  # cached until told
    rules.reload()
    assert not rules.matches("a.log")
    assert rules.matches("sub/a.txt")
    # A nested .gitignore appearing later is found after reload as well.
    make(tmp_path, {"sub/.gitignore": "!a.txt\n"})
    rules.reload()
    assert not rules.matches("sub/a.txt")


def test_is_rules_file() -> None:
    assert IgnoreRules.is_rules_file(".gitignore")
    assert IgnoreRules.is_rules_file("a/b/.gitignore")
    assert IgnoreRules.is_rules_file(".git/info/exclude")
    assert not IgnoreRules.is_rules_file("gitignore.md")
    assert not IgnoreRules.is_rules_file(".git/config")


def test_walk_prunes_and_sorts(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            ".gitignore": "node_modules/\n*.pyc\n",
            "b.py": "",
            "a.py": "",
            "a.pyc": "",
            "node_modules/pkg/index.js": "",
            "src/z.py": "",
            "src/m/n.py": "",
            ".git/HEAD": "",
            ".runner/state.db": "",
            ".kiro/specs/x/tasks.md": "",
        },
    )
    rules = IgnoreRules(tmp_path)
    assert walked(rules) == [
        ".gitignore",
        ".kiro/specs/x/tasks.md",
        "a.py",
        "b.py",
        "src/m/n.py",
        "src/z.py",
    ]


def test_walk_explicit_ignored_start_is_searched(tmp_path: Path) -> None:
    make(tmp_path, {".gitignore": "vendor/\n*.log\n", "vendor/lib.py": "", "vendor/x.log": ""})
    rules = IgnoreRules(tmp_path)
    assert walked(rules) == [".gitignore"]
    assert walked(rules, tmp_path / "vendor") == ["vendor/lib.py"]
    assert walked(rules, tmp_path / "vendor" / "x.log") == ["vendor/x.log"]


def test_walk_does_not_follow_symlinked_folders(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    make(outside, {"secret.txt": ""})
    root = tmp_path / "root"
    make(root, {"a.txt": ""})
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    rules = IgnoreRules(root)
    assert walked(rules) == ["a.txt"]


def test_walk_outside_root_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    rules = IgnoreRules(root)
    with pytest.raises(ValueError):
        list(rules.walk(tmp_path))


def test_matches_is_fast(tmp_path: Path) -> None:
    make(tmp_path, {".gitignore": "*.log\nbuild/\nnode_modules/\n!keep.log\n", "a/b/.gitignore": "*.tmp\n"})
    rules = IgnoreRules(tmp_path)
    paths = [f"a/b/c{i % 50}/file{i}.py" for i in range(20000)]
    start = time.perf_counter()
    for p in paths:
        rules.matches(p)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for p in paths:
        rules.matches(p)
    again = time.perf_counter() - start
    # Generous bounds: the point is "no re-reading or recompiling per call", not a benchmark.
    assert first < 3.0
    assert again < 0.5


# -- agreement with git itself ---------------------------------------------------------------------

GIT = shutil.which("git")

TREE = [
    "a.log",
    "keep.log",
    "notes.txt",
    "build/out.o",
    "build/keep.txt",
    "src/build/x.o",
    "src/main.py",
    "src/main.pyc",
    "src/gen/auto.py",
    "docs/readme.md",
    "docs/tmp/scratch.md",
    "logs/.gitkeep",
    "logs/today.log",
    "foo/keep",
    "foo/other",
    "foo/bar/deep.txt",
    "root_only",
    "sub/root_only",
    "y/a.py",
    "y/b.txt",
    "y/d/e.py",
    "y/d/f.txt",
]

PATTERN_POOL = [
    "*.log",
    "!keep.log",
    "build/",
    "/build",
    "build",
    "!build/keep.txt",
    "*.pyc",
    "src/gen/",
    "docs/**/scratch.md",
    "tmp/",
    "logs/*",
    "!logs/.gitkeep",
    "foo/**",
    "!foo/keep",
    "/root_only",
    "*.txt",
    "!notes.txt",
    "*",
    "!*/",
    "!*.py",
    "**/d",
    "y/*.txt",
    "src/*",
    "!src/main.py",
]


def _git_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path), "LC_ALL": "C"}
    )
    return env


def _git_ignored(root: Path, env: dict[str, str]) -> set[str]:
    out = subprocess.run(
        ["git", "ls-files", "--others", "--ignored", "--exclude-standard", "-z"],
        cwd=root,
        env=env,
        capture_output=True,
        check=True,
    ).stdout
    return {p for p in out.decode().split("\0") if p}


def _compare_with_git(root: Path, env: dict[str, str]) -> None:
    rules = IgnoreRules(root)
    ignored = _git_ignored(root, env)
    files = sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts
    )
    wrong = {f: rules.matches(f) for f in files if rules.matches(f) != (f in ignored)}
    assert not wrong, f"disagrees with git on {wrong}"
    assert walked(rules) == sorted(set(files) - ignored)


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_agrees_with_git_on_a_mixed_tree(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    env = _git_env(tmp_path)
    subprocess.run(["git", "init", "-q", "."], cwd=root, env=env, check=True)
    make(root, {p: "" for p in TREE})
    make(
        root,
        {
            ".gitignore": "*.log\n!keep.log\nbuild/\n/root_only\nlogs/*\n!logs/.gitkeep\nfoo/**\n!foo/keep\n",
            "src/.gitignore": "*.pyc\ngen/\n",
            "y/.gitignore": "*\n!*/\n!*.py\n",
            "docs/.gitignore": "tmp/\n",
            ".git/info/exclude": "notes.txt\n",
        },
    )
    _compare_with_git(root, env)


@pytest.mark.skipif(GIT is None, reason="git is not installed")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    root_lines=st.lists(st.sampled_from(PATTERN_POOL), max_size=6),
    nested_lines=st.lists(st.sampled_from(PATTERN_POOL), max_size=3),
)
def test_agrees_with_git_on_random_patterns(
    tmp_path_factory: pytest.TempPathFactory, root_lines: list[str], nested_lines: list[str]
) -> None:
    base = tmp_path_factory.mktemp("fuzz")
    root = base / "repo"
    root.mkdir()
    env = _git_env(base)
    subprocess.run(["git", "init", "-q", "."], cwd=root, env=env, check=True)
    make(root, {p: "" for p in TREE})
    make(root, {".gitignore": "\n".join(root_lines) + "\n", "src/.gitignore": "\n".join(nested_lines) + "\n"})
    _compare_with_git(root, env)
