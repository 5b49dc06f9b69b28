"""The mel front end must match AudioLDM's own features, checked against librosa."""

import librosa
import numpy as np
import pytest

from host.mel import log_mel


def reference_log_mel(audio16k: np.ndarray) -> np.ndarray:
    # Independent reference: librosa STFT magnitude (power=1) with AudioLDM's settings.
    mel = librosa.feature.melspectrogram(
        y=audio16k.astype(np.float64), sr=16000, n_fft=1024, hop_length=160, win_length=1024,
        window="hann", center=True, pad_mode="reflect", power=1.0, n_mels=64, fmin=0, fmax=8000,
        htk=False, norm="slaney",
    )
    return np.log(np.maximum(mel, 1e-5)).T


@pytest.mark.parametrize("seconds", [0.5, 2.0, 3.33])
def test_log_mel_matches_reference_at_16k(seconds):
    rng = np.random.default_rng(1)
    n = int(16000 * seconds)
    t = np.arange(n) / 16000
    audio = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n)
    ours = log_mel(audio, 16000)
    ref = reference_log_mel(audio)
    assert ours.shape == ref.shape == (1 + n // 160, 64)
    assert np.max(np.abs(ours - ref)) < 1e-3


def test_log_mel_resamples_other_rates_to_16k():
    sr = 44100
    t = np.arange(int(sr * 1.0)) / sr
    audio = 0.5 * np.sin(2 * np.pi * 1000 * t)
    ours = log_mel(audio, sr)
    assert ours.shape == (101, 64)
    # the 1 kHz tone lands in the band librosa puts it in
    ref = reference_log_mel(librosa.resample(audio, orig_sr=sr, target_sr=16000, res_type="soxr_vhq"))
    assert ours.shape == ref.shape
    mid = slice(10, -10)
    assert np.argmax(ours[mid].mean(axis=0)) == np.argmax(ref[mid].mean(axis=0))
    assert np.max(np.abs(ours[mid] - ref[mid])) < 1e-2


def test_silence_is_clamped_at_log_1e5():
    ours = log_mel(np.zeros(1600), 16000)
    assert np.allclose(ours, np.log(1e-5))
