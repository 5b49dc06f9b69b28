"""Pure helpers for long audio: cutting it into overlapping windows and joining them back.

No model here: plain NumPy, testable on its own.
"""

from __future__ import annotations

import numpy as np


def equal_power_fades(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade out, fade in) of n samples whose squares sum to 1 at every sample."""
    if n <= 0:
        return np.zeros(0), np.zeros(0)
    x = (np.arange(n) + 0.5) / n
    return np.cos(0.5 * np.pi * x), np.sin(0.5 * np.pi * x)


def correlated_fades(n: int, correlation: float) -> tuple[np.ndarray, np.ndarray]:
    """(fade out, fade in) of n samples that keep the level steady when crossfading two signals
    of equal power whose correlation is ``correlation`` (clamped to [0, 1]).

    Mixing ``out * x + in * y`` has power ``out**2 + in**2 + 2 * correlation * out * in`` (times
    the common power); these fades hold that at 1 on every sample. Write ``in = even + odd`` and
    ``out = even - odd`` with ``odd`` rising from -1/2 to 1/2 along a half sine (so both fades
    start and end with zero slope); the power is ``2 even**2 (1 + r) + 2 odd**2 (1 - r)``, which
    fixes ``even``. At correlation 1 this is an equal-gain raised-cosine fade (out + in = 1, no
    bump for identical signals); at 0 it is equal-power (out**2 + in**2 = 1, no dip for unrelated
    ones). Anti-correlated material (r < 0) is treated as unrelated: it dips mid-fade.
    """
    if n <= 0:
        return np.zeros(0), np.zeros(0)
    r = float(np.clip(correlation, 0.0, 1.0))
    x = (np.arange(n) + 0.5) / n
    odd = 0.5 * np.sin(np.pi * (x - 0.5))
    even = np.sqrt((1.0 - 2.0 * odd**2 * (1.0 - r)) / (2.0 * (1.0 + r)))
    return even - odd, even + odd


def plan_windows(total: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) windows of at most ``window`` samples covering ``total``, neighbours sharing ``overlap``."""
    if total <= 0:
        return []
    if window <= overlap:
        raise ValueError("window must be longer than the overlap")
    if total <= window:
        return [(0, total)]
    hop = window - overlap
    starts = list(range(0, total - overlap, hop))
    windows = [(s, min(s + window, total)) for s in starts]
    # a last sliver shorter than the overlap would be all crossfade: let the previous window end the file
    if len(windows) > 1 and windows[-1][1] - windows[-1][0] <= overlap:
        windows.pop()
        windows[-1] = (windows[-1][0], total)
    if windows[-1][1] < total:
        windows.append((windows[-1][1] - overlap, total))
    return windows


class OverlapJoiner:
    """Accumulates window outputs into one signal, equal-power crossfading each overlap.

    Windows must arrive in order. Memory is the output plus one window.
    """

    def __init__(self, total: int, channels: int = 1):
        self.out = np.zeros((channels, total), dtype=np.float32)
        self.written = 0

    def add(self, start: int, piece: np.ndarray) -> None:
        piece = np.atleast_2d(piece)
        end = start + piece.shape[1]
        overlap = max(0, self.written - start)
        if overlap:
            fade_out, fade_in = equal_power_fades(overlap)
            self.out[:, start : start + overlap] = self.out[:, start : start + overlap] * fade_out + piece[:, :overlap] * fade_in
        self.out[:, start + overlap : end] = piece[:, overlap:]
        self.written = max(self.written, end)
