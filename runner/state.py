"""Where runner remembers things: `.runner/state.db` (SQLite in WAL mode).

It holds, per job, the signature and status of its last run; a history of runs with their usage;
the stat cache of file digests; and a cache of parsed files (workflows, agent definitions,
tasks.md summaries) keyed by their stat. Deleting the database is always safe: everything is
recomputed and every job reruns.

Cache entries are only trusted when the file's mtime is clearly older than the moment the entry
was made (git's "racy clean" rule): a file rewritten within the same timestamp tick with the same
size would otherwise look unchanged.
"""

from __future__ import annotations

import marshal
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

STATE_DIR = ".runner"
SCHEMA_VERSION = 4
# Parse results are cached across runs; bump when a parser's output changes shape or meaning.
PARSE_CACHE_VERSION = 2
# How much older than the cache entry a file's mtime must be for its stat to be trusted.
RACY_NS = 2_000_000_000

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, mtime_ns INTEGER, size INTEGER, ino INTEGER, digest TEXT, checked_ns INTEGER);
CREATE TABLE IF NOT EXISTS parsed (
    path TEXT, kind TEXT, mtime_ns INTEGER, size INTEGER, ino INTEGER, checked_ns INTEGER, blob BLOB,
    PRIMARY KEY (path, kind));
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, signature TEXT, components BLOB, status TEXT, reason TEXT,
    run_id INTEGER, stamp INTEGER, started REAL, finished REAL, pid INTEGER);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT, signature TEXT, status TEXT, reason TEXT,
    started REAL, finished REAL, model TEXT, turns INTEGER, input_tokens INTEGER, output_tokens INTEGER,
    cache_read_tokens INTEGER, cache_write_tokens INTEGER, cost_usd REAL, ticked TEXT);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job_id, id);
CREATE TABLE IF NOT EXISTS feedback (
    job_id TEXT PRIMARY KEY, text TEXT, source TEXT, round INTEGER, addressed INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS reviews (job_id TEXT PRIMARY KEY, rounds INTEGER);
CREATE TABLE IF NOT EXISTS approvals (job_id TEXT PRIMARY KEY, tasks TEXT, paths TEXT, message TEXT);
CREATE TABLE IF NOT EXISTS marks (path TEXT, task_id TEXT, checked INTEGER, at REAL);
"""


_JOB_COLUMNS = "id, signature, components, status, reason, run_id, stamp, started, finished, pid"


class JobRecord(NamedTuple):  # a tuple: thousands are read on every run
    id: str
    signature: str
    components_blob: bytes | None
    status: str  # running | done | partial | blocked | failed | cancelled | awaiting-approval
    reason: str | None
    run_id: int | None
    stamp: int | None  # run id of the last successful run; downstream signatures include it
    started: float | None
    finished: float | None
    pid: int | None

    @property
    def components(self) -> dict[str, str]:
        """The signature's parts (decoded only when someone asks why a job is stale)."""
        return marshal.loads(self.components_blob) if self.components_blob else {}


@dataclass(frozen=True)
class Usage:
    model: str | None = None
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0


class State:
    def __init__(self, conn: sqlite3.Connection | None, root: Path) -> None:
        self.root = root
        self._conn = conn or sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        if conn is None:
            self._conn.executescript(_SCHEMA)
        self._lock = threading.RLock()

    @classmethod
    def open(cls, root: Path, *, create: bool = True) -> State:
        """The project's state. With create=False (commands that only read) and no database of this
        version, an empty in-memory one: reading never resets another version's database."""
        path = root / STATE_DIR / "state.db"
        if not create and not path.exists():
            return cls(None, root)
        path.parent.mkdir(exist_ok=True)
        conn = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION and not create:
                conn.close()
                return cls(None, root)
            if version != SCHEMA_VERSION:
                conn.execute("PRAGMA journal_mode=WAL")
                if version:
                    # Written by another version of runner: start afresh, which is always safe
                    # (everything runs again), rather than guess at the old layout.
                    tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
                    for (table,) in tables:
                        if not table.startswith("sqlite_"):
                            conn.execute(f"DROP TABLE {table}")
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as e:
            conn.close()
            from runner.errors import UserError

            raise UserError(f"{e}; delete the file to start afresh (it only caches)", path=path) from None
        return cls(conn, root)

    def data_version(self) -> int:
        """Changes when another process commits to the database (e.g. `runner approve`)."""
        with self._lock:
            return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # --- stat cache -------------------------------------------------------------------------

    def file_rows(self) -> dict[str, tuple[int, int, int, str, int]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT path, mtime_ns, size, ino, digest, checked_ns FROM files"
            ).fetchall()
        return {r[0]: r[1:] for r in rows}

    def save_file_rows(self, rows: list[tuple[str, int, int, int, str, int]]) -> None:
        if not rows:
            return
        with self.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)", rows)

    # --- parse cache ------------------------------------------------------------------------

    def cached(self, path: Path, kind: str, parse: Callable[[bytes], T]) -> T:
        """`parse(bytes of path)`, memoised by the file's stat. Results must be plain data."""
        st = os.stat(path)
        key = f"{kind}@{PARSE_CACHE_VERSION}"
        with self._lock:
            row = self._conn.execute(
                "SELECT mtime_ns, size, ino, checked_ns, blob FROM parsed WHERE path = ? AND kind = ?",
                (str(path), key),
            ).fetchone()
        if row and row[:3] == (st.st_mtime_ns, st.st_size, st.st_ino) and st.st_mtime_ns < row[3] - RACY_NS:
            return marshal.loads(row[4])
        checked = time.time_ns()
        value = parse(Path(path).read_bytes())
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO parsed VALUES (?, ?, ?, ?, ?, ?, ?)",
                (str(path), key, st.st_mtime_ns, st.st_size, st.st_ino, checked, marshal.dumps(value)),
            )
        return value

    # --- jobs -------------------------------------------------------------------------------

    def jobs(self) -> dict[str, JobRecord]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs").fetchall()
        return {r[0]: JobRecord._make(r) for r in rows}

    def job(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?",
                (job_id,),
            ).fetchone()
        return JobRecord._make(row) if row else None

    def start_job(self, job_id: str, signature: str, components: dict[str, str]) -> int:
        """Record that a job starts now; returns the run id. A crash leaves it `running`."""
        now = time.time()
        with self.transaction() as c:
            run_id = c.execute(
                "INSERT INTO runs (job_id, signature, status, started) VALUES (?, ?, 'running', ?)",
                (job_id, signature, now),
            ).lastrowid
            previous = c.execute("SELECT stamp FROM jobs WHERE id = ?", (job_id,)).fetchone()
            c.execute(
                "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, 'running', NULL, ?, ?, ?, NULL, ?)",
                (
                    job_id,
                    signature,
                    marshal.dumps(components),
                    run_id,
                    previous[0] if previous else None,
                    now,
                    os.getpid(),
                ),
            )
        assert run_id is not None
        return run_id

    def finish_job(
        self,
        job_id: str,
        run_id: int,
        status: str,
        reason: str | None = None,
        usage: Usage | None = None,
        ticked: list[str] | None = None,
    ) -> None:
        now = time.time()
        u = usage or Usage()
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET status = ?, reason = ?, finished = ?, model = ?, turns = ?, input_tokens = ?, "
                "output_tokens = ?, cache_read_tokens = ?, cache_write_tokens = ?, cost_usd = ?, ticked = ? "
                "WHERE id = ?",
                (
                    status,
                    reason,
                    now,
                    u.model,
                    u.turns,
                    u.input_tokens,
                    u.output_tokens,
                    u.cache_read_tokens,
                    u.cache_write_tokens,
                    u.cost_usd,
                    " ".join(ticked or []),
                    run_id,
                ),
            )
            stamp_sql = ", stamp = run_id" if status == "done" else ""
            c.execute(
                f"UPDATE jobs SET status = ?, reason = ?, finished = ?, pid = NULL{stamp_sql} WHERE id = ?",
                (status, reason, now, job_id),
            )

    def mark_done(self, job_id: str) -> None:
        """An approved job: done now, and its last run is what dependants build on."""
        with self.transaction() as c:
            c.execute(
                "UPDATE jobs SET status = 'done', reason = NULL, stamp = run_id WHERE id = ?", (job_id,)
            )
            c.execute(
                "UPDATE runs SET status = 'done', reason = NULL WHERE id = (SELECT run_id FROM jobs WHERE id = ?)",
                (job_id,),
            )

    def set_status(self, job_id: str, status: str, reason: str | None = None) -> None:
        with self.transaction() as c:
            c.execute("UPDATE jobs SET status = ?, reason = ? WHERE id = ?", (status, reason, job_id))

    def last_run(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            cur = self._conn.execute(
                "SELECT * FROM runs WHERE job_id = ? ORDER BY id DESC LIMIT 1", (job_id,)
            )
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
        return dict(zip(names, row, strict=True)) if row else None

    def left_running(self) -> list[JobRecord]:
        """Jobs recorded as running by another process (for the lock holder: a dead runner's)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status = 'running' AND (pid IS NULL OR pid != ?)",
                (os.getpid(),),
            ).fetchall()
        return [JobRecord._make(r) for r in rows]

    def feedback(self, *, pending: bool = False) -> dict[str, str]:
        """The latest feedback of each job (review points, rejection notes): part of its signature.
        With pending=True, only what no successful run has addressed yet (what goes in its prompt)."""
        where = " WHERE addressed = 0" if pending else ""
        with self._lock:
            return dict(self._conn.execute(f"SELECT job_id, text FROM feedback{where}").fetchall())

    def set_feedback(self, job_id: str, text: str, source: str, round: int) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO feedback VALUES (?, ?, ?, ?, 0)", (job_id, text, source, round))

    def feedback_addressed(self, job_id: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE feedback SET addressed = 1 WHERE job_id = ?", (job_id,))

    def review_rounds(self, job_id: str) -> int:
        with self._lock:
            row = self._conn.execute("SELECT rounds FROM reviews WHERE job_id = ?", (job_id,)).fetchone()
        return row[0] if row else 0

    def set_review_rounds(self, job_id: str, rounds: int) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO reviews VALUES (?, ?)", (job_id, rounds))

    def pending_approval(self, job_id: str) -> tuple[list[str], list[str], str] | None:
        """(ticked tasks, paths, commit message) of a job waiting for `runner approve`."""
        with self._lock:
            row = self._conn.execute(
                "SELECT tasks, paths, message FROM approvals WHERE job_id = ?", (job_id,)
            ).fetchone()
        return (row[0].split(), row[1].split("\n") if row[1] else [], row[2]) if row else None

    def set_pending_approval(self, job_id: str, tasks: list[str], paths: list[str], message: str) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO approvals VALUES (?, ?, ?, ?)",
                (job_id, " ".join(tasks), "\n".join(paths), message),
            )

    def clear_pending_approval(self, job_id: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM approvals WHERE job_id = ?", (job_id,))

    # --- boxes people set with `runner check` / `uncheck` ---------------------------------------------

    def record_mark(self, path: str, task_id: str, checked: bool) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM marks WHERE at < ?", (time.time() - 86400,))
            c.execute("INSERT INTO marks VALUES (?, ?, ?, ?)", (path, task_id, int(checked), time.time()))

    def marks_since(self, path: str, since: float) -> dict[str, bool]:
        """Boxes a person set in this tasks.md since then (the latest mark per task)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT task_id, checked FROM marks WHERE path = ? AND at >= ? ORDER BY at", (path, since)
            ).fetchall()
        return {task_id: bool(checked) for task_id, checked in rows}

    def forget(self, job_ids: list[str]) -> None:
        with self.transaction() as c:
            c.executemany("DELETE FROM jobs WHERE id = ?", [(j,) for j in job_ids])
            for table in ("runs", "feedback", "reviews", "approvals"):
                c.executemany(f"DELETE FROM {table} WHERE job_id = ?", [(j,) for j in job_ids])


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
