"""``audiohost status``: the queue as the journal has it, whether the daemon runs or not."""

from __future__ import annotations

import sqlite3
import sys
import time

from rich.console import Console
from rich.table import Table

from host.daemon.config import default_state_dir
from host.jobs.journal import OPEN_STATES, Journal, journal_problem, readable_open_jobs


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
    return 0
