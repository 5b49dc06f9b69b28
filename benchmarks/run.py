#!/usr/bin/env python
"""audiohost benchmarks: ``python benchmarks/run.py [--quick] [--jobs N] [--reps K]``.

Runs on the built-in random-weight ``tiny`` model, CPU only, and writes benchmarks/RESULTS.md.
Every row is a ratio of two things measured in this run, as the median over K repetitions with
the min-max spread. Rows 1, 2, 3 (daemon part), 5 and 6 go through the product's real entry
points: ``audiohost serve`` over OSC and ``audiohost render``. Every step checks that it ran
(reply counts, files on disk with the right rate and length, denoise-call counts) and exits
non-zero instead of printing a number when it did not.

  1  host overhead      N foley jobs over OSC to a warm daemon (--batch-size 1) vs the same N
                        renders by diffusers' AudioLDMPipeline in a loop in one warm process
  2  warm vs cold       N one-shot ``audiohost render --only CUE --force`` processes vs row 1's
                        warm daemon time for the same N jobs
  3  batching           8 compatible jobs queued behind a blocker, daemon --batch-size 8 vs 1;
                        plus an in-process Runner sweep over batch sizes 1, 2, 4, 8
  4  effects/delivery   footsteps-gravel chain + 44.1k->48k resample + finish() on 60 s stereo
  5  responsiveness     OSC ack latency (ping, job submission) during a render; drop-to-queued
  6  memory             daemon VmHWM; RSS after 10 vs 100 small jobs
  +  a cProfile of one job in-process, with the denoising loop's time taken out
"""

from __future__ import annotations

import argparse
import os
import sys

# ---------------------------------------------------------------- options (before torch loads)
def _options(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke version: small jobs, fewer repetitions (about 2 minutes)")
    p.add_argument("--jobs", type=int, default=None, help="N: jobs per repetition in rows 1 and 2 (default 4, quick 2)")
    p.add_argument("--reps", type=int, default=None, help="K: repetitions per measurement (default 3, quick 1)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads for every process (daemon, CLI, in-process); 0 = torch's default. "
                        "Default 1: see 'threads' in RESULTS.md for why")
    p.add_argument("--out", default=None, help="where to write the results (default benchmarks/RESULTS.md)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (projects, renders, daemon logs)")
    return p.parse_args(argv)


OPTS = _options() if __name__ == "__main__" else None
if OPTS is not None and OPTS.threads > 0:
    os.environ["OMP_NUM_THREADS"] = str(OPTS.threads)
    os.environ["MKL_NUM_THREADS"] = str(OPTS.threads)

import contextlib  # noqa: E402
import datetime  # noqa: E402
import io  # noqa: E402
import itertools  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402
from harness import BenchError, Daemon, OscClient, summary  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT_RATE = 48000  # the projects' delivery rate (the host's default)
MODEL_RATE = 16000  # the tiny model's vocoder rate


# ---------------------------------------------------------------- configuration
@dataclass
class Config:
    quick: bool
    jobs: int
    reps: int
    threads: int
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

    @property
    def frames(self) -> int:
        return round(self.duration * OUT_RATE)


def make_config(o) -> Config:
    if o.quick:
        c = Config(quick=True, jobs=o.jobs or 2, reps=o.reps or 1, threads=o.threads, duration=0.8, steps=5,
                   blocker_duration=1.2, pings=100, submits=40, drops=2, small_total=30, small_first=10,
                   sweep=(1, 8), sweep_reps=1, effects_seconds=20.0, thread_probe_reps=1)
    else:
        c = Config(quick=False, jobs=o.jobs or 4, reps=o.reps or 3, threads=o.threads, duration=2.0, steps=20)
    if c.jobs < 1 or c.reps < 1:
        raise SystemExit("--jobs and --reps must be >= 1")
    return c


PROMPT = "footsteps of a person walking on loose gravel, close up"
NEGATIVE = "low quality, average quality, distorted"

_seeds = itertools.count(1000)


def next_seed() -> int:
    return next(_seeds)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Row:
    number: str
    name: str
    result: str
    detail: str
    target: str = ""
    verdict: str = ""


@dataclass
class Results:
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    sections: dict = field(default_factory=dict)
    load: list = field(default_factory=list)  # (phase, loadavg)


# ---------------------------------------------------------------- scratch projects
def write_preset(project: Path, name: str, **fields) -> None:
    lines = []
    for k, v in fields.items():
        lines.append(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"')
    (project / "presets").mkdir(parents=True, exist_ok=True)
    (project / "presets" / f"{name}.toml").write_text("\n".join(lines) + "\n")


def make_daemon_project(root: Path, cfg: Config) -> Path:
    """A project served by one daemon: no cue sheet (nothing renders at start), four presets."""
    root.mkdir(parents=True)
    common = dict(kind="foley", prompt=PROMPT, negative_prompt=NEGATIVE, guidance=cfg.guidance, takes=1)
    write_preset(root, "bench", duration=cfg.duration, steps=cfg.steps, **common)
    # a different duration: a different batch group, so it never batches with "bench"
    write_preset(root, "blocker", duration=cfg.blocker_duration, steps=max(cfg.steps, 20), **common)
    write_preset(root, "long", duration=cfg.duration, steps=999, **common)  # cancelled long before it ends; 999 because steps = 1000 passes preset validation but crashes DDIM (IndexError)
    write_preset(root, "small", duration=cfg.small_duration, steps=cfg.small_steps, **common)
    return root


def make_cli_project(root: Path, cfg: Config) -> Path:
    root.mkdir(parents=True)
    cues = []
    for i in range(cfg.jobs):
        cues.append(
            f'[[cue]]\nname = "cue{i}"\nprompt = "{PROMPT}"\nnegative_prompt = "{NEGATIVE}"\n'
            f"duration = {cfg.duration}\nsteps = {cfg.steps}\nguidance = {cfg.guidance}\nseed = {100 + i}\n"
        )
    (root / "cues.toml").write_text("\n".join(cues))
    return root


# ---------------------------------------------------------------- daemon job helpers
def submit_foley(client: OscClient, project: str, preset: str, tag: str, duration: float) -> float:
    """``/audiohost/foley <project> <preset> <duration> <seed> <tag>`` with a fresh seed (the seed
    slot comes after duration, so the preset's duration is sent explicitly). Returns the send time."""
    return client.send("/audiohost/foley", project, preset, float(duration), next_seed(), tag)


def done_paths(m: H.Msg) -> list[str]:
    return [str(a) for a in m.args[1:-1]]


def wait_done(client: OscClient, tags: list[str], timeout: float, since: int, frames: int) -> list[H.Msg]:
    """All jobs with these tags done, each with one readable take of the right length."""
    want = set(tags)
    msgs = client.collect(
        lambda m: m.address == "/audiohost/job/done" and m.args and m.args[-1] in want,
        len(want), timeout, since,
        fail=lambda m: H.is_failure(m) and (not m.args or m.args[-1] in want or m.address == "/audiohost/error"),
        what="/job/done replies",
    )
    if {m.args[-1] for m in msgs} != want:
        raise BenchError(f"done replies for {sorted(m.args[-1] for m in msgs)}, expected {sorted(want)}")
    for m in msgs:
        paths = done_paths(m)
        if len(paths) != 1:
            raise BenchError(f"job {m.args[0]} ({m.args[-1]}): {len(paths)} files in /job/done, expected 1")
        H.check_audio(paths[0], frames, OUT_RATE)
    return msgs


def daemon_batch(d: Daemon, cfg: Config, label: str, n: int) -> float:
    """N bench jobs in one burst; seconds from the first request to the last /job/done."""
    c = d.client
    since = c.mark()
    tags = [f"{label}-{i}" for i in range(n)]
    s0 = c.stats()
    t0 = None
    for tag in tags:
        t = submit_foley(c, d.project.name, "bench", tag, cfg.duration)
        t0 = t if t0 is None else t0
    msgs = wait_done(c, tags, timeout=60 + 20 * n * cfg.duration * cfg.steps / 10, since=since, frames=cfg.frames)
    t1 = max(m.t for m in msgs)
    s1 = c.stats()
    calls = s1["denoise_calls"] - s0["denoise_calls"]
    if d.batch_size == 1 and calls != n:
        raise BenchError(f"{label}: {calls} denoising calls for {n} jobs at batch size 1")
    if not 1 <= calls <= n:
        raise BenchError(f"{label}: {calls} denoising calls for {n} jobs")
    return t1 - t0


# ---------------------------------------------------------------- row 1 baseline: diffusers directly
class DiffusersBaseline:
    def __init__(self, cfg: Config, out_dir: Path):
        import torch
        from diffusers import AudioLDMPipeline
        from diffusers.utils import logging as dlogging

        from host.engine.tiny import tiny_path

        self.torch = torch
        self.cfg = cfg
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        dlogging.set_verbosity_error()
        dlogging.disable_progress_bar()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.pipe = AudioLDMPipeline.from_pretrained(str(tiny_path()))
        self.pipe.set_progress_bar_config(disable=True)
        self.count = 0
        self.expected = int(cfg.duration * MODEL_RATE)

    def render(self, seed: int) -> Path:
        import soundfile as sf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            audio = self.pipe(
                PROMPT, negative_prompt=NEGATIVE, audio_length_in_s=self.cfg.duration,
                num_inference_steps=self.cfg.steps, guidance_scale=self.cfg.guidance,
                generator=self.torch.Generator().manual_seed(seed),
            ).audios[0]
        self.count += 1
        path = self.out_dir / f"baseline_{self.count:04d}.wav"
        sf.write(str(path), audio, MODEL_RATE)
        return path

    def batch(self, n: int) -> float:
        paths = []
        t0 = time.perf_counter()
        for _ in range(n):
            paths.append(self.render(next_seed()))
        t = time.perf_counter() - t0
        for p in paths:
            H.check_audio(p, self.expected, MODEL_RATE)
        return t


# ---------------------------------------------------------------- row 2: cold one-shot CLI
def cold_batch(cli_project: Path, cfg: Config, env: dict) -> tuple[float, list[float]]:
    walls = []
    for i in range(cfg.jobs):
        folder = cli_project / "renders" / "foley" / f"cue{i}"
        before = set(folder.glob("*.wav")) if folder.is_dir() else set()
        wall, out = H.run_cli(["render", str(cli_project), "--model", "tiny", "--only", f"cue{i}", "--force"], env, timeout=300)
        new = set(folder.glob("*.wav")) - before
        if len(new) != 1:
            raise BenchError(f"audiohost render --only cue{i}: {len(new)} new takes, expected 1\n{out[-1500:]}")
        H.check_audio(new.pop(), cfg.frames, OUT_RATE)
        walls.append(wall)
    return sum(walls), walls


# ---------------------------------------------------------------- row 3: batching through the daemon
def batching_round(d: Daemon, cfg: Config, label: str) -> float:
    """A blocker of another duration, then 8 compatible jobs queued behind it. Returns seconds from
    the blocker's /job/done to the last of the 8 (the 8 are all queued by then: checked)."""
    c = d.client
    n = cfg.batch_jobs
    s0 = c.stats()
    since = c.mark()
    btag = f"{label}-blocker"
    submit_foley(c, d.project.name, "blocker", btag, cfg.blocker_duration)
    c.wait_for(lambda m: m.address == "/audiohost/job/progress" and m.args[-1] == btag, 60, since, what="blocker progress")
    tags = [f"{label}-{i}" for i in range(n)]
    for tag in tags:
        submit_foley(c, d.project.name, "bench", tag, cfg.duration)
    queued = c.collect(lambda m: m.address == "/audiohost/job/queued" and m.args[-1] in set(tags), n, 30, since, what="queued acks")
    blocker = wait_done(c, [btag], 120, since, round(cfg.blocker_duration * OUT_RATE))[0]
    if max(m.t for m in queued) > blocker.t:
        raise BenchError(f"{label}: the blocker finished before all {n} jobs were queued; batching not exercised")
    msgs = wait_done(c, tags, 60 + 3 * n * cfg.duration * cfg.steps, since, cfg.frames)
    s1 = c.stats()
    calls = s1["denoise_calls"] - s0["denoise_calls"]
    expected = 1 + math.ceil(n / d.batch_size)
    if calls != expected:
        raise BenchError(
            f"{label}: daemon --batch-size {d.batch_size} made {calls} denoising calls for blocker + {n} jobs, "
            f"expected {expected}: batching did not happen as intended"
        )
    return max(m.t for m in msgs) - blocker.t


# ---------------------------------------------------------------- row 3b: in-process sweep
def make_job(project, name: str, duration: float, steps: int, guidance: float, seed: int, preset_name: str = "default"):
    from host.config.presets import Preset
    from host.jobs.build import job_from_preset

    preset = Preset(kind="foley", prompt=PROMPT, negative_prompt=NEGATIVE, duration=duration, steps=steps, guidance=guidance, seed=seed)
    return job_from_preset(project, name, preset_name, "bench", preset, source="cli")


def sweep_run(model, project, cfg: Config, batch_size: int) -> float:
    from host.runner import Runner

    runner = Runner(model, batch_size=batch_size)
    jobs = [make_job(project, f"sweep{i}", cfg.duration, cfg.steps, cfg.guidance, next_seed()) for i in range(cfg.batch_jobs)]
    t0 = time.perf_counter()
    outcomes = runner.run(jobs, force=True)
    t = time.perf_counter() - t0
    for o in outcomes:
        if o.status != "rendered" or len(o.files) < 1:
            raise BenchError(f"sweep batch {batch_size}: {o.job.name} {o.status} {o.error}")
        H.check_audio(o.files[-1], cfg.frames, OUT_RATE)
    if runner.denoise_calls != math.ceil(cfg.batch_jobs / batch_size):
        raise BenchError(f"sweep batch {batch_size}: {runner.denoise_calls} denoising calls for {cfg.batch_jobs} takes")
    return t


# ---------------------------------------------------------------- row 4: effects and delivery
# measured by benchmarks/delivery.py (runnable alone); see row_effects_delivery there.


# ---------------------------------------------------------------- row 5: responsiveness
def responsiveness(d: Daemon, cfg: Config) -> dict:
    c = d.client
    c.clear()
    sub = OscClient("subscriber")
    sub.connect(d.port)
    try:
        m = c.request("/audiohost/subscribe", sub.port, reply="/audiohost/subscribed")
        if int(m.args[1]) != sub.port:
            raise BenchError(f"/audiohost/subscribe replied {m.args}")
        # a render that is certainly running for the whole measurement; cancelled afterwards
        since = c.mark()
        long_tag = "r5-long"
        submit_foley(c, d.project.name, "long", long_tag, cfg.duration)
        q = c.wait_for(lambda m: m.address == "/audiohost/job/queued" and m.args[-1] == long_tag, 10, since)
        long_id = int(q.args[0])
        c.wait_for(lambda m: m.address == "/audiohost/job/progress" and m.args[-1] == long_tag, 60, since, what="long job progress")

        def running() -> None:
            st = c.request("/audiohost/status", long_id, reply="/audiohost/status")
            if st.args[1] != "running":
                raise BenchError(f"the background render is {st.args[1]}, not running: latencies would not be under load")

        running()
        # -- pings, one at a time
        pings = []
        for _ in range(cfg.pings):
            since = c.mark()
            t0 = c.send("/audiohost/ping")
            m = c.wait_for(lambda m: m.address == "/audiohost/pong", 5, since, what="pong")
            pings.append(m.t - t0)
        # -- job submissions, one at a time; each one acknowledged with /job/queued
        submits, ids = [], []
        for i in range(cfg.submits):
            tag = f"r5-sub-{i}"
            since = c.mark()
            t0 = submit_foley(c, d.project.name, "bench", tag, cfg.duration)
            m = c.wait_for(lambda m: (m.address == "/audiohost/job/queued" and m.args[-1] == tag) or m.address == "/audiohost/error", 10, since, what="queued ack")
            if m.address == "/audiohost/error":
                raise BenchError(f"submission {i} refused: {m.args}")
            submits.append(m.t - t0)
            ids.append(int(m.args[0]))
        if len(set(ids)) != cfg.submits:
            raise BenchError(f"{cfg.submits} submissions got {len(set(ids))} distinct job ids")
        running()
        # -- files dropped into restyle/: from close() to /job/queued at the subscriber
        drops, drop_ids = [], []
        import numpy as np
        import soundfile as sf

        for i in range(cfg.drops):
            buf = io.BytesIO()
            sf.write(buf, np.random.default_rng(50 + i).standard_normal(48000).astype(np.float32) * 0.1, 48000, format="WAV", subtype="PCM_16")
            path = d.project / "restyle" / f"drop{i}.wav"
            since = sub.mark()
            with open(path, "wb") as f:
                data = buf.getvalue()
                for k in range(0, len(data), 16384):  # written in pieces, like a copy
                    f.write(data[k : k + 16384])
            t_closed = time.perf_counter()
            m = sub.wait_for(lambda m: m.address == "/audiohost/job/queued" and m.args[-1] == "" and int(m.args[0]) not in ids, 15, since, what=f"queued for drop{i}.wav")
            st = c.request("/audiohost/status", int(m.args[0]), reply="/audiohost/status")
            if st.args[3] != f"drop{i}":
                raise BenchError(f"drop{i}.wav: the queued job is {st.args}")
            drops.append(m.t - t_closed)
            drop_ids.append(int(m.args[0]))
            time.sleep(0.1)
        running()
        # -- clean up: cancel everything queued, then the running render
        since = c.mark()
        for job_id in ids + drop_ids:
            c.send("/audiohost/cancel", job_id)
        want = set(ids + drop_ids)
        seen: set[int] = set()

        def first_cancel(m: H.Msg) -> bool:  # each id is announced and also answered: count it once
            if m.address != "/audiohost/job/cancelled" or int(m.args[0]) not in want or int(m.args[0]) in seen:
                return False
            seen.add(int(m.args[0]))
            return True

        c.collect(first_cancel, len(want), 60, since, fail=lambda m: m.address == "/audiohost/error", what="cancellations")
        since = c.mark()
        c.send("/audiohost/cancel", long_id)
        c.wait_for(lambda m: m.address == "/audiohost/job/cancelled" and int(m.args[0]) == long_id, 60, since, what="long job cancelled")
        deadline = time.monotonic() + 30
        while c.stats()["queued"] != 0:
            if time.monotonic() > deadline:
                raise BenchError("jobs still open after cancelling them all")
            time.sleep(0.2)
        return {"pings": pings, "submits": submits, "drops": drops}
    finally:
        sub.close()


# ---------------------------------------------------------------- row 6: memory
def memory_rounds(d: Daemon, cfg: Config) -> dict:
    c = d.client
    frames = round(cfg.small_duration * OUT_RATE)
    done = 0
    rss = {}
    wave_times = []
    wave = 10
    while done < cfg.small_total:
        c.clear()
        n = min(wave, cfg.small_total - done)
        tags = [f"r6-{done + i}" for i in range(n)]
        t0 = time.perf_counter()
        for tag in tags:
            submit_foley(c, d.project.name, "small", tag, cfg.small_duration)
        wait_done(c, tags, 60 + 10 * n, 0, frames)
        wave_times.append((time.perf_counter() - t0) / n)
        done += n
        if done in (cfg.small_first, cfg.small_total):
            time.sleep(0.3)
            rss[done] = d.status()["VmRSS"]
    return {"rss": rss, "wave_times": wave_times}


# ---------------------------------------------------------------- profile
def profile_job(model, project, cfg: Config) -> dict:
    """One bench job through Runner.run under cProfile, the denoising loop's time taken out of
    the profiler's clock (so cumulative times are 'outside the loop' times)."""
    import cProfile
    import pstats

    import host.engine.steps as steps_mod
    from host.runner import Runner

    runner = Runner(model, batch_size=1)
    real = steps_mod.denoise
    state = {"excluded": 0.0, "enter": None, "loop": 0.0}

    def clock() -> float:
        if state["enter"] is not None:
            return state["enter"] - state["excluded"]
        return time.perf_counter() - state["excluded"]

    def denoise(*a, **k):
        state["enter"] = time.perf_counter()
        try:
            return real(*a, **k)
        finally:
            spent = time.perf_counter() - state["enter"]
            state["excluded"] += spent
            state["loop"] += spent
            state["enter"] = None

    def one(profiled: bool):
        job = make_job(project, "profiled", cfg.duration, cfg.steps, cfg.guidance, next_seed())
        state.update(excluded=0.0, enter=None, loop=0.0)
        prof = cProfile.Profile(clock) if profiled else None
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        try:
            out = runner.run([job], force=True)
        finally:
            if prof:
                prof.disable()
        wall = time.perf_counter() - t0
        if out[0].status != "rendered":
            raise BenchError(f"profiled job: {out[0].status} {out[0].error}")
        H.check_audio(out[0].files[-1], cfg.frames, OUT_RATE)
        return wall, state["loop"], prof

    steps_mod.denoise = denoise
    try:
        one(False)  # warm
        plain = [one(False)[:2] for _ in range(3)]
        wall_p, loop_p, prof = one(True)
    finally:
        steps_mod.denoise = real
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s)
    entries = []
    for (fn, line, name), (cc, nc, tt, ct, _callers) in st.stats.items():
        entries.append((ct, tt, nc, _short(fn, line, name)))
    entries.sort(key=lambda e: -e[0])
    by_self = sorted(entries, key=lambda e: -e[1])
    walls = sorted(w for w, _ in plain)
    loops = sorted(lp for _, lp in plain)
    return {
        "wall": walls[len(walls) // 2],
        "loop": loops[len(loops) // 2],
        "outside_profiled": wall_p - loop_p,
        "top_cum": entries,
        "top_self": by_self,
    }


def _short(fn: str, line: int, name: str) -> str:
    import sysconfig

    if fn == "~":
        return name
    p = fn
    for prefix, shown in ((str(REPO) + "/", ""), ("site-packages/", ""), (sysconfig.get_paths()["stdlib"] + "/", "")):
        if prefix in p:
            p = shown + p.split(prefix, 1)[1]
    return f"{p}:{line}({name})"


# ---------------------------------------------------------------- threads probe
PROBE_DURATION, PROBE_STEPS, PROBE_CAP_S = 0.8, 5, 20.0


def thread_probe(model, cfg: Config) -> dict:
    """Row 7: FoleyPipeline renders at 1 intra-op thread vs torch's default (one per core),
    interleaved, first on the otherwise idle benchmark, then with one core kept busy by a
    spinning subprocess (a stand-in for a DAW beside the host)."""
    import torch

    from host.engine.foley import FoleyPipeline, FoleyTake

    pipe = FoleyPipeline(model)
    default = len(os.sched_getaffinity(0))
    original = torch.get_num_threads()
    out = {"default": default}

    def render(n: int) -> float:
        torch.set_num_threads(n)
        t0 = time.perf_counter()
        w = pipe([FoleyTake(PROMPT, NEGATIVE, next_seed())], PROBE_DURATION, PROBE_STEPS, cfg.guidance)
        t = time.perf_counter() - t0
        if len(w) != 1 or len(w[0]) != int(PROBE_DURATION * MODEL_RATE):
            raise BenchError("thread probe: wrong output")
        return t

    try:
        for condition in ("idle", "one core busy"):
            burner = None
            if condition != "idle":
                burner = H.popen([sys.executable, "-c", "while True: pass"], dict(os.environ))
                time.sleep(0.5)
            try:
                times = {1: [], default: []}
                render(1), render(default)  # warm both thread pools
                t_end = time.perf_counter() + PROBE_CAP_S
                for _ in range(cfg.thread_probe_reps):
                    for n in (1, default):
                        times[n].append(render(n))
                    if time.perf_counter() > t_end:
                        break
                if burner is not None and burner.poll() is not None:
                    raise BenchError("thread probe: the busy-loop process died")
                out[condition] = times
            finally:
                if burner is not None:
                    burner.kill()
                    burner.wait(timeout=10)
    finally:
        torch.set_num_threads(original)
    return out


# ---------------------------------------------------------------- the run
def main() -> int:
    o = OPTS or _options()
    cfg = make_config(o)
    started = time.perf_counter()
    out_path = Path(o.out) if o.out else HERE / "RESULTS.md"
    work = Path(tempfile.mkdtemp(prefix="audiohost-bench-"))
    cache = Path(os.environ.get("AUDIOHOST_CACHE") or (Path(tempfile.gettempdir()) / "audiohost-bench-cache"))
    os.environ["AUDIOHOST_CACHE"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    env = H.bench_env(cache, cfg.threads)
    res = Results()
    clients: list[OscClient] = []
    daemons: list[Daemon] = []
    ok = False

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    log(f"{'quick' if cfg.quick else 'full'} run: N={cfg.jobs} jobs, K={cfg.reps} reps, torch threads={cfg.threads or 'default'}; scratch {work}")
    try:
        import torch

        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        from host.engine.tiny import tiny_path

        t = time.perf_counter()
        tiny = tiny_path()  # built once here, before any daemon could race to build it
        log(f"tiny model at {tiny} ({time.perf_counter() - t:.1f} s)")

        # ---- start both daemons (they load while we load the baseline)
        res.load.append(("start", loadavg()))
        pa = make_daemon_project(work / "proj_b1", cfg)
        pb = make_daemon_project(work / "proj_b8", cfg)
        pc = make_cli_project(work / "proj_cli", cfg)
        ca, cb = OscClient("bs1"), OscClient("bs8")
        clients += [ca, cb]
        da = Daemon("bs1", pa, work / "state_b1", ca, env, batch_size=1).start()
        daemons.append(da)
        db = Daemon("bs8", pb, work / "state_b8", cb, env, batch_size=cfg.batch_jobs).start()
        daemons.append(db)
        log("loading the diffusers baseline in this process")
        base = DiffusersBaseline(cfg, work / "baseline")
        base.batch(1)  # warm
        for d in (da, db):
            d.wait_ready()
            daemon_batch(d, cfg, f"warm-{d.name}", 1)  # warm: first render in the process
        log("daemons ready and warm")

        # ---- rows 1 and 2
        res.load.append(("rows 1-2", loadavg()))
        warm_t, base_t, cold_t, cold_each = [], [], [], []
        for rep in range(cfg.reps):
            order = ["daemon", "baseline"] if rep % 2 == 0 else ["baseline", "daemon"]
            for which in order:
                if which == "daemon":
                    warm_t.append(daemon_batch(da, cfg, f"r1-{rep}", cfg.jobs))
                else:
                    base_t.append(base.batch(cfg.jobs))
            total, each = cold_batch(pc, cfg, env)
            cold_t.append(total)
            cold_each += each
            log(f"rep {rep + 1}/{cfg.reps}: daemon {warm_t[-1]:.2f} s, diffusers {base_t[-1]:.2f} s, cold CLI {total:.1f} s for {cfg.jobs} jobs")
        r1 = summary([w / b for w, b in zip(warm_t, base_t)])
        per_job_over = summary([(w - b) / cfg.jobs * 1000 for w, b in zip(warm_t, base_t)])
        res.rows.append(Row("1", "Host overhead: daemon over OSC / diffusers loop",
                            f"{r1.fmt(3)}", f"{cfg.jobs} jobs: daemon {summary(warm_t).fmt(2, ' s')}, diffusers {summary(base_t).fmt(2, ' s')}; "
                            f"extra per job {per_job_over.fmt(0, ' ms')}", "<= 1.10", "PASS" if r1.median <= 1.10 else "FAIL"))
        r2 = summary([c / w for c, w in zip(cold_t, warm_t)])
        res.rows.append(Row("2", "Warm vs cold: N one-shot CLI processes / warm daemon",
                            f"{r2.fmt(1, 'x')} faster warm", f"cold {summary(cold_t).fmt(1, ' s')} for {cfg.jobs} jobs "
                            f"({summary(cold_each).fmt(1, ' s')} per process) vs warm {summary(warm_t).fmt(2, ' s')}"))

        # ---- row 3: batching through the daemons
        res.load.append(("row 3", loadavg()))
        b1_t, b8_t = [], []
        for rep in range(cfg.reps):
            pair = [(da, b1_t), (db, b8_t)] if rep % 2 == 0 else [(db, b8_t), (da, b1_t)]
            for d, acc in pair:
                d.client.clear()
                acc.append(batching_round(d, cfg, f"r3-{d.name}-{rep}"))
            log(f"rep {rep + 1}/{cfg.reps}: {cfg.batch_jobs} jobs at batch 1 {b1_t[-1]:.2f} s, at batch {cfg.batch_jobs} {b8_t[-1]:.2f} s")
        r3 = summary([a / b for a, b in zip(b1_t, b8_t)])
        res.rows.append(Row("3", f"Batching: daemon --batch-size {cfg.batch_jobs} / --batch-size 1 throughput",
                            f"{r3.fmt(2, 'x')}", f"{cfg.batch_jobs} queued jobs: batch 1 {summary(b1_t).fmt(2, ' s')}, batch {cfg.batch_jobs} "
                            f"{summary(b8_t).fmt(2, ' s')}; denoise_calls checked: 1+{cfg.batch_jobs} vs 1+1 per round"))

        # ---- row 5: responsiveness (daemon bs1)
        res.load.append(("row 5", loadavg()))
        log("row 5: ack latency and drop-to-queued under a running render")
        r5 = responsiveness(da, cfg)
        from host.daemon.config import DaemonConfig

        settle = DaemonConfig().settle_seconds
        ms = lambda v: v * 1000  # noqa: E731
        pp = (ms(H.percentile(r5["pings"], 50)), ms(H.percentile(r5["pings"], 99)))
        sp = (ms(H.percentile(r5["submits"], 50)), ms(H.percentile(r5["submits"], 99)))
        dd = summary(r5["drops"])
        res.rows.append(Row("5a", f"OSC ack latency, /ping -> /pong (n={len(r5['pings'])}), render running",
                            f"p50 {pp[0]:.2f} ms, p99 {pp[1]:.2f} ms", f"p99/p50 = {pp[1] / pp[0]:.1f}; max {ms(max(r5['pings'])):.1f} ms"))
        res.rows.append(Row("5b", f"OSC ack latency, /foley -> /job/queued (n={len(r5['submits'])}), render running",
                            f"p50 {sp[0]:.2f} ms, p99 {sp[1]:.2f} ms", f"p99/p50 = {sp[1] / sp[0]:.1f}; max {ms(max(r5['submits'])):.1f} ms; "
                            f"all {len(r5['submits'])} got distinct ids, then were cancelled"))
        res.rows.append(Row("5c", f"Dropped file closed -> /job/queued at a subscriber (n={len(r5['drops'])})",
                            f"{dd.fmt(3, ' s')}", f"settle interval {settle:g} s = {settle / dd.median:.0%} of it; "
                            f"beyond the settle: {summary([x - settle for x in r5['drops']]).fmt(3, ' s')}"))

        # ---- row 6: memory (daemon bs1)
        res.load.append(("row 6", loadavg()))
        log(f"row 6: {cfg.small_total} small jobs")
        r6 = memory_rounds(da, cfg)
        rss_a, rss_b = r6["rss"][cfg.small_first], r6["rss"][cfg.small_total]
        for d in daemons:
            d.status()
        res.rows.append(Row("6a", "Memory: daemon peak RSS (VmHWM) over the run",
                            f"{da.hwm_kb / 1024:.0f} MB (batch 1 daemon)", f"batch {cfg.batch_jobs} daemon {db.hwm_kb / 1024:.0f} MB"))
        res.rows.append(Row("6b", f"Memory: RSS after {cfg.small_total} vs after {cfg.small_first} small jobs",
                            f"{(rss_b - rss_a) / 1024:+.1f} MB", f"{rss_a / 1024:.0f} MB -> {rss_b / 1024:.0f} MB "
                            f"({(rss_b - rss_a) / max(1, cfg.small_total - cfg.small_first):+.0f} kB/job); seconds per job, first wave "
                            f"{r6['wave_times'][0]:.3f} s, last wave {r6['wave_times'][-1]:.3f} s"))
        for d in daemons:
            rc = d.stop()
            if rc != 0:
                raise BenchError(f"daemon {d.name} exited {rc} on SIGTERM: {d.tail()}")
        log("daemons stopped")

        # ---- in-process parts: sweep, effects, profile, threads
        from host.config.project import load_project
        from host.engine.models import load_model

        model = load_model("tiny", device="cpu")
        sweep_proj = load_project(make_daemon_project(work / "proj_inproc", cfg))
        res.load.append(("row 3 sweep", loadavg()))
        sweep_runner_warm = make_job(sweep_proj, "warm", cfg.duration, cfg.steps, cfg.guidance, next_seed())
        from host.runner import Runner

        Runner(model, batch_size=1).run([sweep_runner_warm], force=True)
        sweep = {b: [] for b in cfg.sweep}
        for rep in range(cfg.sweep_reps):
            order = list(cfg.sweep) if rep % 2 == 0 else list(reversed(cfg.sweep))
            for b in order:
                sweep[b].append(cfg.batch_jobs / sweep_run(model, sweep_proj, cfg, b))
            log(f"sweep rep {rep + 1}/{cfg.sweep_reps}: " + ", ".join(f"b{b} {sweep[b][-1]:.2f} takes/s" for b in cfg.sweep))
        base_tp = summary(sweep[cfg.sweep[0]]).median
        meds = [(b, summary(sweep[b]).median) for b in cfg.sweep]
        best_b, best_tp = max(meds, key=lambda x: x[1])
        enough = next(b for b, tp_ in meds if tp_ >= 0.95 * best_tp)
        steps_txt = ", ".join(f"{b0}->{b1} {t1_ / t0_ - 1:+.0%}" for (b0, t0_), (b1, t1_) in zip(meds, meds[1:]))
        sweep_txt = ", ".join(f"{b}: {summary(sweep[b]).fmt(2)} takes/s ({summary(sweep[b]).median / base_tp:.2f}x)" for b in cfg.sweep)
        res.rows.append(Row("3b", f"Batching sweep in-process (Runner, {cfg.batch_jobs} takes)",
                            f"best {best_tp / base_tp:.2f}x at batch {best_b}",
                            f"{sweep_txt}; gain per step up: {steps_txt}; within 5% of the best from batch {enough} on"))

        res.load.append(("row 4", loadavg()))
        log(f"row 4: effects and delivery on {cfg.effects_seconds:g} s of stereo audio (benchmarks/delivery.py)")
        import delivery as row4

        try:
            r4 = row4.row_effects_delivery(cfg.effects_seconds, cfg.reps)
        except row4.BenchError as err:
            raise BenchError(f"row 4: {err}") from None
        for number, kind, case in (("4a", "plain", "a static gain suffices"), ("4b", "limited", "the limiter must engage")):
            rtf = H.Summary(*r4[kind]["rtf"], r4[kind]["n"])
            res.rows.append(Row(number, f"Effects + delivery real-time factor ({cfg.effects_seconds:g} s stereo, {case})",
                                f"{rtf.fmt(0, 'x')} real time", row4.describe(r4[kind]),
                                ">= 150x", "PASS" if rtf.median >= 150 else "FAIL"))

        res.load.append(("profile", loadavg()))
        log("profiling one job in-process")
        prof = profile_job(model, sweep_proj, cfg)
        res.sections["profile"] = prof

        res.load.append(("threads", loadavg()))
        log("row 7: torch threads probe, idle and with one core busy")
        tp = thread_probe(model, cfg)
        res.sections["threads"] = tp
        nd = tp["default"]
        cells, detail = [], []
        for cond in ("idle", "one core busy"):
            t1s, tds = summary(tp[cond][1]), summary(tp[cond][nd])
            ratio = summary([b / a for a, b in zip(tp[cond][1], tp[cond][nd])])
            tp[cond + " ratio"] = ratio.median
            cells.append(f"{cond}: {ratio.fmt(1, 'x')}")
            detail.append(f"{cond}: 1 thread {t1s.fmt(3, ' s')}, {nd} threads {tds.fmt(3, ' s')}")
        res.rows.append(Row("7", f"Context: render time at torch's default {nd} threads / 1 thread",
                            "; ".join(cells), f"FoleyPipeline {PROBE_DURATION:g} s, {PROBE_STEPS} steps, in this process, interleaved; "
                            + "; ".join(detail) + "; 'busy' = one spinning process beside it (a stand-in for a DAW)"))
        res.load.append(("end", loadavg()))
        elapsed = time.perf_counter() - started
        text = render_markdown(cfg, res, elapsed)
        out_path.write_text(text)
        print()
        print(table_text(res))
        print(f"\nwrote {out_path} ({elapsed / 60:.1f} min)")
        ok = True
        return 0
    except BenchError as err:
        print(f"\nBENCHMARK FAILED: {err}", file=sys.stderr)
        for d in daemons:
            print(f"--- daemon {d.name} log tail ---\n{d.tail(3000)}", file=sys.stderr)
        return 1
    finally:
        for d in daemons:
            with contextlib.suppress(Exception):
                d.stop(timeout=20)
        H.kill_all()
        for c in clients:
            with contextlib.suppress(Exception):
                c.close()
        if ok and not o.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"scratch folder kept: {work}", file=sys.stderr)


# ---------------------------------------------------------------- output
def ordered(rows: list) -> list:
    import re

    return sorted(rows, key=lambda r: (int(re.match(r"\d+", r.number).group()), r.number))


def table_text(res: Results) -> str:
    res.rows = ordered(res.rows)
    headers = ("#", "measurement", "result (median, min–max, n)", "target")
    rows = [(r.number, r.name, r.result, (r.target + (f" {r.verdict}" if r.verdict else "")).strip()) for r in res.rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    out = [line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]
    out.append("")
    for r in res.rows:
        out.append(f"{r.number}: {r.detail}")
    return "\n".join(out)


def machine() -> dict:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import diffusers
    import torch
    import transformers

    return {
        "cpu": cpu,
        "cores": f"{os.cpu_count()} logical ({len(os.sched_getaffinity(0))} usable)",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "kernel": platform.release(),
    }


def render_markdown(cfg: Config, res: Results, elapsed: float) -> str:
    m = machine()
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    L = []
    L.append("# audiohost benchmarks\n")
    L.append(f"Generated by `python benchmarks/run.py{' --quick' if cfg.quick else ''}` on {now} in {elapsed / 60:.1f} min. "
             "Model: the built-in random-weight `tiny` AudioLDM (real geometry, ~1 M-parameter UNet), CPU only. "
             f"Each ratio is the median over the repetitions of this run (K={cfg.reps}; the sweep {cfg.sweep_reps}), "
             "with the min–max spread and n in brackets.\n")
    res.rows = ordered(res.rows)
    L.append("## Results\n")
    L.append("| # | measurement | result | target | detail |")
    L.append("|---|---|---|---|---|")
    for r in res.rows:
        L.append(f"| {r.number} | {r.name} | {r.result} | {(r.target + ' ' + r.verdict).strip()} | {r.detail} |")
    L.append("")
    L.append("## Machine and settings\n")
    L.append(f"- CPU: {m['cpu']}, {m['cores']}; Linux {m['kernel']}")
    L.append(f"- Python {m['python']}, torch {m['torch']}, diffusers {m['diffusers']}, transformers {m['transformers']}")
    L.append(f"- Date: {now}")
    L.append(f"- Job geometry (rows 1-3, profile): {cfg.duration:g} s, {cfg.steps} DDIM steps, guidance {cfg.guidance:g}, 1 take; "
             f"delivered by the host as 48 kHz / 24-bit WAV at -23 LUFS, -1 dBTP (the project defaults); the diffusers baseline "
             f"writes the pipeline's 16 kHz float output as is. N={cfg.jobs} jobs per repetition.")
    tp = res.sections.get("threads") or {}
    why = ""
    if tp:
        why = (f" Row 7 shows why: with one core busy, torch's default of {tp['default']} threads made each render "
               f"{tp['one core busy ratio']:.1f}x slower than 1 thread (idle: {tp['idle ratio']:.1f}x), because every small op waits "
               "for its second thread to get a time slice; other work on the machine (see the load averages) does the same to "
               "every measurement, so all processes here use the same fixed count.")
    L.append(f"- torch intra-op threads: {cfg.threads or 'torch default'} in every process (daemons, CLI processes, this process), "
             "set with OMP_NUM_THREADS / torch.set_num_threads." + why)
    L.append("- Load average (1, 5, 15 min) when each phase began: " + "; ".join(f"{p} {l}" for p, l in res.load)
             + ". The benchmark itself keeps about one core busy; a higher load means other work shared the 2 cores, which "
             "makes absolute times noisy. The two sides of each ratio are interleaved (A-B, then B-A) to cancel drift.")
    L.append("")
    L.append("## How each row is measured\n")
    L.append(f"1. Two `audiohost serve --model tiny` subprocesses on free loopback ports (`--batch-size 1` and `--batch-size {cfg.batch_jobs}`), "
             "each warmed with one job. Row 1: N `/audiohost/foley <project> bench <duration> <seed> <tag>` requests in a burst to the "
             "batch-1 daemon, timed from the first send to the last `/audiohost/job/done`; every reply's file is read back with "
             "soundfile (48 kHz, exact length) and `/audiohost/stats` must show N more denoising calls. Against it: "
             "`AudioLDMPipeline.from_pretrained(tiny_path())` called N times in a loop in this (warm) process, each result written "
             "with soundfile and read back.")
    L.append("2. N sequential `audiohost render PROJECT --model tiny --only cueI --force` processes (exit 0 and one new take of the "
             "right length each), against the same repetition's warm-daemon time from row 1.")
    L.append(f"3. A blocker job of another duration goes first; once it reports progress, {cfg.batch_jobs} compatible jobs are "
             "submitted and must all be acknowledged before the blocker's `/job/done`; the time from the blocker's `/job/done` "
             f"to the last of the {cfg.batch_jobs} is the batch time. `denoise_calls` from `/audiohost/stats` must grow by exactly "
             f"1+{cfg.batch_jobs} (batch 1) and 1+1 (batch {cfg.batch_jobs}), else the run fails. 3b: `host.runner.Runner` with "
             f"`load_model(\"tiny\")` renders {cfg.batch_jobs} takes at each batch size (denoise_calls checked).")
    L.append("4. `benchmarks/delivery.py` (also runnable alone): `presets/footsteps-gravel.toml`'s chain (4 plugins: "
             f"HighpassFilter, PeakFilter, Compressor, Reverb); a {cfg.effects_seconds:g} s stereo scene written at 44.1 kHz "
             "(24-bit) and read back, then `resample` 44.1k->48k, `apply_chain` at 48 kHz, `finish()` to 48 kHz, -23 LUFS, "
             "-1 dBTP. 4a: rain on gravel (a dense bed: a static gain suffices); 4b: footsteps on gravel (sparse hard steps: "
             "the limiter must engage); `report['limited']` is checked to match. Every round is checked: loudness within "
             "0.1 LU by pyloudnorm, true peak under the ceiling by an independent 4x oversampler (annex 2 taps through scipy's "
             "upfirdn), nothing at full scale. Real-time factor = audio seconds / wall seconds of the three stages, median "
             "over K rounds after a warm-up; CPU seconds are given beside the wall seconds; the finish stage's peak memory "
             "is traced (tracemalloc) in a separate call.")
    L.append("5. On the batch-1 daemon while a 999-step job is rendering (its state checked `running` before, between and after): "
             f"{cfg.pings} `/audiohost/ping` and {cfg.submits} `/audiohost/foley`, one at a time, each timed from send to the reply "
             "(`/pong`, `/job/queued`) as timestamped by a receiver thread; then WAV files written in 16 kB pieces into the project's "
             "`restyle/`, timed from `close()` to the `/audiohost/job/queued` a `/audiohost/subscribe`d socket receives (the queued "
             "job's name checked with `/audiohost/status`). Everything queued, and the long job, is then cancelled over OSC.")
    L.append(f"6. `/proc/<pid>/status` of the daemons: VmHWM (peak) just before SIGTERM; VmRSS after {cfg.small_first} and after "
             f"{cfg.small_total} small jobs ({cfg.small_duration:g} s, {cfg.small_steps} steps) submitted in waves of 10 to the "
             "batch-1 daemon (which has done rows 1, 3 and 5 before).")
    L.append(f"7. In this process, `host.engine.foley.FoleyPipeline` renders ({PROBE_DURATION:g} s, {PROBE_STEPS} steps) alternating "
             f"`torch.set_num_threads(1)` and the default, {cfg.thread_probe_reps} pairs (at most {PROBE_CAP_S:g} s) on the otherwise idle "
             "benchmark, then again while a `while True: pass` subprocess keeps one core busy.")
    L.append("")
    prof = res.sections.get("profile")
    if prof:
        L.append("## Profile: one job end to end (`Runner.run`, in-process, cProfile)\n")
        outside = prof["wall"] - prof["loop"]
        L.append(f"Unprofiled, median of 3: the job takes {prof['wall'] * 1000:.0f} ms, of which the denoising loop "
                 f"(`host.engine.steps.denoise`: {cfg.steps} UNet calls with guidance) is {prof['loop'] * 1000:.0f} ms and everything "
                 f"else {outside * 1000:.0f} ms ({outside / prof['wall']:.0%}). Below, cProfile ran with a clock that stops inside "
                 "`denoise`, so every cumulative time is time *outside* the denoising loop "
                 f"(total outside under the profiler: {prof['outside_profiled'] * 1000:.0f} ms, inflated by profiling overhead).\n")
        L.append("Top functions by cumulative time (outside the loop):\n")
        L.append("| cumulative ms | own ms | calls | function |")
        L.append("|---:|---:|---:|---|")
        shown = 0
        for ct, tt, nc, name in prof["top_cum"]:
            if ct * 1000 < 0.5 or "_lsprof" in name:
                continue
            L.append(f"| {ct * 1000:.1f} | {tt * 1000:.1f} | {nc} | `{name}` |")
            shown += 1
            if shown >= 30:
                break
        L.append("\nTop functions by own time (outside the loop):\n")
        L.append("| own ms | calls | function |")
        L.append("|---:|---:|---|")
        for ct, tt, nc, name in prof["top_self"][:15]:
            L.append(f"| {tt * 1000:.1f} | {nc} | `{name}` |")
        L.append("")
    if prof:
        def cum(module: str, func: str) -> float:
            return sum(ct for ct, _tt, _nc, name in prof["top_cum"] if name.startswith(module) and name.endswith(f"({func})")) * 1000

        parts = [("decode (VAE + vocoder)", cum("host/engine/steps.py", "decode")),
                 ("prompt encoding", cum("host/engine/steps.py", "encode_prompts")),
                 ("delivery: resample + chain + finish()", cum("host/runner.py", "_deliver_take") - cum("host/runner.py", "_write")),
                 ("writing the take (sidecar, audio, fsyncs)", cum("host/runner.py", "_write")),
                 ("cache look-ups (_prepare, _files)", cum("host/runner.py", "_prepare") + cum("host/runner.py", "_files"))]
        res.notes.insert(0, "Outside the denoising loop, under the profiler: " + ", ".join(f"{n} {v:.0f} ms" for n, v in parts)
                         + ". The diffusers baseline of row 1 pays for decode and prompt encoding too, but not for delivery or "
                         "the write: those, plus OSC and the journal, are the host's overhead per job. That overhead is per take "
                         "and does not grow with the step count, so row 1's ratio moves toward 1 with more steps or a larger "
                         f"checkpoint than the tiny model's {cfg.steps}-step loop used here. Inside finish(), "
                         f"the 4x-oversampled true-peak envelope (`_Envelope.cover`) takes "
                         f"{cum('host/finish/delivery.py', 'cover'):.0f} ms of finish()'s "
                         f"{cum('host/finish/delivery.py', 'finish'):.0f} ms.")
    if res.notes:
        L.append("## Notes\n")
        for n in res.notes:
            L.append(f"- {n}")
        L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        H.kill_all()
        print("interrupted", file=sys.stderr)
        sys.exit(130)
