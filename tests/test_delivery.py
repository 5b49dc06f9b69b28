"""Delivery: rate conversion, loudness and true-peak ceiling as a mix engineer would check them."""

from __future__ import annotations

import json
import math

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from host.config.schema import Delivery
from host.finish.delivery import finish, integrated_loudness, match_level, resample, true_peak_db

RATE = 48000


def t(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.arange(int(seconds * rate)) / rate


def stereo(x: np.ndarray, channels: int) -> np.ndarray:
    return np.tile(x, (channels, 1)).astype(np.float32)


def make(kind: str, channels: int, seconds: float = 2.0, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return (rng.standard_normal((channels, int(seconds * RATE))) * 0.1).astype(np.float32)
    if kind == "sine":
        return stereo(0.3 * np.sin(2 * np.pi * 440 * t(seconds)), channels)
    if kind == "bursts":  # noise bursts with silence between
        x = rng.standard_normal((channels, int(seconds * RATE))) * 0.2
        return (x * (np.sin(2 * np.pi * 1.5 * t(seconds)) > 0)).astype(np.float32)
    if kind == "hot":  # square wave with spikes: high crest factor, nothing a plain gain can fix
        x = 0.05 * np.sign(np.sin(2 * np.pi * 110 * t(seconds)))
        x[:: RATE // 20] = 0.95
        return stereo(x, channels)
    raise ValueError(kind)


def reference_true_peak_db(x: np.ndarray) -> float:
    """An independent, finer meter: 8x oversampling with a long filter."""
    up = resample_poly(np.atleast_2d(x).astype(np.float64), 8, 1, axis=-1, window=("kaiser", 10.0))
    return 20 * math.log10(max(np.abs(up).max(), np.abs(x).max()))


def reference_loudness(x: np.ndarray, rate: int) -> float:
    return pyloudnorm.Meter(rate).integrated_loudness(np.atleast_2d(x).T.astype(np.float64))


# ---------------------------------------------------------------- resample


@pytest.mark.parametrize("n, src, dst", [(16001, 16000, 48000), (12345, 44100, 48000), (48000, 48000, 44100), (777, 16000, 96000)])
def test_resample_gives_the_exact_length_and_keeps_channels(n, src, dst):
    y = resample(np.zeros((2, n), np.float32), src, dst)
    assert y.shape == (2, round(n * dst / src)) and y.dtype == np.float32


def test_resample_keeps_a_tone_at_its_pitch():
    x = stereo(0.5 * np.sin(2 * np.pi * 1000 * t(1.0, 16000)), 1)
    y = resample(x, 16000, 48000)
    spectrum = np.abs(np.fft.rfft(y[0] * np.hanning(y.shape[1])))
    peak_hz = np.argmax(spectrum) * 48000 / y.shape[1]
    assert peak_hz == pytest.approx(1000, abs=2)
    assert np.abs(y).max() == pytest.approx(0.5, abs=0.01)


# ---------------------------------------------------------------- meters


def test_full_scale_sine_reads_minus_three_lufs_per_channel():
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LUFS; in both channels 3 dB more.
    sine = np.sin(2 * np.pi * 997 * t(3.0))
    assert integrated_loudness(stereo(sine, 1), RATE) == pytest.approx(-3.01, abs=0.1)
    assert integrated_loudness(stereo(sine, 2), RATE) == pytest.approx(0.0, abs=0.1)


def test_unmeasurable_loudness_is_none():
    assert integrated_loudness(np.zeros((2, RATE), np.float32), RATE) is None
    assert integrated_loudness(np.full((1, RATE), 1e-6, np.float32), RATE) is None  # below the -70 LUFS gate
    assert integrated_loudness(make("noise", 1)[:, :200], RATE) is None  # 4 ms: no meaningful loudness


def test_clips_shorter_than_a_block_are_measured_as_if_looped():
    long = make("noise", 2, 3.0)
    short = long[:, : int(0.15 * RATE)]
    assert integrated_loudness(short, RATE) == pytest.approx(integrated_loudness(long, RATE), abs=0.3)


def test_true_peak_sees_peaks_between_samples():
    # fs/4 sine with a 45 degree phase: every sample is at 0.707 but the waveform reaches 1.0.
    x = stereo(np.sin(2 * np.pi * (RATE / 4) * t(0.5) + np.pi / 4), 1)
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_db(x, RATE) == pytest.approx(0.0, abs=0.2)
    assert true_peak_db(np.zeros((2, 100), np.float32), RATE) == -math.inf


# ---------------------------------------------------------------- finish


@pytest.mark.parametrize("target", [-23.0, -14.0])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("kind", ["noise", "sine", "bursts"])
def test_finish_hits_loudness_target_under_the_ceiling(kind, channels, target):
    delivery = Delivery(sample_rate=48000, loudness=target, true_peak=-1.0)
    out, rate, report = finish(make(kind, channels), RATE, delivery)
    assert rate == 48000 and out.shape[0] == channels and out.dtype == np.float32
    assert reference_loudness(out, rate) == pytest.approx(target, abs=0.5)
    assert reference_true_peak_db(out) <= -1.0 + 0.1
    assert report["loudness_out"] == pytest.approx(target, abs=0.5)


@pytest.mark.parametrize("seconds", [1.0, 10.0])
def test_finish_noise_bursts_of_any_length(seconds):
    delivery = Delivery(sample_rate=44100, loudness=-16.0, true_peak=-1.0)
    out, rate, _ = finish(make("bursts", 2, seconds), RATE, delivery)
    assert rate == 44100 and out.shape[1] == round(seconds * RATE * 44100 / RATE)
    assert reference_loudness(out, rate) == pytest.approx(-16.0, abs=0.5)
    assert reference_true_peak_db(out) <= -0.9


@pytest.mark.parametrize("channels", [1, 2])
def test_hot_target_never_passes_the_ceiling_or_clips(channels):
    delivery = Delivery(sample_rate=48000, loudness=-6.0, true_peak=-1.0)
    out, _, report = finish(make("hot", channels), RATE, delivery)
    assert report["limited"] is True
    assert reference_true_peak_db(out) <= -1.0 + 0.1
    assert report["true_peak_out"] <= -1.0
    assert np.abs(out).max() < 1.0


def test_limiting_keeps_loudness_on_target():
    # Needs several dB of limiting at -10 LUFS: the gain into the limiter must be raised to compensate.
    delivery = Delivery(sample_rate=48000, loudness=-10.0, true_peak=-1.0)
    out, rate, report = finish(make("hot", 2), RATE, delivery)
    assert report["limited"] and reference_loudness(out, rate) == pytest.approx(-10.0, abs=0.5)


def test_no_loudness_target_changes_nothing_below_the_ceiling():
    x = make("sine", 2)
    out, rate, report = finish(x, RATE, Delivery(sample_rate=48000, loudness=None, true_peak=-1.0))
    np.testing.assert_allclose(out, x, atol=1e-6)
    assert report["gain_db"] == 0.0 and report["limited"] is False


def test_no_loudness_target_still_respects_the_ceiling():
    x = stereo(0.99 * np.sign(np.sin(2 * np.pi * 100 * t(1.0))), 2)
    out, _, report = finish(x, RATE, Delivery(loudness="none", true_peak=-3.0))
    assert report["limited"] and reference_true_peak_db(out) <= -3.0 + 0.1


def test_finish_converts_the_model_rate_to_the_delivery_rate():
    x = make("noise", 1, 1.0)[:, :16000]  # one second as if rendered at 16 kHz
    out, rate, _ = finish(x, 16000, Delivery(sample_rate=96000, loudness=-20.0))
    assert rate == 96000 and out.shape == (1, 96000)
    assert reference_loudness(out, rate) == pytest.approx(-20.0, abs=0.5)


def test_short_one_shot_is_normalised():
    x = make("noise", 2, 0.25)
    out, rate, report = finish(x, RATE, Delivery(loudness=-18.0))
    assert report["loudness_out"] == pytest.approx(-18.0, abs=0.5)
    assert out.shape == x.shape


def test_silence_passes_through_and_the_report_is_strict_json():
    out, _, report = finish(np.zeros((2, RATE), np.float32), RATE, Delivery())
    assert not out.any()
    assert report["loudness_in"] is None and report["loudness_out"] is None and report["true_peak_out"] is None
    assert set(report) == {"loudness_in", "loudness_out", "true_peak_out", "gain_db", "limited"}
    json.dumps(report, allow_nan=False)


# ---------------------------------------------------------------- match_level


def test_match_level_matches_rms():
    fill = make("noise", 2) * 0.1
    ref = make("sine", 2)
    y = match_level(fill, ref)
    assert np.sqrt(np.mean(y.astype(np.float64) ** 2)) == pytest.approx(np.sqrt(np.mean(ref.astype(np.float64) ** 2)), rel=1e-4)


def test_match_level_leaves_silence_alone():
    fill = make("noise", 1)
    np.testing.assert_array_equal(match_level(fill, np.zeros_like(fill)), fill)
    silent = np.zeros((1, 100), np.float32)
    np.testing.assert_array_equal(match_level(silent, fill), silent)
