#!/usr/bin/env python
"""GPU speed and ranking cost: ``python benchmarks/gpu.py [--model M] [--seconds 10] [--takes 4] [--out FILE]``.

  R  ranking cost     N takes rendered by each tiny family (or --model), then scored against
                      their prompt with CLAP (``host.engine.rank.score_takes``): scoring time
                      over rendering time. Runs on any device.
  G  GPU speed        the diffusers "AudioLDM 2, but faster" ladder on --model (default
                      ``tiny-audioldm2``; use ``cvssp/audioldm2`` where it is cached): seconds
                      for --seconds of audio, one take, warm, median of 3, and peak GPU memory:
                      fp32 DDIM 200 steps -> fp16 -> + torch.compile (shapes warmed first)
                      -> + DPM-Solver 25 steps -> + model CPU offload. Says "no GPU" and
                      measures nothing when CUDA is not available.

Prints a markdown table and writes it to --out (default benchmarks/RESULTS-gpu.md).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _options(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="checkpoint for row G (and R); default tiny-audioldm2 (R: both tiny families)")
    p.add_argument("--seconds", type=float, default=10.0, help="audio per take (default 10, the guide's length)")
    p.add_argument("--takes", type=int, default=4, help="takes for row R (default 4)")
    p.add_argument("--steps", type=int, default=25, help="DPM-Solver steps for row R and the last rungs of G (default 25)")
    p.add_argument("--reps", type=int, default=None, help="repetitions per measurement (default 3 on CUDA, 1 on CPU)")
    p.add_argument("--out", default=str(Path(__file__).with_name("RESULTS-gpu.md")))
    return p.parse_args(argv)


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def ranking_rows(opts) -> list[tuple[str, str, str]]:
    from host.engine.foley import FoleyPipeline, FoleyTake
    from host.engine.models import load_model
    from host.engine.rank import load_scorer, score_takes

    rows = []
    clap_model = load_model("tiny-audioldm2") if opts.model is None else None
    for name in ([opts.model] if opts.model else ["tiny", "tiny-audioldm2"]):
        model = load_model(name)
        scorer = load_scorer(model)
        if not scorer.available:
            if clap_model is None:
                rows.append(("R", f"ranking cost, {name}", scorer.off))
                continue
            scorer = load_scorer(clap_model)  # the CLAP cost does not depend on which model rendered
        prompt = "rain on a tin roof, close"
        takes = [FoleyTake(prompt, "low quality", 100 + i) for i in range(opts.takes)]
        pipe = FoleyPipeline(model)
        waves = pipe(takes, opts.seconds, opts.steps, 3.0, "dpm")  # warm
        score_takes(scorer, prompt, waves)
        render = _median_time(lambda: pipe(takes, opts.seconds, opts.steps, 3.0, "dpm"), opts.reps)
        score = _median_time(lambda: score_takes(scorer, prompt, waves), opts.reps)
        rows.append((
            "R", f"ranking cost, {name} ({model.device.type})",
            f"scoring {opts.takes} takes of {opts.seconds:g} s: {score:.3f} s = {100 * score / render:.1f}% of rendering them "
            f"({render:.2f} s, DPM {opts.steps} steps, one batched call); CLAP from {scorer.source}",
        ))
    return rows


def gpu_rows(opts) -> list[tuple[str, str, str]]:
    import torch

    if not torch.cuda.is_available():
        return [("G", "GPU speed ladder", "no GPU: nothing measured (run on a CUDA machine)")]
    from host.engine import steps
    from host.engine.foley import FoleyPipeline, FoleyTake
    from host.engine.models import load_model

    name = opts.model or "tiny-audioldm2"
    take = [FoleyTake("techno music with a strong, upbeat tempo and high melodic riffs", "low quality", 0)]
    rows = []

    def rung(label, steps_n, scheduler, **load):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        fp32 = load.pop("fp32", False)
        model = load_model(name, device="cuda", **load)
        if fp32:  # the Model is plain data: cast each of its torch modules
            for part in vars(model).values():
                if isinstance(part, torch.nn.Module):
                    part.to(torch.float32)
            model.dtype = torch.float32
        pipe = FoleyPipeline(model)
        t0 = time.perf_counter()
        if load.get("compile_unet"):
            steps.warm_up(model, [(model.frames_for(opts.seconds), 1)])
        pipe(take, opts.seconds, 2, 3.5, scheduler)  # warm (and compile)
        torch.cuda.synchronize()
        first = time.perf_counter() - t0

        def once():
            pipe(take, opts.seconds, steps_n, 3.5, scheduler)
            torch.cuda.synchronize()

        t = _median_time(once, opts.reps)
        peak = torch.cuda.max_memory_allocated() / 2**30
        procs = sorted({type(p).__name__ for p in getattr(model.unet, "attn_processors", {}).values()})
        rows.append(("G", f"{label}", f"{t:.2f} s for {opts.seconds:g} s of audio ({opts.seconds / t:.1f}x real time); "
                     f"peak {peak:.2f} GiB; warm-up {first:.1f} s; attention {', '.join(procs) or '?'}"))
        del model, pipe

    rung("fp32, DDIM 200", 200, "ddim", fp32=True)
    rung("fp16, DDIM 200", 200, "ddim")
    rung("fp16 + compile, DDIM 200", 200, "ddim", compile_unet=True)
    rung(f"fp16 + compile, DPM {opts.steps}", opts.steps, "dpm", compile_unet=True)
    rung(f"fp16 + CPU offload, DPM {opts.steps}", opts.steps, "dpm", cpu_offload=True)
    return rows


def main(argv=None) -> int:
    opts = _options(argv)
    import diffusers
    import torch
    import transformers

    if opts.reps is None:
        opts.reps = 3 if torch.cuda.is_available() else 1

    started = time.perf_counter()
    rows = gpu_rows(opts) + ranking_rows(opts)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    lines = [
        "# audiohost GPU and ranking benchmarks",
        "",
        f"Generated by `python benchmarks/gpu.py` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"in {time.perf_counter() - started:.0f} s. GPU: {gpu}. CPU: {platform.processor() or platform.machine()}. "
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, transformers {transformers.__version__}, "
        f"torch threads {torch.get_num_threads()}.",
        "",
        "| # | measurement | result |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    Path(opts.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
