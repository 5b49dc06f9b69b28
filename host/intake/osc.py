"""OSC requests: each address maps to one plain function that turns a message into work.

Handlers get the daemon (``host``) and a :class:`Request`; anything they cannot take they
refuse by raising InputError, which the dispatcher answers with ``/audiohost/error <address>
<reason>``. No exception escapes into the server. Before python-osc parses a datagram, the
sender is checked against the allowlist (else dropped and counted), its size against the
largest accepted (else answered and counted) and its structure by :mod:`host.intake.packets`
(else dropped and counted as malformed). The limits are in :mod:`host.intake.limits`.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Optional

from pythonosc import osc_packet
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

import host as host_package
from host.errors import InputError
from host.intake import limits, packets
from host.intake.audio import check_region

log = logging.getLogger(__name__)

PREFIX = "/audiohost/"
SUBSCRIPTION_SECONDS = 24 * 3600.0  # a subscription lasts a day unless renewed (it survives restarts)
MAX_SUBSCRIPTION_SECONDS = 30 * 24 * 3600.0


@dataclass(frozen=True)
class Request:
    address: str
    args: tuple
    sender: tuple[str, int]  # (ip, port) the datagram came from


# ---------------------------------------------------------------------- argument parsing
NUM, INT, STR, FLAG = "number", "integer", "text", "flag"

# the longest text each field takes (characters); the trailing tag is "tag"
TEXT_LIMITS = {
    "project": limits.MAX_PATH_CHARS,
    "input path": limits.MAX_PATH_CHARS,
    "take path": limits.MAX_PATH_CHARS,
    "prompt or preset": limits.MAX_PROMPT_CHARS,
    "cue": limits.MAX_NAME_CHARS,
    "tag": limits.MAX_TAG_CHARS,
}
# integer fields with a narrower range than signed 64 bits (seed and takes are checked by the preset)
INT_RANGES = {"job id": (1, limits.INT64_MAX), "port": (0, 65535)}


def parse_args(req: Request, required: list[tuple[str, str]], optional: list[tuple[str, str]] = ()) -> tuple[list, str]:
    """Positional values by spec plus the optional trailing tag. Max sends ints where floats are
    meant, so a number slot takes either; an integer slot takes a float only if it is whole."""
    args = list(req.args)
    spec = list(required) + list(optional)
    tag = ""
    # a trailing string that has no text slot left is the client's tag
    if args and isinstance(args[-1], str):
        slots_left = spec[len(args) - 1 :] if len(args) - 1 < len(spec) else []
        if len(args) > len(spec) or not slots_left or slots_left[0][1] != STR:
            tag = args.pop()
    if len(args) < len(required):
        names = " ".join(f"<{n}>" for n, _ in required)
        raise InputError(req.address, f"needs {names}, got {len(args)} argument{'s' if len(args) != 1 else ''}")
    if len(args) > len(spec):
        raise InputError(req.address, f"takes at most {len(spec)} arguments and a tag, got {len(args)}")
    _coerce(req.address, "tag", STR, tag)
    values = []
    for value, (name, kind) in zip(args, spec):
        values.append(_coerce(req.address, name, kind, value))
    values += [None] * (len(spec) - len(values))
    return values, tag


def _coerce(address: str, name: str, kind: str, value: Any) -> Any:
    if kind == STR:
        if not isinstance(value, str):
            raise InputError(address, f"{name} must be text, got {type(value).__name__}")
        limit = TEXT_LIMITS.get(name)
        if limit is not None and len(value) > limit:
            raise InputError(address, f"{name} is {len(value)} characters long; the longest accepted is {limit}")
        return value
    if kind == FLAG:  # 1 or true: on, 0 or false: off, negative: the preset's (Max has no booleans)
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, (int, float)) and value < 0:
            return None
        raise InputError(address, f"{name} must be 1 (on), 0 (off) or -1 (the preset's), got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(address, f"{name} must be a number, got {type(value).__name__}")
    if value != value or value in (float("inf"), float("-inf")):
        raise InputError(address, f"{name} must be a finite number")
    if kind == INT:
        if float(value) != int(value):
            raise InputError(address, f"{name} must be a whole number, got {value}")
        low, high = INT_RANGES.get(name, (-limits.INT64_MAX, limits.INT64_MAX))
        if not low <= value <= high:
            raise InputError(address, f"{name} must be between {low} and {high}, got {value:g}")
        return int(value)
    return float(value)


# ---------------------------------------------------------------------- handlers
def ping(host, req: Request) -> None:
    parse_args(req, [])
    host.reply(req, "/audiohost/pong", [host_package.__version__])


def foley(host, req: Request) -> None:
    (project, what, duration, seed, takes, loop), tag = parse_args(
        req, [("project", STR), ("prompt or preset", STR)], [("duration", NUM), ("seed", INT), ("takes", INT), ("loop", FLAG)]
    )
    if seed is not None and seed < 0:
        seed = None  # a negative seed asks for a fresh one (Max has no "nothing")
    # 0 duration or takes keeps the preset's, so a loop flag can follow them (Max has no "nothing")
    duration = None if duration == 0 else duration
    takes = None if takes == 0 else takes
    overrides = {k: v for k, v in {"duration": duration, "seed": seed, "takes": takes, "loop": loop}.items() if v is not None}

    def accept() -> None:
        proj = host.project(project, req.address)
        job = host.job_for(proj, "foley", what, overrides, req.address)
        host.submit_request(job, req, tag)

    host.defer(req, accept)


def render(host, req: Request) -> None:
    (project, cue), tag = parse_args(req, [("project", STR)], [("cue", STR)])

    def accept() -> None:
        proj = host.project(project, req.address)
        host.submit_cues(proj, cue or None, req, tag)

    host.defer(req, accept)


def restyle(host, req: Request) -> None:
    (project, path, what, strength, region_start, region_length), tag = parse_args(
        req,
        [("project", STR), ("input path", STR), ("prompt or preset", STR)],
        [("strength", NUM), ("region start", NUM), ("region length", NUM)],
    )
    if (region_start is None) != (region_length is None):
        raise InputError(req.address, "a region needs both <region start s> and <region length s>")
    if strength is not None and strength < 0:
        strength = None  # a negative strength keeps the preset's (a region needs a strength before it)
    overrides = {"strength": strength} if strength is not None else {}

    def accept() -> None:
        proj = host.project(project, req.address)
        stem = host.input_path(path, proj, req.address)
        region = check_region(stem, region_start, region_length, req.address) if region_start is not None else None
        job = host.job_for(proj, "restyle", what, overrides, req.address, input=stem, region=region)
        host.submit_request(job, req, tag)

    host.defer(req, accept)


def inpaint(host, req: Request) -> None:
    (project, path, start, end, what), tag = parse_args(
        req, [("project", STR), ("input path", STR), ("gap start", NUM), ("gap end", NUM)], [("prompt or preset", STR)]
    )
    if not 0 <= start < end:
        raise InputError(req.address, f"gap {start:g}-{end:g} s: start must be >= 0 and before end")

    def accept() -> None:
        proj = host.project(project, req.address)
        stem = host.input_path(path, proj, req.address)
        job = host.job_for(proj, "inpaint", what or "", {}, req.address, input=stem, gaps=((start, end),))
        host.submit_request(job, req, tag)

    host.defer(req, accept)


def superres(host, req: Request) -> None:
    (project, path, what, cutoff), tag = parse_args(
        req, [("project", STR), ("input path", STR)], [("prompt or preset", STR), ("cutoff", NUM)]
    )
    overrides = {"cutoff": cutoff} if cutoff is not None else {}

    def accept() -> None:
        proj = host.project(project, req.address)
        stem = host.input_path(path, proj, req.address)
        job = host.job_for(proj, "superres", what or "", overrides, req.address, input=stem)
        host.submit_request(job, req, tag)

    host.defer(req, accept)


def cancel(host, req: Request) -> None:
    (job_id,), tag = parse_args(req, [("job id", INT)])
    state = host.cancel(job_id, req.address, canceller=req)
    if state == "running":  # /job/cancelled follows once the render has stopped at a step boundary
        host.reply(req, "/audiohost/cancelling", [job_id, tag])


def status(host, req: Request) -> None:
    (job_id,), tag = parse_args(req, [], [("job id", INT)])
    if job_id is None:
        counts = host.journal.counts()
        host.reply(req, "/audiohost/status", [counts["queued"], counts["running"], counts["done"], counts["failed"], counts["cancelled"], tag])
        return
    entry = host.journal.get(job_id)
    if entry is None:
        raise InputError(req.address, f"no job {job_id}")
    host.reply(req, "/audiohost/status", [job_id, entry.state, float(entry.progress), entry.job.name, tag])


def subscribe(host, req: Request) -> None:
    (port, seconds), tag = parse_args(req, [], [("port", INT), ("seconds", NUM)])
    port = port or host.config.reply_port
    if not 0 < port < 65536:
        raise InputError(req.address, f"port {port} is not a UDP port")
    seconds = SUBSCRIPTION_SECONDS if seconds is None else seconds
    if seconds > MAX_SUBSCRIPTION_SECONDS:
        raise InputError(req.address, f"seconds must be at most {MAX_SUBSCRIPTION_SECONDS:g} (subscribe again to renew)")
    host.subscribe(req.sender[0], port, seconds)
    if seconds <= 0:
        host.reply(req, "/audiohost/unsubscribed", [req.sender[0], port, tag])
    else:
        host.reply(req, "/audiohost/subscribed", [req.sender[0], port, tag])


def stats(host, req: Request) -> None:
    parse_args(req, [])
    s = host.stats()
    head = [s["jobs_done"], s["denoise_calls"], s["malformed"], s["refused"], s["queued"], s["dropped"]]
    host.reply(req, "/audiohost/stats", head + replica_fields(s["replicas"]))


REPLICA_FIELDS_BUDGET = 3400  # bytes of /audiohost/stats the replica list may use (the reply stays under 4 KB)


def replica_fields(replicas: list[dict], budget: int = REPLICA_FIELDS_BUDGET) -> list:
    """``<replicas> <busy> <node> <device> <jobs done> <state> ...``: the counts, then one group of
    four per replica in order, as many as fit in ``budget`` bytes (node and device names are cut
    to 64 and 32 characters)."""
    out: list = [len(replicas), sum(1 for r in replicas if r["state"] == "busy")]
    used = 16
    for r in replicas:
        group = [str(r["node"])[:64], str(r["device"])[:32], int(r["jobs_done"]), str(r["state"])]
        cost = sum((len(g.encode()) // 4 + 1) * 4 + 1 if isinstance(g, str) else 5 for g in group)
        if used + cost > budget:
            break
        out += group
        used += cost
    return out


# ---------------------------------------------------------------------- for DAW clients (issue 8)
def replyport(host, req: Request) -> None:
    """Replies to requests from this socket go to <port> on its host from now on (no port: the
    port it sends from). Answers ``/audiohost/replyport <port> <tag>`` there."""
    (port,), tag = parse_args(req, [], [("port", INT)])
    port = port or int(req.sender[1])
    if not 0 < port < 65536:
        raise InputError(req.address, f"port {port} is not a UDP port")
    host.set_reply_port(req, port)
    host.reply(req, "/audiohost/replyport", [port, tag])


def _page(req: Request, page: Optional[int], pages: list) -> int:
    page = 0 if page is None else page
    if not 0 <= page < len(pages):
        raise InputError(req.address, f"no page {page} (pages 0 to {len(pages) - 1})")
    return page


def presets(host, req: Request) -> None:
    """``/audiohost/presets <project> <page> <pages> <name> <kind> ... <tag>``, one page per request."""
    from host.daemon.service import reply_pages

    (project, page), tag = parse_args(req, [("project", STR)], [("page", INT)])
    proj = host.project(project, req.address)
    pages = reply_pages([proj.name, 0, 0], host.preset_list(proj))
    page = _page(req, page, pages)
    host.reply(req, "/audiohost/presets", [proj.name, page, len(pages), *[v for pair in pages[page] for v in pair], tag])


def projects(host, req: Request) -> None:
    """``/audiohost/projects <page> <pages> <name> <folder> ... <tag>``."""
    from host.daemon.service import reply_pages

    (page,), tag = parse_args(req, [], [("page", INT)])
    pages = reply_pages([0, 0], host.project_list())
    page = _page(req, page, pages)
    host.reply(req, "/audiohost/projects", [page, len(pages), *[v for pair in pages[page] for v in pair], tag])


def serve(host, req: Request) -> None:
    """Serve a project folder (created inside a configured root if missing):
    ``/audiohost/serving <name> <folder> <tag>``."""
    (folder,), tag = parse_args(req, [("folder", STR)])

    def accept() -> None:  # creates folders, reads presets, takes a lock: not on the OSC thread
        project = host.serve_project(folder, req.address)
        host.reply(req, "/audiohost/serving", [project.name, str(project.root), tag])

    host.defer(req, accept)


def reject(host, req: Request) -> None:
    """Reject a take: moved with its sidecar to renders/.rejected/ and never rendered again;
    ``/audiohost/rejected <project> <take path> <moved to> <tag>``."""
    (project, path), tag = parse_args(req, [("project", STR), ("take path", STR)])

    def accept() -> None:
        proj = host.project(project, req.address)
        done = host.reject(proj, path, tag, req.address)
        host.reply(req, "/audiohost/rejected", [proj.name, str(done.take), str(done.moved_to), tag])

    host.defer(req, accept)


HANDLERS: dict[str, Callable] = {
    "ping": ping,
    "foley": foley,
    "render": render,
    "restyle": restyle,
    "inpaint": inpaint,
    "superres": superres,
    "cancel": cancel,
    "status": status,
    "subscribe": subscribe,
    "stats": stats,
    "replyport": replyport,
    "presets": presets,
    "projects": projects,
    "serve": serve,
    "reject": reject,
}


# ---------------------------------------------------------------------- the dispatcher
class RequestDispatcher(Dispatcher):
    """python-osc's dispatcher, hardened: client allowlist, size and structure checked before
    parsing, counted failures, every handler error turned into one ``/audiohost/error`` reply."""

    def __init__(self, host):
        super().__init__()
        self.host = host
        self.malformed = 0  # broken structure or over the largest datagram
        self.dropped = 0  # from a sender outside the allowed networks
        self.refused = 0
        self._drop_lines = Throttle(limits.DROP_LOG_SECONDS, limits.DROP_LOG_SENDERS)
        for name, fn in HANDLERS.items():
            self.map(PREFIX + name, self._wrap(fn), needs_reply_address=True)
        self.set_default_handler(self._unknown, needs_reply_address=True)

    def _wrap(self, fn: Callable) -> Callable:
        def handler(sender, address, *args):
            self._run(fn, Request(address, args, sender))

        return handler

    def _unknown(self, sender, address, *args) -> None:
        self._run(None, Request(address, args, sender))

    def _run(self, fn: Optional[Callable], req: Request) -> None:
        try:
            if fn is None:
                raise InputError(req.address, "unknown address (see /audiohost/ping, foley, render, restyle, inpaint, superres, cancel, status, subscribe)")
            fn(self.host, req)
        except InputError as err:
            self.host.refuse(req, err)
        except Exception as err:  # noqa: BLE001 - nothing may escape into the server
            log.exception("handler for %s failed", req.address)
            self.host.refuse(req, InputError(req.address, f"internal error: {type(err).__name__}"))

    def call_handlers_for_packet(self, data: bytes, client_address):
        sender = client_address[0]
        if not self.host.config.allowed(sender):
            self.dropped += 1
            held_back = self._drop_lines.allow(sender)
            if held_back is not None:
                more = f" ({held_back} more since the last line)" if held_back else ""
                log.warning("dropped a datagram from %s: not in the allowed networks; to serve it add its network to allow = [...] in the config file%s", sender, more)
            return []
        if len(data) > limits.MAX_DATAGRAM_BYTES:
            self.malformed += 1
            address = packets.peek_address(data)
            if address is not None:  # the sender can be told why
                reason = f"the datagram is {len(data)} bytes; the largest accepted is {limits.MAX_DATAGRAM_BYTES} bytes"
                self.host.refuse(Request(address, (), client_address), InputError(address, reason))
            return []
        verdict = packets.check(data)
        if not verdict.ok:
            self.malformed += 1
            log.debug("malformed datagram from %s: %s", sender, verdict.reason)
            return []
        try:
            packet = osc_packet.OscPacket(data)
        except Exception:  # noqa: BLE001 - the check above should make this unreachable
            self.malformed += 1
            log.debug("datagram from %s passed the check but not the parser", sender, exc_info=True)
            return []
        for timed in packet.messages:
            address = timed.message.address
            if not isinstance(address, str) or not re.fullmatch(r"/[A-Za-z0-9_./-]*", address or ""):
                self.malformed += 1
                continue
            try:
                handlers = self.handlers_for_address(address)
                for handler in handlers:
                    handler.invoke(client_address, timed.message)
            except Exception:  # noqa: BLE001
                self.malformed += 1
                log.debug("message to %r could not be handled", address, exc_info=True)
        return []


class OscServer(BlockingOSCUDPServer):
    """The listener: reads whole datagrams (up to the receive buffer, larger than any UDP
    payload, so none arrives cut and then misparsed) and hands every one to the dispatcher,
    which checks and counts it; python-osc's own pre-filter would drop some uncounted."""

    max_packet_size = limits.RECEIVE_BUFFER_BYTES

    def verify_request(self, request, client_address) -> bool:
        return True


class Throttle:
    """At most one log line per key per ``seconds``. :meth:`allow` answers None while a key is
    held back, else how many lines were held back since its last one. Remembers at most
    ``keys`` keys (the oldest go first), so spoofed senders cannot grow it."""

    def __init__(self, seconds: float, keys: int, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.keys = keys
        self.clock = clock
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def allow(self, key: str) -> Optional[int]:
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.seconds:
            self._last[key] = (last[0], last[1] + 1)
            return None
        self._last.pop(key, None)
        self._last[key] = (now, 0)
        while len(self._last) > self.keys:
            self._last.popitem(last=False)
        return last[1] if last is not None else 0

    def __len__(self) -> int:
        return len(self._last)
