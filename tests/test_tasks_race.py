"""A person (or another tool) edits tasks.md while the runner ticks it: nothing may be lost."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import subprocess
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runner import tasks
from runner.errors import UserError
from runner.tasks import load_tasks, set_checked

N_TASKS = 300

WRITER = r"""
import sys
from pathlib import Path

from runner.tasks import load_tasks, rewrite

path = Path(sys.argv[1])
i = 0


def edit(line: bytes, mode: int) -> None:
    if mode == 0:  # an appending tool: echo ... >> tasks.md
        with open(path, "ab") as f:
            f.write(line)
    elif mode == 1:  # an in-place save on the same inode
        with open(path, "r+b") as f:
            data = f.read()
            f.seek(0)
            f.write(data + line)
            f.truncate()
    else:  # a save by rename, done the careful way (as a second runner would)
        rewrite(path, lambda data: data if line in data else data + line)


print("ready", flush=True)
# The test sends a token for every tick that finished: the writer edits while the next ticks are
# under way, as fast as it can, but cannot run away from them.
for token in sys.stdin:
    if token.strip() == "stop":
        break
    for _ in range(2):
        load_tasks(path)  # like an editor reloading the file after a change
        edit(f"note {i:05d}\n".encode(), i % 3)
        i += 1
print(i, flush=True)
"""


def leases_work(tmp_path: Path) -> bool:
    probe = tmp_path / "lease-probe"
    probe.write_text("x")
    fd = os.open(probe, os.O_RDONLY)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return True
    except (OSError, AttributeError):
        return False
    finally:
        os.close(fd)
        probe.unlink()


def document(n: int = N_TASKS) -> str:
    body = "".join(f"- [ ] T{i:03d} Task number {i}\n" for i in range(1, n + 1))
    return f"# Tasks\n\n## Work\n\n{body}\n## Notes\n\n"


def test_writer_process_races_hundreds_of_ticks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tasks.md"
    original = document()
    path.write_text(original)
    merges = []
    real_merge = tasks._merge3
    monkeypatch.setattr(tasks, "_merge3", lambda *a: merges.append(1) or real_merge(*a))

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert writer.stdin is not None and writer.stdout is not None
    pipe = threading.Lock()

    def tick(task_id: str) -> bool:
        changed = set_checked(path, task_id)
        with pipe:
            writer.stdin.write("go\n")
            writer.stdin.flush()
        return changed

    try:
        assert writer.stdout.readline().strip() == "ready"
        ids = [f"T{i:03d}" for i in range(1, N_TASKS + 1)]
        random.Random(7).shuffle(ids)
        # Four tickers at once, like parallel task jobs, against the writer process.
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(tick, ids))
        assert all(results)
        out, _ = writer.communicate("stop\n", timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            writer.kill()
    assert writer.returncode == 0
    writes = int(out.split()[-1])
    assert writes == 2 * N_TASKS
    assert merges, "the writer never got in between: the race was not exercised"

    notes = "".join(f"note {i:05d}\n" for i in range(writes))
    assert path.read_text() == original.replace("- [ ] T", "- [x] T") + notes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.md"]
    print(f"{writes} writes raced {N_TASKS} ticks; {len(merges)} concurrent edits merged")


# --- each window, made to happen on purpose ----------------------------------------------------------


def foreign_save(path: Path, data: bytes) -> None:
    """A save by rename, as most editors do it."""
    tmp = path.with_name("editor-save.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def intercept_exchange(monkeypatch: pytest.MonkeyPatch, before_call: list) -> None:
    """Run before_call[n] just before the n-th swap."""
    real = tasks._exchange
    calls = []

    def exchange(a: Path, b: Path) -> bool:
        calls.append(1)
        if len(calls) <= len(before_call):
            before_call[len(calls) - 1]()
        return real(a, b)

    monkeypatch.setattr(tasks, "_exchange", exchange)


BASE = b"# Tasks\n\n- [ ] T001 one\n- [ ] T002 two\n\nNotes:\n"


def test_save_by_rename_between_read_and_swap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tasks.md"
    path.write_bytes(BASE)
    intercept_exchange(monkeypatch, [lambda: foreign_save(path, BASE + b"person 1\n")])
    assert set_checked(path, "T002")
    assert path.read_bytes() == BASE.replace(b"[ ] T002", b"[x] T002") + b"person 1\n"


def test_in_place_write_between_read_and_swap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tasks.md"
    path.write_bytes(BASE)

    def in_place() -> None:
        with open(path, "r+b") as f:
            f.write(BASE.replace(b"one", b"uno"))

    intercept_exchange(monkeypatch, [in_place])
    set_checked(path, "T001")
    assert path.read_bytes() == BASE.replace(b"[ ] T001 one", b"[x] T001 uno")


def test_write_between_two_swaps_keeps_both_edits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tasks.md"
    path.write_bytes(BASE)
    ticked = BASE.replace(b"[ ] T002", b"[x] T002")
    # First a save lands before our swap (so a second round is needed); then, before the second
    # swap, someone who saw our first result (without the first save!) appends to it.
    intercept_exchange(
        monkeypatch,
        [
            lambda: foreign_save(path, BASE + b"person 1\n"),
            lambda: foreign_save(path, path.read_bytes() + b"person 2\n"),
        ],
    )
    set_checked(path, "T002")
    assert path.read_bytes() == ticked + b"person 1\nperson 2\n"


def test_task_removed_meanwhile_restores_the_edit_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tasks.md"
    path.write_bytes(BASE)
    edited = BASE.replace(b"- [ ] T002 two\n", b"")
    intercept_exchange(monkeypatch, [lambda: foreign_save(path, edited)])
    with pytest.raises(UserError, match="T002"):
        set_checked(path, "T002")
    assert path.read_bytes() == edited


def test_in_place_writer_holding_the_file_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tool that opened the file before our swap writes into the old copy after it; we wait for it."""
    if not leases_work(tmp_path):
        pytest.skip("file leases are not available here")
    path = tmp_path / "tasks.md"
    path.write_bytes(BASE)
    script = (
        "import sys\n"
        "path = sys.argv[1]\n"
        "assert input() == 'open'\n"
        "f = open(path, 'r+b')\n"
        "print('opened', flush=True)\n"
        "assert input() == 'go'\n"
        "data = f.read(); f.seek(0); f.write(data + b'late line\\n'); f.truncate(); f.close()\n"
    )
    tool = subprocess.Popen(
        [sys.executable, "-c", script, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert tool.stdin is not None and tool.stdout is not None
    try:
        real_copy = tasks._temp_copy
        first = []

        def temp_copy(*args):
            if not first:
                first.append(1)
                tool.stdin.write("open\n")
                tool.stdin.flush()
                assert tool.stdout.readline().strip() == "opened"
            return real_copy(*args)

        waited = []

        def sleep(seconds: float) -> None:
            # Called only when a lease was refused because the tool has the file open for writing.
            if not waited:
                tool.stdin.write("go\n")
                tool.stdin.flush()
            waited.append(seconds)
            time.sleep(seconds)

        monkeypatch.setattr(tasks, "_temp_copy", temp_copy)
        monkeypatch.setattr(tasks, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
        set_checked(path, "T001")
        tool.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            tool.kill()
    assert waited, "the writer holding the file open was not noticed"
    assert path.read_bytes() == BASE.replace(b"[ ] T001", b"[x] T001") + b"late line\n"


def test_interrupted_after_the_swap_keeps_the_other_version_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tasks.md"
    path.write_bytes(BASE)
    intercept_exchange(monkeypatch, [lambda: foreign_save(path, BASE + b"person\n")])
    real_snapshot = tasks._snapshot

    def snapshot(p: Path):
        if p.name.startswith("."):
            raise KeyboardInterrupt
        return real_snapshot(p)

    monkeypatch.setattr(tasks, "_snapshot", snapshot)
    with pytest.raises(KeyboardInterrupt):
        set_checked(path, "T001")
    [kept] = [p for p in tmp_path.iterdir() if p.name != "tasks.md"]
    assert kept.read_bytes() == BASE + b"person\n"


def test_without_rename_exchange_it_still_ticks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "_renameat2", None)
    path = tmp_path / "tasks.md"
    path.write_bytes(BASE)
    calls = []
    real_snapshot = tasks._snapshot

    def snapshot(p: Path):
        calls.append(p)
        if len(calls) == 2:  # the re-check just before the rename sees a fresh save
            foreign_save(path, BASE + b"person\n")
        return real_snapshot(p)

    monkeypatch.setattr(tasks, "_snapshot", snapshot)
    assert set_checked(path, "T001")
    assert path.read_bytes() == BASE.replace(b"[ ] T001", b"[x] T001") + b"person\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.md"]


def test_concurrent_threads_tick_distinct_tasks(tmp_path: Path) -> None:
    path = tmp_path / "tasks.md"
    path.write_text(document(60))
    barrier = threading.Barrier(6)

    def tick(k: int) -> None:
        barrier.wait()
        for i in range(k, 61, 6):
            if i:
                set_checked(path, f"T{i:03d}")

    threads = [threading.Thread(target=tick, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(t.checked for t in load_tasks(path).tasks)


# --- the merge ---------------------------------------------------------------------------------------


def test_merge_keeps_both_insertions_in_order() -> None:
    base = b"a\nb\n"
    assert tasks._merge3(base, b"a\nb\nmine\n", b"a\nb\ntheirs\n") == b"a\nb\nmine\ntheirs\n"


def test_merge_carries_a_box_change_onto_a_reworded_line() -> None:
    base = b"- [ ] T1 a\nz\n"
    ours = b"- [x] T1 a\nz\n"
    theirs = b"- [ ] T1 a reworded\nz\n"
    assert tasks._merge3(base, ours, theirs) == b"- [x] T1 a reworded\nz\n"
    assert tasks._merge3(base, theirs, ours) == b"- [x] T1 a reworded\nz\n"


def test_merge_adjacent_ticks_both_stand() -> None:
    base = b"- [ ] a\n- [ ] b\n- [ ] c\n"
    assert tasks._merge3(base, b"- [x] a\n- [ ] b\n- [ ] c\n", b"- [ ] a\n- [x] b\n- [ ] c\n") == (
        b"- [x] a\n- [x] b\n- [ ] c\n"
    )


def test_merge_overlapping_insertions_share_common_lines() -> None:
    base = b"head\n"
    assert tasks._merge3(base, b"head\nn1\n", b"head\nn1\nn2\n") == b"head\nn1\nn2\n"
    # An insertion where the other side's replacement starts is the same place: nothing doubles.
    base = b"n2\nn4\n"
    assert tasks._merge3(base, b"n2\nn3\n", b"n2\nn3\nn4\n") == b"n2\nn3\nn4\n"


def test_merge_conflicting_text_keeps_both_versions() -> None:
    base = b"x\nmiddle\ny\n"
    assert tasks._merge3(base, b"x\nmine\ny\n", b"x\ntheirs\ny\n") == b"x\nmine\ntheirs\ny\n"


def test_merge_disjoint_changes() -> None:
    base = b"1\n2\n3\n4\n5\n"
    assert tasks._merge3(base, b"one\n2\n3\n4\n5\n", b"1\n2\n3\n4\nfive\n") == b"one\n2\n3\n4\nfive\n"
