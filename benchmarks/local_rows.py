"""Rows measured in this process (or in a child process of their own): the batching sweep, the
torch thread probe, the long stem, and the profile of the daemon."""

from __future__ import annotations

import math
import os
import sys
import time

from bench import MODEL_RATE, NEGATIVE, OUT_RATE, PROMPT, Bench, make_daemon_project
from harness import BenchError, Row, check_audio, log, popen, summary


def _job(project, name: str, duration: float, steps: int, guidance: float, seed: int):
    from host.config.presets import Preset
    from host.jobs.build import job_from_preset

    preset = Preset(kind="foley", prompt=PROMPT, negative_prompt=NEGATIVE, duration=duration, steps=steps, guidance=guidance, seed=seed)
    return job_from_preset(project, name, "default", "bench", preset, source="cli")


# ---------------------------------------------------------------- row 3b
def batching_sweep(bench: Bench) -> Row:
    """Row 3b: the in-process Runner's throughput at batch sizes 1, 2, 4, 8."""
    from host.config.project import load_project
    from host.runner import Runner

    cfg = bench.cfg
    bench.stop_daemons()
    model = bench.model()
    project = load_project(make_daemon_project(bench.work / "proj_sweep", cfg))
    Runner(model, batch_size=1).run([_job(project, "warm", cfg.duration, cfg.steps, cfg.guidance, bench.seed())], force=True)

    def one(batch_size: int) -> float:
        runner = Runner(model, batch_size=batch_size)
        jobs = [_job(project, f"sweep{i}", cfg.duration, cfg.steps, cfg.guidance, bench.seed()) for i in range(cfg.batch_jobs)]
        t0 = time.perf_counter()
        outcomes = runner.run(jobs, force=True)
        t = time.perf_counter() - t0
        for o in outcomes:
            if o.status != "rendered" or not o.files:
                raise BenchError(f"sweep batch {batch_size}: {o.job.name} {o.status} {o.error}")
            check_audio(o.files[-1], cfg.frames, OUT_RATE)
        if runner.denoise_calls != math.ceil(cfg.batch_jobs / batch_size):
            raise BenchError(f"sweep batch {batch_size}: {runner.denoise_calls} denoising calls for {cfg.batch_jobs} takes")
        return cfg.batch_jobs / t

    sweep = {b: [] for b in cfg.sweep}
    for rep in range(cfg.sweep_reps):
        for b in (cfg.sweep if rep % 2 == 0 else tuple(reversed(cfg.sweep))):
            sweep[b].append(one(b))
        log(f"row 3b rep {rep + 1}/{cfg.sweep_reps}: " + ", ".join(f"b{b} {sweep[b][-1]:.2f} takes/s" for b in cfg.sweep))
    base = summary(sweep[cfg.sweep[0]]).median
    meds = [(b, summary(sweep[b]).median) for b in cfg.sweep]
    best_b, best = max(meds, key=lambda x: x[1])
    enough = next(b for b, tp in meds if tp >= 0.95 * best)
    steps = ", ".join(f"{b0}->{b1} {t1 / t0 - 1:+.0%}" for (b0, t0), (b1, t1) in zip(meds, meds[1:]))
    each = ", ".join(f"{b}: {summary(sweep[b]).fmt(2)} takes/s ({summary(sweep[b]).median / base:.2f}x)" for b in cfg.sweep)
    return Row("3b", f"Batching sweep in-process (Runner, {cfg.batch_jobs} takes)", f"best {best / base:.2f}x at batch {best_b}",
               detail=f"{each}; gain per step up: {steps}; within 5% of the best from batch {enough} on", how=(
                   f"`host.runner.Runner` with `load_model(\"tiny\")` in the benchmark's process renders {cfg.batch_jobs} takes at "
                   "each batch size, the order of the sizes reversed every other repetition (denoise_calls checked)."))


# ---------------------------------------------------------------- row 7
PROBE_DURATION, PROBE_STEPS, PROBE_CAP_S = 0.8, 5, 20.0


def threads(bench: Bench) -> Row:
    """Row 7: render time at torch's default thread count / 1 thread, alone and with one core busy."""
    import torch

    from host.engine.foley import FoleyPipeline, FoleyTake

    cfg = bench.cfg
    bench.stop_daemons()
    pipe = FoleyPipeline(bench.model())
    default = len(os.sched_getaffinity(0))
    original = torch.get_num_threads()
    out = {}

    def render(n: int) -> float:
        torch.set_num_threads(n)
        t0 = time.perf_counter()
        w = pipe([FoleyTake(PROMPT, NEGATIVE, bench.seed())], PROBE_DURATION, PROBE_STEPS, cfg.guidance)
        t = time.perf_counter() - t0
        if len(w) != 1 or len(w[0]) != int(PROBE_DURATION * MODEL_RATE):
            raise BenchError("thread probe: wrong output")
        return t

    try:
        for condition in ("alone", "one core busy"):
            burner = popen([sys.executable, "-c", "while True: pass"], dict(os.environ)) if condition != "alone" else None
            if burner is not None:
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
    cells, detail = [], []
    for cond in ("alone", "one core busy"):
        ratio = summary([b / a for a, b in zip(out[cond][1], out[cond][default])])
        cells.append(f"{cond}: {ratio.fmt(1, 'x')}")
        detail.append(f"{cond}: 1 thread {summary(out[cond][1]).fmt(3, ' s')}, {default} threads {summary(out[cond][default]).fmt(3, ' s')}")
    return Row("7", f"Context: render time at torch's default {default} threads / 1 thread", "; ".join(cells), detail=(
        f"FoleyPipeline {PROBE_DURATION:g} s, {PROBE_STEPS} steps, in this process, interleaved; " + "; ".join(detail)
        + "; 'alone' = nothing of ours beside it (other users' work goes on: see the load averages), 'busy' = one spinning "
        "process beside it (a stand-in for a DAW)"), how=(
        f"In this process, `host.engine.foley.FoleyPipeline` renders ({PROBE_DURATION:g} s, {PROBE_STEPS} steps) alternating "
        f"`torch.set_num_threads(1)` and the default, {cfg.thread_probe_reps} pairs (at most {PROBE_CAP_S:g} s), first with no "
        "daemon or other process of ours running, then while a `while True: pass` subprocess keeps one core busy. Why every process here runs 1 thread: "
        "with a core busy, each small op waits for its second thread to get a time slice."))


