"""Three more ways to render (issue 12): super-resolution, foley longer than the model's window,
and seamless loops.

Pure helpers first (band edges, the crossover, looped loudness and resampling, window plans),
then the pipelines on the tiny models, then whole takes through the runner: files on disk,
their lengths, spectra, joins, wrap points, ``smpl`` chunks and sidecars.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pedalboard
import pytest
import soundfile as sf
import soxr
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import firwin, stft, welch

from host import mel
from host.config.presets import Preset
from host.config.schema import Delivery
from host.engine import bands
from host.engine import long as long_module
from host.engine import loop as loop_module
from host.engine.foley import FoleyPipeline, FoleyTake
from host.engine.steps import Cancelled
from host.engine.superres import SuperresPipeline
from host.finish import crossover as xover
from host.finish.chain import apply_chain
from host.finish.delivery import integrated_loudness, looped_loudness, looped_true_peak_db, peak_envelope, resample
from host.finish.take import chain_looped, deliver, deliver_loop, resample_looped
from host.plan.project import plan_project
from host.runner import Runner

STEPS = 2
GUIDANCE = 2.5


def band_limited_noise(seconds: float, rate: int, cutoff: float, level: float = 0.1, seed: int = 0) -> np.ndarray:
    """White noise through a steep FIR low-pass at ``cutoff`` Hz: a band-limited recording."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(round(seconds * rate)))
    return level * np.convolve(x, firwin(2001, cutoff, fs=rate), mode="same")


def third_octave_levels(x: np.ndarray, rate: int, top: float) -> dict[float, float]:
    """Power (dB) per third-octave band from 100 Hz whose upper edge lies at or below ``top``."""
    f, p = welch(x, rate, nperseg=8192)
    out = {}
    lo = 100.0
    while lo * 2 ** (1 / 3) <= top:
        hi = lo * 2 ** (1 / 3)
        out[round(lo, 1)] = 10 * math.log10(p[(f >= lo) & (f < hi)].sum() + 1e-30)
        lo = hi
    return out


def band_power_db(x: np.ndarray, rate: int, lo: float, hi: float) -> float:
    f, p = welch(x, rate, nperseg=8192)
    return 10 * math.log10(p[(f >= lo) & (f < hi)].sum() + 1e-30)


def riff_chunks(path: Path) -> dict[bytes, bytes]:
    """Every chunk of a RIFF/WAVE file by id, read with nothing but struct."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    chunks, at = {}, 12
    while at + 8 <= len(data):
        cid, size = data[at : at + 4], struct.unpack("<I", data[at + 4 : at + 8])[0]
        chunks[cid] = data[at + 8 : at + 8 + size]
        at += 8 + size + (size & 1)
    return chunks


def make_project(root: Path, settings: str = 'sample_rate = 48000\nloudness = "none"\ntrue_peak = -0.1\n') -> Path:
    (root / "presets").mkdir(parents=True, exist_ok=True)
    (root / "project.toml").write_text(settings)
    return root


def run_project(runner: Runner, root: Path):
    plan = plan_project(root)
    assert not plan.problems, [str(p) for p in plan.problems]
    outcomes = runner.run(plan.jobs)
    for o in outcomes:
        assert o.status == "rendered", o.error
    return {o.job.name: o for o in outcomes}


@pytest.fixture(scope="module")
def runner(tiny_model):
    return Runner(tiny_model)


# =========================================================================== pure: bands and crossover


def test_cutoff_is_found_just_under_a_brick_wall_edge():
    for edge in (1000.0, 3000.0, 5000.0):
        found = bands.find_cutoff(band_limited_noise(4.0, 44100, edge)[None], 44100)
        assert edge - 150 <= found <= edge, (edge, found)


def test_cutoff_of_an_8k_archive_resampled_up_is_its_old_nyquist():
    rng = np.random.default_rng(3)
    archive = rng.standard_normal(8000 * 4)
    assert bands.find_cutoff(archive, 8000) == 4000.0  # energy right up to its own Nyquist
    found = bands.find_cutoff(soxr.resample(archive, 8000, 48000), 48000)
    assert 3700 <= found <= 4000


def test_full_band_and_silent_stems_have_no_band_to_find():
    rng = np.random.default_rng(4)
    assert bands.find_cutoff(rng.standard_normal(48000 * 2), 48000) == 24000.0
    assert bands.find_cutoff(np.zeros((2, 48000)), 48000) is None


def test_a_given_cutoff_must_lie_under_the_stems_nyquist():
    assert bands.nyquist_problem(4000, 8000) is None
    assert "Nyquist" in bands.nyquist_problem(4001, 8000)


def test_latent_bins_are_known_only_when_all_their_mel_bands_lie_under_the_cutoff():
    edges = mel._mel_to_hz(np.linspace(0.0, mel._hz_to_mel(8000.0), 66))  # band i spans edges[i] .. edges[i + 2]
    for cutoff in (250.0, 1000.0, 3400.0, 6000.0):
        known = bands.latent_band_mask(cutoff, 16)
        observed = bands.observed_mel_bands(cutoff)
        assert list(known) == sorted(known, reverse=True)  # the low bins, then none
        for j, k in enumerate(known):
            assert k == (edges[4 * j + 3 + 2] <= cutoff) == bool(observed[4 * j : 4 * j + 4].all())
    assert bands.latent_band_mask(8000.0, 16).all() and not bands.latent_band_mask(150.0, 16).any()


def test_crossover_keeps_the_low_source_below_and_the_high_source_above():
    rate = 48000
    t = np.arange(rate) / rate
    low_tone, high_tone = np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 6000 * t)
    both = xover.crossover(np.stack([low_tone + high_tone] * 2), (low_tone + high_tone)[None], rate, 3400)
    assert np.allclose(both, low_tone + high_tone, atol=1e-5)  # the same signal on both sides: unchanged
    kept = xover.crossover(low_tone[None], high_tone[None], rate, 3400)[0]
    assert np.allclose(kept[2000:-2000], (low_tone + high_tone)[2000:-2000], atol=2e-3)
    rejected = xover.crossover(high_tone[None], low_tone[None], rate, 3400)[0]  # each on the wrong side
    assert np.sqrt(np.mean(rejected[2000:-2000] ** 2)) < 1e-3 * np.sqrt(0.5)  # at least 60 dB down


# =========================================================================== pure: loops


def test_looped_loudness_is_what_a_meter_reads_over_many_repetitions():
    rate = 48000
    rng = np.random.default_rng(5)
    for seconds in (2.4, 2.37, 1.05):
        x = 0.1 * rng.standard_normal((1, int(seconds * rate)))
        x[:, : rate // 2] *= 3  # a loud start: where blocks wrap round matters
        assert looped_loudness(x, rate) == pytest.approx(integrated_loudness(np.tile(x, (1, 40)), rate), abs=0.02)


def test_looped_true_peak_reads_across_the_wrap_point():
    rate = 48000
    rng = np.random.default_rng(6)
    x = np.clip(0.3 * rng.standard_normal((1, rate)), -0.9, 0.9).astype(np.float32)
    x[0, -3:] = [0.9, -0.9, 0.9]  # the wrap point alternates at the top: an inter-sample overshoot
    x[0, :3] = [-0.9, 0.9, -0.9]
    tiled = np.tile(x, (1, 3))
    expected = 20 * math.log10(peak_envelope(tiled, rate, 2 * rate).max())
    assert looped_true_peak_db(x, rate) == pytest.approx(expected, abs=1e-6)


def test_resampling_and_the_chain_run_round_the_wrap_point():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 16000 * 2)).astype(np.float32)
    y = resample_looped(x, 16000, 44100)
    assert y.shape == (1, 88200)
    middle = resample(np.tile(x, (1, 5)), 16000, 44100)[:, 2 * 88200 : 3 * 88200]
    assert np.allclose(y, middle, atol=1e-4)
    board = pedalboard.Pedalboard([pedalboard.Reverb(room_size=0.3), pedalboard.Compressor(threshold_db=-20)])
    z = chain_looped(board, y, 44100)
    steady = apply_chain(board, np.tile(y, (1, 8)), 44100)[:, 7 * 88200 :]  # the loop played 8 times
    assert np.allclose(z, steady, atol=1e-4)


def test_a_finished_loop_is_on_target_as_heard_repeated_under_the_ceiling_with_its_smpl_points():
    rate = 16000
    t = np.arange(3 * rate) / rate
    wave = (0.1 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 3 * t) * np.sin(2 * np.pi * 1500 * t)).astype(np.float32)
    wave[(t < 0.25) | (t > 2.75)] *= 6  # a loud burst across the wrap point: the limiter works there
    delivery = Delivery(sample_rate=48000, loudness=-14.0, true_peak=-1.0)
    done = deliver_loop(wave, rate, delivery, pedalboard.Pedalboard())
    n = done.audio.shape[1]
    assert n == 3 * 48000
    assert done.levels["limited"] and done.levels["measured"] == "looped"
    assert looped_loudness(done.audio, 48000) == pytest.approx(-14.0, abs=0.05) == done.levels["loudness_out"]
    # a take levelled as a one-shot would play 1.3 LU too loud in a loop: the burst counts once, not twice
    plain = deliver(wave, rate, delivery, pedalboard.Pedalboard()).audio
    assert looped_loudness(plain, 48000) > -13.5
    assert looped_true_peak_db(done.audio, 48000) <= -1.0 + 1e-6
    jumps = np.abs(np.diff(done.audio[0]))
    assert abs(done.audio[0, 0] - done.audio[0, -1]) <= np.percentile(jumps, 99)
    [chunk] = done.chunks
    assert chunk.id == b"smpl" and struct.unpack("<6I", chunk.data[36:60])[2:4] == (0, n - 1)
    assert done.extra["loop"] == {"start": 0, "end": n, "frames": n, "seconds": 3.0, "smpl": True}


def test_the_seam_sits_across_the_wrap_point_inside_its_window():
    for n, window in ((48000, 81920), (200000, 81920), (30000, 81920)):
        seam = loop_module.seam_plan(n, 16000, window)
        x = np.arange(n)
        rotated = loop_module.rotate(x, seam)
        assert rotated[seam.wrap - 1] == n - 1 and rotated[seam.wrap] == 0
        assert np.array_equal(loop_module.unrotate(rotated, seam), x)
        a, b = seam.window
        assert 0 <= a < seam.gap[0] < seam.wrap < seam.gap[1] < b <= n
        assert b - a == min(window, n)


# =========================================================================== pure: long takes


def test_long_windows_cover_the_take_each_hearing_a_quarter_window_of_the_one_before():
    window = 128
    context = long_module.context_frames(window, 2)
    assert context == 32
    for total in (129, 500, 15000):
        starts = long_module.plan_long_windows(total, window, context)
        assert starts[0] == 0 and starts[-1] + window >= total > starts[-2] + window
        assert all(b - a == window - context for a, b in zip(starts, starts[1:]))
    assert long_module.windows_for(5.0, 5.12) == 1 and long_module.windows_for(40.0, 5.12) == 11


def test_joining_a_window_that_agrees_with_the_overlap_changes_nothing_there():
    rng = np.random.default_rng(8)
    signal = rng.standard_normal((2, 1000)).astype(np.float32)
    out = np.zeros_like(signal)
    out[:, :600] = signal[:, :600]
    long_module.join_window(out, signal[:, 400:], 400, (450, 550))
    assert np.allclose(out, signal, atol=1e-6)


# =========================================================================== presets: limits of the modes


@pytest.mark.parametrize(
    "fields, field, reason",
    [
        ({"kind": "foley", "duration": 600.5}, "duration", "between 0.04 and 600 seconds"),
        ({"kind": "foley", "duration": 600.0, "takes": 4}, "takes", "at most 1800 s (3 takes"),
        ({"kind": "restyle", "loop": True}, "loop", "only foley takes loop"),
        ({"kind": "foley", "loop": True, "duration": 0.5}, "loop", "at least 1 s"),
        ({"kind": "superres", "cutoff": 8000.5}, "cutoff", "above 0 and at most 8000 Hz"),
        ({"kind": "superres", "cutoff": 0}, "cutoff", "above 0 and at most 8000 Hz"),
        ({"kind": "foley", "cutoff": 3000}, "cutoff", "only superres takes have a cutoff"),
    ],
)
def test_mode_fields_out_of_range_are_refused_naming_the_field(fields, field, reason):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        Preset(**fields)
    [err] = info.value.errors()
    assert err["loc"] == (field,) and reason in err["msg"]
    assert Preset(kind="foley", duration=600.0, loop=True, takes=3).loop  # the edges themselves are fine
    assert Preset(kind="superres", cutoff=8000.0).cutoff == 8000.0


# =========================================================================== engine: long foley


def test_long_foley_windows_continue_each_other_in_mel_space(tiny_model, monkeypatch):
    """Each window's overlap is the end of the window before: its latent is held there, so the
    two windows' mels of that stretch agree (independent windows would not)."""
    captured = []
    real_decode = long_module.steps.decode

    def spy(model, latents):
        captured.append(latents.clone())
        return real_decode(model, latents)

    monkeypatch.setattr(long_module.steps, "decode", spy)
    [wave] = FoleyPipeline(tiny_model)([FoleyTake("wind through trees", "", 11)], 14.0, STEPS, GUIDANCE)
    assert wave.shape == (14 * 16000,)
    window = tiny_model.window_frames // tiny_model.vae_scale
    context = long_module.context_frames(window, 2)
    assert len(captured) == long_module.windows_for(14.0, tiny_model.window_seconds) == 4
    scale = tiny_model.vae.config.scaling_factor

    def mel_of(latents: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return tiny_model.vae.decode(latents / scale).sample[0, 0]

    unrelated = mel_of(captured[0])[: 2 * context].flatten().numpy()  # window 0's start
    for before, after in zip(captured, captured[1:]):
        assert torch.equal(after[:, :, :context], before[:, :, window - context :])
        middle = slice(context, 3 * context)  # of the overlap's 4 * context mel frames: away from either window's edge
        heard = mel_of(before)[-4 * context :][middle].flatten().numpy()
        continued = mel_of(after)[: 4 * context][middle].flatten().numpy()
        assert np.corrcoef(heard, continued)[0, 1] > 0.95
        assert abs(np.corrcoef(heard, unrelated)[0, 1]) < 0.5  # stretches that are not the same do not agree like that


def test_long_foley_progress_covers_the_whole_take_and_cancel_stops_between_any_two_steps(tiny_model):
    pipeline = FoleyPipeline(tiny_model)
    seen = []
    pipeline([FoleyTake("rain", "", 2)], 12.0, 3, GUIDANCE, on_step=lambda d, n: seen.append((d, n)))
    windows = long_module.windows_for(12.0, tiny_model.window_seconds)
    assert seen == [(i, 3 * windows) for i in range(1, 3 * windows + 1)]

    calls = []

    def stop_in_the_second_window(done, total):
        calls.append(done)
        if done == 4:  # the first step of window two
            raise Cancelled()

    with pytest.raises(Cancelled):
        pipeline([FoleyTake("rain", "", 2)], 12.0, 3, GUIDANCE, on_step=stop_in_the_second_window)
    assert calls == [1, 2, 3, 4]


def test_long_foley_on_audioldm2_renders_windows_that_continue(model_cache):
    from host.engine.models import load_model

    model = load_model("tiny-audioldm2", device="cpu")
    seen = []
    a, b = FoleyPipeline(model)([FoleyTake("a distant engine", "", 3), FoleyTake("a distant engine", "", 3)], 16.0, STEPS, GUIDANCE, on_step=lambda d, n: seen.append(n))
    assert a.shape == (16 * 16000,) and np.array_equal(a, b) and np.all(np.isfinite(a))
    assert seen[-1] == STEPS * long_module.windows_for(16.0, model.window_seconds) == STEPS * 2


def _peak_rss_growth(seconds: float) -> int:
    """KiB the peak resident memory of a fresh process grows by while it renders a long take."""
    code = textwrap.dedent(f"""
        import resource
        from host.engine.models import load_model
        from host.engine.foley import FoleyPipeline, FoleyTake
        pipeline = FoleyPipeline(load_model("tiny", device="cpu"))
        pipeline([FoleyTake("rain", "", 1)], 6.0, 1, 2.5)  # warm: two windows, allocator pools
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        pipeline([FoleyTake("rain", "", 1)], {seconds}, 1, 2.5)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split()[-1])


def test_peak_memory_of_a_long_take_does_not_grow_with_its_duration():
    """20 s and 60 s: only the take itself (40 s more at 16 kHz float: 2.5 MB) may add. Rendering
    60 s as one stretched latent, as before, grows the peak by some 300 MB on the tiny model."""
    grow_20, grow_60 = _peak_rss_growth(20.0), _peak_rss_growth(60.0)
    assert grow_60 - grow_20 < 24 * 1024, (grow_20, grow_60)


# =========================================================================== engine: loops and superres


def test_a_loops_wrap_point_lies_inside_one_regenerated_stretch(tiny_model, monkeypatch):
    """The last samples followed by the first are one contiguous piece of the seam's render."""
    pieces = []
    real = loop_module.InpaintPipeline.fill_window

    def spy(self, windows, gap, *args):
        out = real(self, windows, gap, *args)
        pieces.append(out)
        return out

    monkeypatch.setattr(loop_module.InpaintPipeline, "fill_window", spy)
    seen = []
    [wave] = FoleyPipeline(tiny_model)([FoleyTake("engine idle", "", 4)], 3.0, STEPS, GUIDANCE, on_step=lambda d, n: seen.append((d, n)), loop=True)
    assert wave.shape == (48000,)
    assert seen == [(i, 2 * STEPS) for i in range(1, 2 * STEPS + 1)]  # the seam's steps count too
    seam = loop_module.seam_plan(48000, 16000, tiny_model.window_frames * tiny_model.hop)
    [[piece]] = pieces
    half = 100  # 6 ms either side of the wrap point: well inside the seam, away from its crossfades
    around = np.concatenate([wave[-half:], wave[:half]])
    local = seam.wrap - seam.window[0]
    assert np.allclose(around, piece[local - half : local + half], atol=1e-6)


def test_superres_holds_the_observed_latent_bins_and_keeps_the_length(tiny_model, monkeypatch):
    captured = []
    real = SuperresPipeline.band_mask

    def spy(self, latent, cutoff):
        mask = real(self, latent, cutoff)
        captured.append(mask)
        return mask

    monkeypatch.setattr(SuperresPipeline, "band_mask", spy)
    stem = band_limited_noise(7.0, 16000, 3000.0)
    waves = SuperresPipeline(tiny_model)(stem, 16000, 3000.0, "crisp", "", [1, 2], STEPS, GUIDANCE)
    assert [w.shape for w in waves] == [(len(stem),)] * 2 and not np.array_equal(waves[0], waves[1])
    assert len(captured) == 2  # 7 s on a 5.12 s model: two windows
    known = bands.latent_band_mask(3000.0, 16)
    assert torch.equal(captured[0][0, 0, 0] == 0, torch.from_numpy(known)) and known.sum() == 10


# =========================================================================== whole takes on disk


def test_superres_take_keeps_the_band_below_the_cutoff_and_adds_energy_above_it(runner, tmp_path):
    root = make_project(tmp_path / "p")
    (root / "presets" / "sr.toml").write_text('kind = "superres"\nprompt = "crisp air"\nsteps = 2\nseed = 5\n')
    (root / "superres" / "sr").mkdir(parents=True)
    stem = band_limited_noise(7.0, 44100, 3000.0, level=0.05)
    sf.write(root / "superres" / "sr" / "band.wav", np.stack([stem, 0.5 * stem], axis=1), 44100, subtype="PCM_24")
    outcome = run_project(runner, root)["band"]
    [path] = outcome.files
    out, rate = sf.read(path)
    assert rate == 48000 and out.shape == (round(7.0 * 44100 * 48000 / 44100), 2)  # as long as the stem, its channels
    side = json.loads(path.with_suffix(".json").read_text())
    cutoff = side["cutoff"]["hz"]
    assert side["cutoff"]["found"] is True and 2850 <= cutoff <= 3000
    assert side["kind"] == "superres" and side["input"]["sha256"]
    for channel, gain in ((0, 1.0), (1, 0.5)):
        reference = soxr.resample(gain * stem, 44100, 48000)
        kept = third_octave_levels(out[:, channel], 48000, cutoff)
        wanted = third_octave_levels(reference, 48000, cutoff)
        assert len(kept) >= 14
        assert max(abs(kept[b] - wanted[b]) for b in kept) <= 0.5
        top = cutoff + xover.transition_hz(cutoff)
        assert band_power_db(out[:, channel], 48000, top, 7900) > band_power_db(reference, 48000, top, 7900) + 20


def test_superres_of_an_8k_recording_is_as_long_as_it_at_the_project_rate(runner, tmp_path):
    root = make_project(tmp_path / "p", 'sample_rate = 44100\nloudness = -20.0\n')
    (root / "presets" / "sr.toml").write_text('kind = "superres"\nprompt = "speech"\nsteps = 2\nseed = 1\ncutoff = 3400.0\n')
    (root / "superres" / "sr").mkdir(parents=True)
    rng = np.random.default_rng(9)
    sf.write(root / "superres" / "sr" / "call.wav", 0.1 * rng.standard_normal(8000 * 3 + 7), 8000, subtype="PCM_16")
    [path] = run_project(runner, root)["call"].files
    assert sf.info(str(path)).frames == round((8000 * 3 + 7) * 44100 / 8000)
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["cutoff"] == {"hz": 3400.0, "found": False}
    assert side["levels"]["loudness_out"] == pytest.approx(-20.0, abs=0.1)


def test_forty_second_foley_is_whole_and_has_no_discontinuity_at_its_window_joins(runner, tiny_model, tmp_path):
    root = make_project(tmp_path / "p", 'sample_rate = 48000\nloudness = -23.0\n')
    (root / "cues.toml").write_text('[[cue]]\nname = "wind"\nprompt = "wind howling"\nduration = 40.0\nsteps = 2\nseed = 21\n')
    [path] = run_project(runner, root)["wind"].files
    x, rate = sf.read(path)
    assert rate == 48000 and x.shape == (40 * 48000,) and np.all(np.isfinite(x))
    silent = np.abs(x) < 1e-6
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], silent.astype(int), [0]]))))[::2]
    assert runs.size == 0 or runs.max() < 0.01 * rate  # no hole anywhere

    # where the windows hand over (each crossfade's start, middle and end), at the delivered rate
    per_frame = tiny_model.vae_scale * tiny_model.hop
    window = tiny_model.window_frames // tiny_model.vae_scale
    context = long_module.context_frames(window, 2)
    starts = long_module.plan_long_windows(-(-40 * 16000 // per_frame), window, context)
    assert len(starts) == 11
    points = []
    for start in starts[1:]:
        f0, f1 = long_module.fade_span(start * per_frame, context * per_frame)
        points += [round(p * rate / 16000) for p in (f0, (f0 + f1) // 2, f1)]
    points = np.array(points)

    # sample-to-sample jumps within 5 ms of a hand-over against every other jump in the take
    jumps = np.abs(np.diff(x))
    near = np.zeros(jumps.size, bool)
    for p in points:
        near[p - rate // 200 : p + rate // 200] = True
    assert jumps[near].max() <= jumps[~near].max()
    # spectral flux (frames of 2048, hop 1024) across a hand-over against the flux everywhere else
    _, _, spec = stft(x, rate, nperseg=2048, noverlap=1024)
    flux = np.maximum(np.diff(np.abs(spec), axis=1), 0).sum(axis=0)  # frame k -> k + 1
    across = np.zeros(flux.size, bool)
    for p in points:
        across[int(p // 1024) - 1 : int(p // 1024) + 1] = True  # the frames holding that sample
    assert flux[across].max() <= flux[~across].max()


def test_a_loop_take_wraps_seamlessly_and_its_smpl_chunk_reads_back(runner, tmp_path):
    from wavinfo import WavInfoReader

    root = make_project(tmp_path / "p", 'sample_rate = 48000\nloudness = -18.0\ntrue_peak = -1.0\n')
    (root / "cues.toml").write_text('[[cue]]\nname = "bed"\nprompt = "engine idling"\nduration = 3.0\nsteps = 2\nseed = 8\ntakes = 3\nloop = true\n')
    paths = run_project(runner, root)["bed"].files
    assert len(paths) == 3
    for path in paths:
        x, rate = sf.read(path)
        n = x.size
        assert n == 3 * 48000
        jumps = np.abs(np.diff(x))
        assert abs(x[0] - x[-1]) <= np.percentile(jumps, 99)  # last sample to first: a typical step
        smpl = riff_chunks(path)[b"smpl"]
        header, loops = struct.unpack("<9I", smpl[:36]), struct.unpack("<6I", smpl[36:60])
        assert header[2] == round(1e9 / 48000) and header[7] == 1  # sample period (ns), one loop
        assert loops[1:4] == (0, 0, n - 1)  # forward, start 0, end = the last frame (inclusive)
        [loop] = WavInfoReader(str(path)).smpl.sample_loops
        assert (loop.start, loop.end) == (0, n - 1)
        side = json.loads(path.with_suffix(".json").read_text())
        assert side["loop"]["end"] == n and side["preset"]["settings"]["loop"] is True
        assert side["levels"]["measured"] == "looped"
        assert looped_loudness(x[None], rate) == pytest.approx(-18.0, abs=0.1)
        assert looped_true_peak_db(x[None], rate) <= -1.0 + 1e-3


def test_a_loop_over_a_long_take_works_and_flac_loops_record_the_loop_in_the_sidecar(runner, tmp_path):
    root = make_project(tmp_path / "p", 'sample_rate = 44100\nformat = "flac"\nbit_depth = 24\n')
    (root / "cues.toml").write_text('[[cue]]\nname = "bed"\nprompt = "crowd murmur"\nduration = 9.0\nsteps = 2\nseed = 2\nloop = true\n')
    [path] = run_project(runner, root)["bed"].files
    x, rate = sf.read(path)
    assert path.suffix == ".flac" and x.size == 9 * 44100
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["loop"] == {"start": 0, "end": x.size, "frames": x.size, "seconds": 9.0, "smpl": False}


def test_a_superres_stem_that_changes_while_it_renders_delivers_nothing(runner, tmp_path):
    root = make_project(tmp_path / "p")
    (root / "presets" / "sr.toml").write_text('kind = "superres"\nprompt = "air"\nsteps = 2\nseed = 5\n')
    stem = root / "superres" / "sr" / "band.wav"
    stem.parent.mkdir(parents=True)
    sf.write(stem, band_limited_noise(2.0, 44100, 3000.0), 44100, subtype="PCM_16")
    [job] = plan_project(root).jobs
    plan = runner.plan(job)
    assert plan.cutoff_found and 2850 <= plan.cutoff <= 3000
    [rendered] = runner.render([(0, plan)])
    sf.write(stem, band_limited_noise(2.0, 44100, 2000.0, seed=1), 44100, subtype="PCM_16")  # replaced meanwhile
    outcome = runner.finish(plan, rendered)
    assert outcome.status == "changed" and not list((root / "renders").rglob("*.wav"))


def test_a_full_band_stem_has_nothing_for_superres_to_add(runner, tmp_path):
    root = make_project(tmp_path / "p")
    (root / "presets" / "sr.toml").write_text('kind = "superres"\nprompt = "air"\nsteps = 2\n')
    stem = root / "superres" / "sr" / "full.wav"
    stem.parent.mkdir(parents=True)
    sf.write(stem, 0.1 * np.random.default_rng(2).standard_normal(44100), 44100)
    [outcome] = runner.run(plan_project(root).jobs)
    assert outcome.status == "failed" and "nothing to add" in outcome.error and "\n" not in outcome.error


# =========================================================================== structured fuzzing of the pure helpers
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 20000),
    rate=st.sampled_from([4000, 8000, 11025, 16000, 44100, 48000, 96000]),
    channels=st.integers(1, 3),
    scale=st.sampled_from([0.0, 1e-12, 1e-3, 1.0, 1e6]),
    seed=st.integers(0, 2**16),
)
def test_find_cutoff_answers_for_any_stem_shape_rate_and_level(n, rate, channels, scale, seed):
    x = scale * np.random.default_rng(seed).standard_normal((channels, n))
    found = bands.find_cutoff(x, rate)
    if n == 0 or scale == 0.0:
        assert found is None
    else:
        assert found is not None and 0 < found <= rate / 2


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 5000),
    rate=st.sampled_from([8000, 16000, 44100, 48000]),
    cutoff=st.floats(1.0, 8000.0),
    channels=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_the_crossover_of_a_signal_with_itself_is_the_signal(n, rate, cutoff, channels, seed):
    x = np.random.default_rng(seed).standard_normal((channels, n)).astype(np.float32)
    out = xover.crossover(x, x, rate, cutoff)
    assert out.shape == x.shape and np.allclose(out, x, atol=1e-5)
    low, high = xover.split(x, rate, cutoff)
    assert np.allclose(low + high, x, atol=1e-5)
