"""Telling the outside what happened: OSC replies to the requester and to every subscriber.

Replies go to the sender's host on the configured reply port (DAWs and Max listen on a fixed
port, not the ephemeral one they send from). Progress is throttled per job, and every reply is
kept well under 8 KB.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Iterable, Optional, Sequence

from pythonosc.osc_message_builder import OscMessageBuilder

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 4096
MAX_TEXT = 300


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
            self._send_to(build(address, list(args)), targets)

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

    def to_waiters(self, address: str, args: list, waiters: Sequence) -> None:
        """``address args... <tag>``: each waiter with its own tag, then every subscriber that is
        not a waiter, once, with the first waiter's tag."""
        sent: set[tuple[str, int]] = set()
        seen: set[tuple[str, int, str]] = set()
        for w in waiters:  # two requesters behind one reply port tell their replies apart by tag
            target = (w.reply_to[0], int(w.reply_to[1]))
            if (*target, w.tag) in seen:
                continue
            seen.add((*target, w.tag))
            sent.add(target)
            self._send_to(build(address, [*args, w.tag]), [target])
        rest = self.subscribers() - sent
        if rest:
            self._send_to(build(address, [*args, waiters[0].tag if waiters else ""]), rest)

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
        kept: list[str] = []
        size = 64 + max((len(w.tag) for w in waiters), default=0)
        for path in outputs:
            size += len(path) + 8
            if size > MAX_REPLY_BYTES:
                break
            kept.append(path)
        self.to_waiters("/audiohost/job/done", [job_id, *kept], waiters)

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
