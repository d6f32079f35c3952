"""Git, for workflows that opt in with `git:`: a branch per spec (or per task), one commit per
ticked task, never a push.

A job works on `runner/<spec>` (or `runner/<spec>/<task>`), created from the branch that was
checked out when the job started. Each time a task is ticked, the files the job changed since
its start (or since its previous commit) are committed with a message naming the task; files a
person had already changed before the job started are left out unless the job changed them
further. With `approve: true` nothing is committed until `runner approve JOB`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from runner.fsutil import TEMP_NAME


class GitError(Exception):
    pass


class Git:
    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def is_repo(root: Path) -> bool:
        try:
            return Git(root).run("rev-parse", "--is-inside-work-tree") == "true"
        except GitError:
            return False

    def run(self, *args: str, strip: bool = True) -> str:
        try:
            out = subprocess.run(
                ["git", *args], cwd=self.root, capture_output=True, text=True, check=False, timeout=120
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise GitError(f"git {args[0]}: {e}") from None
        if out.returncode != 0:
            raise GitError(f"git {' '.join(args[:2])}: {(out.stderr or out.stdout).strip()}")
        return out.stdout.strip() if strip else out.stdout

    def branch(self) -> str | None:
        name = self.run("rev-parse", "--abbrev-ref", "HEAD")
        return None if name == "HEAD" else name

    def switch(self, branch: str) -> bool:
        """Check out `branch`, creating it from the current one if needed; True if it was created."""
        if self.branch() == branch:
            return False
        exists = (
            subprocess.run(
                ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
                cwd=self.root,
                capture_output=True,
            ).returncode
            == 0
        )
        self.run("checkout", *(() if exists else ("-b",)), branch)
        return not exists

    def snapshot(self) -> dict[str, str]:
        """Changed and untracked files, each with the hash of its content now."""
        status = self.run("status", "--porcelain", "-z", "--untracked-files=all", strip=False)
        paths = []
        entries = status.split("\0")
        i = 0
        while i < len(entries):
            entry = entries[i]
            i += 1
            if len(entry) < 4:
                continue
            code, path = entry[:2], entry[3:]
            if code[0] in "RC":  # a rename: the next entry is the old path
                i += 1
            # Not runner's own files, nor the temporary file of a write in progress (a parallel job's tick).
            if not path.startswith((".runner/", "artifacts/")) and not TEMP_NAME.search(path):
                paths.append(path)
        if not paths:
            return {}
        existing = [p for p in paths if (self.root / p).is_file()]
        hashes = self.run("hash-object", "--", *existing).splitlines() if existing else []
        found = dict(zip(existing, hashes, strict=True))
        return {p: found.get(p, "deleted") for p in paths}

    def changed_since(self, before: dict[str, str]) -> list[str]:
        now = self.snapshot()
        return sorted(p for p, h in now.items() if before.get(p) != h)

    def commit(self, paths: list[str], message: str) -> str | None:
        """Commit these paths only; returns the new commit's short hash (None if nothing to commit)."""
        if not paths:
            return None
        self.run("add", "-A", "--", *paths)
        if not self.run("diff", "--cached", "--name-only", "--", *paths):
            return None
        self.run("commit", "--no-verify", "-m", message, "--", *paths)
        return self.run("rev-parse", "--short", "HEAD")


def branch_name(spec: str, task: str | None, phase: str, per: str) -> str:
    if per == "task":
        return f"runner/{spec}/{task or phase}"
    return f"runner/{spec}"


def commit_message(spec: str, task_ids: list[str], titles: dict[str, str], note: str = "") -> str:
    """`runner: <spec> task <id>: <title>`, listing further tasks and a note in the body."""
    if not task_ids:
        return f"runner: {spec}" + (f": {note}" if note else "")
    first = task_ids[0]
    head = f"runner: {spec} task {first}: {titles.get(first, '')}".rstrip(": ")
    body = [f"- task {t}: {titles.get(t, '')}".rstrip(": ") for t in task_ids[1:]]
    if note:
        body.append(note)
    return head + ("\n\n" + "\n".join(body) if body else "")


class JobCommits:
    """Commits one job's work each time it ticks tasks, and what is left when it ends; or holds it
    all back for approval."""

    def __init__(
        self,
        git: Git,
        spec: str,
        task_id: str | None,
        titles: dict[str, str],
        *,
        approve: bool,
        log: Callable[[str], None],
    ) -> None:
        self.git = git
        self.spec = spec
        self.task_id = task_id
        self.titles = titles
        self.approve = approve
        self.log = log
        self.before = git.snapshot()
        self.held: list[str] = []  # ticked tasks waiting for approval
        self.committed: set[str] = set()  # files this job committed

    def on_tick(self, task_ids: list[str]) -> None:
        if self.approve:
            self.held += task_ids
        else:
            self._commit(task_ids, "")

    def finish(self, note: str) -> tuple[list[str], list[str], str] | None:
        """At the end of a successful job: commit what is left, or return (tasks, paths, message) to
        hold for `runner approve`; None when there is nothing to commit."""
        paths = self.git.changed_since(self.before)
        if not paths and not self.held:
            return None
        tasks = self.held or ([self.task_id] if self.task_id else [])
        if self.approve:
            return self.held, paths, commit_message(self.spec, tasks, self.titles, note)
        self._commit(tasks, note)
        return None

    def _commit(self, task_ids: list[str], note: str) -> None:
        try:
            paths = self.git.changed_since(self.before)
            sha = self.git.commit(paths, commit_message(self.spec, task_ids, self.titles, note))
            self.committed.update(paths)
            self.before = self.git.snapshot()
        except GitError as e:
            self.log(f"git: could not commit: {e}")
            return
        if sha:
            self.log(f"git: committed {sha}" + (f" for task {', '.join(task_ids)}" if task_ids else ""))
