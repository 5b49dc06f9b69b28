"""A DAW stand-in for daemon tests and benchmarks: starts ``audiohost serve`` as a separate process
on free loopback ports and talks to it over real UDP OSC.

The tests read replies as ``(address, args)`` pairs; every reply also carries ``.t``, the
``time.perf_counter()`` at which its datagram was read, which the benchmarks time with. Replies
are read on the calling thread (no receiver thread): a request-then-wait reads its reply the
moment ``recvfrom`` returns.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Reply(tuple):
    """One reply: ``(address, args)`` as the tests index it, plus ``.t`` (perf_counter when read)."""

    def __new__(cls, address: str, args: list, t: float):
        self = super().__new__(cls, (address, args))
        self.t = t
        return self

    @property
    def address(self) -> str:
        return self[0]

    @property
    def args(self) -> list:
        return self[1]


class OscPeer:
    """Sends requests from one socket and listens for replies on the daemon's reply port."""

    def __init__(self, daemon_port: int):
        self.daemon = ("127.0.0.1", daemon_port)
        self.listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.listen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # bursts of replies are not dropped
        self.listen.bind(("127.0.0.1", 0))
        self.reply_port = self.listen.getsockname()[1]
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.received: list[tuple[str, list]] = []

    def send(self, address: str, *args) -> float:
        """Send one message; returns the perf_counter time just before the datagram left."""
        msg = OscMessageBuilder(address=address)
        for a in args:
            msg.add_arg(a)
        data = msg.build().dgram
        t = time.perf_counter()
        self.out.sendto(data, self.daemon)
        return t

    def send_raw(self, data: bytes) -> None:
        self.out.sendto(data, self.daemon)

    def poll(self, timeout: float) -> Optional[tuple[str, list]]:
        self.listen.settimeout(timeout)
        try:
            data, _ = self.listen.recvfrom(65536)
        except socket.timeout:
            return None
        t = time.perf_counter()
        try:
            msg = OscMessage(data)
            item = Reply(msg.address, list(msg.params), t)
        except Exception:  # noqa: BLE001 - a reply that does not parse is a finding: keep it
            item = Reply("<unparsable>", [data], t)
        self.received.append(item)
        return item

    def mark(self) -> int:
        """A cursor: ``wait_for(..., since=peer.mark())`` looks only at replies read after now."""
        return len(self.received)

    def wait_for(self, predicate, timeout: float, since: int = 0):
        """The first reply (already received after ``since``, or arriving within ``timeout``)
        matching ``predicate``."""
        for item in self.received[since:]:
            if predicate(item):
                return item
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = self.poll(max(0.01, deadline - time.monotonic()))
            if item is not None and predicate(item):
                return item
        raise AssertionError(f"no matching reply within {timeout}s; got {self.received[-10:]}")

    def collect(self, predicate, count: int, timeout: float, since: int = 0, fail: Optional[Callable] = None) -> list:
        """``count`` replies matching ``predicate`` (after ``since``, or arriving within
        ``timeout``); a reply matching ``fail`` raises AssertionError at once."""
        found = []
        i = since
        deadline = time.monotonic() + timeout
        while True:
            while i < len(self.received):
                item = self.received[i]
                i += 1
                if fail is not None and fail(item):
                    raise AssertionError(f"{item[0]} {item[1]}")
                if predicate(item):
                    found.append(item)
                    if len(found) == count:
                        return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(found)} of {count} replies within {timeout}s; got {self.received[-10:]}")
            self.poll(max(0.01, left))

    def request(self, address: str, *args, reply: str, timeout: float = 10.0):
        """Send and wait for the first reply at ``reply``; an ``/audiohost/error`` raises."""
        since = self.mark()
        self.send(address, *args)
        m = self.wait_for(lambda m: m[0] in (reply, "/audiohost/error"), timeout, since)
        if m[0] == "/audiohost/error":
            raise AssertionError(f"{address} {args}: refused: {m[1]}")
        return m

    def stats(self) -> dict[str, int]:
        """``/audiohost/stats`` as a dict (jobs_done, denoise_calls, malformed, refused, queued, dropped)."""
        keys = ("jobs_done", "denoise_calls", "malformed", "refused", "queued", "dropped")
        args = self.request("/audiohost/stats", reply="/audiohost/stats")[1]
        return dict(zip(keys, (int(a) for a in args)))

    def drain(self) -> None:
        """Forget every reply received so far, including any still waiting in the socket."""
        while self.poll(0.05) is not None:
            pass
        self.received.clear()

    def ping(self, timeout: float = 5.0) -> list:
        self.send("/audiohost/ping")
        return self.wait_for(lambda m: m[0] == "/audiohost/pong", timeout)[1]

    def close(self) -> None:
        self.listen.close()
        self.out.close()


def _die_with_parent() -> None:  # in the child between fork and exec (Linux; elsewhere a no-op)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort: stop() is the real cleanup
        pass


class Daemon:
    """``audiohost serve`` in its own process.

    ``env`` replaces the inherited environment (the benchmarks pin the model cache and thread
    count); ``die_with_parent`` kills the daemon if this process dies first (Linux), so an
    interrupted benchmark leaves nothing running."""

    def __init__(self, projects: list[Path], state_dir: Path, reply_port: int, extra: list[str] = (), config: Optional[Path] = None,
                 env: Optional[dict] = None, die_with_parent: bool = False):
        self.port = free_udp_port()
        self.args = [sys.executable, "-m", "host", "serve", "--model", "tiny", "--osc-port", str(self.port), "--reply-port", str(reply_port), "--state-dir", str(state_dir)]
        for p in projects:
            self.args += ["--project", str(p)]
        if config:
            self.args += ["--config", str(config)]
        self.args += list(extra)
        self.env = env
        self.die_with_parent = die_with_parent
        self.log = state_dir / "stdout.log"
        state_dir.mkdir(parents=True, exist_ok=True)
        self.proc: Optional[subprocess.Popen] = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> "Daemon":
        self.log_start = self.log.stat().st_size if self.log.exists() else 0  # a restart appends to the same log
        self.proc = subprocess.Popen(
            self.args, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=dict(self.env if self.env is not None else os.environ),
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )
        return self

    def wait_ready(self, peer: OscPeer, timeout: float = 90.0) -> None:
        """Until it answers ping and has logged that the model is loaded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"daemon exited: {self.log.read_text()[-2000:]}"
            try:
                peer.ping(timeout=0.5)
                if b"INFO host.daemon: ready" in self.log.read_bytes()[self.log_start :]:
                    return
            except AssertionError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"daemon not ready: {self.log.read_text()[-2000:]}")

    def tail(self, n: int = 2000) -> str:
        """The end of what it printed (since the last start)."""
        try:
            return self.log.read_bytes()[self.log_start :][-n:].decode(errors="replace")
        except OSError:
            return ""

    def memory(self) -> dict[str, int]:
        """Its ``Vm*`` lines from /proc/<pid>/status (VmRSS, VmHWM, ...), in kB (Linux)."""
        assert self.proc is not None and self.proc.poll() is None, f"daemon is not running: {self.tail()}"
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.startswith("Vm"):
                    out[key] = int(value.split()[0])
        return out

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else 0
