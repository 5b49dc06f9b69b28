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


# ---------------------------------------------------------------- the delivery guarantees, checked independently
#
# The meters below share no code with host.finish.delivery: pyloudnorm for loudness, and the
# BS.1770-4 annex 2 interpolator written out from the published table, applied by plain
# zero-stuffing and convolution in float64.

ANNEX2_PHASE0 = [0.0017089843750, 0.0109863281250, -0.0196533203125, 0.0332031250000, -0.0594482421875, 0.1373291015625,
                 0.9721679687500, -0.1022949218750, 0.0476074218750, -0.0266113281250, 0.0148925781250, -0.0083007812500]
ANNEX2_PHASE1 = [-0.0291748046875, 0.0292968750000, -0.0517578125000, 0.0891113281250, -0.1665039062500, 0.4650878906250,
                 0.7797851562500, -0.2003173828125, 0.1015625000000, -0.0582275390625, 0.0330810546875, -0.0189208984375]


def annex2_true_peak_db(x: np.ndarray) -> float:
    """4x oversampled true peak: the 48 taps (phase p = taps p, p+4, ...; phases 2, 3 mirror 1, 0)."""
    taps = np.empty(48)
    taps[0::4], taps[1::4] = ANNEX2_PHASE0, ANNEX2_PHASE1
    taps[2::4], taps[3::4] = ANNEX2_PHASE1[::-1], ANNEX2_PHASE0[::-1]
    x = np.atleast_2d(x).astype(np.float64)
    peak = float(np.abs(x).max(initial=0.0))
    for channel in x:
        stuffed = np.zeros(4 * len(channel))
        stuffed[::4] = channel
        peak = max(peak, float(np.abs(np.convolve(stuffed, taps)).max(initial=0.0)))
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def pyloudnorm_looped(x: np.ndarray, rate: int) -> float:
    """pyloudnorm, with a clip shorter than one block looped to at least 2 s as the host defines it."""
    x = np.atleast_2d(x).astype(np.float64)
    if x.shape[1] <= 0.4 * rate:
        x = np.tile(x, (1, math.ceil(2.0 * rate / x.shape[1])))
    return pyloudnorm.Meter(rate).integrated_loudness(x.T)


def material(kind: str, channels: int, rate: int, seconds: float = 3.0, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    tt = np.arange(n) / rate
    if kind == "bursts":  # noise bursts with silence between
        x = rng.standard_normal((channels, n)) * 0.2 * (np.sin(2 * np.pi * 1.3 * tt) > 0.3)
    elif kind == "isp-sine":  # just off fs/4 at 45 degrees: samples well under the waveform's peaks
        x = np.tile(0.5 * np.sin(2 * np.pi * (rate / 4 - 3.0) * tt + np.pi / 4), (channels, 1))
    elif kind == "clicks":  # single-sample impulses every 0.3 s over a quiet bed
        x = rng.standard_normal((channels, n)) * 0.002
        x[:, ::int(0.3 * rate)] = 0.9
    elif kind == "quiet":  # near the -70 LUFS gate
        x = rng.standard_normal((channels, n)) * 10 ** (-58 / 20)
    elif kind == "steps":  # footsteps: decaying noise hits every 0.4 s over a darker bed
        env = np.exp(-(tt % 0.4) / 0.02)
        x = rng.standard_normal((channels, n)) * (0.6 * env + 0.01)
    elif kind == "dense-hot":  # square-ish tone with spikes: crest factor no static gain can fix
        x = np.tile(0.05 * np.sign(np.sin(2 * np.pi * 110 * tt)), (channels, 1))
        x[:, ::rate // 25] = 0.95
    else:
        raise ValueError(kind)
    return x.astype(np.float32)


@pytest.mark.parametrize("rate", [8000, 44100, 48000, 96000])
@pytest.mark.parametrize("channels", [1, 2, 5])
@pytest.mark.parametrize("kind, seconds", [("bursts", 3.0), ("steps", 1.7), ("quiet", 2.0), ("clicks", 1.0), ("bursts", 0.15)])
def test_loudness_agrees_with_pyloudnorm(kind, seconds, channels, rate):
    x = material(kind, channels, rate, seconds)
    assert integrated_loudness(x, rate) == pytest.approx(pyloudnorm_looped(x, rate), abs=0.01)


@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("n", [1, 2, 11, 12, 13, 2047, 2048, 2049, 4097, 20000])
def test_true_peak_matches_an_independent_annex_2_oversampler(n, channels):
    rng = np.random.default_rng(n + channels)
    quiet = rng.standard_normal((channels, n)) * 0.01
    loud_spot = rng.integers(0, n)
    quiet[:, loud_spot] = 0.8  # one loud sample anywhere, edges included
    tone = np.tile(0.7 * np.sin(2 * np.pi * 0.23 * np.arange(n) + 1.0), (channels, 1))  # near fs/4
    for x in (quiet.astype(np.float32), tone.astype(np.float32)):
        assert true_peak_db(x, RATE) == pytest.approx(annex2_true_peak_db(x), abs=1e-4)


def test_true_peak_sees_the_ringing_just_outside_the_clip():
    x = np.zeros((1, 64), np.float32)
    x[0, -1] = 0.5  # a step cut off at the end: the interpolated points after it still ring
    x[0, -2] = -0.5
    assert true_peak_db(x, RATE) == pytest.approx(annex2_true_peak_db(x), abs=1e-4)
    assert true_peak_db(x, RATE) > 20 * math.log10(0.5) + 0.5


CASES = [  # kind, channels, rate, target LUFS, ceiling dBTP, can the target be reached?
    ("bursts", 2, 48000, -23.0, -1.0, True),
    ("bursts", 1, 44100, -14.0, -1.0, True),
    ("isp-sine", 2, 48000, -18.0, -1.0, True),
    ("isp-sine", 1, 96000, -6.0, -2.0, True),
    ("clicks", 2, 48000, -30.0, -1.0, True),
    ("clicks", 1, 44100, -10.0, -1.0, False),  # a few clicks in near silence cannot get that loud
    ("quiet", 2, 48000, -23.0, -1.0, True),
    ("quiet", 1, 96000, -16.0, -3.0, True),
    ("steps", 2, 48000, -12.0, -1.0, True),
    ("steps", 1, 44100, -16.0, -0.5, True),  # needs a faster limiter setting than the gentlest
    ("steps", 1, 44100, -13.0, -0.5, False),  # even +12 dB into the fastest setting falls short
    ("dense-hot", 2, 48000, -8.0, -1.0, True),
    ("dense-hot", 1, 96000, 0.0, -1.0, False),  # 0 LUFS under a -1 dBTP ceiling is out of reach
]


@pytest.mark.parametrize("kind, channels, rate, target, ceiling, reachable", CASES)
def test_finish_keeps_every_delivery_guarantee(kind, channels, rate, target, ceiling, reachable):
    x = material(kind, channels, rate)
    delivery = Delivery(sample_rate=rate, loudness=target, true_peak=ceiling)
    out, out_rate, report = finish(x, rate, delivery)
    assert out_rate == rate and out.shape == x.shape and out.dtype == np.float32
    measured = pyloudnorm_looped(out, rate)
    if reachable:
        assert measured == pytest.approx(target, abs=0.1)
    else:
        assert measured < target - 0.1
    peak = annex2_true_peak_db(out)
    assert peak <= ceiling  # never over, by an independent 4x oversampler
    assert np.abs(out).max() < 1.0  # nothing at or beyond full scale
    # the report states what was delivered
    assert report["loudness_out"] == pytest.approx(measured, abs=0.01)
    assert report["true_peak_out"] == pytest.approx(peak, abs=1e-3) and report["true_peak_out"] <= ceiling
    assert report["loudness_in"] == pytest.approx(pyloudnorm_looped(x, rate), abs=0.01)


@pytest.mark.parametrize("source_rate, seconds", [(16000, 3.0), (16000, 0.25), (96000, 0.3)])
def test_rate_conversion_and_short_one_shots_keep_the_guarantees(source_rate, seconds):
    # as the runner uses it: the model's rate in, the project's out; a one-shot shorter than a
    # block is measured looped, and the limiter's loudness is then measured on its output
    x = material("steps", 1, source_rate, seconds)
    out, rate, report = finish(x, source_rate, Delivery(sample_rate=48000, loudness=-16.0, true_peak=-1.0))
    assert rate == 48000 and out.shape == (1, round(x.shape[1] * 48000 / source_rate))
    assert report["limited"] is True
    assert pyloudnorm_looped(out, rate) == pytest.approx(-16.0, abs=0.1)
    assert report["loudness_out"] == pytest.approx(pyloudnorm_looped(out, rate), abs=0.01)
    assert annex2_true_peak_db(out) <= -1.0 and np.abs(out).max() < 1.0


def test_a_plain_gain_is_exactly_the_gain_that_hits_the_target():
    x = material("steps", 2, RATE)
    out, rate, report = finish(x, RATE, Delivery(loudness=-30.0, true_peak=-1.0))
    assert report["limited"] is False
    np.testing.assert_allclose(out, x * np.float32(10 ** (report["gain_db"] / 20)), rtol=1e-6, atol=1e-9)
    assert pyloudnorm_looped(out, rate) == pytest.approx(-30.0, abs=0.001)


def test_full_scale_ceiling_still_leaves_every_sample_under_full_scale():
    x = material("isp-sine", 2, RATE)
    out, _, report = finish(x, RATE, Delivery(loudness=-1.0, true_peak=0.0))
    assert np.abs(out).max() < 1.0 and annex2_true_peak_db(out) <= 0.0


def test_finish_leaves_its_input_alone():
    x = material("dense-hot", 2, RATE)
    before = x.copy()
    finish(x, RATE, Delivery(loudness=-8.0, true_peak=-1.0))
    finish(x, RATE, Delivery(loudness=-30.0, true_peak=-1.0))
    np.testing.assert_array_equal(x, before)


def gain_reduction_ms(x: np.ndarray, out: np.ndarray, gain_db: float, around: int, rate: int) -> float:
    """How long the limiter holds the gain down around sample ``around`` (the gain into it taken out)."""
    expected = x[0].astype(np.float64) * 10 ** (gain_db / 20)
    ratio = np.ones_like(expected)
    audible = np.abs(expected) > 1e-7
    ratio[audible] = out[0][audible] / expected[audible]
    lo = hi = around
    while lo > 0 and ratio[lo - 1] < 1 - 1e-4:
        lo -= 1
    while hi < len(ratio) - 1 and ratio[hi + 1] < 1 - 1e-4:
        hi += 1
    return (hi - lo + 1) * 1000 / rate


def test_the_gentle_limiter_setting_is_used_when_it_reaches_the_target():
    # Clicks 0.3 s apart: the gentle setting (5 ms lookahead, 20 ms hold) has time to recover.
    x = material("clicks", 1, RATE)
    out, rate, report = finish(x, RATE, Delivery(loudness=-30.0, true_peak=-1.0))
    assert report["limited"] and pyloudnorm_looped(out, rate) == pytest.approx(-30.0, abs=0.1)
    assert gain_reduction_ms(x, out, report["gain_db"], int(0.9 * RATE), RATE) > 25  # lookahead + hold + release


def test_a_faster_limiter_setting_is_used_only_when_the_gentle_one_cannot_reach_the_target():
    from host.finish.delivery import LIMITER_STAGES, MAX_PUSH_DB, _Envelope, _Limiter, _Meter

    # Clicks every 20 ms on a noise bed: the gentle setting never lets the gain back up between
    # them, so pushing harder cannot make the bed louder; the fastest setting can.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 3 * RATE)) * 0.02
    x[:, ::RATE // 50] = 0.9
    x = x.astype(np.float32)
    target = -14.0
    out, rate, report = finish(x, RATE, Delivery(loudness=target, true_peak=-1.0))
    assert report["limited"] and pyloudnorm_looped(out, rate) == pytest.approx(target, abs=0.1)
    assert annex2_true_peak_db(out) <= -1.0
    # the premise: the gentle setting, pushed as hard as finish() may push, falls short
    meter = _Meter.of(x, RATE)
    static = meter.gain_db_for(target)
    limiter = _Limiter(x, RATE, _Envelope(x), meter, 10 ** (-1.1 / 20))
    assert limiter.run(static + MAX_PUSH_DB, 0).loudness < target - 0.1
    # and what was used releases within a few milliseconds, not the gentle 30
    assert gain_reduction_ms(x, out, report["gain_db"], int(1.5 * RATE) // (RATE // 50) * (RATE // 50), RATE) < 12
    assert len(LIMITER_STAGES) >= 2


def test_finish_never_holds_the_signal_at_4x_oversampling():
    import tracemalloc

    x = material("steps", 2, RATE, seconds=20.0)
    for target in (-30.0, -9.0):  # a plain gain, then the limiter
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            _, _, report = finish(x, RATE, Delivery(loudness=target, true_peak=-1.0))
            peak = tracemalloc.get_traced_memory()[1] - start
        finally:
            tracemalloc.stop()
        assert report["limited"] is (target == -9.0)
        assert peak < 4 * x.nbytes  # the whole signal at 4x would be 4 * x.nbytes on its own
