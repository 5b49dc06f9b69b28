"""From a rendered take to the delivered signal: rate, loudness (BS.1770) and a true-peak ceiling.

Audio is float32 ``(channels, samples)`` with an int sample rate, as everywhere in the host.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pyloudnorm
import soxr
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import resample_poly

from host.config.schema import Delivery

OVERSAMPLE = 4  # true-peak estimate, BS.1770-4 annex 2
BLOCK_S = 0.4  # BS.1770 gating block
MIN_LOUDNESS_S = 0.02  # shorter clips have no meaningful loudness: integrated_loudness -> None
LOOP_TO_S = 2.0  # clips shorter than one block are measured looped to at least this long

# Limiter settings tried in order, gentlest first: (lookahead, hold) in seconds. The gain falls over
# the lookahead before a peak, stays down for the hold, then recovers over the lookahead again.
# A faster setting is used only when the gentler one cannot reach the loudness target.
LIMITER_STAGES = ((0.005, 0.020), (0.002, 0.005), (0.0015, 0.0))
AIM_BELOW_DB = 0.1  # the limiter aims this far under the ceiling, leaving room for meter differences
MAX_PUSH_DB = 12.0  # at most this much extra gain into the limiter to reach a loudness target
LOUDNESS_TOLERANCE = 0.05  # LU; stop correcting once this close ...
LOUDNESS_ACCEPT = 0.1  # ... and move on to a faster limiter setting if a stage cannot get this close


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample with soxr (VHQ) to float32, keeping channels (and a 1-D input 1-D).

    The result has exactly ``round(n * to_rate / from_rate)`` samples.
    """
    if np.ndim(audio) == 1:
        return resample(np.asarray(audio)[np.newaxis, :], from_rate, to_rate)[0]
    x = _as_2d(audio).astype(np.float32, copy=False)
    if from_rate == to_rate:
        return x.copy()
    n_out = round(x.shape[1] * to_rate / from_rate)
    if x.shape[1] == 0 or n_out == 0:
        return np.zeros((x.shape[0], n_out), np.float32)
    y = soxr.resample(np.ascontiguousarray(x.T), from_rate, to_rate, quality="VHQ")
    y = np.asarray(y, dtype=np.float32).reshape(-1, x.shape[0]).T
    if y.shape[1] > n_out:
        y = y[:, :n_out]
    elif y.shape[1] < n_out:
        y = np.pad(y, ((0, 0), (0, n_out - y.shape[1])))
    return np.ascontiguousarray(y)


def integrated_loudness(audio: np.ndarray, rate: int) -> float | None:
    """BS.1770-4 integrated loudness in LUFS (up to 5 channels: L, R, C, Ls, Rs), or None.

    None means "not measurable": digital silence, everything below the -70 LUFS absolute gate,
    or a clip shorter than 20 ms. A clip shorter than one 400 ms gating block is measured
    looped (whole repetitions, at least 2 s), i.e. the loudness of the sound while it plays.
    """
    x = _as_2d(audio).astype(np.float64)
    n = x.shape[1]
    if n < MIN_LOUDNESS_S * rate or not np.any(x):
        return None
    if n <= BLOCK_S * rate:
        x = np.tile(x, (1, math.ceil(LOOP_TO_S * rate / n)))
    value = pyloudnorm.Meter(rate, block_size=BLOCK_S).integrated_loudness(x.T)
    return float(value) if math.isfinite(value) else None


def true_peak_db(audio: np.ndarray, rate: int) -> float:
    """True peak in dBTP over all channels, from 4x oversampling (never below the sample peak); -inf for silence."""
    peak = float(_peak_envelope(_as_2d(audio)).max(initial=0.0))
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def finish(audio: np.ndarray, rate: int, delivery: Delivery) -> tuple[np.ndarray, int, dict]:
    """Resample, normalise and keep under the true-peak ceiling; return (audio, rate, report).

    Loudness is set by a static gain. If that would put the true peak over ``delivery.true_peak``,
    a lookahead true-peak limiter takes the overs and the gain into it is raised (at most 12 dB)
    until the loudness is back on target, trying gentle limiter timings before fast ones. A final
    plain gain cut guarantees the ceiling; nothing is ever clipped. The report has ``loudness_in``
    and ``loudness_out`` (LUFS or None), ``true_peak_out`` (dBTP, None for silence), ``gain_db``
    (static gain before the limiter) and ``limited``.
    """
    out_rate = int(delivery.sample_rate)
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or infinite samples")
    x = resample(audio, rate, out_rate).astype(np.float64)
    ceiling = float(delivery.true_peak)
    target = None if delivery.loudness is None else float(delivery.loudness)
    loudness_in = integrated_loudness(x, out_rate)
    peaks = _peak_envelope(x)  # true-peak envelope of the input; scales with any static gain

    gain_db = 0.0
    if target is not None and loudness_in is not None:
        gain_db = target - loudness_in
        for _ in range(3):  # the -70 LUFS absolute gate makes loudness not quite scale with gain
            loud = integrated_loudness(x * _db_to_gain(gain_db), out_rate)
            if loud is None or abs(target - loud) <= LOUDNESS_TOLERANCE:
                break
            gain_db += target - loud
    limited = peaks.max(initial=0.0) * _db_to_gain(gain_db) > _db_to_gain(ceiling)
    peak: Optional[float] = None  # the true peak of y, when it is known without measuring again
    if not limited:
        y = x * _db_to_gain(gain_db)
        top = peaks.max(initial=0.0) * _db_to_gain(gain_db)  # the envelope scales with a static gain
        peak = 20.0 * math.log10(top) if top > 0 else -math.inf
    elif target is None or loudness_in is None:
        y = _limit(x, peaks, gain_db, out_rate, ceiling - AIM_BELOW_DB, *LIMITER_STAGES[0])
    else:
        y, gain_db = _limit_to_loudness(x, peaks, gain_db, out_rate, target, ceiling - AIM_BELOW_DB)

    # Last resort: whatever the limiter left over the ceiling comes off as plain gain.
    for _ in range(4):
        peak = true_peak_db(y, out_rate) if peak is None else peak
        if peak <= ceiling:
            break
        y = y * _db_to_gain(ceiling - AIM_BELOW_DB / 2 - peak)
        peak = None

    out = np.ascontiguousarray(y, dtype=np.float32)
    peak_out = true_peak_db(out, out_rate) if peak is None else peak
    report = {
        "loudness_in": loudness_in,
        "loudness_out": integrated_loudness(out, out_rate),
        "true_peak_out": peak_out if math.isfinite(peak_out) else None,
        "gain_db": float(gain_db),
        "limited": bool(limited),
    }
    return out, out_rate, report


def match_level(fill: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Scale ``fill`` so its RMS (over all channels) equals ``reference``'s; unchanged if either is silent."""
    fill_rms = _rms(fill)
    ref_rms = _rms(reference)
    if fill_rms <= 1e-9 or ref_rms <= 1e-9:  # about -180 dBFS: treat as digital silence
        return np.asarray(fill, dtype=np.float32)
    return (np.asarray(fill, dtype=np.float64) * (ref_rms / fill_rms)).astype(np.float32)


# ---------------------------------------------------------------- limiter and helpers


def _limit_to_loudness(
    x: np.ndarray, peaks: np.ndarray, gain_db: float, rate: int, target: float, ceiling_db: float
) -> tuple[np.ndarray, float]:
    """Find the gain into the limiter that lands on ``target`` LUFS; return (audio, gain_db).

    Limiting only lowers loudness, and more gain in gives (less and less) more loudness out, so a
    secant search from the plain normalisation gain upwards converges from below. A stage that
    cannot get within ``LOUDNESS_ACCEPT`` even at +12 dB hands over to the next, faster one; if
    none can, the result closest to the target is returned.
    """
    best: tuple[float, np.ndarray, float] | None = None  # (loudness, audio, gain)
    cap = gain_db + MAX_PUSH_DB
    for lookahead, hold in LIMITER_STAGES:
        g, tried = gain_db, []  # (gain, loudness) so far, ascending
        for _ in range(8):
            y = _limit(x, peaks, g, rate, ceiling_db, lookahead, hold)
            loud = integrated_loudness(y, rate)
            if loud is None:
                return y, g
            if best is None or abs(target - loud) < abs(target - best[0]):
                best = (loud, y, g)
            if abs(target - loud) <= LOUDNESS_TOLERANCE:
                return y, g
            tried.append((g, loud))
            below = [t for t in tried if t[1] < target]
            above = [t for t in tried if t[1] > target]
            lo = max(below) if below else None
            hi = min(above) if above else None
            if lo is not None and hi is not None:  # bracketed: interpolate, stay inside
                g = lo[0] + (target - lo[1]) * (hi[0] - lo[0]) / max(hi[1] - lo[1], 1e-9)
                g = min(max(g, lo[0] + 1e-4), hi[0] - 1e-4)
            elif hi is not None:  # only overshoots (should not happen): step down plainly
                g = hi[0] - (hi[1] - target)
            else:  # still short: secant slope of the last two points, never steeper than 1 dB/dB
                slope = 1.0
                if len(below) >= 2:
                    (g0, l0), (g1, l1) = sorted(below)[-2:]
                    slope = min(1.0, max((l1 - l0) / max(g1 - g0, 1e-9), 0.02))
                if lo[0] >= cap:
                    break  # this stage cannot get louder
                g = min(cap, lo[0] + (target - lo[1]) / slope)
        if abs(target - best[0]) <= LOUDNESS_ACCEPT:
            break
    return best[1], best[2]


def _limit(
    x: np.ndarray, peaks: np.ndarray, gain_db: float, rate: int, ceiling_db: float,
    lookahead: float, hold: float,
) -> np.ndarray:
    """Apply ``gain_db`` then a lookahead true-peak limiter (offline, so zero latency).

    ``peaks`` is ``_peak_envelope(x)``. Required gain per sample (ceiling / true peak) -> minimum
    over the next ``lookahead`` -> minimum over the last ``hold`` -> two boxcars of half the
    lookahead. Each boxcar output averages only values that already satisfy the sample it lands
    on, so the gain never exceeds what any sample needs. Gain modulation itself moves inter-sample
    peaks by a few thousandths of a dB, which ``AIM_BELOW_DB`` absorbs; ``finish`` re-measures.
    """
    gain = _db_to_gain(gain_db)
    need = np.minimum(1.0, _db_to_gain(ceiling_db) / np.maximum(peaks * gain, 1e-30))
    half = max(1, round(lookahead * rate / 2))
    span = 2 * half - 1  # support of the two cascaded boxcars
    env = minimum_filter1d(need, span, mode="nearest", origin=-(span // 2))  # min over [n, n+span)
    size = round(hold * rate)
    if size >= 1:
        env = minimum_filter1d(env, size, mode="nearest", origin=(size - 1) // 2)  # min over (n-size, n]
    for _ in range(2):
        env = uniform_filter1d(env, half, mode="nearest", origin=(half - 1) // 2)  # mean over (n-half, n]
    return x * (gain * np.minimum(env, need))  # the min only guards float rounding in the running means


def _peak_envelope(x: np.ndarray, chunk: int = 1 << 16, context: int = 32) -> np.ndarray:
    """Per sample: the largest |value| over channels and the 4x-oversampled points next to it.

    Processed in chunks (with filter context) so long files do not need 4x the memory.
    """
    channels, n = x.shape
    env = np.abs(x).max(axis=0) if channels else np.zeros(n)
    env = env.astype(np.float64)
    if n == 0:
        return env
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        lo, hi = max(0, start - context), min(n, stop + context)
        up = resample_poly(np.asarray(x[:, lo:hi], dtype=np.float64), OVERSAMPLE, 1, axis=-1)
        up = np.abs(up[:, (start - lo) * OVERSAMPLE:(stop - lo) * OVERSAMPLE])
        between = up.reshape(channels, stop - start, OVERSAMPLE).max(axis=(0, 2))
        env[start:stop] = np.maximum(env[start:stop], between)
        # the points after sample n lie between n and n+1: count them against n+1 as well
        m = min(stop + 1, n) - (start + 1)
        env[start + 1:start + 1 + m] = np.maximum(env[start + 1:start + 1 + m], between[:m])
    return env


def _as_2d(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[np.newaxis, :]
    if x.ndim != 2:
        raise ValueError(f"audio must be (channels, samples), got shape {x.shape}")
    return x.astype(np.float32, copy=False) if x.dtype != np.float64 else x


def _rms(audio: np.ndarray) -> float:
    x = np.asarray(audio, dtype=np.float64)
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def _db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)
