"""Telling the outside what happened: OSC replies to the requester and to every subscriber.

Replies go to the sender's host on the configured reply port (DAWs and Max listen on a fixed
port, not the ephemeral one they send from). Progress is throttled per job, and no reply is
larger than MAX_REPLY_BYTES: free text (tags, reasons) is clipped to fit, paths never are, so
``/audiohost/job/done`` always carries whole paths first and whatever is left of the tag.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Iterable, Optional, Sequence

from pythonosc.osc_message_builder import OscMessageBuilder

from host.intake.limits import MAX_REPLY_BYTES

log = logging.getLogger(__name__)

MAX_TEXT = 300
DONE = "/audiohost/job/done"


class Announcer:
    """Sends replies. A job's events go to each of its waiters (with that waiter's own tag) and to
    every live subscriber; nobody gets the same event twice."""

    def __init__(self, progress_per_second: float = 4.0):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock6: Optional[socket.socket] = None
        self._subscribers: dict[tuple[str, int], float] = {}  # (host, port) -> expires (time.time())
        self._lock = threading.Lock()
        self._last_progress: dict[int, float] = {}
        self._min_interval = 1.0 / progress_per_second
        self.sent = 0

    def subscribe(self, host: str, port: int, expires: float = float("inf")) -> None:
        with self._lock:
            self._subscribers[(host, int(port))] = expires

    def unsubscribe(self, host: str, port: int) -> None:
        with self._lock:
            self._subscribers.pop((host, int(port)), None)

    def subscribers(self) -> set[tuple[str, int]]:
        now = time.time()
        with self._lock:
            for key in [k for k, exp in self._subscribers.items() if exp <= now]:
                del self._subscribers[key]
            return set(self._subscribers)

    def send(self, address: str, args: Iterable, to: Optional[tuple[str, int]] = None, subscribers: bool = True) -> None:
        targets = set()
        if to is not None:
            targets.add((to[0], int(to[1])))
        if subscribers:
            targets |= self.subscribers()
        if targets:
            data = self._fitted(address, list(args))
            if data is not None:
                self._send_to(data, targets)

    def _fitted(self, address: str, args: list, keep: Iterable[int] = ()) -> Optional[bytes]:
        """The reply built, its free text clipped to fit MAX_REPLY_BYTES (never the positions in
        ``keep``, nor the paths of a done reply); None if it cannot fit."""
        data = build(address, args)
        if len(data) <= MAX_REPLY_BYTES:
            return data
        fitted = fit(address, args, keep=keep or (range(1, len(args) - 1) if address == DONE else ()))
        if fitted is None:  # nothing left to clip: only numbers and paths, too many of them
            log.warning("%s reply not sent: over %d bytes with nothing left to clip", address, MAX_REPLY_BYTES)
            return None
        return build(address, fitted)

    def _send_to(self, data: bytes, targets: Iterable[tuple[str, int]]) -> None:
        for host, port in targets:
            try:
                if ":" in host:
                    if self._sock6 is None:
                        self._sock6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                    self._sock6.sendto(data, (host, port))
                else:
                    self._sock.sendto(data, (host, port))
                self.sent += 1
            except OSError as err:  # a subscriber that went away must not stop the host
                log.debug("reply to %s:%s failed: %s", host, port, err)

    def to_waiters(self, address: str, args: list, waiters: Sequence, keep: Iterable[int] = ()) -> None:
        """``address args... <tag>``: each waiter with its own tag, then every subscriber that is
        not a waiter, once, with the first waiter's tag. Each reply fits MAX_REPLY_BYTES (tags are
        clipped first; the positions in ``keep`` never are)."""
        keep = list(keep)
        sent: set[tuple[str, int]] = set()
        seen: set[tuple[str, int, str]] = set()
        for w in waiters:  # two requesters behind one reply port tell their replies apart by tag
            target = (w.reply_to[0], int(w.reply_to[1]))
            if (*target, w.tag) in seen:
                continue
            seen.add((*target, w.tag))
            sent.add(target)
            data = self._fitted(address, [*args, w.tag], keep)
            if data is not None:
                self._send_to(data, [target])
        rest = self.subscribers() - sent
        if rest:
            data = self._fitted(address, [*args, waiters[0].tag if waiters else ""], keep)
            if data is not None:
                self._send_to(data, rest)

    # ---------------------------------------------------------------- job events
    def queued(self, job_id: int, tag: str, to) -> None:
        self.send("/audiohost/job/queued", [job_id, tag], to)

    def progress(self, job_id: int, fraction: float, waiters) -> None:
        """At most ``progress_per_second`` a job; ``waiters`` may be a callable, asked only when
        a reply is due."""
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress.get(job_id, 0.0) < self._min_interval:
            return
        self._last_progress[job_id] = now
        self.to_waiters("/audiohost/job/progress", [job_id, float(round(fraction, 4))], waiters() if callable(waiters) else waiters)

    def done(self, job_id: int, outputs: list[str], waiters: Sequence) -> None:
        self._last_progress.pop(job_id, None)
        paths = [str(p) for p in outputs]
        longest = max((w.tag for w in waiters), key=len, default="")
        while paths and fit(DONE, [job_id, *paths, longest], keep=range(1, len(paths) + 1)) is None:
            paths.pop()  # the paths alone are over (OSC requests are refused up front for this)
        if len(paths) < len(outputs):
            log.warning("job %d: the done reply carries %d of its %d paths (replies are at most %d bytes)", job_id, len(paths), len(outputs), MAX_REPLY_BYTES)
        self.to_waiters(DONE, [job_id, *paths], waiters, keep=range(1, len(paths) + 1))

    def failed(self, job_id: int, reason: str, waiters: Sequence) -> None:
        self._last_progress.pop(job_id, None)
        self.to_waiters("/audiohost/job/failed", [job_id, clip(reason)], waiters)

    def cancelled(self, job_id: int, waiters: Sequence) -> None:
        self._last_progress.pop(job_id, None)
        self.to_waiters("/audiohost/job/cancelled", [job_id], waiters)

    def error(self, request: str, reason: str, to) -> None:
        self.send("/audiohost/error", [clip(request, 200), clip(reason)], to, subscribers=False)


def clip(text: str, limit: int = MAX_TEXT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fit(address: str, args: list, keep: Iterable[int] = ()) -> Optional[list]:
    """``args`` with their text clipped (longest first, never the positions in ``keep``) until
    the built reply is at most MAX_REPLY_BYTES; None if it cannot get there."""
    args = list(args)
    keep = set(keep)
    while True:
        excess = len(build(address, args)) - MAX_REPLY_BYTES
        if excess <= 0:
            return args
        text = [k for k, a in enumerate(args) if isinstance(a, str) and a and k not in keep]
        if not text:
            return None
        k = max(text, key=lambda k: len(args[k].encode("utf-8")))
        args[k] = clip_bytes(args[k], len(args[k].encode("utf-8")) - excess)


def clip_bytes(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` bytes of UTF-8, cut on a character and marked with "..."."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    if limit <= 3:
        return ""
    return data[: limit - 3].decode("utf-8", errors="ignore") + "..."


def done_fits(paths: list[str]) -> bool:
    """Whether a done reply can carry all of ``paths`` (with an empty tag) within the limit."""
    return len(build(DONE, [2**31 - 1, *paths, ""])) <= MAX_REPLY_BYTES


def build(address: str, args: list) -> bytes:
    msg = OscMessageBuilder(address=address)
    for a in args:
        if isinstance(a, bool):
            msg.add_arg(int(a))
        elif isinstance(a, (int, float, str)):
            msg.add_arg(a)
        else:
            msg.add_arg(str(a))
    return msg.build().dgram
