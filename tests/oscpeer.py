"""A DAW stand-in for daemon tests: starts ``audiohost serve`` as a separate process on free
loopback ports and talks to it over real UDP OSC."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OscPeer:
    """Sends requests from one socket and listens for replies on the daemon's reply port."""

    def __init__(self, daemon_port: int):
        self.daemon = ("127.0.0.1", daemon_port)
        self.listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.listen.bind(("127.0.0.1", 0))
        self.reply_port = self.listen.getsockname()[1]
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.received: list[tuple[str, list]] = []

    def send(self, address: str, *args) -> None:
        msg = OscMessageBuilder(address=address)
        for a in args:
            msg.add_arg(a)
        self.out.sendto(msg.build().dgram, self.daemon)

    def send_raw(self, data: bytes) -> None:
        self.out.sendto(data, self.daemon)

    def poll(self, timeout: float) -> Optional[tuple[str, list]]:
        self.listen.settimeout(timeout)
        try:
            data, _ = self.listen.recvfrom(65536)
        except socket.timeout:
            return None
        msg = OscMessage(data)
        item = (msg.address, list(msg.params))
        self.received.append(item)
        return item

    def wait_for(self, predicate, timeout: float):
        """The first reply (already received or arriving within ``timeout``) matching ``predicate``."""
        for item in self.received:
            if predicate(item):
                return item
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = self.poll(max(0.01, deadline - time.monotonic()))
            if item is not None and predicate(item):
                return item
        raise AssertionError(f"no matching reply within {timeout}s; got {self.received[-10:]}")

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


class Daemon:
    """``audiohost serve`` in its own process."""

    def __init__(self, projects: list[Path], state_dir: Path, reply_port: int, extra: list[str] = (), config: Optional[Path] = None):
        self.port = free_udp_port()
        self.args = [sys.executable, "-m", "host", "serve", "--model", "tiny", "--osc-port", str(self.port), "--reply-port", str(reply_port), "--state-dir", str(state_dir)]
        for p in projects:
            self.args += ["--project", str(p)]
        if config:
            self.args += ["--config", str(config)]
        self.args += list(extra)
        self.log = state_dir / "stdout.log"
        state_dir.mkdir(parents=True, exist_ok=True)
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "Daemon":
        self.log_start = self.log.stat().st_size if self.log.exists() else 0  # a restart appends to the same log
        self.proc = subprocess.Popen(self.args, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=dict(os.environ))
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
