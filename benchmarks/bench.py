"""The run's shared state, handed to every row function: settings, the scratch folder, and the
things rows share, each made on first use so any row can run alone (``run.py --only 5``):

* ``bench.daemon("bs1", batch_size=1)`` - an ``audiohost serve --model tiny`` subprocess on free
  loopback ports, with its scratch project, reached through the tests' :class:`OscPeer`;
  started, waited for and warmed with one job the first time it is asked for;
* ``bench.model()`` - the tiny model loaded in this process (``host.engine.models.load_model``);
* ``bench.baseline()`` - diffusers' own pipeline in this process (``benchmarks/baseline.py``).

Rows that measure in this process call ``bench.stop_daemons()`` first, so idle daemons do not
share the machine with them.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from harness import BenchError, check_audio, loadavg, log, register, summary
from tests.oscpeer import Daemon, OscPeer

OUT_RATE = 48000  # the projects' delivery rate (the host's default)
MODEL_RATE = 16000  # the tiny model's vocoder rate
PROMPT = "footsteps of a person walking on loose gravel, close up"
NEGATIVE = "low quality, average quality, distorted"


@dataclass
class Config:
    quick: bool
    jobs: int  # N: jobs per repetition, rows 1 and 2
    reps: int  # K: repetitions per ratio
    overhead_reps: int  # row 1's repetitions: its 5 % target is small beside this machine's noise
    threads: int  # torch intra-op threads in every process (0: torch's default)
    duration: float  # seconds: a multiple of 0.08 so host and diffusers use the same latent length
    steps: int
    guidance: float = 2.5
    batch_jobs: int = 8
    blocker_duration: float = 1.2
    pings: int = 500
    submits: int = 200
    drops: int = 5
    small_total: int = 100
    small_first: int = 10
    small_duration: float = 0.4
    small_steps: int = 2
    sweep: tuple = (1, 2, 4, 8)
    sweep_reps: int = 2
    effects_seconds: float = 60.0
    thread_probe_reps: int = 3
    stem_minutes: float = 10.0  # row 8: the long stem
    stem_compare_minutes: float = 2.0  # row 8: the shorter stem its memory is compared with
    stem_steps: int = 4  # row 8: restyle steps at strength 0.5 (2 denoising steps per window)
    accept_gb: float = 1.5  # row 9: the stem accepted while pings are timed
    profile_seconds: float = 1.0  # the daemon profile: extra seconds sampled around the burst

    @property
    def frames(self) -> int:
        return round(self.duration * OUT_RATE)


def make_config(quick: bool, jobs: Optional[int], reps: Optional[int], threads: int) -> Config:
    if quick:
        c = Config(quick=True, jobs=jobs or 2, reps=reps or 1, overhead_reps=reps or 1, threads=threads, duration=0.8, steps=5,
                   pings=100, submits=40, drops=2, small_total=30, small_first=10, sweep=(1, 8), sweep_reps=1,
                   effects_seconds=20.0, thread_probe_reps=1, stem_minutes=1.0, stem_compare_minutes=0.5, accept_gb=0.3)
    else:
        c = Config(quick=False, jobs=jobs or 4, reps=reps or 3, overhead_reps=max(reps or 3, 7), threads=threads, duration=2.0, steps=20)
    if c.jobs < 1 or c.reps < 1:
        raise SystemExit("--jobs and --reps must be >= 1")
    return c


# ---------------------------------------------------------------- scratch projects
def write_preset(project: Path, name: str, **fields) -> None:
    lines = [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v!r}" for k, v in fields.items()]
    (project / "presets").mkdir(parents=True, exist_ok=True)
    (project / "presets" / f"{name}.toml").write_text("\n".join(lines) + "\n")


def make_daemon_project(root: Path, cfg: Config) -> Path:
    """A project served by one daemon: no cue sheet (nothing renders at start), four presets."""
    root.mkdir(parents=True)
    common = dict(kind="foley", prompt=PROMPT, negative_prompt=NEGATIVE, guidance=cfg.guidance, takes=1)
    write_preset(root, "bench", duration=cfg.duration, steps=cfg.steps, **common)
    # a different duration: a different batch group, so it never batches with "bench"
    write_preset(root, "blocker", duration=cfg.blocker_duration, steps=max(cfg.steps, 20), **common)
    write_preset(root, "long", duration=cfg.duration, steps=999, **common)  # cancelled long before it ends
    write_preset(root, "small", duration=cfg.small_duration, steps=cfg.small_steps, **common)
    return root


# ---------------------------------------------------------------- a daemon and its peer
_STAGES = re.compile(r"job (\d+) \S+: rendered, \d+ takes \(plan ([\d.]+) s, render ([\d.]+) s, finish ([\d.]+) s\)")


@dataclass
class Served:
    """A running daemon, the project it serves and the peer that talks to it."""

    name: str
    project: Path
    state: Path
    daemon: Daemon
    peer: OscPeer
    batch_size: int
    rows: list = field(default_factory=list)  # the rows it served, in order
    hwm_kb: int = 0

    def foley(self, bench: "Bench", preset: str, tag: str, duration: float) -> float:
        """``/audiohost/foley <project> <preset> <duration> <seed> <tag>`` with a fresh seed (the
        seed slot comes after duration, so the duration is sent). Returns the send time."""
        return self.peer.send("/audiohost/foley", self.project.name, preset, float(duration), bench.seed(), tag)

    def wait_done(self, tags: list[str], timeout: float, since: int, frames: int) -> list:
        """All jobs with these tags done, each with one readable take of the right length."""
        want = set(tags)
        failure = ("/audiohost/job/failed", "/audiohost/job/cancelled", "/audiohost/error", "<unparsable>")
        msgs = self.peer.collect(
            lambda m: m[0] == "/audiohost/job/done" and m[1] and m[1][-1] in want, len(want), timeout, since,
            fail=lambda m: m[0] in failure and (m[0] in ("/audiohost/error", "<unparsable>") or (m[1] and m[1][-1] in want)),
        )
        for m in msgs:
            paths = [str(a) for a in m[1][1:-1]]
            if len(paths) != 1:
                raise BenchError(f"job {m[1][0]} ({m[1][-1]}): {len(paths)} files in /job/done, expected 1")
            check_audio(paths[0], frames, OUT_RATE)
        return msgs

    def queued_ids(self, tags: list[str], since: int) -> dict[str, int]:
        want = set(tags)
        found = self.peer.collect(lambda m: m[0] == "/audiohost/job/queued" and m[1][-1] in want, len(want), 30, since)
        return {m[1][-1]: int(m[1][0]) for m in found}

    def burst(self, bench: "Bench", label: str, n: int) -> tuple[float, dict[int, tuple[float, float, float]], float]:
        """N bench jobs in one burst; (seconds from the first request to the last /job/done,
        {job id: (plan, render, finish) seconds as the daemon logged them}, CPU seconds the
        daemon used meanwhile, all threads)."""
        cfg = bench.cfg
        peer = self.peer
        since = peer.mark()
        tags = [f"{label}-{i}" for i in range(n)]
        s0 = peer.stats()
        cpu0 = self.cpu()
        t0 = None
        for tag in tags:
            t = self.foley(bench, "bench", tag, cfg.duration)
            t0 = t if t0 is None else t0
        msgs = self.wait_done(tags, timeout=60 + 20 * n * cfg.duration * cfg.steps / 10, since=since, frames=cfg.frames)
        t1 = max(m.t for m in msgs)
        cpu = self.cpu() - cpu0
        calls = peer.stats()["denoise_calls"] - s0["denoise_calls"]
        if self.batch_size == 1 and calls != n:
            raise BenchError(f"{label}: {calls} denoising calls for {n} jobs at batch size 1")
        if not 1 <= calls <= n:
            raise BenchError(f"{label}: {calls} denoising calls for {n} jobs")
        ids = {int(m[1][0]) for m in msgs}
        return t1 - t0, self.stage_times(ids), cpu

    def cpu(self) -> float:
        """CPU seconds (user + system, all threads) the daemon has used so far."""
        fields = Path(f"/proc/{self.daemon.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stage_times(self, ids: set[int], timeout: float = 5.0) -> dict[int, tuple[float, float, float]]:
        """The stage times the daemon logged for these jobs (the log line follows /job/done)."""
        deadline = time.monotonic() + timeout
        while True:
            found = {int(m.group(1)): tuple(float(m.group(k)) for k in (2, 3, 4))
                     for m in _STAGES.finditer(self.daemon.tail(1 << 22)) if int(m.group(1)) in ids}
            if len(found) == len(ids) or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def memory(self) -> dict[str, int]:
        m = self.daemon.memory()
        self.hwm_kb = max(self.hwm_kb, m.get("VmHWM", 0))
        return m

    def alive(self) -> None:
        if self.daemon.proc.poll() is not None:
            raise BenchError(f"daemon {self.name} died: {self.daemon.tail()}")

    def stop(self) -> None:
        if self.daemon.proc.poll() is None:
            try:
                self.memory()  # the last VmHWM reading
            except (AssertionError, OSError):
                pass
        code = self.daemon.stop()
        self.peer.close()
        if code != 0:
            raise BenchError(f"daemon {self.name} exited {code} on SIGTERM: {self.daemon.tail()}")


# ---------------------------------------------------------------- the run's state
class Bench:
    def __init__(self, cfg: Config, work: Path, cache: Path, env: dict):
        self.cfg = cfg
        self.work = work
        self.cache = cache
        self.env = env
        self.load: list[tuple[str, str]] = []  # (phase, load average when it began)
        self.notes: list[str] = []  # free-form notes for RESULTS.md
        self.sections: list[tuple[str, str]] = []  # (title, markdown) sections after the table
        self.served: dict[str, Served] = {}
        self.row: str = ""  # the row running now (for the daemons' history)
        self._seeds = itertools.count(1000)
        self._model = None
        self._baseline = None

    def seed(self) -> int:
        return next(self._seeds)

    def phase(self, name: str) -> None:
        self.load.append((name, loadavg()))

    # ---- daemons
    def daemon(self, name: str = "bs1", batch_size: int = 1, extra: tuple = ()) -> Served:
        """The named daemon, started (and warmed with one job) on first use."""
        s = self.served.get(name)
        if s is None:
            s = self._start(name, batch_size, extra)
            self.served[name] = s
        s.alive()
        if not s.rows or s.rows[-1] != self.row:
            s.rows.append(self.row)
        return s

    def _start(self, name: str, batch_size: int, extra: tuple) -> Served:
        project = make_daemon_project(self.work / f"proj_{name}", self.cfg)
        state = self.work / f"state_{name}"
        peer = OscPeer(0)
        daemon = Daemon([project], state, peer.reply_port, extra=["--batch-size", str(batch_size), *extra], env=self.env, die_with_parent=True)
        daemon.start()
        register(daemon.proc)
        peer.daemon = ("127.0.0.1", daemon.port)
        log(f"daemon {name}: starting (batch size {batch_size})")
        daemon.wait_ready(peer, timeout=300)
        s = Served(name, project, state, daemon, peer, batch_size)
        s.burst(self, f"warm-{name}", 1)  # the first render in a process pays for lazy initialisation
        log(f"daemon {name}: ready and warm")
        return s

    def stop_daemons(self) -> None:
        for name in list(self.served):
            s = self.served.pop(name)
            s.stop()
            log(f"daemon {name}: stopped")

    def kill_daemons(self) -> None:
        for s in self.served.values():
            try:
                s.daemon.stop()
                s.peer.close()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        self.served.clear()

    # ---- in this process
    def model(self):
        """The tiny model loaded in this process through the host's own loader."""
        if self._model is None:
            from host.engine.models import load_model

            self._model = load_model("tiny", device="cpu")
        return self._model

    def checkpoint(self) -> Path:
        """The tiny model's diffusers folder (built by the host on first use, in the shared cache)."""
        from host.engine.tiny import tiny_path

        return tiny_path()

    def baseline(self):
        if self._baseline is None:
            from baseline import DiffusersLoop, Unavailable

            cfg = self.cfg
            try:
                self._baseline = DiffusersLoop(self.checkpoint(), PROMPT, NEGATIVE, cfg.duration, cfg.steps, cfg.guidance, self.work / "baseline")
            except Unavailable as err:
                raise BenchError(f"the diffusers baseline is not available: {err}") from None
            self.baseline_batch(1)  # warm
        return self._baseline

    def baseline_batch(self, n: int) -> tuple[float, list[float], float]:
        """N diffusers renders back to back; (wall seconds, seconds of each call, CPU seconds of
        this process meanwhile). Files checked."""
        base = self._baseline
        times, paths = [], []
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for _ in range(n):
            t = time.perf_counter()
            paths.append(base.render(self.seed()))
            times.append(time.perf_counter() - t)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        for p in paths:
            check_audio(p, base.samples, MODEL_RATE)
        return wall, times, cpu


def median_of(values) -> float:
    return summary(list(values)).median


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))
