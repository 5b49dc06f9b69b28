"""A linear-phase crossover: one signal's band below a cutoff joined with another's band above it.

Super-resolution keeps the stem's own low band and takes only the generated band above the
cutoff from the model. The low-pass is a Kaiser-window FIR (linear phase, its delay taken out)
whose passband ends at the cutoff; the high-pass is its exact complement (an impulse minus the
low-pass), so the two bands sum back to the input wherever the two signals agree, with no
phase shift between them anywhere. Pure NumPy and SciPy; no files, no model.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.signal import firwin, kaiserord, oaconvolve

STOPBAND_DB = 60.0  # each band leaks into the other at most this far down (passband ripple ~0.01 dB)
MIN_WIDTH_HZ, MAX_WIDTH_HZ, WIDTH_FRACTION = 100.0, 500.0, 0.08  # transition band above the cutoff


def transition_hz(cutoff: float) -> float:
    """Width of the band above ``cutoff`` over which the low band hands over to the high band."""
    return float(np.clip(WIDTH_FRACTION * cutoff, MIN_WIDTH_HZ, MAX_WIDTH_HZ))


@functools.lru_cache(maxsize=16)
def lowpass_taps(rate: int, cutoff: float) -> np.ndarray:
    """The crossover's low-pass: flat up to ``cutoff``, at least 60 dB down from ``cutoff`` plus
    its transition width; odd length, symmetric (linear phase). An impulse (keep everything)
    when that band does not fit under the Nyquist frequency."""
    width = transition_hz(cutoff)
    nyquist = rate / 2.0
    if cutoff + width >= nyquist:
        return np.ones(1)
    numtaps, beta = kaiserord(STOPBAND_DB, width / nyquist)
    numtaps |= 1  # odd: a whole-sample delay, taken out exactly
    return firwin(numtaps, cutoff + width / 2.0, window=("kaiser", beta), fs=rate)


def split(audio: np.ndarray, rate: int, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """(low band, high band) of ``audio`` (..., samples), summing back to it exactly."""
    x = np.asarray(audio, dtype=np.float64)
    low = _lowpass(x, lowpass_taps(rate, float(cutoff)))
    return low, x - low


def crossover(low_source: np.ndarray, high_source: np.ndarray, rate: int, cutoff: float) -> np.ndarray:
    """``low_source`` below ``cutoff`` joined with ``high_source`` above it, float32 of
    ``low_source``'s shape (a mono ``high_source`` goes into every channel)."""
    low = np.atleast_2d(np.asarray(low_source, dtype=np.float64))
    high = np.atleast_2d(np.asarray(high_source, dtype=np.float64))
    if high.shape[-1] != low.shape[-1]:
        raise ValueError(f"the two signals differ in length: {low.shape[-1]} and {high.shape[-1]} samples")
    taps = lowpass_taps(rate, float(cutoff))
    # high above the cutoff = high - lowpass(high); low below it = lowpass(low): one filter pass
    out = high + _lowpass(low - high, taps) if high.shape[0] == low.shape[0] else _lowpass(low, taps) + (high - _lowpass(high, taps))
    out = out.astype(np.float32)
    return out if np.ndim(low_source) == 2 else out[0]


def _lowpass(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Zero-phase (delay removed) FIR filtering along the last axis; the ends are extended by
    mirroring, so a signal that starts loud does not start with the filter's step response."""
    if taps.size == 1:
        return x * taps[0]
    half = taps.size // 2
    n = x.shape[-1]
    if n == 0:
        return x.copy()
    reach = min(half, n - 1)
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(reach, reach)], mode="reflect") if reach > 0 else x
    full = oaconvolve(padded, taps.reshape((1,) * (x.ndim - 1) + (-1,)), mode="full", axes=-1)
    start = half + reach
    return full[..., start : start + n]
