"""``audiohost status``: the queue as the journal has it, whether the daemon runs or not, and the
render replicas as the running daemon last recorded them (``replicas.json`` in the state folder)."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Optional

from rich.console import Console
from rich.table import Table

from host.daemon.config import default_state_dir
from host.jobs.journal import OPEN_STATES, Journal, journal_problem, readable_open_jobs

REPLICAS_FILE = "replicas.json"


def write_replicas(state_dir: Path, replicas: list[dict]) -> None:
    """Record the replicas (node, device, jobs done, state) for ``audiohost status``: written whole
    (a temporary file renamed over the old one), with the daemon's process id."""
    path = Path(state_dir) / REPLICAS_FILE
    tmp = path.with_name(f".{REPLICAS_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "updated": time.time(), "replicas": replicas}))
    os.replace(tmp, path)


def remove_replicas(state_dir: Path) -> None:
    try:
        (Path(state_dir) / REPLICAS_FILE).unlink()
    except FileNotFoundError:
        pass


def read_replicas(state_dir: Path) -> Optional[list[dict]]:
    """The replicas of the daemon running on this state folder; None when none runs (or it has
    not recorded any yet)."""
    try:
        data = json.loads((Path(state_dir) / REPLICAS_FILE).read_text())
        pid = int(data["pid"])
        replicas = list(data["replicas"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # left by a daemon that died: nothing runs
    except PermissionError:
        pass  # it runs, as another user
    return replicas


def print_status(args) -> int:
    state_dir = args.state_dir or default_state_dir()
    path = state_dir / "journal.sqlite"
    console = Console()
    if not path.exists():
        console.print(f"no journal in {state_dir}: the daemon has not run there yet")
        return 0
    problem = journal_problem(path)
    if problem is None:
        try:
            journal = Journal(path)
            try:
                counts = journal.counts()
                entries = journal.entries(None if args.all else OPEN_STATES)
            finally:
                journal.close()
        except (sqlite3.Error, ValueError) as err:  # damaged between the check and the read, or a row that no longer validates
            problem = f"cannot be read ({str(err).splitlines()[0][:120] if str(err) else type(err).__name__})"
    if problem is not None:
        open_jobs = readable_open_jobs(path) if path.exists() else None
        lost = "no job can be read from it" if open_jobs is None else f"{open_jobs} open job(s) (queued or running) can still be read from it"
        print(
            f'error: journal {path} {problem}; {lost}; the daemon will not start on it until it is repaired or moved, or damaged_journal = "start-fresh" is set',
            file=sys.stderr,
        )
        return 2
    table = Table(title=f"audiohost queue ({state_dir})")
    for col in ("id", "state", "progress", "kind", "name", "age", "tag", "detail"):
        table.add_column(col)
    now = time.time()
    for e in entries:
        detail = e.error or (e.outputs[0] if e.outputs else "")
        table.add_row(str(e.id), e.state, f"{e.progress:.0%}", e.job.kind, e.job.name, f"{now - e.created:.0f}s", e.tag, detail)
    console.print(table)
    console.print(" ".join(f"{k}: {v}" for k, v in counts.items()))
    replicas = read_replicas(state_dir)
    if replicas is None:
        console.print("replicas: none (the daemon is not running)")
        return 0
    rt = Table(title="replicas")
    for col in ("replica", "node", "device", "jobs done", "state", "jobs", "detail"):
        rt.add_column(col)
    for r in replicas:
        rt.add_row(str(r.get("replica", "")), str(r.get("node", "")), str(r.get("device", "")), str(r.get("jobs_done", 0)),
                   str(r.get("state", "")), " ".join(str(j) for j in r.get("jobs", [])), str(r.get("error") or ""))
    console.print(rt)
    return 0
