"""From a rendered take to the delivered signal: rate, loudness (BS.1770) and a true-peak ceiling.

Audio is float32 ``(channels, samples)`` with an int sample rate, as everywhere in the host.

``finish`` measures a take once and derives the rest from those measurements:

* loudness: the signal is K-weighted once (float64 filtering, float32 result) and kept as
  energies per 100 ms hop. The gated loudness at any static gain follows exactly from them,
  gates included. A limiter pass changes the signal only around its overs; by linearity, the
  K-weighted output is the gained K-weighted input plus the K-weighted change, which is zero
  before a changed stretch and dies away soon after it, so only those hops are updated.
* true peak: one pass of 4x oversampling with the BS.1770-4 annex 2 interpolator, a chunk at a
  time (never the whole signal at 4x) and only in blocks loud enough to matter, giving each
  sample's envelope. It scales with a static gain; after limiting, only the stretches the
  limiter changed are measured again.
"""

from __future__ import annotations

from typing import Optional

import functools
import math
from dataclasses import dataclass

import numpy as np
import soxr
from pyloudnorm.iirfilter import IIRfilter
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.optimize import brentq
from scipy.signal import sosfilt

from host.config.schema import Delivery

OVERSAMPLE = 4  # true-peak estimate, BS.1770-4 annex 2
BLOCK_S = 0.4  # BS.1770 gating block
HOP_S = 0.1  # ... advanced by a quarter block (75 % overlap)
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

# The delivered true peak stays this far (relative) under the ceiling and under full scale, so that
# float32 rounding of the delivered samples (~1e-7) can never carry it over: about 0.0001 dB.
_HEADROOM = 1e-5
_CHUNK = 1 << 18  # samples per step where a pass works in pieces (bounds its temporaries)

# BS.1770 channel weights: L, R, C, Ls, Rs.
_CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)
_ABSOLUTE_GATE = -70.0  # LUFS
_RELATIVE_GATE = -10.0  # LU under the absolutely gated loudness

# BS.1770-4 annex 2: the 48-tap, 4-phase interpolating filter as published (phase p holds taps
# p, p+4, ..., p+44). Phase p turns samples x[m+6-k] (k = 0..11) into the point m + (2p+1)/8.
_TP_PHASES = np.array([
    [0.0017089843750, 0.0109863281250, -0.0196533203125, 0.0332031250000, -0.0594482421875, 0.1373291015625,
     0.9721679687500, -0.1022949218750, 0.0476074218750, -0.0266113281250, 0.0148925781250, -0.0083007812500],
    [-0.0291748046875, 0.0292968750000, -0.0517578125000, 0.0891113281250, -0.1665039062500, 0.4650878906250,
     0.7797851562500, -0.2003173828125, 0.1015625000000, -0.0582275390625, 0.0330810546875, -0.0189208984375],
    [-0.0189208984375, 0.0330810546875, -0.0582275390625, 0.1015625000000, -0.2003173828125, 0.7797851562500,
     0.4650878906250, -0.1665039062500, 0.0891113281250, -0.0517578125000, 0.0292968750000, -0.0291748046875],
    [-0.0083007812500, 0.0148925781250, -0.0266113281250, 0.0476074218750, -0.1022949218750, 0.9721679687500,
     0.1373291015625, -0.0594482421875, 0.0332031250000, -0.0196533203125, 0.0109863281250, 0.0017089843750],
])
_TP_WINDOW = np.ascontiguousarray(_TP_PHASES[:, ::-1].T, dtype=np.float32)  # (12, 4): x[m-5..m+6] -> 4 points
_TP_TAPS = _TP_PHASES.shape[1]
_TP_L1 = float(np.abs(_TP_PHASES).sum(axis=1).max())  # no point exceeds this times its largest |sample|


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
    y = np.zeros((x.shape[0], n_out), np.float32)
    if x.shape[1] == 0 or n_out == 0:
        return y
    for channel, out in zip(x, y):  # one channel at a time: no interleaving copies, and soxr is faster so
        done = soxr.resample(np.ascontiguousarray(channel), from_rate, to_rate, quality="VHQ")[:n_out]
        out[:len(done)] = done
    return y


def integrated_loudness(audio: np.ndarray, rate: int) -> float | None:
    """BS.1770-4 integrated loudness in LUFS (up to 5 channels: L, R, C, Ls, Rs), or None.

    None means "not measurable": digital silence, everything below the -70 LUFS absolute gate,
    or a clip shorter than 20 ms. A clip shorter than one 400 ms gating block is measured
    looped (whole repetitions, at least 2 s), i.e. the loudness of the sound while it plays.
    """
    meter = _Meter.of(_as_float32(audio), rate)
    return None if meter is None else meter.loudness()


def true_peak_db(audio: np.ndarray, rate: int) -> float:
    """True peak in dBTP over all channels, from 4x oversampling (never below the sample peak); -inf for silence."""
    peak = _Envelope(_as_float32(audio)).max()
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def peak_envelope(audio: np.ndarray, lo: int = 0, hi: Optional[int] = None) -> np.ndarray:
    """Per sample of [lo, hi): the largest |value| over channels and the 4x-oversampled points on
    either side of it (BS.1770-4 annex 2), read with the whole signal as context: the meter
    ``true_peak_db`` uses, sample by sample, for gain curves that keep a signal under a ceiling."""
    x = _as_float32(audio)
    env = _Envelope(x)
    env.cover(-1.0)
    hi = env.n if hi is None else hi
    if hi <= lo:
        return np.zeros(0)
    return np.maximum(env.env[lo:hi], np.abs(x[:, lo:hi]).max(axis=0) if x.shape[0] else 0.0).astype(np.float64)


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
    target = None if delivery.loudness is None else float(delivery.loudness)
    ceiling = min(_db_to_gain(float(delivery.true_peak)), 1.0) * (1.0 - _HEADROOM)

    # 1. Rate (the input as it is when the rate is already right: nothing here writes to it).
    x = _as_float32(audio if rate == out_rate else resample(audio, rate, out_rate))

    # 2. Measure once: K-weighted hop energies and the true-peak envelope.
    meter = _Meter.of(x, out_rate)
    loudness_in = None if meter is None else meter.loudness()
    peaks = _Envelope(x)
    top = peaks.max()

    # 3. The static gain that puts the loudness on target, solved on the measured energies.
    gain_db = 0.0
    if target is not None and loudness_in is not None:
        gain_db = meter.gain_db_for(target)
    limited = top * _db_to_gain(gain_db) > ceiling

    if not limited:
        # 4. A plain gain when the true peak allows it: loudness and true peak scale with it.
        g = _db_to_gain(gain_db)
        out = _scaled(x, g)
        peak = top * g
        loudness_out = None if meter is None else meter.loudness(g)
    else:
        # 5. Otherwise the limiter, with the gain into it pushed until the loudness is on target.
        limiter = _Limiter(x, out_rate, peaks, meter, _db_to_gain(float(delivery.true_peak) - AIM_BELOW_DB))
        if target is None or loudness_in is None:
            take = limiter.run(gain_db, 0)
        else:
            take = limiter.search(gain_db, target)
        gain_db = take.gain_db
        out = limiter.render(take)
        peak = limiter.true_peak(out, take)
        loudness_out = take.loudness
        # 6. Last resort: whatever the limiter left over the ceiling comes off as plain gain.
        if peak > ceiling:
            cut = ceiling / peak
            out = _scaled(out, cut)
            peak *= cut
            loudness_out = None if loudness_out is None else loudness_out + 20.0 * math.log10(cut)

    report = {
        "loudness_in": loudness_in,
        "loudness_out": loudness_out,
        "true_peak_out": 20.0 * math.log10(peak) if peak > 0 else None,
        "gain_db": float(gain_db),
        "limited": bool(limited),
    }
    return out, out_rate, report


def looped_loudness(audio: np.ndarray, rate: int) -> float | None:
    """BS.1770-4 integrated loudness of ``audio`` played in a loop, or None (as for
    :func:`integrated_loudness`).

    What a meter reads over many repetitions: the K-weighting runs in its steady state (warmed up
    on the loop's own end), and 400 ms blocks start all along the loop, the ones near its end
    reaching round into its start. A meter's blocks start every 100 ms from wherever playback
    began, so over many repetitions of a loop that is not a whole number of 100 ms they start
    everywhere: here they start every 10 ms, each position counted once, which is that average
    (and within a hundredth of a LU of the 100 ms grid when the loop is a whole number of them).
    """
    x = _as_float32(audio)
    channels, n = x.shape
    if channels > len(_CHANNEL_WEIGHTS):
        raise ValueError(f"loudness is defined for up to {len(_CHANNEL_WEIGHTS)} channels (L, R, C, Ls, Rs), got {channels}")
    if n < MIN_LOUDNESS_S * rate or not np.any(x):
        return None
    sos = _k_weighting(rate)
    warm = _k_decay(rate)
    _, state = sosfilt(sos, x[:, np.arange(-warm, 0) % n].astype(np.float64), axis=-1, zi=np.zeros((sos.shape[0], channels, 2)))
    hop = max(1, round(HOP_S * rate / 10))  # block starts every 10 ms
    span = round(BLOCK_S / HOP_S) * 10  # 40 of them make a 400 ms block
    block = span * hop
    starts = np.arange(0, n, hop)
    total = n + block  # the loop, then its start again for the last blocks to reach into
    hops = np.zeros((channels, -(-total // hop)))
    for a in range(0, total, _CHUNK - _CHUNK % hop):  # whole hops per chunk
        b = min(total, a + _CHUNK - _CHUNK % hop)
        weighted, state = sosfilt(sos, x[:, np.arange(a, b) % n].astype(np.float64), axis=-1, zi=state)
        squared = np.square(weighted)
        edges = np.arange(0, b - a, hop)
        hops[:, a // hop : a // hop + edges.size] = np.add.reduceat(squared, edges, axis=-1)
    cumulative = np.concatenate([np.zeros((channels, 1)), np.cumsum(hops, axis=-1)], axis=-1)
    first = starts // hop
    energy = cumulative[:, first + span] - cumulative[:, first]  # (channels, blocks)
    powers = (np.asarray(_CHANNEL_WEIGHTS[:channels]) @ energy) / block
    return _gated(powers)


def looped_true_peak_db(audio: np.ndarray, rate: int) -> float:
    """True peak in dBTP of ``audio`` played in a loop: the 4x-oversampled points between its
    last sample and its first are read from the loop itself, not from silence around it."""
    x = _as_float32(audio)
    n = x.shape[1]
    if n == 0 or not np.any(x):
        return -math.inf
    reach = 2 * _TP_TAPS
    around = x[:, np.arange(-reach, n + reach) % n]
    peak = float(peak_envelope(around, reach, reach + n).max())
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def match_level(fill: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Scale ``fill`` so its RMS (over all channels) equals ``reference``'s; unchanged if either is silent."""
    fill_rms = _rms(fill)
    ref_rms = _rms(reference)
    if fill_rms <= 1e-9 or ref_rms <= 1e-9:  # about -180 dBFS: treat as digital silence
        return np.asarray(fill, dtype=np.float32)
    return (np.asarray(fill, dtype=np.float64) * (ref_rms / fill_rms)).astype(np.float32)


# ---------------------------------------------------------------- loudness (BS.1770-4)


class _Meter:
    """A signal's K-weighted energy per 100 ms hop: its gated loudness at any gain, measured once.

    Blocks are 400 ms, every 100 ms (as pyloudnorm counts them), so a block is four hops. A clip
    shorter than one block is measured looped (``looped``); the limiter then measures its output
    whole instead of updating hops.
    """

    def __init__(self, x: np.ndarray, rate: int, looped: bool = False):
        channels, n = x.shape
        if channels > len(_CHANNEL_WEIGHTS):
            raise ValueError(f"loudness is defined for up to {len(_CHANNEL_WEIGHTS)} channels (L, R, C, Ls, Rs), got {channels}")
        self.rate, self.n, self.looped = rate, n, looped
        self.sos = _k_weighting(rate)
        self.weights = np.asarray(_CHANNEL_WEIGHTS[:channels])
        self.blocks = int(np.round((n / rate - BLOCK_S) / HOP_S)) + 1
        hops = self.blocks + round(BLOCK_S / HOP_S) - 1
        self.bounds = np.minimum(np.arange(hops + 1, dtype=np.int64) * rate // round(1 / HOP_S), n)
        # K-weighted in float64 (its 38 Hz high-pass needs it: float32 is off by up to 0.1 LU at
        # 384 kHz), a chunk at a time, and kept as float32 for the limiter's updates.
        self.weighted = np.empty((channels, n), np.float32)
        state = np.zeros((self.sos.shape[0], channels, 2))
        for start in range(0, n, _CHUNK):
            stop = min(n, start + _CHUNK)
            self.weighted[:, start:stop], state = sosfilt(self.sos, x[:, start:stop], axis=-1, zi=state)
        self.energy = _hop_energy(self.weighted, self.bounds)  # (channels, hops) float64

    @classmethod
    def of(cls, x: np.ndarray, rate: int) -> "_Meter | None":
        """The meter for ``x``, or None when it has no loudness (silent or shorter than 20 ms)."""
        n = x.shape[1]
        if n < MIN_LOUDNESS_S * rate or not np.any(x):
            return None
        if n <= BLOCK_S * rate:
            return cls(np.tile(x, (1, math.ceil(LOOP_TO_S * rate / n))), rate, looped=True)
        return cls(x, rate)

    def powers(self, energy: np.ndarray | None = None) -> np.ndarray:
        """Channel-weighted mean square of each 400 ms block."""
        e = self.weights @ (self.energy if energy is None else energy)
        span = round(BLOCK_S / HOP_S)
        z = np.convolve(e, np.ones(span), mode="valid")[: self.blocks]
        return z / (BLOCK_S * self.rate)

    def loudness(self, gain: float = 1.0, energy: np.ndarray | None = None) -> float | None:
        """Gated integrated loudness of the signal times ``gain`` (or of other hop energies), or None."""
        return _gated(self.powers(energy) * (gain * gain))

    def gain_db_for(self, target: float) -> float:
        """The static gain that lands exactly on ``target`` LUFS (or as close as the gates allow).

        Between two changes of which blocks pass the absolute gate the loudness moves dB for dB
        with the gain, so this converges in a step or two; at a gate edge it keeps the closest.
        """
        powers = self.powers()
        gain_db, best = 0.0, None
        for _ in range(8):
            loud = _gated(powers * _db_to_gain(2 * gain_db))
            if loud is None:
                break
            if best is None or abs(target - loud) < abs(target - best[1]):
                best = (gain_db, loud)
            if abs(target - loud) < 1e-9:
                break
            gain_db += target - loud
        return 0.0 if best is None else best[0]


def _hop_energy(weighted: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Sum of squares of ``weighted`` between consecutive ``bounds`` (hops past the end are empty)."""
    lengths = np.diff(bounds)
    live = int(np.count_nonzero(lengths))
    out = np.zeros((weighted.shape[0], lengths.size))
    if live and np.all(lengths[:live] == lengths[0]):
        part = weighted[:, :live * int(lengths[0])].reshape(weighted.shape[0], live, int(lengths[0]))
        out[:, :live] = np.matmul(part[..., None, :], part[..., :, None])[..., 0, 0]
    elif live:
        out[:, :live] = np.add.reduceat(np.square(weighted[:, :bounds[live]], dtype=np.float64), bounds[:live], axis=-1)
    return out


def _gated(powers: np.ndarray) -> float | None:
    """BS.1770-4 gating over block powers (channel-weighted mean squares) -> LUFS, or None."""
    with np.errstate(divide="ignore"):
        block = -0.691 + 10.0 * np.log10(powers)
    gated = block >= _ABSOLUTE_GATE
    if not np.any(gated):
        return None
    relative = -0.691 + 10.0 * math.log10(float(np.mean(powers[gated]))) + _RELATIVE_GATE
    gated = (block > relative) & (block > _ABSOLUTE_GATE)
    if not np.any(gated):
        return None
    mean = float(np.mean(powers[gated]))
    return -0.691 + 10.0 * math.log10(mean) if mean > 0 else None


@functools.lru_cache(maxsize=32)
def _k_weighting(rate: int) -> np.ndarray:
    """The K-weighting filter as second-order sections, designed as pyloudnorm designs it."""
    stages = (IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, rate, "high_shelf"), IIRfilter(0.0, 0.5, 38.0, rate, "high_pass"))
    return np.array([np.concatenate(stage.generate_coefficients()) for stage in stages])


@functools.lru_cache(maxsize=32)
def _k_decay(rate: int) -> int:
    """Samples after which the K-weighting's response to anything has died away (below 1e-6 of its peak)."""
    n = rate  # one second is far more than enough: the slowest pole is the 38 Hz high-pass
    impulse = np.zeros(n)
    impulse[0] = 1.0
    h = np.abs(sosfilt(_k_weighting(rate), impulse))
    alive = np.flatnonzero(h > 1e-6 * h.max())
    return int(alive[-1]) + 1


# ---------------------------------------------------------------- true peak (BS.1770-4 annex 2)


class _Envelope:
    """Per sample: the largest |value| over channels and the 4x-oversampled points next to it.

    The points between samples m and m+1 count for both (those just outside the signal, from
    the zeros around it, count too). ``env`` is filled in exactly a block at a time where it can
    matter: no point exceeds the phases' largest L1 norm (2.02) times the largest |sample| it is
    made from, so a block whose neighbourhood peaks more than 6 dB under a level cannot reach
    it. After ``cover(level)`` every sample whose envelope exceeds ``level`` holds its exact
    value and every other sample a value <= ``level`` (its own, or 0).
    """

    BLOCK = 2048  # samples; a block's points read at most 6 samples of each neighbour

    def __init__(self, x: np.ndarray):
        self.x, self.n = x, x.shape[1]
        self.env = np.zeros(self.n, np.float32)  # filled in a block at a time by cover()
        blocks, whole = -(-self.n // self.BLOCK), self.n // self.BLOCK
        tops = np.zeros(blocks + 2, np.float32)  # per block, largest |sample|; an empty block either side
        if whole and x.shape[0]:
            part = x[:, :whole * self.BLOCK].reshape(x.shape[0], whole, self.BLOCK)
            tops[1:whole + 1] = np.maximum(part.max(axis=(0, 2)), -part.min(axis=(0, 2)))
        if blocks > whole and x.shape[0]:
            tops[blocks] = np.abs(x[:, whole * self.BLOCK:]).max()
        self.sample_peak = float(tops.max())
        self.bound = np.maximum(np.maximum(tops[:-2], tops[1:-1]), tops[2:]) * np.float32(_TP_L1 * (1 + _HEADROOM))
        self.done = np.zeros(blocks, bool)

    def cover(self, level: float) -> None:
        """Make ``env`` exact wherever the envelope may exceed ``level``."""
        todo = np.flatnonzero(self.bound > level)
        todo = todo[~self.done[todo]]
        first, last = _runs(todo, 1)
        starts, stops = first * self.BLOCK, np.minimum((last + 1) * self.BLOCK, self.n)
        for m0, m1, points, samples in _window_peaks(self.x, starts - 1, stops):  # the windows before and in each run
            a = max(m0, 0)  # window m's points count for sample m ...
            np.maximum(self.env[a:m1], points[a - m0:], out=self.env[a:m1])
            np.maximum(self.env[a:m1], samples[a - m0:], out=self.env[a:m1])
            b = min(m1 + 1, self.n)  # ... and for sample m + 1
            np.maximum(self.env[m0 + 1:b], points[:b - m0 - 1], out=self.env[m0 + 1:b])
        self.done[todo] = True

    def overs(self, level: float, gap: int) -> tuple[np.ndarray, np.ndarray]:
        """Clusters of samples whose envelope exceeds ``level``: (first, last), no two within ``gap``."""
        self.cover(level)
        firsts, lasts = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for a in range(0, self.n, _CHUNK):
            f, l = _runs(np.flatnonzero(self.env[a:a + _CHUNK] > level), gap)
            firsts.append(f + a)
            lasts.append(l + a)
        first, last = np.concatenate(firsts), np.concatenate(lasts)
        if first.size == 0:
            return first, last
        keep = np.append(True, first[1:] - last[:-1] > gap)  # clusters split between two chunks join up
        return first[keep], last[np.append(keep[1:], True)]

    def max(self) -> float:
        """The exact true peak (linear)."""
        if self.n == 0:
            return 0.0
        self.cover(float(self.bound.max()) * 0.999)  # the likeliest block first: it raises the level
        self.cover(max(float(self.env.max()), self.sample_peak))
        return max(float(self.env.max()), self.sample_peak)


def _window_peaks(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, chunk: int = 1 << 13):
    """For the windows m in [lo[i], hi[i]): the largest |point| over channels between samples m and m+1.

    Yields (first window, end window, points, |x[m]| over channels) a piece at a time. Window m
    reads x[m-5 .. m+6] (zeros outside the signal). Pieces are packed side by side up to
    ``chunk`` windows; the 12 shifted copies of a pack make one matrix product with the 4
    phases, and the windows that straddle two pieces are dropped.
    """
    pieces = [(a, min(a + chunk, b)) for a0, b in zip(np.asarray(lo).tolist(), np.asarray(hi).tolist())
              for a in range(a0, b, chunk)]
    pack, size = [], 0
    for k, (a, b) in enumerate(pieces):
        pack.append((a, b))
        size += b - a
        if k + 1 == len(pieces) or size + pieces[k + 1][1] - pieces[k + 1][0] > chunk:
            yield from _window_pack(x, pack)
            pack, size = [], 0


def _window_pack(x: np.ndarray, pack: list[tuple[int, int]]):
    channels, n = x.shape
    reach = _TP_TAPS - 1  # a piece of windows reads 5 samples before it and 6 after
    if len(pack) == 1 and pack[0][0] >= 5 and pack[0][1] + 6 <= n:
        buf = x[:, pack[0][0] - 5:pack[0][1] + 6]  # inside the signal: read it in place
    else:
        buf = np.zeros((channels, sum(b - a + reach for a, b in pack)), np.float32)
        at = 0
        for a, b in pack:
            u, v = max(a - 5, 0), min(b + 6, n)  # the samples read that exist
            buf[:, at + u - (a - 5):at + v - (a - 5)] = x[:, u:v]
            at += b - a + reach
    windows = buf.shape[1] - reach
    rows = np.empty((_TP_TAPS, channels, windows), np.float32)
    for i in range(_TP_TAPS):
        rows[i] = buf[:, i:i + windows]
    points = _TP_WINDOW.T @ rows.reshape(_TP_TAPS, channels * windows)
    np.abs(points, out=points)
    values = points.reshape(OVERSAMPLE * channels, windows).max(axis=0)
    centre = np.abs(rows[5], out=rows[5]).max(axis=0)  # row 5 of window m is x[m]
    at = 0
    for a, b in pack:
        yield a, b, values[at:at + b - a], centre[at:at + b - a]
        at += b - a + reach


# ---------------------------------------------------------------- limiter


class _Laid:
    """Sorted, disjoint sample ranges [lo[i], hi[i]) laid end to end: positions 0 .. total-1."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray):
        self.lo, self.hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
        self.end = np.cumsum(self.hi - self.lo)
        self.at = self.end - (self.hi - self.lo)
        self.total = int(self.end[-1]) if self.end.size else 0

    def parts(self, start: int = 0, stop: int | None = None):
        """(range index, first sample, end sample, position) of the pieces of positions [start, stop)."""
        stop = self.total if stop is None else stop
        i = int(np.searchsorted(self.end, start, side="right"))
        while i < self.end.size and self.at[i] < stop:
            u, v = max(int(self.at[i]), start), min(int(self.end[i]), stop)
            yield i, int(self.lo[i]) + u - int(self.at[i]), int(self.lo[i]) + v - int(self.at[i]), u
            i += 1

    def gather(self, signal: np.ndarray, start: int, stop: int) -> np.ndarray:
        """``signal`` (..., samples) at positions [start, stop)."""
        return np.concatenate([signal[..., a:b] for _, a, b, _ in self.parts(start, stop)], axis=-1)


@dataclass
class _Take:
    """One limiter pass: the gain into it, the stage, the stretches it changed and their loudness."""

    gain_db: float
    stage: int
    changed: _Laid  # the stretches where the gain differs from the static gain ...
    curve: np.ndarray  # ... and the limiter's gain there, laid end to end (float32, the static gain not included)
    loudness: float | None = None


class _Limiter:
    """A lookahead true-peak limiter (offline, so zero latency), computed only where it acts.

    Required gain per sample (ceiling / true peak) -> minimum over the next ``lookahead`` ->
    minimum over the last ``hold`` -> two boxcars of half the lookahead. Each boxcar output
    averages only values that already satisfy the sample it lands on, so the gain never exceeds
    what any sample needs. An over at sample o changes the gain over [o - pre, o + post] only,
    and the gain at n reads the required gain over [n - post, n + pre]: the filters run over
    stretches around the overs with that much margin, laid end to end (the margins, where
    nothing is required, keep them from seeing each other), a chunk at a time. Gain modulation
    itself moves inter-sample peaks by a few thousandths of a dB, which ``AIM_BELOW_DB``
    absorbs; the changed stretches of the output are measured again.
    """

    def __init__(self, x: np.ndarray, rate: int, peaks: _Envelope, meter: "_Meter | None", aim: float):
        self.x, self.rate, self.peaks, self.meter, self.aim = x, rate, peaks, meter, aim
        self.n = x.shape[1]

    def search(self, gain_db: float, target: float) -> _Take:
        """Find the gain into the limiter that lands on ``target`` LUFS, gentlest stage first.

        Limiting only lowers loudness, and more gain in gives (less and less) more loudness out.
        Stage by stage: bracket the target (from the plain normalisation gain, stepping up by the
        shortfall over the slope seen so far), then ``scipy.optimize.brentq`` closes in. A stage
        that cannot get within ``LOUDNESS_ACCEPT`` even at +12 dB hands over to the next, faster
        one; if none can, the take closest to the target is returned.
        """
        cap = gain_db + MAX_PUSH_DB
        best: _Take | None = None

        class Found(Exception):
            pass

        for stage in range(len(LIMITER_STAGES)):
            seen: dict[float, float] = {}  # gain -> loudness - target (brentq asks for its ends again)

            def miss(g: float, stage: int = stage, seen: dict = seen) -> float:
                nonlocal best
                if g in seen:
                    return seen[g]
                take = self.run(g, stage)
                if take.loudness is None:
                    raise Found(take)
                if best is None or abs(target - take.loudness) < abs(target - best.loudness):
                    best = take
                if abs(target - take.loudness) <= LOUDNESS_TOLERANCE:
                    raise Found(take)
                seen[g] = take.loudness - target
                return seen[g]

            try:
                if stage > 0 and miss(cap) < -LOUDNESS_ACCEPT:  # a faster stage: can it get there at all?
                    continue
                lo = hi = gain_db
                f_lo = f_hi = miss(gain_db)
                slope = 1 / 1.5  # dB out per dB in: at most 1, less the more the limiter works
                for _ in range(40):  # bracket the target: step by the shortfall over the slope (secant)
                    if (f_hi < 0 and hi >= cap) or (f_lo < 0 < f_hi):
                        break
                    if f_hi < 0:
                        lo, f_lo = hi, f_hi
                        hi = min(cap, hi - 1.1 * f_hi / slope)
                        f_hi = miss(hi)
                        slope = min(1.0, max((f_hi - f_lo) / (hi - lo), 0.02))
                    else:  # over the target (the gates can do that): step down
                        hi, f_hi = lo, f_lo
                        lo -= max(f_lo, LOUDNESS_TOLERANCE)
                        f_lo = miss(lo)
                if f_lo < 0 < f_hi:
                    brentq(miss, lo, hi, xtol=1e-3)
            except Found as found:
                return found.args[0]
            if abs(target - best.loudness) <= LOUDNESS_ACCEPT:
                return best
        return best

    def run(self, gain_db: float, stage: int) -> _Take:
        """One pass at ``gain_db`` with ``LIMITER_STAGES[stage]``: where it changes the gain, and the loudness."""
        g = _db_to_gain(gain_db)
        level = self.aim / g  # envelope values above this are overs
        lookahead, hold = LIMITER_STAGES[stage]
        half = max(1, round(lookahead * self.rate / 2))
        span = 2 * half - 1  # support of the two cascaded boxcars
        size = round(hold * self.rate)
        pre, post = span - 1, max(size - 1, 0) + 2 * (half - 1)  # an over at o changes [o - pre, o + post]
        margin = pre + post + 1
        first, last = self.peaks.overs(level, 2 * margin)
        changed = _Laid(np.maximum(first - pre, 0), np.minimum(last + post + 1, self.n))
        context = _Laid(np.maximum(first - margin, 0), np.minimum(last + margin + 1, self.n))
        inner = context.at + (changed.lo - context.lo)  # where each changed stretch sits in its context
        curve = np.empty(changed.total, np.float32)
        for start in range(0, context.total, _CHUNK):
            stop = min(context.total, start + _CHUNK)
            a, b = max(0, start - margin), min(context.total, stop + margin)
            need = np.minimum(1.0, level / np.maximum(context.gather(self.peaks.env, a, b).astype(np.float64), 1e-30))
            gain = minimum_filter1d(need, span, mode="nearest", origin=-(span // 2))  # min over [n, n+span)
            if size >= 1:
                gain = minimum_filter1d(gain, size, mode="nearest", origin=(size - 1) // 2)  # min over (n-size, n]
            for _ in range(2):
                gain = uniform_filter1d(gain, half, mode="nearest", origin=(half - 1) // 2)  # mean over (n-half, n]
            gain = np.minimum(gain, need)  # the min only guards float rounding in the running means
            for i, _, _, _ in context.parts(start, stop):
                u, v = max(int(inner[i]), start), min(int(inner[i] + changed.end[i] - changed.at[i]), stop)
                if v > u:
                    at = int(changed.at[i] - inner[i])
                    curve[at + u:at + v] = gain[u - a:v - a]
        take = _Take(gain_db, stage, changed, curve)
        take.loudness = self._loudness(take, g)
        return take

    def render(self, take: _Take) -> np.ndarray:
        """The delivered signal of a take: the input times the gain, times the curve where it acts."""
        out = _scaled(self.x, _db_to_gain(take.gain_db))
        for _, a, b, at in take.changed.parts():
            out[:, a:b] *= take.curve[at:at + b - a]
        return out

    def true_peak(self, out: np.ndarray, take: _Take) -> float:
        """The exact true peak of ``out = render(take)``: measured where the limiter acted, scaled elsewhere."""
        g = _db_to_gain(take.gain_db)
        if take.changed.total == 0:
            return self.peaks.max() * g
        # A changed sample s is read by windows s-6 .. s+5, whose points count for samples
        # s-6 .. s+6: measure 8 windows and samples either side of every changed stretch ...
        lo, hi = np.maximum(take.changed.lo - 8, -1), np.minimum(take.changed.hi + 8, self.n)
        inside = max(max(float(p.max()), float(s.max())) for _, _, p, s in _window_peaks(out, lo, hi))
        # ... elsewhere the output is the input times g, and so is its envelope (exact above `inside`).
        self.peaks.cover(inside / g)
        env = self.peaks.env
        top = int(np.argmax(env))
        near = int(np.searchsorted(take.changed.hi + 7, top, side="right"))
        if near < take.changed.lo.size and take.changed.lo[near] - 7 <= top:  # the input's top was limited
            top_rest = 0.0
            for a, b in zip(np.append(0, take.changed.hi + 7).tolist(), np.append(take.changed.lo - 7, self.n).tolist()):
                if min(b, self.n) > max(a, 0):
                    top_rest = max(top_rest, float(env[max(a, 0):min(b, self.n)].max()))
        else:
            top_rest = float(env[top])
        return max(inside, top_rest * g)

    def _loudness(self, take: _Take, g: float) -> float | None:
        """Loudness of ``render(take)``, from the input's K-weighted energies and what the limiter changed."""
        meter = self.meter
        if meter is None:
            return None
        if take.changed.total == 0:
            return meter.loudness(g)
        if meter.looped:  # a clip shorter than a block: measure the output (looped) as a whole
            measured = _Meter.of(self.render(take), self.rate)
            return None if measured is None else measured.loudness()
        # K(x g curve) = g K(x) + K(d) with d = x g (curve - 1), zero outside the changed stretches;
        # K(d) is zero before a stretch and dies away `decay` samples after it. Over that support
        # (laid end to end, a chunk at a time) the hops' energies change by sum(K(d) (2 g K(x) + K(d))).
        changed = take.changed
        support = _Laid(*_merge(changed.lo, np.minimum(changed.hi + _k_decay(self.rate), self.n)))
        owner = np.searchsorted(support.lo, changed.lo, side="right") - 1
        changed_at = support.at[owner] + changed.lo - support.lo[owner]  # changed stretches in support positions
        # (support range, hop) pieces: where each starts in support positions, and its hop
        first = np.searchsorted(meter.bounds, support.lo, side="right") - 1
        last = np.searchsorted(meter.bounds, support.hi - 1, side="right") - 1
        hop = _ranges(first, last + 1)
        owner = np.repeat(np.arange(support.lo.size), last - first + 1)
        hop_start = meter.bounds[np.minimum(hop, len(meter.bounds) - 1)]
        piece = support.at[owner] + np.maximum(hop_start, support.lo[owner]) - support.lo[owner]
        hops = meter.energy.shape[1]
        energy = meter.energy * (g * g)
        state = np.zeros((meter.sos.shape[0], self.x.shape[0], 2))
        for start in range(0, support.total, _CHUNK):
            stop = min(support.total, start + _CHUNK)
            change = np.zeros((self.x.shape[0], stop - start), np.float32)
            i = int(np.searchsorted(changed_at + (changed.hi - changed.lo), start, side="right"))
            while i < changed_at.size and changed_at[i] < stop:
                u, v = max(int(changed_at[i]), start), min(int(changed_at[i] + changed.hi[i] - changed.lo[i]), stop)
                a, k = int(changed.lo[i]) + u - int(changed_at[i]), int(changed.at[i]) + u - int(changed_at[i])
                change[:, u - start:v - start] = self.x[:, a:a + v - u] * (g * (take.curve[k:k + v - u] - 1))
                i += 1
            k_change, state = sosfilt(meter.sos, change, axis=-1, zi=state)
            k_change *= 2 * g * support.gather(meter.weighted, start, stop) + k_change
            p0 = int(np.searchsorted(piece, start, side="right")) - 1
            p1 = int(np.searchsorted(piece, stop, side="left"))
            sums = np.add.reduceat(k_change, np.maximum(piece[p0:p1] - start, 0), axis=-1)
            inside = hop[p0:p1] < hops  # the last few samples belong to no block
            for c in range(energy.shape[0]):
                energy[c] += np.bincount(hop[p0:p1][inside], sums[c, inside], minlength=hops)
        return meter.loudness(1.0, energy)


# ---------------------------------------------------------------- helpers


def _runs(sorted_idx: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Group sorted integers into runs whose neighbours are at most ``gap`` apart: (firsts, lasts)."""
    if sorted_idx.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    breaks = np.flatnonzero(np.diff(sorted_idx) > gap)
    return sorted_idx[np.append(0, breaks + 1)], sorted_idx[np.append(breaks, sorted_idx.size - 1)]


def _merge(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge ranges [lo, hi) sorted by lo (and by hi) where they overlap or touch."""
    if lo.size == 0:
        return lo, hi
    breaks = np.flatnonzero(lo[1:] > hi[:-1])
    return lo[np.append(0, breaks + 1)], hi[np.append(breaks, hi.size - 1)]


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """The concatenation of arange(start, stop) for each pair."""
    lengths = np.asarray(stops) - np.asarray(starts)
    if lengths.size == 0:
        return np.zeros(0, np.int64)
    steps = np.ones(int(lengths.sum()), np.int64)
    heads = np.r_[0, np.cumsum(lengths)[:-1]]
    steps[0] = starts[0]
    steps[heads[1:]] = np.asarray(starts[1:]) - np.asarray(stops[:-1]) + 1
    return np.cumsum(steps)


def _scaled(x: np.ndarray, gain: float) -> np.ndarray:
    return np.multiply(x, np.float32(gain), dtype=np.float32)


def _as_2d(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[np.newaxis, :]
    if x.ndim != 2:
        raise ValueError(f"audio must be (channels, samples), got shape {x.shape}")
    return x.astype(np.float32, copy=False) if x.dtype != np.float64 else x


def _as_float32(audio: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(_as_2d(audio), dtype=np.float32)


def _rms(audio: np.ndarray) -> float:
    x = np.asarray(audio, dtype=np.float64)
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def _db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)
