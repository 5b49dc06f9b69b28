"""Pure helpers for gap inpainting: finding gaps, choosing the window around one, splicing a fill in.

Everything outside a gap and its two edge crossfades stays bit-identical to the input. The
crossfades follow the correlation measured at each edge (see ``correlated_fades``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from host.engine.windows import correlated_fades

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


def crossfade_spans(gap_start: int, gap_end: int, n: int, rate: int) -> tuple[Optional[tuple[int, int]], Optional[tuple[int, int]]]:
    """Where a gap's two crossfades lie, as [lo, hi) sample spans: (left, right).

    Each is CROSSFADE_SECONDS long and centred on its edge. At the file's ends a fade is cut to
    what the file holds, and a gap touching an end has no fade there (None): there is nothing to
    fade from. A gap shorter than one crossfade gets fades that stop short of its middle, so the
    fill alone holds at least one sample of every gap; only the part of each fade inside the gap
    is shortened, never the part outside.
    """
    half = int(round(CROSSFADE_SECONDS * rate / 2))
    inner = min(half, (gap_end - gap_start - 1) // 2)
    left = (max(0, gap_start - half), gap_start + inner) if gap_start > 0 else None
    right = (gap_end - inner, min(n, gap_end + half)) if gap_end < n else None
    return left, right


def edge_correlations(original: np.ndarray, fill: np.ndarray, gap_start: int, gap_end: int, rate: int) -> tuple[Optional[float], Optional[float]]:
    """How alike fill and original are just outside each edge: the normalised correlation over
    one crossfade length of the original's own audio (all channels together), or None where
    there is less than 1 ms of it or either side is digitally silent there."""
    n = original.shape[-1]
    span = 2 * int(round(CROSSFADE_SECONDS * rate / 2))
    least = max(1, int(round(0.001 * rate)))

    def corr(lo: int, hi: int) -> Optional[float]:
        if hi - lo < least:
            return None
        x = np.asarray(original[..., lo:hi], dtype=np.float64).ravel()
        y = np.asarray(fill[..., lo:hi], dtype=np.float64).ravel()
        energy = float(np.dot(x, x) * np.dot(y, y))
        if energy <= 1e-24:
            return None
        return float(np.clip(np.dot(x, y) / np.sqrt(energy), -1.0, 1.0))

    return corr(max(0, gap_start - span), gap_start), corr(gap_end, min(n, gap_end + span))


def splice(
    original: np.ndarray,
    fill: np.ndarray,
    gap_start: int,
    gap_end: int,
    rate: int,
    correlation: Optional[tuple[Optional[float], Optional[float]]] = None,
) -> np.ndarray:
    """``original`` with ``fill`` (same shape, aligned sample for sample) inside [gap_start, gap_end).

    The crossfades lie where :func:`crossfade_spans` puts them; each uses the law of
    :func:`~host.engine.windows.correlated_fades` for the correlation measured at its edge
    (:func:`edge_correlations`, or ``correlation`` if given; None counts as 0, equal-power).
    Every sample outside [gap_start - xf/2, gap_end + xf/2) is copied from ``original`` untouched.
    """
    out = original.copy()
    n = original.shape[-1]
    left, right = crossfade_spans(gap_start, gap_end, n, rate)
    if correlation is None:
        correlation = edge_correlations(original, fill, gap_start, gap_end, rate)
    lo = left[1] if left else gap_start
    hi = right[0] if right else gap_end
    out[..., lo:hi] = fill[..., lo:hi]
    if left:
        a, b = left
        fade_out, fade_in = correlated_fades(b - a, correlation[0] or 0.0)
        out[..., a:b] = original[..., a:b] * fade_out + fill[..., a:b] * fade_in
    if right:
        a, b = right
        fade_out, fade_in = correlated_fades(b - a, correlation[1] or 0.0)
        out[..., a:b] = fill[..., a:b] * fade_out + original[..., a:b] * fade_in
    return out
