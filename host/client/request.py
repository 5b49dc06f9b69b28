"""``audiohost request``: a command-line client of the running daemon, the transport every DAW
script can call.

It speaks the OSC API from a UDP socket of its own and first asks the daemon to answer on that
socket (``/audiohost/replyport``), so it never collides with a DAW listening on the reply port.
With ``--wait`` it follows the job to its end: progress on stderr (a bar on a terminal, plain
lines otherwise), the delivered paths on stdout one per line, or one JSON object with ``--json``.
``--result FILE`` keeps the same JSON object, kept current while the job runs, in FILE (always
replaced whole, never half-written): the Reaper scripts follow a job that way without blocking
Reaper, and cancel it by creating ``FILE.cancel``, as Ctrl-C does on a terminal.

Exit status: 0 done, 1 failed or cancelled, 2 refused, 3 no daemon answering within --timeout.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from host.errors import InputError

EXIT_DONE, EXIT_FAILED, EXIT_REFUSED, EXIT_NO_DAEMON = 0, 1, 2, 3
JOB_FINAL = ("done", "failed", "cancelled")
DEFAULT_HOST, DEFAULT_PORT, DEFAULT_TIMEOUT = "127.0.0.1", 9010, 5.0
DEFAULT_TAG = "request"
QUIET_BEFORE_STATUS = 2.0  # seconds without news of a job before asking the daemon how it is
LOST_REPLY_GRACE = 2.0  # after the daemon says a job ended, how long its event may take to arrive
RESULT_EVERY = 0.25  # the result file is rewritten at most this often while a job runs
HEARTBEAT = 2.0  # ... and at least this often, so a reader can tell the client is alive

START_HINT = "start one with: audiohost serve --project DIR (or run the DAW script again and let it start one)"


class NoDaemon(Exception):
    pass


class Refused(Exception):
    pass


class Interrupted(Exception):
    pass


# ---------------------------------------------------------------------- the socket
class Connection:
    """One UDP socket: requests go out of it and the daemon's replies come back to it."""

    def __init__(self, host: str, port: int, timeout: float, interrupted: Optional[threading.Event] = None):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except (socket.gaierror, UnicodeError, OverflowError):
            raise InputError(f"--host {host}", "cannot resolve that host name") from None
        infos.sort(key=lambda info: info[0] != socket.AF_INET)  # the daemon listens on IPv4 by default
        family, _, _, _, address = infos[0]
        self.daemon = address
        self.where = f"{host}:{port}"
        self.timeout = timeout
        self.interrupted = interrupted or threading.Event()
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        loopback = ipaddress.ip_address(address[0].split("%")[0]).is_loopback
        self.sock.bind((address[0] if loopback else ("::" if family == socket.AF_INET6 else "0.0.0.0"), 0))
        self.heard = time.monotonic()  # when the daemon last said anything
        self.backlog: list[tuple[str, list]] = []  # replies read early, for whoever follows the jobs

    def close(self) -> None:
        self.sock.close()

    def send(self, address: str, args: list) -> None:
        msg = OscMessageBuilder(address=address)
        for a in args:
            msg.add_arg(a)
        try:
            self.sock.sendto(msg.build().dgram, self.daemon)
        except OSError:
            pass  # nobody there yet: the timeout reports it

    def receive(self, timeout: float) -> Optional[tuple[str, list]]:
        """The next reply within ``timeout`` seconds, or None."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(min(left, 0.2))
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                if self.interrupted.is_set():
                    return None
                continue
            except OSError:  # an ICMP "port unreachable" surfacing on some systems
                time.sleep(min(left, 0.05))
                continue
            try:
                msg = OscMessage(data)
                reply = (msg.address, list(msg.params))
            except Exception:  # noqa: BLE001 - not OSC: not from the daemon
                continue
            self.heard = time.monotonic()
            return reply

    def open(self) -> None:
        """Ask the daemon to answer on this socket; NoDaemon unless it does within the timeout."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.interrupted.is_set():
                raise Interrupted()
            self.send("/audiohost/replyport", [])
            step_end = min(deadline, time.monotonic() + 0.5)
            while time.monotonic() < step_end:
                reply = self.receive(step_end - time.monotonic())
                if reply and reply[0] == "/audiohost/replyport":
                    return
        raise NoDaemon(f"no audiohost daemon answered on {self.where} within {self.timeout:g} s; {START_HINT}")

    def ask(self, address: str, args: list, answer: Callable[[str, list], bool]) -> tuple[str, list]:
        """Send one request and return the first reply ``answer`` accepts; Refused on the
        daemon's ``/audiohost/error`` for this address, NoDaemon when nothing comes in time."""
        self.send(address, args)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.interrupted.is_set():
                raise Interrupted()
            reply = self.receive(deadline - time.monotonic())
            if reply is None:
                continue
            if reply[0] == "/audiohost/error" and reply[1][:1] == [address]:
                raise Refused(f"{address}: {reply[1][1] if len(reply[1]) > 1 else 'refused'}")
            if answer(*reply):
                return reply
        raise NoDaemon(f"the audiohost daemon on {self.where} did not answer {address} within {self.timeout:g} s")


# ---------------------------------------------------------------------- what the user sees
@dataclass
class JobView:
    id: int
    state: str = "queued"
    progress: float = 0.0
    name: str = ""
    paths: list[str] = field(default_factory=list)
    error: Optional[str] = None
    ended_by_status: Optional[float] = None  # when a status reply said the job ended
    ended_as: str = ""  # ... and how

    def as_dict(self) -> dict:
        return {
            "job": self.id,
            "name": self.name or _name_from_paths(self.paths),
            "state": self.state,
            "progress": round(self.progress, 4),
            "paths": self.paths,
            "sidecars": [_sidecar(p) for p in self.paths],
            "error": self.error,
        }


def _name_from_paths(paths: list[str]) -> str:
    return Path(paths[0]).parent.name if paths else ""  # renders/<kind>/<name>/<name>_tNN.wav


def _sidecar(path: str) -> Optional[str]:
    side = Path(path).with_suffix(".json")
    return str(side) if side.is_file() else None


class Report:
    """The request's state as one JSON-able object, shown on stderr and kept in --result."""

    def __init__(self, args):
        self.command = args.command
        self.tag = getattr(args, "tag", "") or ""
        self.result = Path(args.result) if getattr(args, "result", None) else None
        self.jobs: dict[int, JobView] = {}
        self.state = "starting"
        self.error: Optional[str] = None
        self.warnings: list[str] = []
        self.extra: dict = {}
        self._written = 0.0
        self._shown: dict[int, tuple[str, int]] = {}
        self._progress = None  # rich progress bar on a terminal
        self._tasks: dict[int, int] = {}

    # -- state
    def overall(self) -> str:
        if self.state in ("refused", "no-daemon", "interrupted") or not self.jobs:
            return self.state
        states = [j.state for j in self.jobs.values()]
        if not all(s in JOB_FINAL for s in states):
            return "running" if any(s in ("running", "cancelling") for s in states) else "queued"
        if any(s == "failed" for s in states):
            return "failed"
        if any(s == "cancelled" for s in states):
            return "cancelled"
        return "done"

    def as_dict(self) -> dict:
        jobs = [j.as_dict() for j in self.jobs.values()]
        state = self.overall()
        errors = [f"job {j['job']}: {j['error']}" if len(jobs) > 1 else j["error"] for j in jobs if j["error"]]
        return {
            "command": self.command,
            "state": state,
            "final": state in ("done", "failed", "cancelled", "refused", "no-daemon", "interrupted"),
            "job": jobs[0]["job"] if jobs else None,
            "jobs": jobs,
            "paths": [p for j in jobs for p in j["paths"]],
            "sidecars": [s for j in jobs for s in j["sidecars"]],
            "progress": round(sum(j["progress"] for j in jobs) / len(jobs), 4) if jobs else (1.0 if state == "done" else 0.0),
            "error": self.error or ("; ".join(errors) if errors else None),
            "warnings": self.warnings,
            "tag": self.tag,
            "updated": round(time.time(), 3),
            "pid": os.getpid(),
            **self.extra,
        }

    def exit_code(self) -> int:
        data = self.as_dict()
        return {
            "done": EXIT_FAILED if data["error"] else EXIT_DONE,  # done, but its takes did not arrive
            "refused": EXIT_REFUSED,
            "no-daemon": EXIT_NO_DAEMON,
        }.get(data["state"], EXIT_FAILED)

    # -- the result file
    def write(self, force: bool = False) -> None:
        if self.result is None:
            return
        now = time.monotonic()
        if not force and now - self._written < RESULT_EVERY:
            return
        self._written = now
        write_replacing(self.result, json.dumps(self.as_dict(), indent=1) + "\n", retry=force)

    def heartbeat(self) -> None:
        if self.result is not None and time.monotonic() - self._written > HEARTBEAT:
            self.write()

    def cancel_requested(self) -> bool:
        return self.result is not None and Path(str(self.result) + ".cancel").exists()

    # -- stderr
    def start_display(self) -> None:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                console=Console(stderr=True), transient=False,
            )
            self._progress.start()

    def stop_display(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def show(self, job: JobView) -> None:
        if self._progress is not None:
            if job.id not in self._tasks:
                self._tasks[job.id] = self._progress.add_task(f"job {job.id}", total=1.0)
            label = f"job {job.id} {job.name}".strip() + f" ({job.state})"
            self._progress.update(self._tasks[job.id], completed=job.progress, description=label)
            return
        step = (job.state, int(job.progress * 10))
        if self._shown.get(job.id) != step:
            self._shown[job.id] = step
            detail = f" {job.progress:.0%}" if job.state == "running" else ""
            print(f"job {job.id} {job.state}{detail}", file=sys.stderr, flush=True)

    def say(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stderr, flush=True)


def write_replacing(path: Path, text: str, retry: bool = False) -> None:
    """Replace ``path`` whole: a reader sees the old content or the new, never a mix."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    for attempt in range(20 if retry else 1):
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
            return
        except PermissionError:  # Windows: a reader has it open this instant
            time.sleep(0.05)
        except OSError as err:
            raise InputError(f"--result {path}", f"cannot write: {err.strerror or err}") from None


# ---------------------------------------------------------------------- following jobs
def submit(conn: Connection, report: Report, address: str, args: list) -> list[int]:
    """Send a request; return the ids of the jobs it queued. A ping sent right after it marks
    the end of its immediate replies (the daemon answers datagrams in order), so a cue sheet
    that queues several jobs, or none, is told apart from one that was refused."""
    tag = report.tag
    conn.send(address, [*args, tag])
    conn.send("/audiohost/ping", [])
    ids: list[int] = []
    errors: list[str] = []
    deadline = time.monotonic() + conn.timeout
    heard = False
    while time.monotonic() < deadline:
        if conn.interrupted.is_set() and not ids:
            raise Interrupted()
        reply = conn.receive(deadline - time.monotonic())
        if reply is None:
            continue
        heard = True
        addr, values = reply
        if addr == "/audiohost/job/queued" and values and isinstance(values[0], int):
            if values[0] not in ids:  # only this request's replies come to this socket
                ids.append(values[0])
        elif addr == "/audiohost/error" and values[:1] == [address]:
            errors.append(str(values[1]) if len(values) > 1 else "refused")
        elif addr == "/audiohost/pong":
            deadline = min(deadline, time.monotonic() + 0.2)  # a reordering network's grace
        else:
            conn.backlog.append(reply)  # a quick job's progress or end, for follow()
    if not heard:
        raise NoDaemon(f"the audiohost daemon on {conn.where} did not answer {address} within {conn.timeout:g} s")
    if not ids and errors:
        raise Refused(f"{address}: {'; '.join(errors)}")
    report.warnings += errors
    for job_id in ids:
        report.jobs[job_id] = JobView(job_id)
    return ids


def follow(conn: Connection, report: Report) -> None:
    """Until every job has ended: events update the report; a quiet job is asked about; a
    cancel (Ctrl-C, FILE.cancel) is passed on to the daemon."""
    lost_after = max(3 * conn.timeout, 15.0)
    last_news = time.monotonic()
    asked = 0.0
    cancel_sent: Optional[float] = None
    for job in report.jobs.values():
        report.show(job)
    while conn.backlog:
        _apply(report, *conn.backlog.pop(0))
    report.write(force=True)
    while not all(j.state in JOB_FINAL for j in report.jobs.values()):
        now = time.monotonic()
        if cancel_sent is None and (conn.interrupted.is_set() or report.cancel_requested()):
            cancel_sent = now
            report.say("cancelling " + ", ".join(f"job {j.id}" for j in report.jobs.values() if j.state not in JOB_FINAL))
            for job in report.jobs.values():
                if job.state not in JOB_FINAL:
                    conn.send("/audiohost/cancel", [job.id])
        if cancel_sent is not None and now - cancel_sent > max(conn.timeout, 10.0):
            for job in report.jobs.values():
                if job.state not in JOB_FINAL:
                    job.state, job.error = "cancelled", "the daemon did not confirm the cancel in time; see audiohost status"
            break
        reply = conn.receive(0.2)
        now = time.monotonic()
        if reply is not None:
            if _apply(report, *reply):
                last_news = now
        elif now - last_news > QUIET_BEFORE_STATUS and now - asked > QUIET_BEFORE_STATUS:
            asked = now
            conn.send("/audiohost/replyport", [])  # again: a daemon restarted since has forgotten it
            for job in report.jobs.values():
                if job.state not in JOB_FINAL:
                    conn.send("/audiohost/status", [job.id])
        for job in report.jobs.values():
            if job.state not in JOB_FINAL and job.ended_by_status is not None and now - job.ended_by_status > LOST_REPLY_GRACE:
                _reply_lost(job)
        if now - conn.heard > lost_after:
            open_jobs = ", ".join(f"job {j.id} ({j.state})" for j in report.jobs.values() if j.state not in JOB_FINAL)
            raise NoDaemon(f"the audiohost daemon on {conn.where} stopped answering while waiting for {open_jobs}; the journal keeps it (audiohost status)")
        report.write()
        report.heartbeat()


def _apply(report: Report, address: str, values: list) -> bool:
    """Update the report from one reply; True if it was news of one of our jobs."""
    if not values or not isinstance(values[0], int) or values[0] not in report.jobs:
        return False
    job = report.jobs[values[0]]
    if job.state in JOB_FINAL:
        return False
    if address == "/audiohost/job/progress" and len(values) >= 2:
        job.state = "running" if job.state != "cancelling" else job.state
        job.progress = max(job.progress, float(values[1]))
    elif address == "/audiohost/job/done":
        job.state, job.progress, job.paths = "done", 1.0, [str(p) for p in values[1:-1]]
    elif address == "/audiohost/job/failed":
        job.state, job.error = "failed", str(values[1]) if len(values) > 2 else "failed"
    elif address == "/audiohost/job/cancelled":
        job.state = "cancelled"
    elif address == "/audiohost/cancelling":
        job.state = "cancelling"
    elif address == "/audiohost/status" and len(values) >= 4 and isinstance(values[1], str):
        state, progress, name = values[1], values[2], values[3]
        job.name = str(name)
        if isinstance(progress, (int, float)):
            job.progress = max(job.progress, float(progress))
        if state in JOB_FINAL:
            job.ended_by_status = job.ended_by_status or time.monotonic()
            job.ended_as = state
        elif state == "running" and job.state == "queued":
            job.state = "running"
    else:
        return False
    report.show(job)
    return True


def _reply_lost(job: JobView) -> None:
    """The daemon says the job ended, but its event never came (a lost datagram, or a request
    merged into an identical one whose first requester got the replies)."""
    job.state = job.ended_as or "done"
    if job.state == "done":
        job.error = f"job {job.id} finished but its list of takes did not reach this client; see audiohost status --all"
    elif job.state == "failed":
        job.error = f"job {job.id} failed (the reason did not reach this client; see audiohost status --all)"


# ---------------------------------------------------------------------- the commands
def _osc_args(values: list) -> list:
    """Trailing unset optional arguments are left out, as a DAW would."""
    out = list(values)
    while out and out[-1] is None:
        out.pop()
    if any(v is None for v in out):
        raise InputError("arguments", "an optional argument is missing before a later one")
    return out


def _project(conn: Connection, args, report: Report) -> str:
    """The project argument, served first when --serve asks for it."""
    if not getattr(args, "serve", False):
        return args.project
    folder = str(Path(args.project).expanduser().absolute())
    _, values = conn.ask("/audiohost/serve", [folder, report.tag], lambda a, v: a == "/audiohost/serving")
    report.extra["project"] = {"name": values[0], "folder": values[1]}
    return str(values[1])


def _job_request(conn: Connection, args, report: Report) -> int:
    project = _project(conn, args, report)
    if args.command == "foley":
        values = [project, args.what, args.duration, args.seed, args.takes]
        if args.loop is not None:  # what is left out before it keeps the preset's (0, -1, 0)
            values = [project, args.what, args.duration or 0.0, -1 if args.seed is None else args.seed, args.takes or 0, 1 if args.loop else 0]
        address = "/audiohost/foley"
    elif args.command == "restyle":
        strength = args.strength
        if args.region is not None and strength is None:
            strength = -1.0  # the preset's strength; the region comes after it
        region = list(args.region) if args.region is not None else [None, None]
        address, values = "/audiohost/restyle", [project, args.input, args.what, strength, *region]
    elif args.command == "inpaint":
        address, values = "/audiohost/inpaint", [project, args.input, args.start, args.end, args.what]
    elif args.command == "superres":
        address, values = "/audiohost/superres", [project, args.input, args.what or "", args.cutoff]
    else:  # render: the whole cue sheet, or one cue
        address, values = "/audiohost/render", [project, args.cue or ""]
    if values[-1] is None and address in ("/audiohost/inpaint", "/audiohost/render"):
        values[-1] = ""  # a last text argument left out would take the tag for itself
    submit(conn, report, address, _osc_args(values))
    if not report.jobs and args.command != "render":
        raise Refused(f"{address}: the daemon queued nothing")
    if not report.jobs:
        report.state = "done"
        report.say("nothing to render" + (" (see the errors above)" if report.warnings else ""))
    for warning in report.warnings:
        report.say(f"warning: {warning}")
    if not args.wait or not report.jobs:
        report.state = "queued" if report.jobs else report.state
        return _finish(args, report, waited=False)
    report.start_display()
    try:
        follow(conn, report)
    finally:
        report.stop_display()
    return _finish(args, report, waited=True)


def _finish(args, report: Report, waited: bool) -> int:
    report.write(force=True)
    data = report.as_dict()
    if args.json:
        print(json.dumps(data))
    elif not waited:
        for job_id in report.jobs:
            print(job_id)
    else:
        for path in data["paths"]:
            print(path)
        for job in report.jobs.values():
            if job.error:
                print(f"error: job {job.id}: {job.error}", file=sys.stderr)
            elif job.state == "cancelled":
                print(f"job {job.id} cancelled", file=sys.stderr)
    return EXIT_DONE if not waited and report.jobs else report.exit_code()


def _ping(conn: Connection, args, report: Report) -> int:
    _, values = conn.ask("/audiohost/ping", [], lambda a, v: a == "/audiohost/pong")
    report.state = "done"
    report.extra["version"] = str(values[0]) if values else ""
    return _simple(args, report, f"audiohost {report.extra['version']} answering on {conn.where}")


def _status(conn: Connection, args, report: Report) -> int:
    if args.job is None:
        _, v = conn.ask("/audiohost/status", [report.tag], lambda a, v: a == "/audiohost/status" and len(v) >= 5 and isinstance(v[1], int))
        counts = dict(zip(("queued", "running", "done", "failed", "cancelled"), v[:5]))
        report.extra["counts"] = counts
        text = " ".join(f"{k}: {n}" for k, n in counts.items())
    else:
        _, v = conn.ask("/audiohost/status", [args.job, report.tag], lambda a, v: a == "/audiohost/status" and v[:1] == [args.job] and len(v) >= 4)
        report.extra["status"] = {"job": args.job, "state": str(v[1]), "progress": float(v[2]), "name": str(v[3])}
        text = f"job {args.job} {v[1]} {float(v[2]):.0%} {v[3]}"
    report.state = "done"
    return _simple(args, report, text)


def _cancel(conn: Connection, args, report: Report) -> int:
    address, _ = conn.ask(
        "/audiohost/cancel", [args.job, report.tag],
        lambda a, v: a in ("/audiohost/job/cancelled", "/audiohost/cancelling") and v[:1] == [args.job],
    )
    report.state = "done"
    report.extra["cancel"] = "cancelled" if address == "/audiohost/job/cancelled" else "cancelling"
    return _simple(args, report, f"job {args.job} {report.extra['cancel']}")


def _listing(conn: Connection, address: str, head: list, skip: int, report: Report) -> list[tuple[str, str]]:
    """Every page of a paged listing reply, as (name, second) pairs."""
    items: list[tuple[str, str]] = []
    page, pages = 0, 1
    while page < pages:
        _, v = conn.ask(address, [*head, page, report.tag], lambda a, v, p=page: a == address and len(v) > skip and v[skip - 2] == p)
        pages = int(v[skip - 1])
        body = v[skip:-1]
        items += [(str(body[i]), str(body[i + 1])) for i in range(0, len(body) - 1, 2)]
        page += 1
    return items


def _presets(conn: Connection, args, report: Report) -> int:
    project = _project(conn, args, report)
    items = _listing(conn, "/audiohost/presets", [project], 3, report)
    report.state = "done"
    report.extra["presets"] = [{"name": n, "kind": k} for n, k in items]
    return _simple(args, report, "\n".join(f"{k:8} {n}" for n, k in items))


def _projects(conn: Connection, args, report: Report) -> int:
    items = _listing(conn, "/audiohost/projects", [], 2, report)
    report.state = "done"
    report.extra["projects"] = [{"name": n, "folder": f} for n, f in items]
    return _simple(args, report, "\n".join(f"{n}\t{f}" for n, f in items))


def _serve(conn: Connection, args, report: Report) -> int:
    args.serve = True
    _project(conn, args, report)
    report.state = "done"
    p = report.extra["project"]
    return _simple(args, report, f"serving {p['name']}: {p['folder']}")


def _reject(conn: Connection, args, report: Report) -> int:
    """Each take in turn: ``/audiohost/reject <project> <take path>``. A path that exists from
    here is sent absolute; any other is the daemon's to find in the project (or its renders/)."""
    project = _project(conn, args, report)
    rejected = report.extra.setdefault("rejected", [])
    lines = []
    for take in args.takes:
        given = Path(take).expanduser()
        path = str(given.absolute()) if os.path.lexists(given) else take
        _, v = conn.ask("/audiohost/reject", [project, path, report.tag], lambda a, v: a == "/audiohost/rejected" and len(v) >= 3)
        rejected.append({"take": str(v[1]), "moved_to": str(v[2])})
        lines.append(f"rejected {v[1]} -> {v[2]}")
    report.state = "done"
    return _simple(args, report, "\n".join(lines))


def _simple(args, report: Report, text: str, code: int = EXIT_DONE) -> int:
    report.write(force=True)
    if args.json:
        print(json.dumps(report.as_dict()))
    elif text:
        print(text)
    return code


COMMANDS = {
    "ping": _ping,
    "foley": _job_request,
    "restyle": _job_request,
    "inpaint": _job_request,
    "superres": _job_request,
    "render": _job_request,
    "status": _status,
    "cancel": _cancel,
    "presets": _presets,
    "projects": _projects,
    "serve": _serve,
    "reject": _reject,
}


def run(args) -> int:
    """``audiohost request ...``; never raises for what the daemon or the network does."""
    report = Report(args)
    interrupted = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda *_: _on_interrupt(interrupted))
    conn = None
    try:
        report.write(force=True)  # at once: a script following FILE knows the client has started
        conn = Connection(args.host, args.port, args.timeout, interrupted)
        conn.open()
        return COMMANDS[args.command](conn, args, report)
    except NoDaemon as err:
        return _failure(args, report, "no-daemon", str(err), EXIT_NO_DAEMON)
    except Refused as err:
        return _failure(args, report, "refused", str(err), EXIT_REFUSED)
    except Interrupted:
        return _failure(args, report, "interrupted", "interrupted before the daemon answered", EXIT_FAILED)
    except InputError as err:
        return _failure(args, report, "refused", str(err), EXIT_REFUSED)
    finally:
        if conn is not None:
            conn.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _on_interrupt(interrupted: threading.Event) -> None:
    """The first Ctrl-C cancels what this request started; a second one leaves at once."""
    if interrupted.is_set():
        raise KeyboardInterrupt
    interrupted.set()


def _failure(args, report: Report, state: str, message: str, code: int) -> int:
    report.state, report.error = state, message
    if state in ("no-daemon", "interrupted"):
        for job in report.jobs.values():  # jobs already queued stay in the journal
            job.error = job.error or message
    try:
        report.write(force=True)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.as_dict()))
    print(f"error: {message}", file=sys.stderr)
    return code


# ---------------------------------------------------------------------- the command line
def expand_args_file(argv: list[str]) -> list[str]:
    """``audiohost @FILE`` (or ``audiohost request @FILE``): the arguments, one per line in FILE
    (UTF-8). DAW scripts use it so that no prompt ever passes through a shell's quoting rules."""
    if len(argv) == 1 and argv[0].startswith("@") and len(argv[0]) > 1:
        return _read_args(argv[0][1:])
    if len(argv) == 2 and argv[0] == "request" and argv[1].startswith("@") and len(argv[1]) > 1:
        return ["request", *_read_args(argv[1][1:])]
    return argv


def _read_args(path: str) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read the arguments file: {getattr(err, 'strerror', None) or err}") from None
    return [line.rstrip("\r") for line in text.split("\n") if line.rstrip("\r") != ""]


def add_parser(sub) -> None:
    """Register ``audiohost request`` with the main command line."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default=DEFAULT_HOST, help=f"the daemon's address (default {DEFAULT_HOST})")
    common.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the daemon's OSC port (default {DEFAULT_PORT})")
    common.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help=f"seconds to wait for the daemon to answer (default {DEFAULT_TIMEOUT:g})")
    common.add_argument("--json", action="store_true", help="print one JSON object (job id, state, paths, sidecars, error)")
    common.add_argument("--result", type=Path, metavar="FILE", help="keep that JSON object in FILE, replaced whole as the job goes on; FILE.cancel cancels")
    common.add_argument("--tag", default=DEFAULT_TAG, help="the tag echoed in the daemon's replies")
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument("--wait", action="store_true", help="wait for the end; progress on stderr, delivered paths on stdout")
    serving = argparse.ArgumentParser(add_help=False)
    serving.add_argument("--serve", action="store_true", help="ask the daemon to serve PROJECT first (a folder inside one of its roots, created if needed)")

    r = sub.add_parser(
        "request",
        help="send one request to the running daemon",
        description="Send one request to a running `audiohost serve` and print its answer. Exit status: 0 done, 1 failed or cancelled, "
        "2 refused, 3 no daemon answering within --timeout. `audiohost request @FILE` reads the arguments one per line from FILE.",
    )
    rsub = r.add_subparsers(title="requests", metavar="REQUEST", dest="command")
    rsub.required = True

    def add(name: str, help: str, parents=(common,)):
        p = rsub.add_parser(name, help=help, description=help, parents=list(parents))
        p.set_defaults(func=run)
        return p

    add("ping", "is a daemon answering? (exit 0 if so, 3 if not)")
    p = add("foley", "text to audio: /audiohost/foley", (common, waiting, serving))
    p.add_argument("project", help="a served project's name or folder")
    p.add_argument("what", metavar="prompt_or_preset")
    p.add_argument("duration", type=float, nargs="?", help="seconds")
    p.add_argument("seed", type=int, nargs="?", help="-1 draws a fresh one")
    p.add_argument("takes", type=int, nargs="?")
    p.add_argument("--loop", action=argparse.BooleanOptionalAction, default=None, help="a seamless loop (--no-loop: not one, even if the preset loops); default: the preset's")
    p = add("restyle", "restyle a stem, or a region of it: /audiohost/restyle", (common, waiting, serving))
    p.add_argument("project")
    p.add_argument("input", help="the stem (relative to the project, or absolute inside a served project or root)")
    p.add_argument("what", metavar="prompt_or_preset")
    p.add_argument("strength", type=float, nargs="?", help="0 keeps the stem, 1 ignores it; -1 the preset's")
    p.add_argument("--region", type=float, nargs=2, metavar=("START", "LENGTH"), help="restyle only this part of the input (seconds)")
    p = add("inpaint", "fill one gap: /audiohost/inpaint", (common, waiting, serving))
    p.add_argument("project")
    p.add_argument("input")
    p.add_argument("start", type=float, help="gap start, seconds")
    p.add_argument("end", type=float, help="gap end, seconds")
    p.add_argument("what", metavar="prompt_or_preset", nargs="?")
    p = add("superres", "generate a band-limited stem's missing upper band, up to 8 kHz: /audiohost/superres", (common, waiting, serving))
    p.add_argument("project")
    p.add_argument("input", help="the stem (relative to the project, or absolute inside a served project or root)")
    p.add_argument("what", metavar="prompt_or_preset", nargs="?", help="guides the generated band; default: the project's superres preset")
    p.add_argument("--cutoff", type=float, metavar="HZ", help="where the stem's own band ends (0-8000 Hz); default: found from its spectrum")
    p = add("render", "render the cue sheet, or one cue: /audiohost/render", (common, waiting, serving))
    p.add_argument("project")
    p.add_argument("cue", nargs="?")
    p = add("status", "the queue's counts, or one job's state: /audiohost/status")
    p.add_argument("job", type=int, nargs="?")
    p = add("cancel", "cancel a job: /audiohost/cancel")
    p.add_argument("job", type=int)
    p = add("presets", "a project's presets, names and kinds: /audiohost/presets", (common, serving))
    p.add_argument("project")
    add("projects", "the projects the daemon serves: /audiohost/projects")
    p = add("reject", "reject takes (moved to renders/.rejected/, never rendered again): /audiohost/reject", (common, serving))
    p.add_argument("project", help="a served project's name or folder")
    p.add_argument("takes", nargs="+", metavar="take", help="a take's audio or sidecar: absolute, from here, or relative to the project or its renders/")
    p = add("serve", "serve a project folder (inside one of the daemon's roots; created if needed): /audiohost/serve")
    p.add_argument("project", metavar="folder")
