"""Pure helpers for super-resolution: where a stem's band ends, and which model bands it fills.

No model here: plain NumPy and SciPy, testable on their own.

- :func:`find_cutoff`: the frequency above which a stem's energy falls away (a phone line's
  3.4 kHz, an 8 kHz archive's 4 kHz, an MP3 encoder's low-pass), from its long-term spectrum;
- :func:`nyquist_problem`: why a given cutoff cannot be used for a stem at some rate (the
  range 0-8 kHz itself is the preset's rule, ``host.config.presets``);
- :func:`observed_mel_bands` and :func:`latent_band_mask`: which of AudioLDM's 64 mel bands lie
  wholly below the cutoff (the observation) and which latent frequency bins they make up.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.signal import welch

from host import mel

# The model's bandwidth: AudioLDM's mel bands end at 8 kHz (16 kHz audio); nothing above it is made.
MODEL_TOP_HZ = float(mel.F_MAX)
# A stem whose energy reaches this far has nothing for super-resolution to add.
NOTHING_TO_ADD_HZ = 0.95 * MODEL_TOP_HZ

# find_cutoff: the spectrum is read at about this resolution and smoothed over this width ...
RESOLUTION_HZ = 20.0
SMOOTH_HZ = 100.0
# ... and a cutoff is a frequency whose level stands at least DROP_DB above everything from a
# little above it up to the stem's Nyquist frequency.
DROP_DB = 30.0
EDGE_FRACTION = 0.05  # "a little above": 5 % of the frequency plus the smoothing width
LOWEST_CUTOFF_HZ = 100.0  # no cutoff is looked for below this


def find_cutoff(audio: np.ndarray, rate: int) -> Optional[float]:
    """The frequency (Hz) above which the stem's energy falls away, or its Nyquist frequency if
    it holds energy right up to it; None for digital silence.

    Read from the long-term spectrum of the channels' mix (Welch, Hann windows of about 20 Hz
    resolution, smoothed over 100 Hz): the highest frequency whose level stands at least 30 dB
    over the loudest part of the spectrum from 5 % (plus 100 Hz) above it up to Nyquist. A
    brick-wall low-pass (a resampler, an MP3 encoder, a phone codec) is found up to about 100 Hz
    under its edge rather than above it, so the crossover never leaves a hole between the stem's
    own band and the generated one. Rounded down to 10 Hz.
    """
    x = np.atleast_2d(np.asarray(audio, dtype=np.float64)).mean(axis=0)
    nyquist = rate / 2.0
    if x.size == 0 or not np.any(x):
        return None
    nperseg = int(min(x.size, 2 ** int(np.ceil(np.log2(rate / RESOLUTION_HZ)))))
    if nperseg < 16:
        return float(nyquist)
    freqs, power = welch(x, fs=rate, window="hann", nperseg=nperseg, noverlap=nperseg // 2, detrend=False)
    if not np.any(power > 0):
        return None
    bin_hz = freqs[1] - freqs[0]
    smooth = max(1, int(round(SMOOTH_HZ / bin_hz)))
    # a plain convolution, not a running sum: the stopband may lie 150 dB under the passband
    smoothed = np.convolve(np.maximum(power, 0.0), np.ones(smooth) / smooth, mode="same")
    level = 10.0 * np.log10(np.maximum(smoothed, 1e-300))

    # the loudest level from a little above each frequency up to Nyquist
    suffix_max = np.maximum.accumulate(level[::-1])[::-1]
    start = np.searchsorted(freqs, freqs * (1.0 + EDGE_FRACTION) + SMOOTH_HZ, side="left")
    has_above = start < freqs.size
    above = np.where(has_above, suffix_max[np.minimum(start, freqs.size - 1)], np.inf)
    edge = (freqs >= LOWEST_CUTOFF_HZ) & has_above & (level - above >= DROP_DB)
    if not np.any(edge):
        return float(nyquist)
    # the smoothing spreads an edge over its width: step back by that, so the cutoff lies under the edge
    found = float(freqs[np.flatnonzero(edge)[-1]]) - SMOOTH_HZ
    return float(min(nyquist, max(LOWEST_CUTOFF_HZ, np.floor(found / 10.0) * 10.0)))


def nyquist_problem(cutoff: float, rate: int) -> Optional[str]:
    """Why ``cutoff`` (Hz) cannot be used for a stem at ``rate`` Hz, or None if it can."""
    if cutoff > rate / 2.0:
        return f"{cutoff:g} Hz is above the stem's Nyquist frequency ({rate / 2.0:g} Hz at {rate} Hz): the stem holds nothing up there to keep"
    return None


def observed_mel_bands(cutoff: float) -> np.ndarray:
    """Which of the 64 mel bands (bool, ascending) lie wholly below ``cutoff``: the observation."""
    edges = mel._mel_to_hz(np.linspace(mel._hz_to_mel(mel.F_MIN), mel._hz_to_mel(mel.F_MAX), mel.N_MELS + 2))
    return edges[2:] <= cutoff + 1e-9  # band i spans edges[i] .. edges[i + 2]


def latent_band_mask(cutoff: float, latent_bins: int) -> np.ndarray:
    """Which latent frequency bins are known (bool, ascending): a bin is known when every mel
    band it is made of lies below ``cutoff``; the bin straddling the cutoff is generated."""
    observed = observed_mel_bands(cutoff)
    if mel.N_MELS % latent_bins:
        raise ValueError(f"{mel.N_MELS} mel bands do not divide into {latent_bins} latent bins")
    return observed.reshape(latent_bins, mel.N_MELS // latent_bins).all(axis=1)
