#!/usr/bin/env python
"""Row 4, effects and delivery: ``python benchmarks/delivery.py [--seconds S] [--reps K]``.

A stereo scene is written at 44.1 kHz (24-bit WAV) and read back, then ``resample`` to 48 kHz,
``presets/footsteps-gravel.toml``'s chain (``apply_chain``) and ``finish()`` to the project
defaults (48 kHz, -23 LUFS, -1 dBTP). Two scenes, reported separately:

  plain    rain on gravel: a dense bed, so the static gain to -23 LUFS stays under the ceiling
  limited  footsteps on gravel: sparse hard steps over a quiet bed, so the limiter must engage

Every round is checked before it counts: exact length and rate, ``report["limited"]`` as the
scene intends, loudness within 0.1 LU of -23 by pyloudnorm, and the true peak under -1 dBTP by
an independent 4x oversampler (scipy's ``upfirdn`` with BS.1770-4 annex 2's published taps, in
float64) as well as by the report. The real-time factor is audio seconds / wall seconds of the
three stages, median over K rounds after one warm-up round; CPU seconds are shown beside the
wall seconds because the machine is shared. The finish stage's peak memory is traced separately
(tracemalloc, which sees NumPy's buffers), as the peak above what was allocated before the call.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as run.py's default: one thread everywhere

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SOURCE_RATE = 44100
TARGET_LUFS = -23.0
CEILING_DBTP = -1.0
SCENES = {"plain": False, "limited": True}  # scene -> must the limiter engage?


class BenchError(RuntimeError):
    """A round did not deliver what it should have; no number is reported for it."""


def scene(kind: str, seconds: float, rate: int = SOURCE_RATE, seed: int = 3) -> np.ndarray:
    """Stereo gravel: decaying noise bursts every ~0.55 s over a pink-ish bed.

    ``limited``: hard steps over a quiet bed (peaks ~24 dB over the loudness). ``plain``: the
    same steps, softer, in steady rain (a bed loud enough to carry the loudness).
    """
    from scipy.signal import lfilter

    bed_rms, crunch = {"limited": (0.02, 0.5), "plain": (0.1, 0.15)}[kind]
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    bed = lfilter([0.05], [1, -0.95], rng.standard_normal((2, n)), axis=1)  # one-pole low-pass: darker
    bed *= bed_rms / max(1e-9, float(np.std(bed)))
    env = np.zeros(n)
    step = int(0.55 * rate)
    decay = np.exp(-np.arange(int(0.12 * rate)) / (0.025 * rate))
    for start in range(int(0.1 * rate), n - len(decay), step):
        s = max(0, start + int(rng.integers(-int(0.05 * rate), int(0.05 * rate))))
        env[s:s + len(decay)] = np.maximum(env[s:s + len(decay)], decay * rng.uniform(0.4, 1.0))
    return (bed + crunch * rng.standard_normal((2, n)) * env).astype(np.float32)


def independent_true_peak_db(x: np.ndarray) -> float:
    """4x oversampling with the annex 2 taps through scipy's upfirdn, float64, 1 s at a time."""
    from scipy.signal import upfirdn

    from host.finish.delivery import _TP_PHASES

    taps = _TP_PHASES.T.ravel()  # the 48 taps in order: phase p holds taps p, p+4, ...
    x = np.asarray(x, dtype=np.float64)
    peak = float(np.abs(x).max(initial=0.0))
    step = 48000
    for start in range(0, x.shape[1], step):
        lo = max(0, start - 12)
        up = upfirdn(taps, x[:, lo:start + step + 12], 4, axis=-1)
        peak = max(peak, float(np.abs(up).max()))
    return 20 * np.log10(peak) if peak > 0 else -np.inf


def one_round(src: np.ndarray, board, limited: bool) -> dict:
    """resample -> chain -> finish on ``src`` (stereo, 44.1 kHz), timed per stage and checked."""
    import pyloudnorm

    from host.config.schema import Delivery
    from host.finish.chain import apply_chain
    from host.finish.delivery import finish, resample

    delivery = Delivery(sample_rate=48000, loudness=TARGET_LUFS, true_peak=CEILING_DBTP)
    times = {}
    clock = (time.perf_counter(), time.process_time())

    def lap(name: str) -> None:
        nonlocal clock
        now = (time.perf_counter(), time.process_time())
        times[name], times[name + "_cpu"] = now[0] - clock[0], now[1] - clock[1]
        clock = now

    x48 = resample(src, SOURCE_RATE, 48000)
    lap("resample")
    y = apply_chain(board, x48, 48000)
    lap("chain")
    out, rate, report = finish(y, 48000, delivery)
    lap("finish")

    n = round(src.shape[1] * 48000 / SOURCE_RATE)
    if out.shape != (2, n) or rate != 48000 or out.dtype != np.float32:
        raise BenchError(f"output {out.shape} {out.dtype} at {rate} Hz, expected (2, {n}) float32 at 48000")
    if report["limited"] is not limited:
        raise BenchError(f"limiter engaged: {report['limited']}, but this scene is meant to {'' if limited else 'not '}need it")
    loudness = pyloudnorm.Meter(48000).integrated_loudness(out.T.astype(np.float64))
    if abs(loudness - TARGET_LUFS) > 0.1:
        raise BenchError(f"loudness after finish() {loudness:.3f} LUFS by pyloudnorm, expected {TARGET_LUFS} +- 0.1")
    tp = independent_true_peak_db(out)
    if tp > CEILING_DBTP or report["true_peak_out"] > CEILING_DBTP:
        raise BenchError(f"true peak {tp:.4f} dBTP (report {report['true_peak_out']:.4f}) over the {CEILING_DBTP} dBTP ceiling")
    if np.abs(out).max() >= 1.0:
        raise BenchError("a sample at or beyond full scale")
    return {**times, "total": sum(times[k] for k in ("resample", "chain", "finish")),
            "loudness_in": report["loudness_in"], "loudness_out": loudness, "true_peak": tp,
            "gain_db": report["gain_db"], "limited": report["limited"]}


def finish_peak_memory(y: np.ndarray) -> int:
    """Bytes allocated at the peak of ``finish(y)`` above what was allocated before it."""
    from host.config.schema import Delivery
    from host.finish.delivery import finish

    delivery = Delivery(sample_rate=48000, loudness=TARGET_LUFS, true_peak=CEILING_DBTP)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = finish(y, 48000, delivery)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del result
    return peak - before


def row_effects_delivery(seconds: float = 60.0, reps: int = 3) -> dict:
    """Measure row 4 for both scenes; raise BenchError if any round delivers the wrong thing.

    Returns ``{"plain": {...}, "limited": {...}}``, each with ``rtf`` (median, min, max over the
    rounds, by wall time), ``rtf_cpu`` (median, by this process's CPU time: what the machine's
    other load does not take away), median ``stages`` (wall and ``_cpu`` seconds),
    ``finish_peak_mb``, ``signal_mb`` (the 48 kHz float32 signal finish() is given) and the
    figures of the first round.
    """
    import soundfile as sf

    from host.config.presets import load_preset_file
    from host.finish.chain import apply_chain, build_chain
    from host.finish.delivery import resample

    preset_path = REPO / "presets" / "footsteps-gravel.toml"
    preset = load_preset_file(preset_path)
    board = build_chain(list(preset.chain), where=str(preset_path), base_dir=preset_path.parent)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp:
        for kind, limited in SCENES.items():
            path = Path(tmp) / f"{kind}_44k.wav"
            sf.write(str(path), scene(kind, seconds).T, SOURCE_RATE, subtype="PCM_24")
            data, sr = sf.read(str(path), dtype="float32", always_2d=True)
            if sr != SOURCE_RATE or data.shape != (int(seconds * SOURCE_RATE), 2):
                raise BenchError(f"{kind}: the scene file read back as {data.shape} at {sr} Hz")
            src = np.ascontiguousarray(data.T)
            one_round(src, board, limited)  # warm-up: imports, filter designs, page faults
            rounds = [one_round(src, board, limited) for _ in range(reps)]
            rtfs = [seconds / r["total"] for r in rounds]
            cpu_rtfs = [seconds / sum(r[k + "_cpu"] for k in ("resample", "chain", "finish")) for r in rounds]
            stages = {k: statistics.median(r[k] for r in rounds)
                      for k in ("resample", "chain", "finish", "resample_cpu", "chain_cpu", "finish_cpu")}
            y = apply_chain(board, resample(src, SOURCE_RATE, 48000), 48000)
            results[kind] = {
                "rtf": (statistics.median(rtfs), min(rtfs), max(rtfs)), "n": reps, "stages": stages,
                "rtf_cpu": statistics.median(cpu_rtfs),
                "finish_peak_mb": finish_peak_memory(y) / 1e6, "signal_mb": y.nbytes / 1e6,
                **{k: rounds[0][k] for k in ("limited", "loudness_in", "loudness_out", "true_peak", "gain_db")},
            }
    return results


def describe(r: dict) -> str:
    """One line of detail for a scene's result (used by run.py's table and by the standalone print)."""
    s = r["stages"]
    return (f"{r['rtf_cpu']:.0f}x by CPU time; resample {s['resample']:.3f} s (CPU {s['resample_cpu']:.3f}), "
            f"chain {s['chain']:.3f} s "
            f"(CPU {s['chain_cpu']:.3f}), finish {s['finish']:.3f} s (CPU {s['finish_cpu']:.3f}); "
            f"finish peak memory {r['finish_peak_mb']:.0f} MB for a {r['signal_mb']:.0f} MB signal; "
            f"limiter engaged: {r['limited']}; {r['loudness_in']:.2f} -> {r['loudness_out']:.3f} LUFS (pyloudnorm), "
            f"{r['true_peak']:.3f} dBTP (independent 4x), gain {r['gain_db']:+.2f} dB")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="length of each scene (default 60)")
    p.add_argument("--reps", type=int, default=3, help="timed rounds per scene after one warm-up (default 3)")
    o = p.parse_args(argv)
    if o.seconds < 1 or o.reps < 1:
        p.error("--seconds must be >= 1 and --reps >= 1")
    try:
        results = row_effects_delivery(o.seconds, o.reps)
    except BenchError as err:
        print(f"row 4 failed: {err}", file=sys.stderr)
        return 1
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    print(f"Row 4: effects + delivery, {o.seconds:g} s stereo 44.1k -> 48k, footsteps-gravel chain, "
          f"-23 LUFS / -1 dBTP (load average {load})")
    for kind, r in results.items():
        med, lo, hi = r["rtf"]
        print(f"  4{'a' if kind == 'plain' else 'b'} {kind:8s} {med:.0f}x real time ({lo:.0f}-{hi:.0f}, n={r['n']})")
        print(f"     {describe(r)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
