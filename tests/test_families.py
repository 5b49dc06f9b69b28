"""Both model families, AudioLDM (``tiny``) and AudioLDM 2 (``tiny-audioldm2``), through the same
foley, restyle and inpaint pipelines: lengths, rates, seeds, batching, and an inpainted file
bit-identical outside its gap through the runner.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from host.engine import steps
from host.engine.foley import FoleyPipeline, FoleyTake
from host.engine.inpaint import InpaintPipeline
from host.engine.models import load_model
from host.engine.restyle import RestylePipeline
from host.runner import Runner
from tests.test_runner import _inpaint_stem, make_project, render

GUIDANCE = 2.5


@pytest.fixture(scope="module", params=["tiny", "tiny-audioldm2"])
def model(request, model_cache):
    return load_model(request.param, device="cpu")


def _stem(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(int(round(seconds * rate))) / rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(len(t))
    return np.stack([x * (1 - 0.1 * c) for c in range(channels)])


def test_each_tiny_model_has_its_family_and_the_real_geometry(model):
    expected = {"tiny": ("audioldm", 5.12), "tiny-audioldm2": ("audioldm2", 10.24)}[model.id]
    assert (model.family, model.window_seconds) == expected
    assert (model.sample_rate, model.hop, model.vae_scale) == (16000, 160, 4)
    assert model.unet.config.in_channels == 8 and model.vocoder.config.model_in_dim == 64
    if model.family == "audioldm2":
        assert model.max_new_tokens == 8 and model.text_length == 128
        # the UNet has both cross-attention streams: GPT-2's sequence and the T5 states
        assert list(model.unet.config.cross_attention_dim[0]) == [None, 32, 32]


def test_foley_length_rate_and_seed(model):
    take = FoleyTake("rain on a tin roof", "low quality", 77)
    [a] = FoleyPipeline(model)([take], 0.7, 2, GUIDANCE)
    [b] = FoleyPipeline(model)([take], 0.7, 2, GUIDANCE)
    [c] = FoleyPipeline(model)([FoleyTake(take.prompt, take.negative_prompt, 78)], 0.7, 2, GUIDANCE)
    assert a.dtype == np.float32 and a.shape == (int(round(0.7 * model.sample_rate)),)
    assert np.all(np.isfinite(a)) and np.sqrt(np.mean(a**2)) > 1e-3  # audible, not silence
    assert np.array_equal(a, b)
    assert not np.allclose(a, c, atol=1e-3)


def test_foley_prompt_matters(model):
    [a] = FoleyPipeline(model)([FoleyTake("rain on a window", "", 5)], 0.5, 2, GUIDANCE)
    [b] = FoleyPipeline(model)([FoleyTake("a heavy door slam in a stone hall", "", 5)], 0.5, 2, GUIDANCE)
    assert not np.allclose(a, b, atol=1e-4)


def test_a_take_sounds_the_same_batched_with_prompts_of_other_lengths(model):
    # AudioLDM 2's T5 stream has one token per word piece: prompts of different lengths share a batch
    takes = [FoleyTake("glass", "", 1), FoleyTake("wind howling through a broken window at night", "muffled", 2)]
    batch = FoleyPipeline(model)(takes, 0.5, 2, GUIDANCE)
    for i, take in enumerate(takes):
        [alone] = FoleyPipeline(model)([take], 0.5, 2, GUIDANCE)
        assert np.allclose(batch[i], alone, atol=1e-5), f"take {i} changed when batched"


def test_restyle_keeps_the_stem_length_and_is_seeded(model):
    stem = _stem(1.3, 44100, channels=2)
    pipe = RestylePipeline(model)
    a = pipe(stem, 44100, "steel drums", "", [1, 2], 0.6, 4, GUIDANCE)
    b = pipe(stem, 44100, "steel drums", "", [1], 0.6, 4, GUIDANCE)
    n = int(round(stem.shape[1] * 16000 / 44100))
    assert [w.shape for w in a] == [(n,), (n,)]
    assert np.allclose(a[0], b[0], atol=1e-5)
    assert not np.allclose(a[0], a[1], atol=1e-4)


def test_restyle_longer_than_the_window(model):
    seconds = model.window_seconds + 1.5  # two windows for either family
    seen = []
    [wave] = RestylePipeline(model)(_stem(seconds, 8000), 8000, "a radio", "", [4], 1.0, 2, GUIDANCE, on_step=lambda d, t: seen.append(t))
    assert len(wave) == int(round(seconds * 8000)) * 2
    assert np.all(np.isfinite(wave)) and seen and set(seen) == {4}


def test_inpaint_take_is_stem_long_and_seeded(model):
    stem = _stem(2.0, 48000, channels=2)
    pipe = InpaintPipeline(model)
    a = pipe(stem, 48000, [(0.8, 1.0)], [(0.0, 2.0)], "room tone", "", [5], 2, GUIDANCE)
    b = pipe(stem, 48000, [(0.8, 1.0)], [(0.0, 2.0)], "room tone", "", [5], 2, GUIDANCE)
    assert a[0].shape == (32000,) and np.array_equal(a[0], b[0])


def test_inpaint_through_the_runner_is_bit_identical_outside_the_gap(tmp_path, model):
    rate = 44100
    root = make_project(tmp_path / "p")
    stem = root / "inpaint" / "pad.wav"
    gap = (0.8, 1.0)
    original = _inpaint_stem(stem, rate, 2, "PCM_16", silent=gap)
    (root / "inpaint" / "pad.toml").write_text("steps = 2\ntakes = 1\nseed = 9\n")
    [outcome] = render(Runner(model), root)
    assert outcome.status == "rendered", outcome.error
    [take] = outcome.files
    out, out_rate = sf.read(str(take), dtype="int32", always_2d=True)
    assert out_rate == rate and out.shape == original.shape
    g0, g1, xf = int(gap[0] * rate), int(gap[1] * rate), int(0.010 * rate)
    assert np.array_equal(out[: g0 - xf], original[: g0 - xf])
    assert np.array_equal(out[g1 + xf :], original[g1 + xf :])
    assert np.abs(out[g0:g1].astype(np.int64)).max() > 10 ** (-90 / 20) * 2**31  # the gap holds sound now


def test_warm_up_runs_each_shape_once_and_changes_nothing(model):
    take = FoleyTake("thunder", "", 3)
    [before] = FoleyPipeline(model)([take], 0.5, 2, GUIDANCE)
    frames = model.frames_for(0.5)
    assert steps.warm_up(model, [(frames, 1), (frames, 1), (frames, 2), (model.frames_for(1.0), 1)]) == 3
    [after] = FoleyPipeline(model)([take], 0.5, 2, GUIDANCE)
    assert np.array_equal(before, after)
