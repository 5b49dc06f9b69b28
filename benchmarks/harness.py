"""Shared helpers for the audiohost benchmarks.

* :class:`OscClient` - one sending socket, one receiving socket (its port is the daemon's
  ``--reply-port``) and a thread that timestamps every reply the moment it arrives.
* :class:`Daemon` - ``audiohost serve`` as a subprocess on a free loopback port, started,
  waited for, measured (/proc/<pid>/status) and stopped.
* :func:`run_cli` - one ``audiohost`` CLI process, time-bounded.
* small checks (:func:`check_audio`) and statistics (:func:`summary`).

Every wait is bounded and raises :class:`BenchError`; every process started here is
registered and killed by :func:`kill_all` (run.py calls it in a ``finally``), and is also
tied to our life with PR_SET_PDEATHSIG so a killed benchmark leaves no daemon behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

REPO = Path(__file__).resolve().parents[1]


class BenchError(RuntimeError):
    """A benchmark step did not do what it should have; no number is reported for it."""


# ---------------------------------------------------------------------------- processes
_PROCS: list[subprocess.Popen] = []


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort only; kill_all is the real cleanup
        pass


def popen(args: Sequence[str], env: dict, **kw) -> subprocess.Popen:
    proc = subprocess.Popen(list(args), env=env, preexec_fn=_die_with_parent, **kw)
    _PROCS.append(proc)
    return proc


def kill_all() -> None:
    """Terminate (then kill) every process this module started that is still running."""
    for proc in _PROCS:
        if proc.poll() is None:
            try:
                proc.terminate()
            except OSError:
                pass
    deadline = time.monotonic() + 20
    for proc in _PROCS:
        if proc.poll() is None:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_env(cache: Path, threads: int) -> dict:
    """The environment every audiohost process gets: the shared tiny-model cache, no hub, and
    the same torch intra-op thread count everywhere (0 = leave torch's default)."""
    env = dict(os.environ)
    env["AUDIOHOST_CACHE"] = str(cache)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    if threads > 0:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    else:
        env.pop("OMP_NUM_THREADS", None)
        env.pop("MKL_NUM_THREADS", None)
    return env


def cli_command(*args: str) -> list[str]:
    """``audiohost ARGS`` through the installed console script when there is one."""
    exe = Path(sys.executable).with_name("audiohost")
    if exe.exists():
        return [str(exe), *args]
    return [sys.executable, "-m", "host", *args]


def run_cli(args: Sequence[str], env: dict, timeout: float, cwd: Optional[Path] = None) -> tuple[float, str]:
    """Run one CLI process to completion; returns (wall seconds, output). Non-zero exit raises."""
    t0 = time.perf_counter()
    proc = popen(cli_command(*args), env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BenchError(f"audiohost {' '.join(args)}: no exit within {timeout:.0f} s")
    wall = time.perf_counter() - t0
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"audiohost {' '.join(args)} exited {proc.returncode}:\n{text[-2000:]}")
    return wall, text


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, ... of a live process, in kB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.startswith("Vm"):
                out[key] = int(value.split()[0])
    return out


# ---------------------------------------------------------------------------- OSC
@dataclass(frozen=True)
class Msg:
    t: float  # time.perf_counter() when the datagram was read
    address: str
    args: tuple


class OscClient:
    """Sends to one daemon; receives on ``self.port`` (pass it as the daemon's --reply-port,
    or subscribe it). A thread reads and timestamps every datagram."""

    def __init__(self, name: str = "client"):
        self.name = name
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.rx.bind(("127.0.0.1", 0))
        self.rx.settimeout(0.2)
        self.port = self.rx.getsockname()[1]
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.target: Optional[tuple[str, int]] = None
        self.messages: list[Msg] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name=f"osc-{name}", daemon=True)
        self._thread.start()

    def connect(self, port: int) -> None:
        self.target = ("127.0.0.1", port)

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.rx.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.perf_counter()
            try:
                msg = OscMessage(data)
                item = Msg(t, msg.address, tuple(msg.params))
            except Exception:  # noqa: BLE001 - a reply we cannot parse is a finding, keep it
                item = Msg(t, "<unparsable>", (data,))
            with self._cond:
                self.messages.append(item)
                self._cond.notify_all()

    def send(self, address: str, *args) -> float:
        """Send one message; returns the perf_counter time just before the datagram left."""
        if self.target is None:
            raise BenchError(f"{self.name}: not connected")
        b = OscMessageBuilder(address=address)
        for a in args:
            b.add_arg(a)
        data = b.build().dgram
        t = time.perf_counter()
        self.tx.sendto(data, self.target)
        return t

    def mark(self) -> int:
        """A cursor: waits with ``since=mark()`` only look at replies that arrive after now."""
        with self._cond:
            return len(self.messages)

    def wait_for(self, pred: Callable[[Msg], bool], timeout: float, since: int = 0, what: str = "reply") -> Msg:
        deadline = time.monotonic() + timeout
        i = since
        with self._cond:
            while True:
                while i < len(self.messages):
                    m = self.messages[i]
                    i += 1
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = [(m.address, m.args) for m in self.messages[-6:]]
                    raise BenchError(f"{self.name}: no {what} within {timeout:.0f} s (last replies: {tail})")
                self._cond.wait(min(left, 0.5))

    def collect(self, pred: Callable[[Msg], bool], count: int, timeout: float, since: int = 0,
                fail: Optional[Callable[[Msg], bool]] = None, what: str = "replies") -> list[Msg]:
        """Wait until ``count`` replies match ``pred``; a reply matching ``fail`` raises at once."""
        deadline = time.monotonic() + timeout
        found: list[Msg] = []
        i = since
        with self._cond:
            while True:
                while i < len(self.messages):
                    m = self.messages[i]
                    i += 1
                    if fail is not None and fail(m):
                        raise BenchError(f"{self.name}: {m.address} {m.args}")
                    if pred(m):
                        found.append(m)
                        if len(found) == count:
                            return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"{self.name}: {len(found)} of {count} {what} within {timeout:.0f} s")
                self._cond.wait(min(left, 0.5))

    def request(self, address: str, *args, reply: str, timeout: float = 10.0) -> Msg:
        """Send and wait for the first reply at ``reply`` (or an error)."""
        since = self.mark()
        self.send(address, *args)
        m = self.wait_for(lambda m: m.address in (reply, "/audiohost/error"), timeout, since, what=reply)
        if m.address == "/audiohost/error":
            raise BenchError(f"{address} {args}: refused: {m.args}")
        return m

    def stats(self) -> dict[str, int]:
        m = self.request("/audiohost/stats", reply="/audiohost/stats")
        keys = ("jobs_done", "denoise_calls", "malformed", "refused", "queued")
        if len(m.args) < len(keys):  # later fields (dropped datagrams, replicas) are appended after these
            raise BenchError(f"/audiohost/stats replied {m.args}")
        return dict(zip(keys, (int(a) for a in m.args)))

    def clear(self) -> None:
        """Forget received replies (keeps memory flat over long runs); cursors become invalid."""
        with self._cond:
            self.messages.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.rx.close()
        self.tx.close()


def is_failure(m: Msg) -> bool:
    return m.address in ("/audiohost/job/failed", "/audiohost/error", "/audiohost/job/cancelled", "<unparsable>")


# ---------------------------------------------------------------------------- the daemon
class Daemon:
    """``audiohost serve --model tiny`` in its own process, replying to ``client``."""

    def __init__(self, name: str, project: Path, state_dir: Path, client: OscClient, env: dict, batch_size: int, extra: Sequence[str] = ()):
        self.name = name
        self.project = project
        self.state_dir = state_dir
        self.client = client
        self.env = env
        self.port = free_udp_port()
        self.args = cli_command(
            "serve", "--project", str(project), "--model", "tiny", "--osc-port", str(self.port),
            "--reply-port", str(client.port), "--state-dir", str(state_dir), "--batch-size", str(batch_size), *extra,
        )
        self.batch_size = batch_size
        self.proc: Optional[subprocess.Popen] = None
        self.log = state_dir / "stdout.log"
        self.hwm_kb = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> "Daemon":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.proc = popen(self.args, self.env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        self.client.connect(self.port)
        return self

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Until it answers ping and has logged "ready" (the model is loaded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"daemon {self.name} exited {self.proc.returncode}: {self.tail()}")
            try:
                self.client.request("/audiohost/ping", reply="/audiohost/pong", timeout=0.5)
                if "host.daemon: ready" in self.tail(20000):
                    return
            except BenchError:
                pass
            time.sleep(0.2)
        raise BenchError(f"daemon {self.name} not ready within {timeout:.0f} s: {self.tail()}")

    def tail(self, n: int = 2000) -> str:
        try:
            return self.log.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def status(self) -> dict[str, int]:
        if self.proc is None or self.proc.poll() is not None:
            raise BenchError(f"daemon {self.name} is not running: {self.tail()}")
        s = proc_status(self.pid)
        self.hwm_kb = max(self.hwm_kb, s.get("VmHWM", 0))
        return s

    def alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise BenchError(f"daemon {self.name} died: {self.tail()}")

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            try:
                self.status()  # last VmHWM reading
            except (BenchError, OSError):
                pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise BenchError(f"daemon {self.name} did not stop within {timeout:.0f} s of SIGTERM")
        return self.proc.returncode


# ---------------------------------------------------------------------------- checks
def check_audio(path: str | Path, frames: int, rate: int) -> None:
    """The file exists, soundfile reads it, and it has the expected rate and length."""
    import numpy as np
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise BenchError(f"{p}: output file missing")
    data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    if sr != rate:
        raise BenchError(f"{p}: {sr} Hz, expected {rate}")
    if data.shape[0] != frames:
        raise BenchError(f"{p}: {data.shape[0]} frames, expected {frames}")
    if not np.all(np.isfinite(data)):
        raise BenchError(f"{p}: non-finite samples")


# ---------------------------------------------------------------------------- statistics
def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    xs = sorted(values)
    if not xs:
        raise BenchError("percentile of nothing")
    k = (len(xs) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


@dataclass(frozen=True)
class Summary:
    median: float
    lo: float
    hi: float
    n: int

    def fmt(self, digits: int = 2, unit: str = "") -> str:
        """``1.23x (1.10–1.40, n=3)``: the median, then min–max over the repetitions."""
        f = f"{{:.{digits}f}}"
        spread = f"{f.format(self.lo)}–{f.format(self.hi)}, n={self.n}" if self.n > 1 else "one run"
        return f"{f.format(self.median)}{unit} ({spread})"


def summary(values: Sequence[float]) -> Summary:
    if not values:
        raise BenchError("no measurements")
    return Summary(statistics.median(values), min(values), max(values), len(values))
