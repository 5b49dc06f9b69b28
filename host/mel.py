"""AudioLDM's audio front end: a waveform in, the log-mel the VAE was trained on out.

Matches the original AudioLDM feature extraction: 16 kHz mono, n_fft 1024, hop 160,
Hann window of 1024, centre (reflect) padding of n_fft/2, STFT magnitude, 64 Slaney mel
bands from 0 to 8000 Hz, then ``log(max(x, 1e-5))``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import soxr

SAMPLE_RATE = 16000
N_FFT = 1024
HOP = 160
N_MELS = 64
F_MIN = 0.0
F_MAX = 8000.0
CLAMP = 1e-5


def to_model_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """A 1-D float waveform at any rate, resampled to 16 kHz with a high-quality resampler."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {audio.shape}")
    if sample_rate == SAMPLE_RATE:
        return audio
    return soxr.resample(audio, sample_rate, SAMPLE_RATE, quality="VHQ")


def log_mel(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-mel spectrogram of shape (frames, 64), frames = 1 + len(audio at 16 kHz) // 160."""
    wave = to_model_rate(audio, sample_rate)
    if len(wave) == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    pad = N_FFT // 2
    mode = "reflect" if len(wave) > pad else "constant"
    padded = np.pad(wave, (pad, pad), mode=mode)
    frames = 1 + (len(padded) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(frames)[:, None]
    spectrum = np.fft.rfft(padded[idx] * _hann(), axis=1)
    magnitude = np.abs(spectrum)  # (frames, 513)
    mel = magnitude @ _mel_basis().T  # (frames, 64)
    return np.log(np.maximum(mel, CLAMP)).astype(np.float32)


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    # periodic Hann, as torch.hann_window and scipy.signal.get_window("hann") give
    n = np.arange(N_FFT)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)


# Slaney's auditory-toolbox mel scale: linear below 1 kHz, logarithmic above
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    return np.where(hz >= _MIN_LOG_HZ, _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-10) / _MIN_LOG_HZ) / _LOGSTEP, hz / _F_SP)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), _F_SP * mel)


@lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    """Triangular filters (64, 513), area-normalised (Slaney norm)."""
    fft_freqs = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_points = _mel_to_hz(np.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2))
    widths = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    weights = np.zeros((N_MELS, len(fft_freqs)))
    for i in range(N_MELS):
        lower = -ramps[i] / widths[i]
        upper = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2 : N_MELS + 2] - mel_points[:N_MELS]))[:, None]
    return weights
