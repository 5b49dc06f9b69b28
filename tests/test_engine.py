"""The three AudioLDM pipelines, run directly on the built-in random-weight ``tiny`` model.

The tiny model sounds like noise, but it has AudioLDM's geometry (16 kHz, 5.12 s window), so
lengths, determinism, batching, windowing, progress and cancellation are all real.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from host import mel
from host.engine.foley import FoleyPipeline, FoleyTake
from host.engine.inpaint import InpaintPipeline
from host.engine.restyle import RestylePipeline
from host.engine import steps as steps_module
from host.engine.steps import Cancelled

STEPS = 2
GUIDANCE = 2.5


@pytest.fixture(scope="module")
def foley(tiny_model):
    return FoleyPipeline(tiny_model)


@pytest.fixture(scope="module")
def restyle(tiny_model):
    return RestylePipeline(tiny_model)


@pytest.fixture(scope="module")
def inpaint(tiny_model):
    return InpaintPipeline(tiny_model)


def _stem(seconds: float, rate: int, channels: int = 1, seed: int = 7) -> np.ndarray:
    """(channels, samples): a tone with a little noise, as a DAW stem would be."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    x = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.02 * rng.standard_normal(len(t))
    return np.stack([x * (1 - 0.1 * c) for c in range(channels)])


# --------------------------------------------------------------------------- foley


@pytest.mark.parametrize("duration", [1.0, 0.7])
def test_foley_take_is_exactly_the_asked_duration(foley, tiny_model, duration):
    assert tiny_model.sample_rate == 16000
    [wave] = foley([FoleyTake("a door creaks", "", 1)], duration, STEPS, GUIDANCE)
    assert wave.dtype == np.float32
    assert wave.shape == (int(round(duration * 16000)),)
    assert np.all(np.isfinite(wave)) and np.any(wave != 0)


def test_foley_same_seed_same_audio_other_seed_other_audio(foley):
    take = FoleyTake("rain on a window", "low quality", 1234)
    [a] = foley([take], 1.0, STEPS, GUIDANCE)
    [b] = foley([take], 1.0, STEPS, GUIDANCE)
    [c] = foley([FoleyTake(take.prompt, take.negative_prompt, 1235)], 1.0, STEPS, GUIDANCE)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c, atol=1e-3)


def test_foley_prompt_changes_the_audio(foley):
    [a] = foley([FoleyTake("rain on a window", "", 5)], 1.0, STEPS, GUIDANCE)
    [b] = foley([FoleyTake("a heavy door slam", "", 5)], 1.0, STEPS, GUIDANCE)
    assert not np.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("scheduler", ["ddim", "dpm"])
def test_foley_take_sounds_the_same_batched_or_alone(foley, scheduler):
    takes = [
        FoleyTake("glass breaking", "", 11),
        FoleyTake("wind howling", "noise", 22),
        FoleyTake("footsteps on gravel", "", 33),
    ]
    batch = foley(takes, 1.0, 3, GUIDANCE, scheduler)
    assert len(batch) == 3
    for i in (0, 1, 2):
        [alone] = foley([takes[i]], 1.0, 3, GUIDANCE, scheduler)
        assert alone.shape == batch[i].shape
        assert np.allclose(batch[i], alone, atol=1e-5), f"take {i} changed when batched"
    assert not np.allclose(batch[0], batch[1], atol=1e-3)


def test_foley_without_guidance_renders_too(foley):
    [wave] = foley([FoleyTake("a click", "", 3)], 0.5, STEPS, 1.0)
    assert wave.shape == (8000,) and np.any(wave != 0)


# --------------------------------------------------------------------------- restyle


def test_restyle_keeps_the_length_of_a_short_stereo_stem(restyle):
    stem = _stem(1.3, 44100, channels=2)
    n_in = stem.shape[1]
    waves = restyle(stem, 44100, "steel drums", "", [1, 2], 0.6, 4, GUIDANCE)
    assert len(waves) == 2
    for wave in waves:
        assert wave.ndim == 1 and wave.dtype == np.float32
        assert len(wave) == int(round(n_in * 16000 / 44100))
        assert np.all(np.isfinite(wave))
    assert not np.allclose(waves[0], waves[1], atol=1e-4)  # each take its own seed


def test_restyle_of_a_stem_longer_than_the_window_joins_windows_to_full_length(restyle, tiny_model):
    rate = 8000
    stem = _stem(12.0, rate)
    assert stem.shape[1] / rate > tiny_model.window_seconds  # really needs several windows
    seen = []
    [wave] = restyle(stem, rate, "a radio", "", [9], 1.0, STEPS, GUIDANCE, on_step=lambda d, t: seen.append((d, t)))
    assert len(wave) == 12 * 16000
    assert np.all(np.isfinite(wave))
    # every part of the stem was restyled: no stretch left silent where windows meet
    for start in range(0, len(wave) - 1600, 1600):
        assert np.any(np.abs(wave[start : start + 1600]) > 0), f"silent 0.1 s at {start / 16000:.1f} s"
    # three windows of two steps each, reported as one progress run
    totals = {t for _, t in seen}
    assert totals == {3 * STEPS}
    assert [d for d, _ in seen] == list(range(1, 3 * STEPS + 1))


def test_restyle_takes_draw_independent_noise_in_every_window(restyle, tiny_model, monkeypatch):
    """Consecutive seeds (takes 1 and 2 of a cue) must not share noise: window k of take 2 is not
    window k + 1 of take 1."""
    drawn = []
    real = steps_module.seeded_noise
    monkeypatch.setattr(steps_module, "seeded_noise", lambda model, seeds, frames: (drawn.append(list(seeds)), real(model, seeds, frames))[1])
    stem = _stem(12.0, 16000)
    restyle(stem, 16000, "a radio", "", [100, 101], 0.5, 2, GUIDANCE)
    assert len(drawn) == 3  # three windows, both takes in each call
    noises = {}
    for k, seeds in enumerate(drawn):
        for take, seed in enumerate(seeds):
            shape = steps_module.latent_shape(tiny_model, 64)
            noises[(take, k)] = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed)))
    keys = list(noises)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not torch.equal(noises[a], noises[b]), f"take/window {a} and {b} share their noise"


def test_restyle_is_deterministic_per_seed(restyle):
    stem = _stem(1.0, 16000)
    [a] = restyle(stem, 16000, "texture", "", [42], 0.5, 4, GUIDANCE)
    [b] = restyle(stem, 16000, "texture", "", [42], 0.5, 4, GUIDANCE)
    assert np.array_equal(a, b)


def test_restyle_strength_zero_returns_the_stem_itself(restyle):
    stem = _stem(1.3, 44100, channels=2)
    waves = restyle(stem, 44100, "anything at all", "", [1, 2], 0.0, 4, GUIDANCE)
    expected = mel.to_model_rate(stem.mean(axis=0), 44100)
    for wave in waves:
        assert len(wave) == len(expected)
        # the stem at 16 kHz, mono, its level kept
        assert np.allclose(wave, expected, atol=1e-6)


def test_restyle_strength_changes_how_far_it_moves(restyle):
    stem = _stem(1.0, 16000)
    reference = mel.to_model_rate(stem[0], 16000)

    def distance(strength: float) -> float:
        [wave] = restyle(stem, 16000, "a whoosh", "", [3], strength, 4, GUIDANCE)
        return float(np.sqrt(np.mean((wave - reference) ** 2)))

    assert distance(0.0) < 1e-3
    assert distance(1.0) > 1e-2


# --------------------------------------------------------------------------- inpaint


def test_inpaint_take_is_the_stem_with_its_gap_generated_and_seeded(inpaint):
    stem = _stem(2.0, 44100, channels=2)
    gap, window = (0.8, 1.0), (0.0, 2.0)
    a = inpaint(stem, 44100, [gap], [window], "room tone", "", [5, 6], STEPS, GUIDANCE)
    b = inpaint(stem, 44100, [gap], [window], "room tone", "", [5], STEPS, GUIDANCE)
    heard = mel.to_model_rate(stem.mean(axis=0), 44100)
    assert len(a) == 2 and all(t.shape == heard.shape for t in a)
    # outside the gap and its 10 ms context fades the take is the stem as the model hears it
    outside = np.ones(len(heard), dtype=bool)
    outside[round(0.795 * 16000) : round(1.005 * 16000)] = False
    for take in a:
        assert np.allclose(take[outside], heard[outside], atol=1e-6)
    inside = slice(int(0.81 * 16000), int(0.99 * 16000))
    assert not np.allclose(a[0][inside], heard[inside], atol=1e-3)
    # the same seed fills the same, alone or next to another take (float rounding aside)
    scale = float(np.abs(b[0][inside]).max())
    assert np.allclose(a[0], b[0], atol=1e-4 * scale)  # batch size changes the CPU kernels' summation order; 1e-4 is -80 dB
    assert not np.allclose(a[0][inside], a[1][inside], atol=1e-2 * scale)
    again = inpaint(stem, 44100, [gap], [window], "room tone", "", [5], STEPS, GUIDANCE)
    assert np.array_equal(again[0], b[0])


def test_a_later_gap_hears_the_earlier_fill_not_silence(inpaint, monkeypatch):
    """Two gaps whose windows overlap: the second window the model encodes holds the first fill."""
    stem = _stem(3.0, 16000)
    stem[:, int(1.0 * 16000) : int(1.3 * 16000)] = 0.0
    stem[:, int(1.8 * 16000) : int(2.1 * 16000)] = 0.0
    seen = []
    real = steps_module.encode_audio
    monkeypatch.setattr(steps_module, "encode_audio", lambda model, wave, frames: (seen.append(np.array(wave)), real(model, wave, frames))[1])
    windows = [(0.0, 3.0), (0.0, 3.0)]
    [take] = inpaint(stem, 16000, [(1.0, 1.3), (1.8, 2.1)], windows, "room tone", "", [3], STEPS, GUIDANCE)
    assert len(seen) == 2
    first_gap = slice(int(1.02 * 16000), int(1.28 * 16000))
    assert np.ptp(seen[0][first_gap]) == 0.0  # the first window: the gap is silent (a constant after DC removal)
    assert np.ptp(seen[1][first_gap]) > 1e-3  # the second: it holds the first fill
    assert np.max(np.abs(take[int(1.82 * 16000) : int(2.08 * 16000)])) > 1e-3


# --------------------------------------------------------------------------- progress and cancelling


def _run(mode, pipelines, on_step, steps=4):
    foley, restyle, inpaint = pipelines
    if mode == "foley":
        return foley([FoleyTake("thunder", "", 1)], 1.0, steps, GUIDANCE, on_step=on_step)
    if mode == "restyle":
        return restyle(_stem(1.0, 16000), 16000, "thunder", "", [1], 1.0, steps, GUIDANCE, on_step=on_step)
    return inpaint(_stem(2.0, 16000), 16000, [(0.8, 1.0)], [(0.0, 2.0)], "thunder", "", [1], steps, GUIDANCE, on_step=on_step)


@pytest.mark.parametrize("mode", ["foley", "restyle", "inpaint"])
def test_cancel_after_the_first_step_stops_the_render(mode, foley, restyle, inpaint):
    seen = []

    def on_step(done, total):
        seen.append((done, total))
        if done >= 1:
            raise Cancelled()

    with pytest.raises(Cancelled):
        _run(mode, (foley, restyle, inpaint), on_step)
    assert seen == [(1, 4)]


@pytest.mark.parametrize("mode", ["foley", "restyle", "inpaint"])
def test_progress_counts_every_step_up_to_the_total(mode, foley, restyle, inpaint):
    seen = []
    _run(mode, (foley, restyle, inpaint), lambda done, total: seen.append((done, total)))
    assert seen == [(i, 4) for i in range(1, 5)]
