"""What every benchmark row shares: the row value, statistics, processes and checks.

The OSC peer and the daemon launcher are the tests' own (``tests/oscpeer.py``); this module
adds what only the benchmarks need:

* :class:`Row` - one line of RESULTS.md, the value every row function returns;
* :class:`Summary` / :func:`summary` / :func:`percentile` - medians with their spread;
* :func:`popen` / :func:`kill_all` - every process a benchmark starts is registered here and
  killed at the end, and dies with the benchmark (PR_SET_PDEATHSIG) if it is killed;
* :func:`run_cli` - one ``audiohost`` command, time-bounded; :func:`check_audio` - a file that
  exists, reads, and has the expected rate and length.

Every wait is bounded and raises :class:`BenchError` (or the peer's AssertionError): a step that
did not do what it should have reports no number.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.oscpeer import _die_with_parent  # noqa: E402


class BenchError(RuntimeError):
    """A benchmark step did not do what it should have; no number is reported for it."""


@dataclass
class Row:
    """One row of RESULTS.md. ``passed`` is None where the row has no target."""

    id: str  # "1", "3b", "8"
    measurement: str  # what is measured, in a few words
    result: str  # the number(s), with spread
    target: str = ""  # e.g. "<= 1.05"
    passed: Optional[bool] = None
    detail: str = ""  # the figures behind the result
    how: str = ""  # how it is measured (RESULTS.md, "How each row is measured")

    @property
    def verdict(self) -> str:
        return "" if self.passed is None else ("PASS" if self.passed else "FAIL")


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


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------- processes
_PROCS: list[subprocess.Popen] = []


def popen(args: Sequence[str], env: dict, **kw) -> subprocess.Popen:
    """Start a process that is registered for :func:`kill_all` and dies with this one."""
    proc = subprocess.Popen(list(args), env=env, preexec_fn=_die_with_parent, **kw)
    _PROCS.append(proc)
    return proc


def register(proc) -> None:
    """A process started elsewhere (a daemon) that :func:`kill_all` should also end."""
    _PROCS.append(proc)


def kill_all() -> None:
    """Terminate (then kill) every registered process that is still running."""
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


def bench_env(cache: Path, threads: int) -> dict:
    """The environment every audiohost process gets: this worktree's code, the shared tiny-model
    cache, no hub, and the same torch intra-op thread count everywhere (0 = torch's default)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
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
    """``audiohost ARGS`` as ``python -m host`` (this worktree's code, through PYTHONPATH)."""
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


# ---------------------------------------------------------------------------- checks
def check_audio(path: str | Path, frames: int, rate: int, channels: Optional[int] = None) -> None:
    """The file exists, soundfile reads it, and it has the expected rate and length."""
    import numpy as np
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise BenchError(f"{p}: output file missing")
    info = sf.info(str(p))
    if info.samplerate != rate:
        raise BenchError(f"{p}: {info.samplerate} Hz, expected {rate}")
    if info.frames != frames:
        raise BenchError(f"{p}: {info.frames} frames, expected {frames}")
    if channels is not None and info.channels != channels:
        raise BenchError(f"{p}: {info.channels} channels, expected {channels}")
    for block in sf.blocks(str(p), blocksize=1 << 20, dtype="float32", always_2d=True):
        if not np.all(np.isfinite(block)):
            raise BenchError(f"{p}: non-finite samples")
