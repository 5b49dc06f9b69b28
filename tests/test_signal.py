"""The pure signal helpers behind inpainting and long restyles: no model, plain NumPy.

What a user would notice if these broke: a dropout not found (or a quiet passage "filled"),
a gap that cannot be filled accepted silently, audio outside a filled gap changed, a click at
a crossfade, or a hole / a doubled stretch where restyle windows meet.
"""

from __future__ import annotations

import numpy as np
import pytest

from host.engine.gaps import CROSSFADE_SECONDS, Gap, check_gaps, find_silent_gaps, splice
from host.engine.windows import OverlapJoiner, equal_power_fades, plan_windows

RATE = 48000


def _tone(seconds: float, rate: int = RATE, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))
    return np.stack([x * (1 - 0.2 * c) for c in range(channels)])


def _dbfs_noise(n: int, dbfs: float, seed: int = 1) -> np.ndarray:
    """Random-sign samples all exactly at ``dbfs`` (peak level)."""
    rng = np.random.default_rng(seed)
    return 10 ** (dbfs / 20) * rng.choice([-1.0, 1.0], size=n)


# --------------------------------------------------------------------------- find_silent_gaps


def test_finds_a_150ms_dropout_inside_the_file():
    audio = _tone(2.0)
    a, b = int(0.8 * RATE), int(0.95 * RATE)
    audio[:, a:b] = 0.0
    gaps = find_silent_gaps(audio, RATE)
    assert len(gaps) == 1
    assert gaps[0].samples(RATE) == (a, b)
    assert gaps[0].length == pytest.approx(0.15)


def test_ignores_a_50ms_dropout():
    audio = _tone(2.0)
    audio[:, int(0.8 * RATE) : int(0.85 * RATE)] = 0.0
    assert find_silent_gaps(audio, RATE) == []


def test_ignores_silence_touching_the_start_or_the_end():
    audio = _tone(2.0)
    audio[:, : int(0.3 * RATE)] = 0.0  # a pre-roll
    audio[:, -int(0.4 * RATE) :] = 0.0  # a tail
    assert find_silent_gaps(audio, RATE) == []
    # ... while a dropout in the middle of the same file is still found
    audio[:, RATE : RATE + int(0.2 * RATE)] = 0.0
    assert [g.samples(RATE) for g in find_silent_gaps(audio, RATE)] == [(RATE, RATE + int(0.2 * RATE))]


def test_noise_at_minus_95_dbfs_counts_as_silence_but_minus_80_does_not():
    a, b = int(0.8 * RATE), int(1.0 * RATE)
    quiet = _tone(2.0)
    quiet[0, a:b] = _dbfs_noise(b - a, -95.0)
    assert [g.samples(RATE) for g in find_silent_gaps(quiet, RATE)] == [(a, b)]

    audible = _tone(2.0)
    audible[0, a:b] = _dbfs_noise(b - a, -80.0)
    assert find_silent_gaps(audible, RATE) == []


def test_a_gap_must_be_silent_on_every_channel():
    audio = _tone(2.0, channels=2)
    a, b = int(0.8 * RATE), int(1.0 * RATE)
    audio[0, a:b] = 0.0  # only the left channel drops out
    assert find_silent_gaps(audio, RATE) == []
    audio[1, a:b] = 0.0
    assert len(find_silent_gaps(audio, RATE)) == 1


# --------------------------------------------------------------------------- check_gaps


@pytest.mark.parametrize(
    "gaps, named, why",
    [
        ([Gap(1.5, 2.5)], "1.5-2.5", "outside"),  # past the end of a 2 s file
        ([Gap(-0.2, 0.3)], "-0.2-0.3", "outside"),
        ([Gap(1.0, 1.0)], "1-1", "start must be before end"),
        ([Gap(1.2, 1.0)], "1.2-1", "start must be before end"),
        ([Gap(0.1, 1.9)], "0.1-1.9", "long"),  # 1.8 s, more than the 1.0 s allowed below
        ([Gap(0.5, 0.8), Gap(0.7, 0.9)], "0.7-0.9", "overlaps"),
    ],
)
def test_check_gaps_rejects_a_bad_gap_naming_it(gaps, named, why):
    with pytest.raises(ValueError) as err:
        check_gaps(gaps, duration=2.0, max_gap=1.0)
    message = str(err.value)
    assert f"gap {named} s" in message
    assert why in message
    assert "\n" not in message


def test_check_gaps_accepts_good_gaps_and_sorts_them():
    ordered = check_gaps([Gap(1.2, 1.4), Gap(0.2, 0.5)], duration=2.0, max_gap=1.0)
    assert ordered == [Gap(0.2, 0.5), Gap(1.2, 1.4)]


# --------------------------------------------------------------------------- splice


@pytest.mark.parametrize("rate, channels", [(48000, 1), (44100, 2)])
def test_splice_leaves_everything_outside_the_crossfades_bit_identical(rate, channels):
    original = _tone(2.0, rate=rate, channels=channels, seed=3)
    fill = _tone(2.0, rate=rate, channels=channels, seed=4) * 0.7
    g0, g1 = int(round(0.9 * rate)), int(round(1.1 * rate))
    out = splice(original, fill, g0, g1, rate)

    assert out.shape == original.shape
    xf = int(round(0.010 * rate))  # 10 ms each side of each edge
    assert np.array_equal(out[:, : g0 - xf], original[:, : g0 - xf])
    assert np.array_equal(out[:, g1 + xf :], original[:, g1 + xf :])
    # inside the gap, past the crossfades, it is the fill
    assert np.array_equal(out[:, g0 + xf : g1 - xf], fill[:, g0 + xf : g1 - xf])
    # the crossfades blend the two (neither is simply copied)
    mid_in = slice(g0 - xf // 2, g0 + xf // 2)
    assert not np.array_equal(out[:, mid_in], original[:, mid_in])
    assert not np.array_equal(out[:, mid_in], fill[:, mid_in])
    # the input itself is not modified
    assert np.array_equal(original, _tone(2.0, rate=rate, channels=channels, seed=3))


def test_splice_crossfades_are_20ms_equal_power():
    rate = 48000
    n = rate
    original = np.ones((1, n))
    fill = np.zeros((1, n))
    g0, g1 = 20000, 30000
    out = splice(original, fill, g0, g1, rate)
    half = int(round(CROSSFADE_SECONDS * rate / 2))
    fade_out, fade_in = equal_power_fades(2 * half)
    # original * fade_out + 0 * fade_in on the way in, 0 * fade_out + original * fade_in on the way out
    assert np.allclose(out[0, g0 - half : g0 + half], fade_out)
    assert np.allclose(out[0, g1 - half : g1 + half], fade_in)
    assert np.all(out[0, g0 + half : g1 - half] == 0.0)


# --------------------------------------------------------------------------- fades and windows


@pytest.mark.parametrize("n", [1, 2, 7, 441, 960, 16000])
def test_equal_power_fades_squares_sum_to_one(n):
    fade_out, fade_in = equal_power_fades(n)
    assert len(fade_out) == len(fade_in) == n
    assert np.allclose(fade_out**2 + fade_in**2, 1.0, atol=1e-12)
    assert np.all(np.diff(fade_out) <= 0) and np.all(np.diff(fade_in) >= 0)


def test_equal_power_fades_of_nothing_are_empty():
    fade_out, fade_in = equal_power_fades(0)
    assert len(fade_out) == len(fade_in) == 0


WINDOW, OVERLAP = 81920, 16000  # 5.12 s windows, 1 s overlap at 16 kHz, as restyle uses them


@pytest.mark.parametrize(
    "total",
    [1, 1000, WINDOW - 1, WINDOW, WINDOW + 1, WINDOW + OVERLAP, 2 * WINDOW - OVERLAP, 2 * WINDOW - OVERLAP + 1, 192000, 1_000_003],
)
def test_plan_windows_covers_every_sample_with_exact_overlaps(total):
    windows = plan_windows(total, WINDOW, OVERLAP)
    assert windows[0][0] == 0 and windows[-1][1] == total
    covered = np.zeros(total, dtype=int)
    for start, end in windows:
        assert 0 < end - start <= WINDOW
        covered[start:end] += 1
    assert covered.min() >= 1
    for (s0, e0), (s1, e1) in zip(windows, windows[1:]):
        assert s1 > s0 and e1 > e0
        assert e0 - s1 == OVERLAP  # neighbours share exactly the overlap
    # no sample is in three windows
    assert covered.max() <= 2


def test_plan_windows_of_nothing_is_empty_and_rejects_a_window_no_longer_than_the_overlap():
    assert plan_windows(0, WINDOW, OVERLAP) == []
    with pytest.raises(ValueError):
        plan_windows(10 * WINDOW, OVERLAP, OVERLAP)


@pytest.mark.parametrize("total", [50000, 192000, 400_001])
def test_overlap_joiner_puts_windows_back_together(total):
    window, overlap = 81920, 16000
    t = np.arange(total) / 16000
    signal = (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    windows = plan_windows(total, window, overlap)
    joiner = OverlapJoiner(total)
    for start, end in windows:
        joiner.add(start, signal[start:end])
    out = joiner.out[0]
    assert out.shape == (total,)

    in_overlap = np.zeros(total, dtype=bool)
    for (_, e0), (s1, _) in zip(windows, windows[1:]):
        in_overlap[s1:e0] = True
    # outside the overlaps the windows are copied exactly, with nothing missing or doubled
    assert np.array_equal(out[~in_overlap], signal[~in_overlap])
    # inside, an equal-power crossfade of two identical copies: cos + sin gain, never a gap or a doubling
    for (_, e0), (s1, _) in zip(windows, windows[1:]):
        fade_out, fade_in = equal_power_fades(e0 - s1)
        assert np.allclose(out[s1:e0], signal[s1:e0] * (fade_out + fade_in), atol=1e-6)
