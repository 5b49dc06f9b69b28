"""The pure signal helpers behind inpainting and long restyles: no model, plain NumPy.

What a user would notice if these broke: a dropout not found (or a quiet passage "filled"),
a gap that cannot be filled accepted silently, audio outside a filled gap changed, a click at
a crossfade, or a hole / a doubled stretch where restyle windows meet.
"""

from __future__ import annotations

import numpy as np
import pytest

from host.engine.gaps import CROSSFADE_SECONDS, Gap, check_gaps, crossfade_spans, find_silent_gaps, splice
from host.engine.windows import OverlapJoiner, correlated_fades, equal_power_fades, plan_windows

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


def test_splice_crossfades_are_20ms_centred_on_each_edge():
    rate = 48000
    n = rate
    original = np.ones((1, n))
    fill = np.zeros((1, n))  # silent: no correlation to measure, so the equal-power end of the law
    g0, g1 = 20000, 30000
    out = splice(original, fill, g0, g1, rate)
    half = int(round(CROSSFADE_SECONDS * rate / 2))
    fade_out, fade_in = correlated_fades(2 * half, 0.0)
    # original * fade_out + 0 * fade_in on the way in, 0 * fade_out + original * fade_in on the way out
    assert np.allclose(out[0, g0 - half : g0 + half], fade_out)
    assert np.allclose(out[0, g1 - half : g1 + half], fade_in)
    assert np.all(out[0, g0 + half : g1 - half] == 0.0)
    assert np.all(out[0, : g0 - half] == 1.0) and np.all(out[0, g1 + half :] == 1.0)


# --------------------------------------------------------------------------- the crossfade law at gap edges


def _short_term_db(x: np.ndarray, width: int) -> np.ndarray:
    """Level in dB of running ``width``-sample windows, power averaged over channels."""
    power = np.mean(np.square(x), axis=0)
    return 10 * np.log10(np.convolve(power, np.ones(width) / width, mode="valid"))


def _bump_db(original: np.ndarray, fill: np.ndarray, g0: int, g1: int, rate: int, **kw) -> tuple[float, float]:
    """(largest rise, largest fall) in dB of the spliced level against the expected level, in 1 ms
    windows across both crossfades; the expected level is the original's (fill and original are
    given at equal power)."""
    out = splice(original, fill, g0, g1, rate, **kw)
    half = int(round(CROSSFADE_SECONDS * rate / 2))
    width = int(0.001 * rate)
    diffs = []
    for edge in (g0, g1):
        span = slice(edge - half, edge + half)
        diffs.append(_short_term_db(out[:, span], width) - _short_term_db(original[:, span], width))
    d = np.concatenate(diffs)
    return float(d.max()), float(d.min())


def test_a_fill_that_reconstructs_the_original_is_crossfaded_without_a_level_bump():
    """The fill next to each edge reconstructs the same audio: equal-power fades add it up to
    +3 dB mid-fade; the correlation-following law keeps the level within 0.5 dB."""
    rate = 48000
    original = _tone(1.0, rate=rate, channels=2, seed=5)
    g0, g1 = int(0.4 * rate), int(0.6 * rate)
    rise, fall = _bump_db(original, original.copy(), g0, g1, rate)
    assert rise < 0.5 and fall > -0.5, (rise, fall)
    # what the equal-power law (today's) does with the same material
    out_e, in_e = equal_power_fades(960)
    assert 20 * np.log10((out_e + in_e).max()) > 2.9


def test_unrelated_fill_material_is_crossfaded_without_a_dip():
    """Fill and original independent (no correlation at the edge): the law falls back to
    equal power, so the level neither dips nor bumps; an equal-gain (linear) fade would dip 3 dB."""
    rate = 48000
    rng = np.random.default_rng(11)
    original = rng.standard_normal((64, rate)) * 0.1  # 64 channels: a steady average level
    fill = rng.standard_normal((64, rate)) * 0.1
    g0, g1 = int(0.4 * rate), int(0.6 * rate)
    rise, fall = _bump_db(original, fill, g0, g1, rate)
    assert rise < 0.5 and fall > -0.5, (rise, fall)
    # the same material through an equal-gain fade (the law for correlated material) dips
    rise_linear, fall_linear = _bump_db(original, fill, g0, g1, rate, correlation=(1.0, 1.0))
    assert fall_linear < -2.5


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_partly_correlated_fill_keeps_the_level_through_the_crossfade(rho):
    rate = 48000
    rng = np.random.default_rng(12)
    original = rng.standard_normal((64, rate)) * 0.1
    fill = rho * original + np.sqrt(1 - rho**2) * rng.standard_normal((64, rate)) * 0.1  # equal power
    g0, g1 = int(0.4 * rate), int(0.6 * rate)
    rise, fall = _bump_db(original, fill, g0, g1, rate)
    assert rise < 0.5 and fall > -0.5, (rho, rise, fall)


@pytest.mark.parametrize("r", [0.0, 0.25, 0.5, 0.75, 1.0])
@pytest.mark.parametrize("n", [1, 2, 7, 960])
def test_correlated_fades_hold_the_mix_power_for_their_correlation(n, r):
    fade_out, fade_in = correlated_fades(n, r)
    assert len(fade_out) == len(fade_in) == n
    assert np.allclose(fade_out**2 + fade_in**2 + 2 * r * fade_out * fade_in, 1.0, atol=1e-12)
    assert np.all(np.diff(fade_out) <= 0) and np.all(np.diff(fade_in) >= 0)
    assert np.all((fade_out >= 0) & (fade_out <= 1)) and np.all((fade_in >= 0) & (fade_in <= 1))
    if r == 1.0:
        assert np.allclose(fade_out + fade_in, 1.0)  # equal gain
    if n == 960:  # starts on the original, ends on the fill
        assert fade_out[0] > 0.999 and fade_in[-1] > 0.999


# --------------------------------------------------------------------------- gaps at and near the file's ends


N, HALF = 48000, int(round(CROSSFADE_SECONDS * 48000 / 2))


@pytest.mark.parametrize(
    "g0, g1",
    [
        (0, 240),  # /audiohost/inpaint p x 0 0.005
        (0, 4800),
        (N - 240, N),
        (N - 4800, N),
        (1, 4800),  # within 1 sample of the start
        (N - 4800, N - 1),  # ... of the end
        (HALF - 1, 4800),  # within 10 ms (half a crossfade)
        (N - 4800, N - HALF + 1),
        (2 * HALF - 1, 4800),  # within one crossfade
        (N - 4800, N - 2 * HALF + 1),
        (20000, 20001),  # a 1-sample gap
        (HALF, HALF + 1),
        (N - 1, N),
        (0, 1),
        (20000, 20003),
        (3, N - 3),  # all but a few samples
        (0, N),  # all of it
    ],
)
def test_gaps_at_and_near_the_ends_splice_cleanly(g0, g1):
    rate = 48000
    original = np.ones((2, N))
    fill = np.zeros((2, N))
    out = splice(original, fill, g0, g1, rate)
    assert out.shape == original.shape
    lo, hi = max(0, g0 - HALF), min(N, g1 + HALF)
    # bit-identical outside the gap and its crossfades
    assert np.array_equal(out[:, :lo], original[:, :lo]) and np.array_equal(out[:, hi:], original[:, hi:])
    # the fill alone holds the gap's middle
    mid = (g0 + g1 - 1) // 2
    assert np.all(out[:, mid] == 0.0)
    # the original's share falls monotonically into the gap and rises out of it: no steps back
    share = out[0]
    assert np.all(np.diff(share[lo : mid + 1]) <= 1e-12) and np.all(np.diff(share[mid:hi]) >= -1e-12)
    assert np.all((share >= 0) & (share <= 1))
    # a gap touching an end has no crossfade on that side
    left, right = crossfade_spans(g0, g1, N, rate)
    assert (left is None) == (g0 == 0) and (right is None) == (g1 == N)
    if g0 == 0:  # the fill from the very first sample up to where it fades out at the right edge
        assert np.all(out[:, : right[0] if right else N] == 0.0)
    if g1 == N:
        assert np.all(out[:, left[1] if left else 0 :] == 0.0)


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
