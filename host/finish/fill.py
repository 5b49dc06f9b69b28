"""Finishing one inpainted gap: the chain, the level of the gap's edges, the ceiling, the splice.

Pure: arrays in, arrays out, no model and no files. The fill is the generated audio for the
context window around one gap, already at the take's rate and channel count.

1. Measure the take just outside each edge of the gap: the RMS of up to ``EDGE_SECONDS`` on
   each side, skipping digital silence, other gaps and whatever lies beyond the file.
2. Bring the fill to that level and run the preset's chain over it (the whole window, so
   compressors and limiters have settled by the time the gap comes).
3. Match again after the chain: a gain ramp, in dB, from the left edge's level to the right
   edge's across the gap. A gap touching one end of the file matches its other edge only.
4. Keep the fill under the delivery's true-peak ceiling: a smooth gain reduction over the overs
   only (5 ms in and out), then a plain trim if anything is left.
5. Splice: crossfades centred on the edges whose law follows the measured correlation of fill
   and take there (``host.engine.gaps.splice``). Nothing outside the crossfades changes.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from host.engine.gaps import CROSSFADE_SECONDS, SILENCE_DBFS, crossfade_spans, edge_correlations, splice
from host.finish.chain import apply_chain
from host.finish.delivery import peak_envelope

EDGE_SECONDS = 0.25  # audio measured on each side of a gap
MIN_EDGE_SECONDS = 0.01  # a side with less sound than this (after skipping silence) is not matched to
MIN_FILL_SECONDS = 0.05  # the fill's level is measured over at least this much around the gap
CEILING_MARGIN_DB = 0.1  # aim this far under the ceiling, as the delivery limiter does
LIMIT_SECONDS = 0.005  # the ceiling's gain reduction falls and recovers over this long
MAX_PUSH_DB = 6.0  # at most this much extra gain into the ceiling to make up the level it takes
MAX_PUSHES = 3


def finish_fill(
    original: np.ndarray,
    fill: np.ndarray,
    gap: tuple[int, int],
    window: tuple[int, int],
    rate: int,
    board,
    ceiling_db: float,
    other_gaps: Sequence[tuple[int, int]] = (),
) -> tuple[np.ndarray, dict]:
    """The window [a, b) of ``original`` with the finished fill spliced into ``gap``; and its levels.

    ``original``: the take so far, (channels, n) float at ``rate`` (earlier gaps already filled).
    ``fill``: the generated audio for ``window`` (channels, b - a). ``gap`` and ``window`` are
    sample spans of the take; the window must hold the gap's crossfades. ``board``: the preset's
    pedalboard chain (empty or None for none). ``other_gaps``: sample spans of the take's other
    gaps, never measured as "the audio around this gap".

    Returns (window, levels): the window, float64, equal to ``original[:, a:b]`` outside
    [gap start - crossfade/2, gap end + crossfade/2); ``levels`` is plain JSON-ready data for the
    take's sidecar (edge levels, fill level before/after matching, gains, true peak, crossfades).
    """
    a, b = window
    g0, g1 = gap
    n = original.shape[-1]
    take = np.asarray(original)[:, a:b]
    fill = np.asarray(fill, dtype=np.float64)
    if fill.shape != take.shape:
        raise ValueError(f"fill is {fill.shape}, the window {take.shape}")
    if not np.all(np.isfinite(fill)):
        raise ValueError("the fill contains NaN or infinite samples")
    left, right = crossfade_spans(g0, g1, n, rate)
    u0, u1 = (left[0] if left else g0) - a, (right[1] if right else g1) - a  # the fill that is used
    if not (0 <= u0 <= g0 - a < g1 - a <= u1 <= b - a):
        raise ValueError(f"window {a}-{b} does not hold gap {g0}-{g1} and its crossfades")

    # 1. the level of the audio at each edge
    usable = _sounding(take) & ~_inside(other_gaps, gap, a, b)
    edges = _edge_levels(take, usable, g0 - a, g1 - a, rate)
    matched_to = _matched_to(edges)
    if matched_to == "nothing":
        near = usable.copy()
        near[g0 - a : g1 - a] = False
        if near.any():
            level = _db(take[:, near])
            edges, matched_to = (level, level), "audio near the gap"

    # 2. to that level, then the chain
    measure = _measure_span(g0 - a, g1 - a, b - a, rate)
    targets = [e for e in edges if e is not None]
    before = _db(fill[:, measure])
    if targets and before is not None:
        fill = fill * _gain(float(np.mean(targets)) - before)
    if board is not None and len(board):
        fill = np.asarray(apply_chain(board, fill.astype(np.float32), rate), dtype=np.float64)

    # 3. match after the chain: a ramp from the left edge's level to the right edge's
    chained = _db(fill[:, measure])
    chained_in_gap = _db(fill[:, g0 - a : g1 - a])
    gains_db = (0.0, 0.0)
    if targets and chained is not None:
        lo_db = edges[0] if edges[0] is not None else edges[1]
        hi_db = edges[1] if edges[1] is not None else edges[0]
        gains_db = (lo_db - chained, hi_db - chained)
        along = np.clip((np.arange(b - a) - (g0 - a) + 0.5) / (g1 - g0), 0.0, 1.0)
        fill = fill * _gain(gains_db[0] + (gains_db[1] - gains_db[0]) * along)

    # 4. under the ceiling, over the used part of the fill only. Taking the overs lowers the
    #    fill's level; make that up (pushing a little more into the ceiling) while it helps.
    matched, push = fill, 0.0
    fill, reduction_db, peak_db = _under_ceiling(matched, u0, u1, rate, ceiling_db)
    for _ in range(MAX_PUSHES):
        short = _shortfall(matched, fill, measure)
        if not targets or reduction_db == 0.0 or short < 0.1 or push >= MAX_PUSH_DB:
            break
        push = min(MAX_PUSH_DB, push + short)
        fill, reduction_db, peak_db = _under_ceiling(matched * _gain(push), u0, u1, rate, ceiling_db)
    gains_db = (gains_db[0] + push, gains_db[1] + push)

    # 5. splice
    correlation = edge_correlations(take, fill, g0 - a, g1 - a, rate)
    out = splice(take.astype(np.float64), fill, g0 - a, g1 - a, rate, correlation)

    levels = {
        "gap": [round(g0 / rate, 6), round(g1 / rate, 6)],
        "edge_rms_dbfs": [_round(e) for e in edges],
        "matched_to": matched_to,
        "fill_rms_dbfs_before": _round(chained_in_gap),
        "gain_db": [_round(g) for g in gains_db],
        "fill_rms_dbfs": _round(_db(fill[:, g0 - a : g1 - a])),
        "fill_true_peak_dbtp": _round(peak_db),
        "ceiling_dbtp": float(ceiling_db),
        "peak_reduction_db": _round(reduction_db),
        "crossfade_seconds": CROSSFADE_SECONDS,
        "crossfade_correlation": [_round(c) for c in correlation],
    }
    return out, levels


# ---------------------------------------------------------------- helpers


def _sounding(x: np.ndarray) -> np.ndarray:
    """Per sample: any channel above digital silence."""
    return np.any(np.abs(x) > 10 ** (SILENCE_DBFS / 20), axis=0)


def _inside(spans: Sequence[tuple[int, int]], own: tuple[int, int], a: int, b: int) -> np.ndarray:
    """Per sample of the window [a, b): inside one of ``spans`` other than ``own``."""
    mask = np.zeros(b - a, dtype=bool)
    for lo, hi in spans:
        if (lo, hi) != tuple(own):
            mask[max(lo, a) - a : max(min(hi, b), a) - a] = True
    return mask


def _edge_levels(x: np.ndarray, usable: np.ndarray, g0: int, g1: int, rate: int) -> tuple[Optional[float], Optional[float]]:
    """RMS in dBFS of the usable audio within EDGE_SECONDS before g0 and after g1, or None for a
    side with less than MIN_EDGE_SECONDS of it."""
    reach, least = int(round(EDGE_SECONDS * rate)), max(1, int(round(MIN_EDGE_SECONDS * rate)))

    def level(lo: int, hi: int) -> Optional[float]:
        keep = usable[lo:hi]
        return _db(x[:, lo:hi][:, keep]) if keep.sum() >= least else None

    return level(max(0, g0 - reach), g0), level(g1, min(x.shape[-1], g1 + reach))


def _matched_to(edges: tuple[Optional[float], Optional[float]]) -> str:
    if edges[0] is not None and edges[1] is not None:
        return "both edges"
    if edges[0] is not None:
        return "left edge"
    return "right edge" if edges[1] is not None else "nothing"


def _measure_span(g0: int, g1: int, n: int, rate: int) -> slice:
    """The gap, widened evenly to at least MIN_FILL_SECONDS (within [0, n)), where the fill's level is read."""
    grow = max(0, int(round(MIN_FILL_SECONDS * rate)) - (g1 - g0) + 1) // 2
    return slice(max(0, g0 - grow), min(n, g1 + grow))


def _under_ceiling(fill: np.ndarray, lo: int, hi: int, rate: int, ceiling_db: float) -> tuple[np.ndarray, float, Optional[float]]:
    """(fill, largest reduction in dB, true peak of fill[:, lo:hi] in dBTP or None for silence).

    The gain each sample needs to keep its true peak under the ceiling, spread by a minimum
    filter over +-LIMIT_SECONDS and smoothed by two centred running means of half that width: a
    mean over values that are each no more than this sample needs never exceeds it, so the
    overs are taken without clipping and the rest of the fill keeps its level. What the gain's
    own movement leaves over comes off as a plain trim. Only [lo, hi) is measured (the rest of
    the fill is never heard), but the gain extends over the whole fill, holding its values at
    both ends, so the meter never reads a step at the span's border.
    """
    aim = _gain(ceiling_db - CEILING_MARGIN_DB)
    peaks = _peak_envelope(fill, lo, hi)
    reduction = 0.0
    if peaks.size and peaks.max() > aim:
        need = np.minimum(1.0, aim / np.maximum(peaks, 1e-30))
        reach = max(1, int(round(LIMIT_SECONDS * rate)))
        env = minimum_filter1d(need, 2 * reach + 1, mode="nearest")
        for _ in range(2):
            env = uniform_filter1d(env, reach + 1, mode="nearest")
        env = np.minimum(env, need)  # guards float rounding in the running means
        fill = fill * np.concatenate([np.full(lo, env[0]), env, np.full(fill.shape[-1] - hi, env[-1])])
        reduction = -20.0 * math.log10(float(env.min()))
    for _ in range(4):
        top = float(_peak_envelope(fill, lo, hi).max(initial=0.0))
        if top <= _gain(ceiling_db):
            break
        trim = _gain(ceiling_db - CEILING_MARGIN_DB / 2) / top
        fill = fill * trim
        reduction -= 20.0 * math.log10(trim)
    top = float(_peak_envelope(fill, lo, hi).max(initial=0.0))
    return fill, reduction, (20.0 * math.log10(top) if top > 0 else None)


def _shortfall(before: np.ndarray, after: np.ndarray, span: slice) -> float:
    """How many dB quieter ``after`` is than ``before`` over ``span`` (0 if not measurable)."""
    a, b = _db(before[:, span]), _db(after[:, span])
    return 0.0 if a is None or b is None else a - b


def _peak_envelope(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Per sample of [lo, hi): the true-peak envelope, by the delivery meter (one meter for every
    ceiling), read with the whole fill as context."""
    return peak_envelope(x, lo, hi)


def _db(x: np.ndarray) -> Optional[float]:
    """RMS over all channels in dBFS; None for nothing or digital silence."""
    if x.size == 0:
        return None
    rms = float(np.sqrt(np.mean(np.square(np.asarray(x, dtype=np.float64)))))
    return 20.0 * math.log10(rms) if rms > 1e-9 else None  # about -180 dBFS


def _gain(db):
    """dB -> linear gain, for a number or an array."""
    return 10.0 ** (db / 20.0)


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None or not math.isfinite(value) else round(float(value), 3)
