"""The journal: every accepted job, in SQLite (WAL), so nothing accepted is ever lost.

A job is acknowledged only after ``add`` has committed it. States: queued -> running ->
done | failed | cancelled; after a crash ``recover`` puts whatever was running back in the
queue, and the render cache (the take sidecars) makes the second run finish only what the
first did not.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from host.jobs.job import Job

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
OPEN_STATES = (QUEUED, RUNNING)

# lower runs first: requests from a DAW come before folder work
PRIORITY_OSC = 0
PRIORITY_FOLDER = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    created   REAL NOT NULL,
    updated   REAL NOT NULL,
    priority  INTEGER NOT NULL,
    state     TEXT NOT NULL,
    progress  REAL NOT NULL DEFAULT 0,
    kind      TEXT NOT NULL,
    name      TEXT NOT NULL,
    job       TEXT NOT NULL,
    dedupe    TEXT,
    tag       TEXT NOT NULL DEFAULT '',
    reply_to  TEXT,
    outputs   TEXT,
    error     TEXT,
    attempts  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_open ON jobs(state, priority, id);
"""


@dataclass(frozen=True)
class Entry:
    id: int
    state: str
    progress: float
    job: Job
    tag: str
    reply_to: Optional[tuple[str, int]]
    outputs: list[str]
    error: Optional[str]
    priority: int
    created: float
    attempts: int


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---------------------------------------------------------------- writing
    def add(self, job: Job, priority: int, tag: str = "", reply_to: Optional[tuple[str, int]] = None, dedupe: Optional[str] = None, bound: Optional[int] = None) -> tuple[int, bool]:
        """Commit a job; returns (id, new). With ``dedupe``, an open job with the same value is
        returned instead of a second one. With ``bound``, raises QueueFull past that many open jobs."""
        now = time.time()
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if dedupe is not None:
                row = self._db.execute("SELECT id FROM jobs WHERE dedupe = ? AND state IN (?, ?)", (dedupe, *OPEN_STATES)).fetchone()
                if row:
                    return int(row[0]), False
            if bound is not None:
                (open_jobs,) = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state IN (?, ?)", OPEN_STATES).fetchone()
                if open_jobs >= bound:
                    raise QueueFull(f"queue full ({open_jobs} jobs waiting, the bound is {bound}); try again later")
            cur = self._db.execute(
                "INSERT INTO jobs (created, updated, priority, state, kind, name, job, dedupe, tag, reply_to) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (now, now, priority, QUEUED, job.kind, job.name, job.model_dump_json(), dedupe, tag, json.dumps(list(reply_to)) if reply_to else None),
            )
            return int(cur.lastrowid), True

    def take_batch(self, batch_size: int) -> list[Entry]:
        """Claim the next job (priority, then age) and, if it is foley, queued foley jobs that can
        share its denoising call, up to ``batch_size`` takes. Claimed jobs become running."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE state = ? ORDER BY priority, id", (QUEUED,)).fetchall()
            if not rows:
                return []
            first = _entry(rows[0])
            batch = [first]
            group = first.job.batch_group()
            takes = first.job.preset.takes
            if group is not None:
                for row in rows[1:]:
                    if takes >= batch_size:
                        break  # full: no need to look at (or parse) the rest of the queue
                    other = _entry(row)
                    if other.job.batch_group() == group and takes + other.job.preset.takes <= batch_size:
                        batch.append(other)
                        takes += other.job.preset.takes
            now = time.time()
            self._db.executemany(
                "UPDATE jobs SET state = ?, updated = ?, attempts = attempts + 1 WHERE id = ?", [(RUNNING, now, e.id) for e in batch]
            )
            return [e for e in (self.get_locked(e.id) for e in batch) if e]

    def set_progress(self, job_id: int, fraction: float) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET progress = ?, updated = ? WHERE id = ?", (float(fraction), time.time(), job_id))

    def finish(self, job_id: int, state: str, outputs: Optional[list[str]] = None, error: Optional[str] = None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state = ?, progress = CASE WHEN ? = 'done' THEN 1 ELSE progress END, outputs = ?, error = ?, updated = ? WHERE id = ?",
                (state, state, json.dumps(outputs or []), error, time.time(), job_id),
            )

    def requeue(self, job_id: int) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET state = ?, progress = 0, updated = ? WHERE id = ?", (QUEUED, time.time(), job_id))

    def cancel_queued(self, job_id: int) -> bool:
        """Cancel a job that has not started; False if it is not queued."""
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET state = ?, updated = ? WHERE id = ? AND state = ?", (CANCELLED, time.time(), job_id, QUEUED))
            return cur.rowcount == 1

    def recover(self) -> list[int]:
        """After a crash: jobs left running go back to the queue. Returns their ids."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            ids = [r[0] for r in self._db.execute("SELECT id FROM jobs WHERE state = ?", (RUNNING,))]
            self._db.execute("UPDATE jobs SET state = ?, progress = 0, updated = ? WHERE state = ?", (QUEUED, time.time(), RUNNING))
            return ids

    # ---------------------------------------------------------------- reading
    def get(self, job_id: int) -> Optional[Entry]:
        with self._lock:
            return self.get_locked(job_id)

    def get_locked(self, job_id: int) -> Optional[Entry]:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _entry(row) if row else None

    def entries(self, states: Optional[tuple[str, ...]] = None, limit: int = 200) -> list[Entry]:
        with self._lock:
            if states:
                marks = ",".join("?" * len(states))
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE state IN ({marks}) ORDER BY id DESC LIMIT ?", (*states, limit)).fetchall()
            else:
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM jobs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_entry(r) for r in reversed(rows)]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        out = {s: 0 for s in (QUEUED, RUNNING, DONE, FAILED, CANCELLED)}
        out.update({s: int(n) for s, n in rows})
        return out


class QueueFull(Exception):
    pass


_COLUMNS = "id, state, progress, job, tag, reply_to, outputs, error, priority, created, attempts"


def _entry(row) -> Entry:
    reply = json.loads(row[5]) if row[5] else None
    return Entry(
        id=int(row[0]),
        state=row[1],
        progress=float(row[2]),
        job=Job.model_validate_json(row[3]),
        tag=row[4] or "",
        reply_to=(reply[0], int(reply[1])) if reply else None,
        outputs=json.loads(row[6]) if row[6] else [],
        error=row[7],
        priority=int(row[8]),
        created=float(row[9]),
        attempts=int(row[10]),
    )
