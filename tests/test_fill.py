"""Finishing an inpainted fill: chain, level of the gap's edges, ceiling, splice. Pure, no model.

What a user would notice if this broke: a fill louder or quieter than the audio around the gap,
a fill that clips or goes over the delivery's true-peak ceiling, a level step where the audio on
the two sides of a gap differs, changed audio outside the gap, or a crash on a gap at a file's end.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pedalboard
import pytest

from host.engine.gaps import CROSSFADE_SECONDS
from host.finish.delivery import match_level, true_peak_db
from host.finish.fill import EDGE_SECONDS, finish_fill

RATE = 48000
HALF = int(round(CROSSFADE_SECONDS * RATE / 2))


def noise(channels: int, n: int, dbfs: float, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((channels, n))
    return x * 10 ** (dbfs / 20) / np.sqrt(np.mean(x**2))


def rms_db(x: np.ndarray) -> float:
    return 20 * math.log10(float(np.sqrt(np.mean(np.square(x)))))


def around(x: np.ndarray, g0: int, g1: int) -> np.ndarray:
    """The audio just outside the gap and its crossfades, as a listener compares it."""
    reach = int(EDGE_SECONDS * RATE)
    return np.concatenate([x[:, g0 - reach : g0 - HALF], x[:, g1 + HALF : g1 + reach]], axis=1)


def seamless_chain() -> pedalboard.Pedalboard:
    """The shipped inpaint-seamless chain: a Limiter whose make-up gain lifts what it is given."""
    return pedalboard.Pedalboard([pedalboard.Limiter(threshold_db=-1.0, release_ms=100.0)])


@pytest.mark.parametrize("channels", [1, 2])
def test_fill_matches_the_edges_not_the_whole_window(channels):
    """A door slam 1 s after the gap is in the model's window; the fill must still sound like
    the room tone at the gap's edges, not like the window's average."""
    n = 5 * RATE
    take = noise(channels, n, -30.0, 1)
    take[:, int(2.6 * RATE) : int(2.9 * RATE)] = noise(channels, int(0.3 * RATE), -6.0, 2)  # the slam
    g0, g1 = int(1.4 * RATE), int(1.7 * RATE)
    take[:, g0:g1] = 0.0  # a dropout
    fill = noise(channels, n, -12.0, 3)  # the model's fill, far too loud
    out, levels = finish_fill(take, fill, (g0, g1), (0, n), RATE, seamless_chain(), -1.0)

    edges = rms_db(around(take, g0, g1))
    inside = rms_db(out[:, g0 + HALF : g1 - HALF])
    assert abs(inside - edges) < 0.5, (inside, edges)
    # what matching to the whole window (today's engine) would have done
    window_matched = match_level(fill, np.concatenate([take[:, :g0], take[:, g1:]], axis=1))
    assert rms_db(window_matched[:, g0:g1]) - edges > 6.0
    assert levels["matched_to"] == "both edges"
    assert levels["edge_rms_dbfs"][0] == pytest.approx(-30.0, abs=0.3)
    assert levels["fill_rms_dbfs"] == pytest.approx(inside, abs=0.3)


def test_the_chain_runs_before_matching_so_its_make_up_gain_does_not_reach_the_take():
    n = 3 * RATE
    take = noise(1, n, -20.0, 4)
    g0, g1 = int(1.2 * RATE), int(1.5 * RATE)
    fill = noise(1, n, -20.0, 5)
    loud_chain = pedalboard.Pedalboard([pedalboard.Gain(gain_db=12.0)])
    out, levels = finish_fill(take, fill, (g0, g1), (0, n), RATE, loud_chain, -1.0)
    assert rms_db(out[:, g0 + HALF : g1 - HALF]) == pytest.approx(-20.0, abs=0.5)
    assert levels["fill_rms_dbfs_before"] == pytest.approx(-8.0, abs=0.5)  # what the chain made of it
    assert levels["gain_db"][0] == pytest.approx(-12.0, abs=0.5)


def test_a_level_that_differs_at_the_two_edges_is_ramped_across_the_gap():
    """Room tone at -30 dBFS before the gap and -14 after (a fader move, a louder take): the fill
    goes from one to the other, with no step at either edge."""
    n = 4 * RATE
    g0, g1 = int(1.5 * RATE), int(2.5 * RATE)
    take = np.concatenate([noise(1, g0, -30.0, 6), noise(1, n - g0, -14.0, 7)], axis=1)
    fill = noise(1, n, -20.0, 8)
    out, levels = finish_fill(take, fill, (g0, g1), (0, n), RATE, None, -1.0)

    quarter = (g1 - g0) // 4
    first, last = rms_db(out[:, g0 + HALF : g0 + quarter]), rms_db(out[:, g1 - quarter : g1 - HALF])
    assert first == pytest.approx(-28.0, abs=1.5)  # close to -30 near the left edge
    assert last == pytest.approx(-16.0, abs=1.5)  # close to -14 near the right edge
    tenths = [rms_db(out[:, g0 + i * (g1 - g0) // 10 : g0 + (i + 1) * (g1 - g0) // 10]) for i in range(10)]
    assert all(b > a - 0.5 for a, b in zip(tenths, tenths[1:]))  # rising, no step back
    assert levels["edge_rms_dbfs"] == [pytest.approx(-30.0, abs=0.3), pytest.approx(-14.0, abs=0.3)]


@pytest.mark.parametrize("ceiling", [-1.0, -3.0])
def test_the_fill_stays_under_the_ceiling_and_only_its_overs_are_taken(ceiling):
    """A take at -20 dBFS RMS and a fill with sharp spikes that go over the ceiling once levelled
    (a click-like artefact): the spikes are pulled under it; the fill's level hardly moves."""
    n = 3 * RATE
    take = noise(2, n, -20.0, 9)
    g0, g1 = int(1.2 * RATE), int(1.6 * RATE)
    fill = noise(2, n, -20.0, 10)
    spikes = np.arange(g0 + 500, g1, 3000)
    fill[:, spikes] = 2.0  # about +6 dBFS
    out, levels = finish_fill(take, fill, (g0, g1), (0, n), RATE, None, ceiling)

    assert true_peak_db(out[:, g0:g1], RATE) <= ceiling
    assert levels["fill_true_peak_dbtp"] <= ceiling
    assert levels["peak_reduction_db"] > 1.0
    assert rms_db(out[:, g0 + HALF : g1 - HALF]) == pytest.approx(rms_db(around(take, g0, g1)), abs=1.0)
    assert np.array_equal(out[:, : g0 - HALF], take[:, : g0 - HALF])


@pytest.mark.parametrize("channels, rate", [(1, 48000), (2, 44100), (6, 96000)])
def test_everything_outside_the_crossfades_is_bit_identical(channels, rate):
    n = 4 * rate
    take = np.round(noise(channels, n, -18.0, 11) * 2**23) / 2**23  # 24-bit values
    g0, g1 = int(round(1.5 * rate)), int(round(1.8 * rate))
    a, b = int(0.2 * rate), int(3.5 * rate)
    fill = noise(channels, b - a, -10.0, 12)
    before = take.copy()
    out, _ = finish_fill(take, fill, (g0, g1), (a, b), rate, seamless_chain(), -1.0)
    half = int(round(CROSSFADE_SECONDS * rate / 2))
    assert out.shape == (channels, b - a)
    assert np.array_equal(out[:, : g0 - half - a], take[:, a : g0 - half])
    assert np.array_equal(out[:, g1 + half - a :], take[:, g1 + half : b])
    assert np.array_equal(take, before)  # the take passed in is not modified


@pytest.mark.parametrize(
    "g0, g1, matched",
    [
        (0, 240, "right edge"),  # /audiohost/inpaint p x 0 0.005
        (3 * RATE - 240, 3 * RATE, "left edge"),
        (1, 4800, "right edge"),
        (HALF - 1, 4800, "right edge"),  # less than 10 ms before it: too little to measure
        (2 * HALF, 4800, "both edges"),
        (3 * RATE - 4800, 3 * RATE - 1, "left edge"),
        (20000, 20001, "both edges"),  # a 1-sample gap
        (3, 3 * RATE - 3, "audio near the gap"),  # all but a few samples
        (0, 3 * RATE, "nothing"),
    ],
)
def test_gaps_at_the_files_ends_are_matched_to_the_edge_they_have(g0, g1, matched):
    n = 3 * RATE
    take = noise(2, n, -20.0, 13)
    fill = noise(2, n, -8.0, 14)
    out, levels = finish_fill(take, fill, (g0, g1), (0, n), RATE, seamless_chain(), -1.0)
    assert out.shape == take.shape
    lo, hi = max(0, g0 - HALF), min(n, g1 + HALF)
    assert np.array_equal(out[:, :lo], take[:, :lo]) and np.array_equal(out[:, hi:], take[:, hi:])
    assert levels["matched_to"] == matched
    if matched in ("left edge", "right edge", "both edges") and g1 - g0 > 1000:
        assert rms_db(out[:, g0:g1]) == pytest.approx(-20.0, abs=1.0)
    assert true_peak_db(out[:, g0:g1], RATE) <= -1.0
    json.dumps(levels, allow_nan=False)  # fit for the sidecar as it is


def test_other_gaps_and_digital_silence_are_not_taken_for_the_edge_level():
    """A second marked gap right after this one still holds the noise the user wants gone, and a
    run of digital silence sits before it: neither sets the level."""
    n = 3 * RATE
    take = noise(1, n, -26.0, 15)
    g0, g1 = int(1.0 * RATE), int(1.2 * RATE)
    other = (g1 + int(0.05 * RATE), g1 + int(0.2 * RATE))
    take[:, other[0] : other[1]] = noise(1, other[1] - other[0], -3.0, 16)  # a cough, marked as a gap
    take[:, g0 - int(0.2 * RATE) : g0 - int(0.1 * RATE)] = 0.0  # an earlier dropout
    fill = noise(1, n, -15.0, 17)
    out, levels = finish_fill(take, fill, (g0, g1), (0, n), RATE, None, -1.0, other_gaps=[(g0, g1), other])
    assert levels["edge_rms_dbfs"] == [pytest.approx(-26.0, abs=0.5), pytest.approx(-26.0, abs=0.5)]
    assert rms_db(out[:, g0 + HALF : g1 - HALF]) == pytest.approx(-26.0, abs=0.7)


def test_levels_report_what_the_sidecar_records():
    n = 3 * RATE
    take = noise(2, n, -20.0, 18)
    g0, g1 = int(1.2 * RATE), int(1.5 * RATE)
    out, levels = finish_fill(take, noise(2, n, -20.0, 19), (g0, g1), (0, n), RATE, seamless_chain(), -1.0)
    assert set(levels) == {
        "gap", "edge_rms_dbfs", "matched_to", "fill_rms_dbfs_before", "gain_db", "fill_rms_dbfs",
        "fill_true_peak_dbtp", "ceiling_dbtp", "peak_reduction_db", "crossfade_seconds", "crossfade_correlation",
    }
    assert levels["gap"] == [1.2, 1.5]
    assert levels["ceiling_dbtp"] == -1.0 and levels["crossfade_seconds"] == CROSSFADE_SECONDS
    assert levels["fill_rms_dbfs"] == pytest.approx(rms_db(out[:, g0:g1]), abs=0.3)
    assert levels["fill_true_peak_dbtp"] == pytest.approx(true_peak_db(out[:, g0 + HALF : g1 - HALF], RATE), abs=0.5)
    assert all(-1.0 <= c <= 1.0 for c in levels["crossfade_correlation"])


def test_a_window_that_does_not_hold_the_crossfades_is_refused():
    n = 3 * RATE
    take = noise(1, n, -20.0, 20)
    with pytest.raises(ValueError):
        a, b = int(0.5 * RATE), int(1.2 * RATE) + 100  # the right crossfade reaches past b
        finish_fill(take, noise(1, b - a, -20.0, 21), (int(1.0 * RATE), int(1.2 * RATE)), (a, b), RATE, None, -1.0)
    with pytest.raises(ValueError):  # the fill is not as long as the window
        finish_fill(take, noise(1, 100, -20.0, 21), (int(1.0 * RATE), int(1.2 * RATE)), (0, n), RATE, None, -1.0)


def test_a_fill_with_nan_or_inf_is_refused():
    n = RATE
    fill = noise(1, n, -20.0, 22)
    fill[0, 100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        finish_fill(noise(1, n, -20.0, 23), fill, (20000, 21000), (0, n), RATE, None, -1.0)


def test_fuzzed_gaps_files_and_levels_keep_every_promise():
    """Gaps at every boundary of files of any length, rate and channel count; takes silent, quiet
    or clipped; fills silent or far too loud; ceilings from -20 to 0 dBTP. Always: no crash, the
    take bit-identical outside the crossfades, finite samples, the fill under the ceiling, and
    levels fit for a JSON sidecar."""
    rng = np.random.default_rng(2024)
    chain = seamless_chain()
    for case in range(120):
        rate = int(rng.choice([8000, 44100, 48000, 96000]))
        n = int(rng.integers(1, 2 * rate))
        channels = int(rng.integers(1, 4))
        take = rng.standard_normal((channels, n)) * 10 ** (rng.uniform(-60, -3) / 20)
        if case % 5 == 1:
            take[:] = 0.0
        elif case % 5 == 2:
            take = np.clip(take * 10, -1.0, 1.0)
        g0 = min(n - 1, int(rng.choice([0, 1, n - 1, n // 2, rng.integers(0, n)])))
        g1 = int(rng.choice([g0 + 1, n, rng.integers(g0 + 1, n + 1)]))
        fill = np.zeros((channels, n)) if case % 7 == 3 else rng.standard_normal((channels, n)) * 10 ** (rng.uniform(-80, 10) / 20)
        ceiling = float(rng.uniform(-20.0, 0.0))
        where = (case, rate, n, channels, g0, g1)
        out, levels = finish_fill(take, fill, (g0, g1), (0, n), rate, chain if case % 3 == 0 else None, ceiling)
        half = int(round(CROSSFADE_SECONDS * rate / 2))
        lo, hi = max(0, g0 - half), min(n, g1 + half)
        assert out.shape == take.shape, where
        assert np.array_equal(out[:, :lo], take[:, :lo]) and np.array_equal(out[:, hi:], take[:, hi:]), where
        assert np.all(np.isfinite(out)), where
        assert levels["fill_true_peak_dbtp"] is None or levels["fill_true_peak_dbtp"] <= ceiling, (where, levels)
        json.dumps(levels, allow_nan=False)
