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
