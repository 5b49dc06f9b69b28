"""Row 8: a long stereo stem restyled end to end, its wall time split by stage, and the peak
memory of the process that renders it.

Each stem renders in a fresh child process (``python benchmarks/stem.py --child PROJECT NAME``)
so its peak memory is its own: the child loads the tiny model, warms the pipeline on a short
stem, resets the kernel's peak-RSS counter (``/proc/self/clear_refs``), then runs
``Runner.run`` on the one job, as ``audiohost render`` does. The coarse split (plan, render,
finish) is the host's own ``Outcome.stages``; the finer one comes from timing wrappers put
around the host's functions in the child only (reading, hashing, the mix-down to 16 kHz, the
model, resampling, the chain, loudness and true peak, writing). A thread samples the RSS every
20 ms so the peak can be put in a stage.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __name__ == "__main__":
    sys.path.insert(0, str(HERE))

from harness import REPO, BenchError, Row, check_audio, log, popen  # noqa: E402

RATE = 48000
STEPS, STRENGTH = 4, 0.5


# ---------------------------------------------------------------- the row (in the benchmark)
def long_stem(bench) -> Row:
    """Row 8: a 10-minute 48 kHz stereo stem restyled end to end: stages and peak memory."""
    import subprocess

    cfg = bench.cfg
    bench.stop_daemons()
    project = bench.work / "proj_stem"
    (project / "restyle").mkdir(parents=True, exist_ok=True)
    results = {}
    for name, minutes in (("short", cfg.stem_compare_minutes), ("long", cfg.stem_minutes)):
        path = project / "restyle" / f"{name}.wav"
        write_stem(path, minutes * 60)
        (project / "restyle" / f"{name}.toml").write_text(f"steps = {STEPS}\nstrength = {STRENGTH}\ntakes = 1\nseed = 11\n")
        log(f"row 8: restyling a {minutes:g}-minute stem in a child process")
        proc = popen([sys.executable, str(Path(__file__)), "--child", str(project), name], bench.env,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = proc.communicate(timeout=3600)
        text = out.decode(errors="replace")
        if proc.returncode != 0:
            raise BenchError(f"the {minutes:g}-minute restyle exited {proc.returncode}:\n{text[-2000:]}")
        r = json.loads(text.strip().splitlines()[-1])
        check_audio(r["file"], round(minutes * 60 * RATE), RATE, channels=1)
        results[name] = r
    return describe(results, cfg.stem_minutes, cfg.stem_compare_minutes, bench.notes)


def write_stem(path: Path, seconds: float) -> None:
    """A 48 kHz stereo 24-bit WAV of gravel-like bursts over a bed, written 10 s at a time."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(5)
    block = 10 * RATE
    total = int(round(seconds * RATE))
    with sf.SoundFile(str(path), "w", RATE, 2, "PCM_24") as f:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (np.arange(n) + start) / RATE
            env = np.exp(-((t % 0.55) / 0.03))  # a step every 0.55 s, decaying over 30 ms
            x = rng.standard_normal((n, 2)) * (0.02 + 0.4 * env[:, None])
            f.write(np.clip(x, -0.99, 0.99))


def describe(r: dict, minutes: float, short_minutes: float, notes: list) -> Row:
    long, short = r["long"], r["short"]
    audio_s = minutes * 60
    st = long["stages"]
    fine = long["fine"]
    mb = 1 / 1e6
    frames = audio_s * RATE
    take_4x = frames * 4 * 8  # the mono take at 4x oversampling, float64
    stem_4x = frames * 2 * 4 * 8  # the stereo stem at 4x, float64
    stem_f64 = frames * 2 * 8  # the stem as read (float64)
    peak_long = long["hwm_kb"] * 1024 - long["rss_before"]
    peak_short = short["hwm_kb"] * 1024 - short["rss_before"]
    per_min = (peak_long - peak_short) / (minutes - short_minutes)
    growth = long["finish_growth"]
    bounded = growth is not None and growth < take_4x
    order = ("read and hash (one read)", "mix-down to 16 kHz", "model", "resample to 48 kHz", "chain", "loudness and true peak", "write (sidecar, audio)")
    fine_txt = ", ".join(f"{k} {fine[k]:.1f} s" for k in order if k in fine)
    where = ", ".join(f"{k} {v * mb:.0f} MB" for k, v in long["peak_by_stage"].items())
    detail = (f"wall {long['wall']:.1f} s = {audio_s / long['wall']:.1f}x real time; stages (Outcome.stages): plan {st['plan']:.1f} s, "
              f"render {st['render']:.1f} s, finish {st['finish']:.1f} s; finer: {fine_txt}. Memory: peak RSS {long['hwm_kb'] / 1024:.0f} MB, "
              f"{peak_long * mb:.0f} MB above the warm process ({long['rss_before'] * mb:.0f} MB); the highest sample fell in "
              f"'{long['peak_in'] or '?'}'; peak above the warm process by stage: {where}; the finish stage grew the process by "
              f"{(growth or 0) * mb:.0f} MB over what it started with, against {take_4x * mb:.0f} MB for the take alone at 4x "
              f"oversampling (float64; the stereo stem at 4x: {stem_4x * mb:.0f} MB); a {short_minutes:g}-minute stem peaked "
              f"{peak_short * mb:.0f} MB above, so {per_min * mb:.0f} MB per minute of stem (the stem as read, float64 stereo, is "
              f"{stem_f64 / audio_s * 60 * mb:.0f} MB per minute)")
    if not bounded and growth is not None:
        notes.append(
            f"Row 8: the finish stage grew the process by {growth * mb:.0f} MB for a {minutes:g}-minute take, "
            f"{growth / (frames * 8):.1f}x the take's own size in float64 ({frames * 8 * mb:.0f} MB) and more than the whole take "
            f"at 4x oversampling ({take_4x * mb:.0f} MB), so the row cannot show that the 4x signal is never held whole; the "
            f"highest sample fell in '{long['peak_in'] or '?'}' (host/finish/delivery.py, which the delivery branch rewrites). "
            f"The rest grows with the stem as designed: it is read whole ({stem_f64 / audio_s * 60 * mb:.0f} MB per minute as "
            "float64 stereo) and its take is held whole.")
    return Row("8", f"A {minutes:g}-minute 48 kHz stereo stem restyled end to end (tiny, {STEPS} steps at strength {STRENGTH})",
               f"{long['wall']:.1f} s ({audio_s / long['wall']:.1f}x real time); peak {peak_long * mb:.0f} MB above the warm process",
               f"finish grows < take at 4x ({take_4x * mb:.0f} MB)", bounded, detail, how=(
                   f"Two stems written as 48 kHz stereo 24-bit WAV ({minutes:g} and {short_minutes:g} minutes; noise bursts over a "
                   f"bed) into `restyle/` with a sidecar (`steps = {STEPS}`, `strength = {STRENGTH}`, `takes = 1`; the project's "
                   "default preset `restyle-texture` and its chain: HighpassFilter, Limiter). Each is restyled in a fresh child "
                   "process (`benchmarks/stem.py`): load the tiny model, warm the pipeline on a 6 s stem, reset the peak-RSS counter "
                   "(`echo 5 > /proc/self/clear_refs`), then `Runner.run` on the job, as `audiohost render` does (the take checked: "
                   "mono, 48 kHz, exactly as long as the stem). Stage times are the host's `Outcome.stages`; the finer split comes "
                   "from timing wrappers around the host's functions in the child. Memory: VmHWM after the job minus VmRSS before it; "
                   "a thread samples VmRSS every 20 ms to place the peak in a stage. The target: the finish stage (where the take is "
                   "oversampled 4x for its true peak) grows the process by less than the whole take at 4x would take in float64; "
                   "holding it would need at least that much."))


# ---------------------------------------------------------------- the child process
def child(project: str, name: str) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    import host.finish.take as take_mod
    import host.mel as mel_mod
    import host.plan.takes as plan_mod
    import host.runner as runner_mod
    from host.engine.models import load_model
    from host.plan.project import plan_project
    from host.render.local import LocalBackend
    from host.runner import Runner

    fine: dict[str, float] = {}
    spans: list[tuple[str, float, float]] = []

    def timed(owner, attr: str, label: str):
        original = getattr(owner, attr)

        def wrapper(*a, **k):
            t0 = time.monotonic()
            try:
                return original(*a, **k)
            finally:
                t1 = time.monotonic()
                fine[label] = fine.get(label, 0.0) + t1 - t0
                spans.append((label, t0, t1))

        setattr(owner, attr, wrapper)

    model = load_model("tiny", device="cpu")
    runner = Runner(model, batch_size=1)
    root = Path(project)
    # warm the restyle pipeline, the chain and delivery on a short stem of its own
    warm = root / "restyle" / "warmup.wav"
    sys.path.insert(0, str(HERE))
    write_stem(warm, 6.0)
    (root / "restyle" / "warmup.toml").write_text(f"steps = {STEPS}\nstrength = {STRENGTH}\ntakes = 1\nseed = 3\n")
    jobs = {j.name: j for j in plan_project(root).jobs}
    outcome = runner.run([jobs["warmup"]], force=True)[0]
    if outcome.status != "rendered":
        raise SystemExit(f"warm-up: {outcome.status} {outcome.error}")
    warm.unlink()

    timed(plan_mod, "read_stem_confined", "read and hash (one read)")
    timed(mel_mod, "to_model_rate", "mix-down to 16 kHz")
    timed(LocalBackend, "render", "model")
    timed(take_mod, "resample", "resample to 48 kHz")
    timed(take_mod, "apply_chain", "chain")
    timed(take_mod, "finish", "loudness and true peak")
    timed(runner_mod.Runner, "_publish", "write (sidecar, audio)")
    for attr in ("plan", "render", "finish"):
        timed(Runner, attr, f"stage {attr}")

    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    page = os.sysconf("SC_PAGE_SIZE")

    def sample() -> None:
        while not stop.is_set():
            with open("/proc/self/statm") as f:
                samples.append((time.monotonic(), int(f.read().split()[1]) * page))
            stop.wait(0.02)

    import gc

    gc.collect()
    rss_before = _status("VmRSS") * 1024
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.monotonic()
    jobs = {j.name: j for j in plan_project(root).jobs}
    outcome = runner.run([jobs[name]], force=True)[0]
    wall = time.monotonic() - t0
    stop.set()
    sampler.join()
    hwm_kb = _status("VmHWM")
    if outcome.status != "rendered" or len(outcome.files) != 1:
        raise SystemExit(f"{name}: {outcome.status} {outcome.error} {outcome.files}")
    def inside(label: str) -> list[tuple[float, int]]:
        return [(t, rss) for t, rss in samples if any(lbl == label and a <= t <= b for lbl, a, b in spans)]

    peak_by_stage, finish_growth = {}, None
    for label in ("plan", "render", "finish"):
        got = inside(f"stage {label}")
        if got:
            peak_by_stage[label] = max(rss for _, rss in got) - rss_before
        if label == "finish" and got:
            finish_growth = max(rss for _, rss in got) - got[0][1]  # above what the finish stage started with
    top_t = max(samples, key=lambda x: x[1])[0] if samples else 0.0
    at_peak = [lbl for lbl, a, b in spans if a <= top_t <= b and not lbl.startswith("stage ")]
    return {"wall": wall, "stages": outcome.stages, "fine": {k: v for k, v in fine.items() if not k.startswith("stage ")},
            "rss_before": rss_before, "hwm_kb": hwm_kb, "peak_by_stage": peak_by_stage, "finish_growth": finish_growth,
            "peak_in": at_peak[-1] if at_peak else "", "file": str(outcome.files[0])}


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {key} in /proc/self/status")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        sys.path.insert(0, str(REPO))
        print(json.dumps(child(sys.argv[2], sys.argv[3])))
    else:
        raise SystemExit("usage: stem.py --child PROJECT NAME (run.py --only 8 runs this row)")
