"""Pure helpers for gap inpainting: finding gaps, choosing the window around one, splicing a fill in.

Everything outside a gap and its two edge crossfades stays bit-identical to the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from host.engine.windows import equal_power_fades

SILENCE_DBFS = -90.0
MIN_GAP_SECONDS = 0.1
CROSSFADE_SECONDS = 0.02


@dataclass(frozen=True)
class Gap:
    """A stretch of a stem to fill, in seconds."""

    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start

    def samples(self, rate: int) -> tuple[int, int]:
        return int(round(self.start * rate)), int(round(self.end * rate))


def find_silent_gaps(audio: np.ndarray, rate: int, min_seconds: float = MIN_GAP_SECONDS, threshold_dbfs: float = SILENCE_DBFS) -> list[Gap]:
    """Runs of digital silence (every channel at or below the threshold) of at least ``min_seconds``
    that touch neither end of the file."""
    audio = np.atleast_2d(audio)
    n = audio.shape[1]
    if n == 0:
        return []
    threshold = 10 ** (threshold_dbfs / 20)
    silent = np.all(np.abs(audio.astype(np.float64)) <= threshold, axis=0)
    edges = np.diff(np.concatenate([[0], silent.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    need = int(np.ceil(min_seconds * rate))
    return [Gap(s / rate, e / rate) for s, e in zip(starts, ends) if e - s >= need and s > 0 and e < n]


def check_gaps(gaps: list[Gap], duration: float, max_gap: float) -> list[Gap]:
    """Sorted gaps, or ValueError naming the first that is out of the file, empty, too long or overlapping."""
    ordered = sorted(gaps, key=lambda g: g.start)
    for i, gap in enumerate(ordered):
        if not gap.start < gap.end:
            raise ValueError(f"gap {gap.start:g}-{gap.end:g} s is empty: start must be before end")
        if gap.start < 0 or gap.end > duration + 1e-9:
            raise ValueError(f"gap {gap.start:g}-{gap.end:g} s lies outside the file (0-{duration:.3f} s)")
        if gap.length > max_gap:
            raise ValueError(f"gap {gap.start:g}-{gap.end:g} s is {gap.length:.2f} s long; at most {max_gap:.2f} s can be filled")
        if i and gap.start < ordered[i - 1].end + 2 * CROSSFADE_SECONDS:
            raise ValueError(f"gap {gap.start:g}-{gap.end:g} s overlaps or touches the previous gap")
    return ordered


def context_window(gap: Gap, duration: float, window: float) -> tuple[float, float]:
    """The stretch of the stem the model sees for one gap: ``window`` seconds centred on the gap,
    shifted to stay inside the file (shorter only when the file is)."""
    span = min(window, duration)
    start = gap.start - (span - gap.length) / 2
    start = min(max(0.0, start), duration - span)
    return start, start + span


def splice(original: np.ndarray, fill: np.ndarray, gap_start: int, gap_end: int, rate: int) -> np.ndarray:
    """``original`` with ``fill`` (same shape, aligned sample for sample) inside [gap_start, gap_end).

    Each edge gets an equal-power crossfade of CROSSFADE_SECONDS centred on it; every sample
    outside [gap_start - xf/2, gap_end + xf/2) is copied from ``original`` untouched.
    """
    out = original.copy()
    n = original.shape[-1]
    half = int(round(CROSSFADE_SECONDS * rate / 2))
    a, b = max(0, gap_start - half), min(n, gap_end + half)
    out[..., a:b] = fill[..., a:b]
    fade_out, fade_in = equal_power_fades(min(2 * half, gap_start + half) if gap_start else 0)
    if len(fade_in):
        lo = gap_start + half - len(fade_in)
        out[..., lo : lo + len(fade_in)] = original[..., lo : lo + len(fade_in)] * fade_out + fill[..., lo : lo + len(fade_in)] * fade_in
    m = min(2 * half, n - (gap_end - half)) if gap_end < n else 0
    fade_out, fade_in = equal_power_fades(m)
    if m:
        lo = gap_end - half
        out[..., lo : lo + m] = fill[..., lo : lo + m] * fade_out + original[..., lo : lo + m] * fade_in
    return out
