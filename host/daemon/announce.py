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
from typing import Iterable, Optional

from pythonosc.osc_message_builder import OscMessageBuilder

from host.intake.limits import MAX_REPLY_BYTES

log = logging.getLogger(__name__)

MAX_TEXT = 300
DONE = "/audiohost/job/done"


class Announcer:
    def __init__(self, progress_per_second: float = 4.0):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock6: Optional[socket.socket] = None
        self._subscribers: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._last_progress: dict[int, float] = {}
        self._min_interval = 1.0 / progress_per_second
        self.sent = 0

    def subscribe(self, host: str, port: int) -> None:
        with self._lock:
            self._subscribers.add((host, int(port)))

    def send(self, address: str, args: Iterable, to: Optional[tuple[str, int]] = None, subscribers: bool = True) -> None:
        targets = set()
        if to is not None:
            targets.add((to[0], int(to[1])))
        if subscribers:
            with self._lock:
                targets |= self._subscribers
        if not targets:
            return
        args = list(args)
        data = build(address, args)
        if len(data) > MAX_REPLY_BYTES:
            fitted = fit(address, args, keep=range(1, len(args) - 1) if address == DONE else ())
            if fitted is None:  # nothing left to clip: only numbers and paths, too many of them
                log.warning("%s reply not sent: over %d bytes with nothing left to clip", address, MAX_REPLY_BYTES)
                return
            data = build(address, fitted)
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

    # ---------------------------------------------------------------- job events
    def queued(self, job_id: int, tag: str, to) -> None:
        self.send("/audiohost/job/queued", [job_id, tag], to)

    def progress(self, job_id: int, fraction: float, tag: str, to) -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress.get(job_id, 0.0) < self._min_interval:
            return
        self._last_progress[job_id] = now
        self.send("/audiohost/job/progress", [job_id, float(round(fraction, 4)), tag], to)

    def done(self, job_id: int, outputs: list[str], tag: str, to) -> None:
        self._last_progress.pop(job_id, None)
        paths = [str(p) for p in outputs]
        args = fit(DONE, [job_id, *paths, tag], keep=range(1, len(paths) + 1))
        while args is None:  # the paths alone are over (OSC requests are refused up front for this)
            paths.pop()
            args = fit(DONE, [job_id, *paths, ""], keep=range(1, len(paths) + 1))
        if len(paths) < len(outputs):
            log.warning("job %d: the done reply carries %d of its %d paths (replies are at most %d bytes)", job_id, len(paths), len(outputs), MAX_REPLY_BYTES)
        self.send(DONE, args, to)

    def failed(self, job_id: int, reason: str, tag: str, to) -> None:
        self._last_progress.pop(job_id, None)
        self.send("/audiohost/job/failed", [job_id, clip(reason), tag], to)

    def cancelled(self, job_id: int, tag: str, to) -> None:
        self._last_progress.pop(job_id, None)
        self.send("/audiohost/job/cancelled", [job_id, tag], to)

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
