"""The journal: every accepted job, in SQLite (WAL), so nothing accepted is ever lost.

A job is acknowledged only after ``add`` has committed it (full sync). States: queued ->
running -> done | failed | cancelled; after a crash ``recover`` puts whatever was running back
in the queue, unless it has now been interrupted twice (a job that kills the process is not
retried forever), and the render cache (the take sidecars) makes the second run finish only
what the first did not.

Every requester of a job is a *waiter* (reply address and tag): a request merged with an
identical open job adds a waiter instead of a second job, so every requester hears back.
Subscriptions (where every job event also goes) are kept here too, with an expiry, so they
survive a restart. Progress is written on a second connection that does not force an fsync,
and claiming a job does not either: losing a progress figure or a claim in a power cut costs
nothing (the job is still queued), losing an acknowledged job would.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Sequence

from host.jobs.job import Job
from host.output.files import fsync_dir

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
OPEN_STATES = (QUEUED, RUNNING)
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)

# lower runs first: requests from a DAW come before folder work
PRIORITY_OSC = 0
PRIORITY_FOLDER = 1

# a job interrupted this many times while rendering (the process died under it) is not retried
MAX_INTERRUPTED = 2
INTERRUPTED_TWICE = "interrupted twice while rendering; not retried"

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
CREATE INDEX IF NOT EXISTS jobs_dedupe ON jobs(dedupe, state);
CREATE TABLE IF NOT EXISTS waiters (
    job_id    INTEGER NOT NULL REFERENCES jobs(id),
    host      TEXT NOT NULL,
    port      INTEGER NOT NULL,
    tag       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, host, port, tag)
);
CREATE TABLE IF NOT EXISTS subscriptions (
    host      TEXT NOT NULL,
    port      INTEGER NOT NULL,
    expires   REAL NOT NULL,
    PRIMARY KEY (host, port)
);
"""

# Stamped into the SQLite header, so a journal is recognised as ours (and another program's
# database, or a file that merely looks like SQLite, is not mistaken for an empty queue).
APPLICATION_ID = 0x41484A4C  # "AHJL"
SCHEMA_VERSION = 2  # 2: waiters, subscriptions, interrupted counts
JOB_COLUMNS = frozenset({"id", "created", "updated", "priority", "state", "progress", "kind", "name", "job", "dedupe", "tag", "reply_to", "outputs", "error", "attempts"})
SIDE_FILES = ("-wal", "-shm")


@dataclass(frozen=True)
class Waiter:
    """Someone who asked for a job and hears about it: where replies go and the tag they sent."""

    reply_to: tuple[str, int]
    tag: str = ""


@dataclass(frozen=True)
class Entry:
    id: int
    state: str
    progress: float
    job: Job
    waiters: tuple[Waiter, ...]
    outputs: list[str]
    error: Optional[str]
    priority: int
    created: float
    attempts: int
    interrupted: int

    @property
    def tag(self) -> str:
        """The first requester's tag (what ``audiohost status`` shows)."""
        return self.waiters[0].tag if self.waiters else ""

    @property
    def reply_to(self) -> Optional[tuple[str, int]]:
        return self.waiters[0].reply_to if self.waiters else None


class QueueFull(Exception):
    pass


class JournalError(Exception):
    """The journal itself cannot be used (locked, corrupt, unreadable)."""


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._migrate()
        # progress only: a commit here does not wait for the disk
        self._quick = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._quick.execute("PRAGMA synchronous=NORMAL")
        self.unreadable: list[tuple[int, str]] = []  # (id, reason) of rows failed because they no longer read

    def _migrate(self) -> None:
        """Bring a journal from an earlier version up to this schema, and stamp it as ours."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "interrupted" not in columns:
            self._db.execute("ALTER TABLE jobs ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0")
        if self._db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            # a new journal, or one from before the stamp: mark it as ours
            self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        if self._db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._quick.close()
            self._db.close()

    # ---------------------------------------------------------------- accepting work
    def add(
        self,
        job: Job,
        priority: int,
        tag: str = "",
        reply_to: Optional[tuple[str, int]] = None,
        dedupe: Optional[str] = None,
        bound: Optional[int] = None,
    ) -> tuple[int, bool]:
        """Commit a job; returns (id, new). With ``dedupe``, an open job with the same value gains
        this requester as a waiter (and the higher priority) instead of a second job. With
        ``bound``, raises QueueFull past that many open jobs."""
        [(job_id, new)] = self.add_all([job], priority, tag, reply_to, [dedupe], bound)
        return job_id, new

    def add_all(
        self,
        jobs: Sequence[Job],
        priority: int,
        tag: str = "",
        reply_to: Optional[tuple[str, int]] = None,
        dedupes: Optional[Sequence[Optional[str]]] = None,
        bound: Optional[int] = None,
    ) -> list[tuple[int, bool]]:
        """``add`` for several jobs in one transaction: all are committed, or (QueueFull) none."""
        dedupes = list(dedupes) if dedupes is not None else [None] * len(jobs)
        now = time.time()
        out: list[tuple[int, bool]] = []
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            fresh = []
            for job, dedupe in zip(jobs, dedupes):
                row = None
                if dedupe is not None:
                    row = self._db.execute(
                        "SELECT id FROM jobs WHERE dedupe = ? AND state IN (?, ?) ORDER BY id LIMIT 1", (dedupe, *OPEN_STATES)
                    ).fetchone()
                out.append((int(row[0]), False) if row else (0, True))
                if not row:
                    fresh.append(job)
            if bound is not None and fresh:
                (open_jobs,) = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state IN (?, ?)", OPEN_STATES).fetchone()
                if open_jobs + len(fresh) > bound:
                    self._db.execute("ROLLBACK")
                    raise QueueFull(
                        f"queue full ({open_jobs} jobs waiting, the bound is {bound}"
                        + (f", {len(fresh)} more asked for" if len(fresh) > 1 else "")
                        + "); try again later"
                    )
            for k, (job, dedupe) in enumerate(zip(jobs, dedupes)):
                job_id, new = out[k]
                if new:
                    cur = self._db.execute(
                        "INSERT INTO jobs (created, updated, priority, state, kind, name, job, dedupe, tag, reply_to) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (now, now, priority, QUEUED, job.kind, job.name, job.model_dump_json(), dedupe, tag,
                         json.dumps(list(reply_to)) if reply_to else None),
                    )
                    job_id = int(cur.lastrowid)
                    out[k] = (job_id, True)
                else:  # merged: an OSC request raises a folder job to OSC priority
                    self._db.execute("UPDATE jobs SET priority = MIN(priority, ?), updated = ? WHERE id = ?", (priority, now, job_id))
                if reply_to is not None:
                    self._db.execute(
                        "INSERT OR IGNORE INTO waiters (job_id, host, port, tag) VALUES (?, ?, ?, ?)", (job_id, reply_to[0], int(reply_to[1]), tag)
                    )
        return out

    def failed_before(self, dedupe: str) -> Optional[tuple[int, str]]:
        """(id, error) of the newest failed job with this dedupe value, if the last attempt at it failed."""
        with self._lock:
            row = self._db.execute("SELECT id, state, error FROM jobs WHERE dedupe = ? ORDER BY id DESC LIMIT 1", (dedupe,)).fetchone()
        if row and row[1] == FAILED:
            return int(row[0]), row[2] or "failed"
        return None

    # ---------------------------------------------------------------- the worker's side
    def take_batch(self, batch_size: int) -> list[Entry]:
        """Claim the next job (priority, then age) and, if it is foley, queued foley jobs that can
        share its denoising call, up to ``batch_size`` takes. Claimed jobs become running.

        A claim does not wait for an fsync (it is on the renderer's path before every batch): like
        every commit in WAL mode it survives the process dying, and a claim that a power cut takes
        back leaves the job queued, rendered again under the take cache. Acceptance and
        completion still sync fully."""
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                return self._claim(batch_size)
            finally:
                self._db.execute("PRAGMA synchronous=FULL")

    def _claim(self, batch_size: int) -> list[Entry]:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE state = ? ORDER BY priority, id", (QUEUED,)).fetchall()
            first = None
            while rows and first is None:
                first = self._readable(rows.pop(0))
            if first is None:
                return []
            batch = [first]
            group = first.job.batch_group()
            takes = first.job.preset.takes
            if group is not None:
                for row in rows:
                    if takes >= batch_size:
                        break  # full: no need to look at (or parse) the rest of the queue
                    other = self._readable(row)
                    if other is not None and other.job.batch_group() == group and takes + other.job.preset.takes <= batch_size:
                        batch.append(other)
                        takes += other.job.preset.takes
            now = time.time()
            self._db.executemany(
                "UPDATE jobs SET state = ?, updated = ?, attempts = attempts + 1 WHERE id = ?", [(RUNNING, now, e.id) for e in batch]
            )
            return [e for e in (self._get(e.id) for e in batch) if e]

    def set_progress(self, job_id: int, fraction: float) -> None:
        with self._lock:
            self._quick.execute("UPDATE jobs SET progress = ?, updated = ? WHERE id = ?", (float(fraction), time.time(), job_id))

    def finish(self, job_id: int, state: str, outputs: Optional[list[str]] = None, error: Optional[str] = None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state = ?, progress = CASE WHEN ? = 'done' THEN 1 ELSE progress END, outputs = ?, error = ?, updated = ? WHERE id = ?",
                (state, state, json.dumps(outputs or []), error, time.time(), job_id),
            )

    def requeue(self, job_id: int) -> None:
        """Back in the queue, not counted as interrupted (a clean stop, a changed input)."""
        with self._lock:
            self._db.execute("UPDATE jobs SET state = ?, progress = 0, updated = ? WHERE id = ? AND state = ?", (QUEUED, time.time(), job_id, RUNNING))

    def cancel_queued(self, job_id: int) -> bool:
        """Cancel a job that has not started; False if it is not queued (any more)."""
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET state = ?, updated = ? WHERE id = ? AND state = ?", (CANCELLED, time.time(), job_id, QUEUED))
            return cur.rowcount == 1

    def recover(self) -> tuple[list[int], list[int]]:
        """After a crash: jobs left running were interrupted. Each goes back to the queue, unless
        this was its second interruption: then it fails (``INTERRUPTED_TWICE``) and the others run.
        Returns (re-queued ids, failed ids)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            now = time.time()
            self._db.execute("UPDATE jobs SET interrupted = interrupted + 1, updated = ? WHERE state = ?", (now, RUNNING))
            failed = [r[0] for r in self._db.execute("SELECT id FROM jobs WHERE state = ? AND interrupted >= ?", (RUNNING, MAX_INTERRUPTED))]
            self._db.execute(
                "UPDATE jobs SET state = ?, error = ?, updated = ? WHERE state = ? AND interrupted >= ?",
                (FAILED, INTERRUPTED_TWICE, now, RUNNING, MAX_INTERRUPTED),
            )
            requeued = [r[0] for r in self._db.execute("SELECT id FROM jobs WHERE state = ?", (RUNNING,))]
            self._db.execute("UPDATE jobs SET state = ?, progress = 0, updated = ? WHERE state = ?", (QUEUED, now, RUNNING))
            return requeued, failed

    def waiters(self, job_id: int) -> tuple[Waiter, ...]:
        """Everyone who asked for this job so far (a request merged while it runs included)."""
        with self._lock:
            rows = self._db.execute("SELECT host, port, tag FROM waiters WHERE job_id = ? ORDER BY rowid", (job_id,)).fetchall()
            if not rows:
                legacy = self._db.execute("SELECT tag, reply_to FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if legacy and legacy[1]:
                    host, port = json.loads(legacy[1])
                    return (Waiter((host, int(port)), legacy[0] or ""),)
        return tuple(Waiter((h, int(p)), t) for h, p, t in rows)

    # ---------------------------------------------------------------- subscriptions
    def subscribe(self, host: str, port: int, seconds: float) -> float:
        expires = time.time() + seconds
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO subscriptions (host, port, expires) VALUES (?, ?, ?)", (host, int(port), expires))
        return expires

    def unsubscribe(self, host: str, port: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM subscriptions WHERE host = ? AND port = ?", (host, int(port)))

    def subscriptions(self) -> list[tuple[str, int, float]]:
        """Live subscriptions (expired ones are dropped)."""
        with self._lock:
            self._db.execute("DELETE FROM subscriptions WHERE expires <= ?", (time.time(),))
            rows = self._db.execute("SELECT host, port, expires FROM subscriptions ORDER BY host, port").fetchall()
        return [(h, int(p), float(e)) for h, p, e in rows]

    # ---------------------------------------------------------------- reading
    def get(self, job_id: int) -> Optional[Entry]:
        with self._lock:
            return self._get(job_id)

    def _get(self, job_id: int) -> Optional[Entry]:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._entry_or_none(row) if row else None

    def _entry_or_none(self, row) -> Optional[Entry]:
        try:
            return self._entry(row)
        except Exception:  # noqa: BLE001 - a row from another version: left out of listings
            return None

    def entries(self, states: Optional[tuple[str, ...]] = None, limit: int = 200) -> list[Entry]:
        with self._lock:
            if states:
                marks = ",".join("?" * len(states))
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE state IN ({marks}) ORDER BY id DESC LIMIT ?", (*states, limit)).fetchall()
            else:
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM jobs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            entries = [e for e in (self._entry_or_none(r) for r in reversed(rows)) if e is not None]
        return entries

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        out = {s: 0 for s in STATES}
        out.update({s: int(n) for s, n in rows})
        return out

    def _readable(self, row) -> Optional[Entry]:
        """The row as an Entry; a row that no longer reads as a job (saved by another version of
        audiohost) is failed with the reason instead of stopping the queue."""
        try:
            return self._entry(row)
        except Exception as err:  # noqa: BLE001 - pydantic ValidationError, JSON errors
            reason = f"this job was saved in a form this version cannot read ({type(err).__name__}); submit it again"
            self._db.execute("UPDATE jobs SET state = ?, error = ?, updated = ? WHERE id = ?", (FAILED, reason, time.time(), row[0]))
            self.unreadable.append((int(row[0]), reason))
            return None

    def _entry(self, row) -> Entry:
        waiters = tuple(
            Waiter((h, int(p)), t)
            for h, p, t in self._db.execute("SELECT host, port, tag FROM waiters WHERE job_id = ? ORDER BY rowid", (row[0],))
        )
        if not waiters and row[5]:  # a journal from before waiters were kept
            legacy = json.loads(row[5])
            waiters = (Waiter((legacy[0], int(legacy[1])), row[4] or ""),)
        return Entry(
            id=int(row[0]),
            state=row[1],
            progress=float(row[2]),
            job=Job.model_validate_json(row[3]),
            waiters=waiters,
            outputs=json.loads(row[6]) if row[6] else [],
            error=row[7],
            priority=int(row[8]),
            created=float(row[9]),
            attempts=int(row[10]),
            interrupted=int(row[11]),
        )


_COLUMNS = "id, state, progress, job, tag, reply_to, outputs, error, priority, created, attempts, interrupted"


# ---------------------------------------------------------------- opening with a health check

OnDamage = Literal["refuse", "start-fresh"]
SQLITE_MAGIC = b"SQLite format 3\x00"


class JournalDamaged(Exception):
    """The journal cannot be trusted; ``str(err)`` is the one line a user reads."""

    def __init__(self, line: str, path: Path, reason: str, open_jobs: Optional[int], moved_to: Optional[Path] = None):
        super().__init__(line)
        self.path = path
        self.reason = reason
        self.open_jobs = open_jobs  # open jobs that could still be read from it; None: none could
        self.moved_to = moved_to


def journal_problem(path: Path) -> Optional[str]:
    """Why the journal at ``path`` cannot be used, or None when it is sound (or absent).

    A journal is created whole (see ``open_journal``), so an empty file, a file that is not
    SQLite, one whose pages fail SQLite's quick check, another program's database or a
    journal whose main file is gone but whose write-ahead log remains are all damage."""
    path = Path(path)
    if not path.exists():
        stray = [path.name + s for s in SIDE_FILES if Path(str(path) + s).exists() and Path(str(path) + s).stat().st_size > 0]
        return f"the journal is missing but {stray[0]} is still there" if stray else None
    try:
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if len(head) == 0:
        return "is empty (0 bytes)"
    if not head.startswith(SQLITE_MAGIC) or len(head) < 100:
        return "is not an SQLite database"
    try:
        # read-only: checking never checkpoints the write-ahead log into a damaged file
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None, timeout=30)
    except sqlite3.Error as err:
        return f"cannot be opened ({_sqlite_reason(err)})"
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            first = str(rows[0][0]) if rows else "no answer"
            return f"fails SQLite's quick check ({first[:120]})"
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        columns = {r[1] for r in db.execute("PRAGMA table_info(jobs)")}
    except sqlite3.Error as err:
        return f"fails SQLite's quick check ({_sqlite_reason(err)})"
    finally:
        db.close()
    if app_id not in (0, APPLICATION_ID):
        return f"is another program's SQLite database (application id {app_id:#x}), not an audiohost journal"
    if app_id == APPLICATION_ID and version > SCHEMA_VERSION:
        return f"was written by a newer audiohost (journal schema {version}; this one knows {SCHEMA_VERSION})"
    if not JOB_COLUMNS <= columns:
        return "is not an audiohost journal (it has no jobs table)" if not columns else "has a jobs table this audiohost does not recognise"
    return None


def readable_open_jobs(path: Path) -> Optional[int]:
    """How many queued or running jobs can still be read from a damaged journal (from a copy,
    so the damaged file is left exactly as it is); None when no job can be read at all."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="audiohost-journal-") as tmp:
        copy = Path(tmp) / "journal.sqlite"
        try:
            shutil.copyfile(path, copy)
            for suffix in SIDE_FILES[:1]:  # the write-ahead log holds committed jobs too
                if Path(str(path) + suffix).exists():
                    shutil.copyfile(str(path) + suffix, str(copy) + suffix)
        except OSError:
            return None
        _fit_header_to_file(copy)
        counts = [n for n in (_count_open(copy, ""), _count_open(copy, "INDEXED BY jobs_open")) if n is not None]
        return max(counts) if counts else None


def _count_open(path: Path, index: str) -> Optional[int]:
    """Open jobs read by a scan of the table (or of its index, a separate b-tree that may have
    survived), counting up to the first damaged page; None when nothing could be read."""
    count, read_any = 0, False
    db = None
    try:
        db = sqlite3.connect(str(path), isolation_level=None)
        for (state,) in db.execute(f"SELECT state FROM jobs {index}"):
            read_any = True
            count += state in OPEN_STATES
    except sqlite3.Error:
        pass
    finally:
        if db is not None:
            db.close()
    return count if read_any else None


def _fit_header_to_file(path: Path) -> None:
    """A journal cut short still claims its old page count, and SQLite then reads none of it:
    in the copy, make the header's page count match the pages that are there."""
    try:
        with open(path, "r+b") as f:
            head = f.read(100)
            if len(head) < 100 or not head.startswith(SQLITE_MAGIC):
                return
            page = int.from_bytes(head[16:18], "big")
            page = 65536 if page == 1 else page
            pages = os.fstat(f.fileno()).st_size // page if page >= 512 else 0
            if 0 < pages < int.from_bytes(head[28:32], "big"):
                f.seek(28)
                f.write(pages.to_bytes(4, "big"))
    except OSError:
        pass


def open_journal(path: Path, on_damage: OnDamage = "refuse") -> tuple[Journal, Optional[str]]:
    """The journal at ``path``, checked first. Returns (journal, notice): ``notice`` is the one
    line to log when a damaged journal was moved aside and a fresh one started.

    Damaged and ``on_damage="refuse"``: raises JournalDamaged and leaves the file where it is
    (every later start refuses too, until it is repaired or moved). ``"start-fresh"``: the
    damaged file (with its -wal and -shm) moves to ``journal.sqlite.damaged-<UTC time>`` and
    an empty journal takes its place. Call with the state directory's lock held."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    problem = journal_problem(path)
    notice = None
    if problem is not None:
        open_jobs = readable_open_jobs(path) if path.exists() else None
        lost = _lost_words(open_jobs)
        if on_damage != "start-fresh":
            raise JournalDamaged(
                f"journal {path} {problem}; {lost}; it was left in place: repair or move it, or set "
                f'damaged_journal = "start-fresh" to move it aside and start with an empty queue',
                path, problem, open_jobs,
            )
        moved_to = _move_aside(path)
        notice = f"journal {path} {problem}; moved it to {moved_to} and started an empty queue; {lost} (not in the new queue)"
    if not path.exists():
        _create(path)
    return Journal(path), notice


def _lost_words(open_jobs: Optional[int]) -> str:
    if open_jobs is None:
        return "no job could be read from it"
    return f"{open_jobs} open job(s) (queued or running) can still be read from it"


def _move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while any(Path(str(target) + s).exists() for s in ("", *SIDE_FILES)):
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    for suffix in ("", *SIDE_FILES):  # the main file first: a crash midway leaves no stray log beside a journal
        src = Path(str(path) + suffix)
        if src.exists():
            os.rename(src, Path(str(target) + suffix))
    fsync_dir(path.parent)
    return target


def _create(path: Path) -> None:
    """A new, empty journal, created whole: built beside ``path`` and renamed into place, so a
    journal file that exists always has its header (an empty one is damage, never "new")."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.new")
    try:
        Journal(tmp).close()  # the last connection's close folds the log into the file
        for suffix in SIDE_FILES:
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if path.exists():  # the state directory's lock makes this a formality
            raise FileExistsError(f"{path} appeared while a new journal was being created")
        os.rename(tmp, path)
    finally:
        for suffix in ("", *SIDE_FILES):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
    fsync_dir(path.parent)


def _sqlite_reason(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:120]
