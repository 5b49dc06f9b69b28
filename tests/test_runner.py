"""The runner end to end, in-process: a project on disk in, finished takes in renders/ out.

Every test builds its own small project in tmp_path (project.toml, cues.toml, dropped stems)
and renders it with the session's warm ``tiny`` model, with few steps and short durations.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Optional

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from scipy.signal import resample_poly

import host
from host.config.presets import BUILTIN_DIR, content_hash, preset_library
from host.plan.project import plan_project
from host.runner import Outcome, Runner, cached_takes
from tests.conftest import write_tone

PROJECT = """\
sample_rate = {rate}
bit_depth = {bits}
format = "{fmt}"
loudness = {loudness}
true_peak = {peak}
"""


def make_project(root: Path, cues: str = "", rate: int = 48000, bits: int = 24, fmt: str = "wav", loudness: float = -23.0, peak: float = -1.0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "project.toml").write_text(PROJECT.format(rate=rate, bits=bits, fmt=fmt, loudness=loudness, peak=peak))
    if cues:
        (root / "cues.toml").write_text(cues)
    return root


def cue(name: str, prompt: str = "a heavy wooden door slams shut", duration: float = 1.0, takes: int = 1, steps: int = 2, seed: Optional[int] = None, extra: str = "") -> str:
    text = f'[[cue]]\nname = "{name}"\nprompt = "{prompt}"\nduration = {duration}\nsteps = {steps}\ntakes = {takes}\n'
    if seed is not None:
        text += f"seed = {seed}\n"
    return text + extra + "\n"


def render(runner: Runner, root: Path, force: bool = False) -> list[Outcome]:
    plan = plan_project(root)
    assert not plan.problems, [str(p) for p in plan.problems]
    return runner.run(plan.jobs, force=force)


def by_name(outcomes: list[Outcome]) -> dict[str, Outcome]:
    return {o.job.name: o for o in outcomes}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under renders/: relative path -> (mtime_ns, size)."""
    renders = root / "renders"
    out = {}
    for path in sorted(renders.rglob("*")) if renders.exists() else []:
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(root))] = (st.st_mtime_ns, st.st_size)
    return out


def audio_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".wav", ".flac"))


def sidecar(audio: Path) -> dict:
    return json.loads(audio.with_suffix(".json").read_text())


def assert_renders_clean(root: Path) -> None:
    """No temp files and no sidecar without its audio anywhere under renders/."""
    renders = root / "renders"
    if not renders.exists():
        return
    for dirpath, _dirs, names in os.walk(renders):
        for name in names:
            assert not name.endswith(".partial"), f"partial file left: {dirpath}/{name}"
            if name.endswith(".json"):
                data = json.loads((Path(dirpath) / name).read_text())
                assert (Path(dirpath) / data["file"]).is_file(), f"sidecar {name} has no audio"


def true_peak_dbtp(data: np.ndarray) -> float:
    """(frames, channels) -> dBTP, from 4x oversampling (BS.1770-4 annex 2)."""
    up = resample_poly(np.asarray(data, dtype=np.float64), 4, 1, axis=0)
    peak = max(float(np.abs(up).max()), float(np.abs(data).max()))
    return 20 * math.log10(peak)


@pytest.fixture
def runner(tiny_model) -> Runner:
    return Runner(tiny_model, batch_size=8)


# --------------------------------------------------------------------------- foley delivery


@pytest.mark.parametrize(
    "rate, bits, fmt, subtype, loudness, peak, takes",
    [
        (48000, 24, "wav", "PCM_24", -23.0, -1.0, 3),
        (44100, 16, "wav", "PCM_16", -16.0, -2.0, 2),
        (48000, 32, "wav", "FLOAT", -16.0, -1.0, 1),
        (44100, 24, "flac", "PCM_24", -23.0, -1.0, 2),
    ],
)
def test_foley_takes_arrive_in_the_project_format_at_the_target_loudness(tmp_path, runner, rate, bits, fmt, subtype, loudness, peak, takes):
    root = make_project(tmp_path / "p", cue("door", duration=1.5, takes=takes), rate=rate, bits=bits, fmt=fmt, loudness=loudness, peak=peak)
    [outcome] = render(runner, root)
    assert outcome.status == "rendered", outcome.error

    folder = root / "renders" / "foley" / "door"
    names = [f"door_t{i:02d}.{fmt}" for i in range(1, takes + 1)]
    assert audio_files(folder) == names
    assert [p.name for p in outcome.files] == names
    for name in names:
        info = sf.info(str(folder / name))
        assert info.samplerate == rate
        assert info.subtype == subtype
        assert info.format == fmt.upper()
        assert info.channels == 1
        assert info.frames == int(round(1.5 * rate))
        data, _ = sf.read(str(folder / name), dtype="float64", always_2d=True)
        measured = pyloudnorm.Meter(rate).integrated_loudness(data)
        assert abs(measured - loudness) <= 0.5, f"{name}: {measured:.2f} LUFS, wanted {loudness}"
        assert true_peak_dbtp(data) <= peak + 0.1, f"{name}: true peak over the {peak} dBTP ceiling"
    assert_renders_clean(root)


def test_sidecar_records_how_the_take_was_made(tmp_path, runner, tiny_model):
    cues = '[[cue]]\nname = "confirm"\npreset = "ui-click"\nprompt = "a soft confirmation chime"\nsteps = 2\ntakes = 2\nduration = 0.5\n'
    root = make_project(tmp_path / "p", cues)
    [outcome] = render(runner, root)
    assert outcome.status == "rendered", outcome.error
    preset_file = BUILTIN_DIR / "ui-click.toml"
    seeds = []
    for take in outcome.files:
        record = sidecar(take)
        assert record["prompt"] == "a soft confirmation chime"
        assert record["negative_prompt"] == "reverb, music, speech, noise, low quality, distorted"  # the preset's
        assert record["steps"] == 2
        assert record["guidance"] == 3.5
        assert record["scheduler"] == "ddim"
        assert isinstance(record["seed"], int)
        assert record["model"] == {"id": "tiny", "revision": tiny_model.revision, "family": "audioldm"}
        assert record["preset"]["name"] == "ui-click"
        assert record["preset"]["hash"] == content_hash(preset_file.read_bytes())
        assert record["host_version"] == host.__version__
        when = datetime.fromisoformat(record["rendered_at"])
        assert when.tzinfo is not None
        assert record["file"] == take.name
        seeds.append(record["seed"])
    assert len(set(seeds)) == 2  # each take its own seed


def test_recorded_seed_reproduces_the_take(tmp_path, runner):
    first = make_project(tmp_path / "a", cue("boom", prompt="distant thunder rolling"))  # no seed: a random one
    [a] = render(runner, first)
    assert a.status == "rendered", a.error
    seed = sidecar(a.files[0])["seed"]

    second = make_project(tmp_path / "b", cue("boom", prompt="distant thunder rolling", seed=seed))
    [b] = render(runner, second)
    assert b.status == "rendered", b.error
    assert sidecar(b.files[0])["seed"] == seed
    x, _ = sf.read(str(a.files[0]), dtype="int32")
    y, _ = sf.read(str(b.files[0]), dtype="int32")
    assert np.array_equal(x, y)

    third = make_project(tmp_path / "c", cue("boom", prompt="distant thunder rolling", seed=seed + 1))
    [c] = render(runner, third)
    z, _ = sf.read(str(c.files[0]), dtype="int32")
    assert not np.array_equal(x, z)


def test_takes_of_one_cue_have_consecutive_seeds_and_differ(tmp_path, runner):
    root = make_project(tmp_path / "p", cue("wind", prompt="wind howling", takes=3, seed=100))
    [outcome] = render(runner, root)
    assert [sidecar(f)["seed"] for f in outcome.files] == [100, 101, 102]
    audio = [sf.read(str(f), dtype="int32")[0] for f in outcome.files]
    assert not np.array_equal(audio[0], audio[1]) and not np.array_equal(audio[1], audio[2])


# --------------------------------------------------------------------------- the render cache


def test_rendering_again_is_a_cache_hit_and_writes_nothing(tmp_path, tiny_model):
    root = make_project(tmp_path / "p", cue("door", takes=2) + cue("click", prompt="a click", duration=0.5))
    first = Runner(tiny_model)
    outcomes = render(first, root)
    assert [o.status for o in outcomes] == ["rendered", "rendered"]
    before = snapshot(root)
    assert len([k for k in before if k.endswith(".wav")]) == 3

    second = Runner(tiny_model)
    again = render(second, root)
    assert [o.status for o in again] == ["cached", "cached"]
    assert [o.files for o in again] == [o.files for o in outcomes]
    assert second.denoise_calls == 0
    assert snapshot(root) == before
    for job in plan_project(root).jobs:
        assert cached_takes(job, tiny_model.id, tiny_model.revision) == job.preset.takes


def test_changing_one_cue_renders_only_that_cue(tmp_path, runner):
    root = make_project(tmp_path / "p", cue("door", takes=2) + cue("click", prompt="a click", duration=0.5))
    render(runner, root)
    before = snapshot(root)

    (root / "cues.toml").write_text(cue("door", takes=2) + cue("click", prompt="a louder click", duration=0.5))
    outcomes = by_name(render(runner, root))
    assert outcomes["door"].status == "cached"
    assert outcomes["click"].status == "rendered"
    after = snapshot(root)
    # nothing that was there changed ...
    assert {k: v for k, v in after.items() if k in before} == before
    # ... and the only new take is the changed cue's
    new = sorted(k for k in after if k not in before)
    assert new == ["renders/foley/click/click_t02.json", "renders/foley/click/click_t02.wav"]
    assert [p.name for p in outcomes["click"].files] == ["click_t02.wav"]
    assert sidecar(outcomes["click"].files[0])["prompt"] == "a louder click"


def test_force_renders_again_as_new_takes_without_overwriting(tmp_path, runner):
    root = make_project(tmp_path / "p", cue("door", takes=2, seed=5))
    [first] = render(runner, root)
    before = snapshot(root)
    old_bytes = {p.name: p.read_bytes() for p in first.files}

    [forced] = render(runner, root, force=True)
    assert forced.status == "rendered"
    assert [p.name for p in forced.files] == ["door_t03.wav", "door_t04.wav"]
    after = snapshot(root)
    assert {k: v for k, v in after.items() if k in before} == before
    for name, data in old_bytes.items():
        assert (root / "renders/foley/door" / name).read_bytes() == data
    assert audio_files(root / "renders/foley/door") == [f"door_t0{i}.wav" for i in range(1, 5)]
    # and a plain run after that is a cache hit again
    [again] = render(runner, root)
    assert again.status == "cached"
    assert snapshot(root) == after


def test_a_deleted_take_is_rendered_again_and_only_that_one(tmp_path, runner):
    root = make_project(tmp_path / "p", cue("door", takes=3, seed=40))
    [first] = render(runner, root)
    folder = root / "renders/foley/door"
    lost = folder / "door_t02.wav"
    lost_seed = sidecar(lost)["seed"]
    lost_audio, _ = sf.read(str(lost))
    lost.unlink()
    before = snapshot(root)

    [again] = render(runner, root)
    assert again.status == "rendered", again.error
    assert [p.name for p in again.files] == ["door_t01.wav", "door_t02.wav", "door_t03.wav"]
    assert all(p.is_file() for p in again.files)
    after = snapshot(root)
    # the other takes are untouched, and only the missing one was written
    assert {k: after[k] for k in before if k.endswith(".wav")} == {k: v for k, v in before.items() if k.endswith(".wav")}
    assert sorted(k for k in after if k.endswith(".wav") and k not in before) == ["renders/foley/door/door_t02.wav"]
    assert audio_files(folder) == ["door_t01.wav", "door_t02.wav", "door_t03.wav"]
    # it comes back with the seed it had: the same sound (rendered alone now, not in a batch of three)
    assert sidecar(lost)["seed"] == lost_seed
    back, _ = sf.read(str(lost))
    assert np.allclose(back, lost_audio, atol=1e-4)
    assert_renders_clean(root)
    [third] = render(runner, root)
    assert third.status == "cached"


# --------------------------------------------------------------------------- batching


def test_compatible_foley_cues_share_one_denoising_call(tmp_path, tiny_model):
    cues = "".join(cue(f"c{i}", prompt=f"sound number {i}", duration=0.5) for i in range(4))
    root = make_project(tmp_path / "p", cues)
    runner = Runner(tiny_model, batch_size=8)
    outcomes = render(runner, root)
    assert [o.status for o in outcomes] == ["rendered"] * 4
    assert runner.denoise_calls == 1

    small = Runner(tiny_model, batch_size=3)
    outcomes = render(small, root, force=True)
    assert [o.status for o in outcomes] == ["rendered"] * 4
    assert small.denoise_calls == 2


def test_cues_of_different_durations_are_not_batched_together(tmp_path, tiny_model):
    root = make_project(tmp_path / "p", cue("short", duration=0.5) + cue("long", duration=0.8))
    runner = Runner(tiny_model, batch_size=8)
    outcomes = by_name(render(runner, root))
    assert runner.denoise_calls == 2
    assert sf.info(str(outcomes["short"].files[0])).frames == 24000
    assert sf.info(str(outcomes["long"].files[0])).frames == int(round(0.8 * 48000))


# --------------------------------------------------------------------------- restyle


@pytest.mark.parametrize("rate_in, channels, project_rate", [(44100, 2, 48000), (48000, 1, 44100)])
def test_restyle_output_is_exactly_as_long_as_the_stem(tmp_path, runner, rate_in, channels, project_rate):
    root = make_project(tmp_path / "p", rate=project_rate)
    stem = root / "restyle" / "loop.wav"
    data = write_tone(stem, 1.3, rate_in, channels=channels)
    (root / "restyle" / "loop.toml").write_text("steps = 2\ntakes = 1\nstrength = 0.7\n")
    [outcome] = render(runner, root)
    assert outcome.job.kind == "restyle"
    assert outcome.status == "rendered", outcome.error
    [take] = outcome.files
    assert take == root / "renders" / "restyle" / "loop" / "loop__restyle-texture_t01.wav"  # the preset in the name
    info = sf.info(str(take))
    assert info.samplerate == project_rate
    assert info.frames == int(round(len(data) * project_rate / rate_in))
    record = sidecar(take)
    assert record["strength"] == 0.7
    assert record["input"]["path"] == str(stem.resolve())
    # where its time went, stage by stage (the daemon logs these with each finished job)
    assert set(outcome.stages) == {"plan", "render", "finish"}
    assert all(seconds > 0 for seconds in outcome.stages.values()), outcome.stages
    assert sum(outcome.stages.values()) <= outcome.seconds + 0.01


# --------------------------------------------------------------------------- inpaint


def _inpaint_stem(path: Path, rate: int, channels: int, subtype: str, silent: Optional[tuple[float, float]]) -> np.ndarray:
    write_tone(path, 2.0, rate, channels=channels, subtype=subtype)
    data, _ = sf.read(str(path), dtype="int32", always_2d=True)
    if silent:
        data[int(round(silent[0] * rate)) : int(round(silent[1] * rate))] = 0
    path.unlink()
    sf.write(str(path), data, rate, subtype=subtype)
    written, _ = sf.read(str(path), dtype="int32", always_2d=True)
    return written


@pytest.mark.parametrize("rate, channels, subtype", [(44100, 2, "PCM_16"), (48000, 1, "PCM_24")])
@pytest.mark.parametrize("gaps_given", [True, False])
def test_inpaint_fills_the_gap_and_leaves_the_rest_bit_identical(tmp_path, runner, rate, channels, subtype, gaps_given):
    root = make_project(tmp_path / "p", rate=48000, bits=24)  # the project's delivery must not apply
    stem = root / "inpaint" / "pad.wav"
    if gaps_given:
        gap = (1.2, 1.4)  # over sound: the user marked a noise to replace
        original = _inpaint_stem(stem, rate, channels, subtype, silent=(0.4, 0.6))  # a quiet bit that must stay
        (root / "inpaint" / "pad.toml").write_text(f"steps = 2\ntakes = 1\ngaps = [[{gap[0]}, {gap[1]}]]\n")
    else:
        gap = (0.8, 1.0)  # a dropout of digital silence, found by itself
        original = _inpaint_stem(stem, rate, channels, subtype, silent=gap)
        (root / "inpaint" / "pad.toml").write_text("steps = 2\ntakes = 1\n")

    [outcome] = render(runner, root)
    assert outcome.status == "rendered", outcome.error
    [take] = outcome.files
    info = sf.info(str(take))
    assert (info.samplerate, info.channels, info.subtype) == (rate, channels, subtype)
    assert info.format == "WAV"
    out, _ = sf.read(str(take), dtype="int32", always_2d=True)
    assert out.shape == original.shape

    g0, g1 = int(round(gap[0] * rate)), int(round(gap[1] * rate))
    xf = int(round(0.010 * rate))
    assert np.array_equal(out[: g0 - xf], original[: g0 - xf])
    assert np.array_equal(out[g1 + xf :], original[g1 + xf :])
    assert not np.array_equal(out[g0:g1], original[g0:g1])
    # the gap holds sound now, not digital silence
    floor = 10 ** (-90 / 20) * 2**31
    assert np.abs(out[g0:g1].astype(np.int64)).max() > floor
    assert sidecar(take)["gaps"] == [list(gap)]


INPAINT_PRESETS = sorted(name for name, entry in preset_library()[0].items() if entry.preset.kind == "inpaint")
HALF_XF = 0.010  # half the 20 ms crossfade


def _db(x: np.ndarray) -> float:
    return 10 * math.log10(float(np.mean(np.square(x))))


def _room_tone_with_a_slam(path: Path, rate: int, gap: tuple[float, float]) -> np.ndarray:
    """6 s of stereo room tone at -30 dBFS RMS, a cough over the gap the user marked, and a door
    slam 1 s after the gap, inside the model's window. Returns what was written, (frames, channels)."""
    rng = np.random.default_rng(21)
    n = 6 * rate
    x = rng.standard_normal((n, 2)) * 10 ** (-30 / 20)
    x[int(gap[0] * rate) : int(gap[1] * rate)] *= 8.0  # the cough, -12 dBFS RMS
    x[int(2.7 * rate) : int(3.0 * rate)] *= 16.0  # the slam, -6 dBFS RMS
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -0.99, 0.99), rate, subtype="PCM_24")
    return sf.read(str(path), dtype="float64", always_2d=True)[0]


@pytest.mark.parametrize("preset", INPAINT_PRESETS)
def test_every_inpaint_preset_fills_at_the_level_around_the_gap_and_under_the_ceiling(tmp_path, runner, preset):
    assert len(INPAINT_PRESETS) >= 2
    rate, gap = 48000, (1.4, 1.7)
    root = make_project(tmp_path / "p", peak=-1.0)
    stem = root / "inpaint" / "room.wav"
    original = _room_tone_with_a_slam(stem, rate, gap)
    (root / "inpaint" / "room.toml").write_text(f'preset = "{preset}"\nsteps = 2\ntakes = 1\ngaps = [[{gap[0]}, {gap[1]}]]\n')

    [outcome] = render(runner, root)
    assert outcome.status == "rendered", outcome.error
    [take] = outcome.files
    out, _ = sf.read(str(take), dtype="float64", always_2d=True)
    g0, g1 = int(gap[0] * rate), int(gap[1] * rate)
    xf, reach = int(HALF_XF * rate), int(0.25 * rate)
    fill_db = _db(out[g0 + xf : g1 - xf])
    around_db = _db(np.concatenate([original[g0 - reach : g0 - xf], original[g1 + xf : g1 + reach]]))
    assert abs(fill_db - around_db) <= 1.5, f"{preset}: fill {fill_db:.2f} dB, around it {around_db:.2f} dB"
    assert true_peak_dbtp(out[g0 - xf : g1 + xf]) <= -1.0
    [levels] = sidecar(take)["fills"]
    assert levels["fill_rms_dbfs"] == pytest.approx(fill_db, abs=0.3)  # past the crossfades the gap is all fill
    assert levels["ceiling_dbtp"] == -1.0 and levels["fill_true_peak_dbtp"] <= -1.0


def test_gaps_touching_the_start_and_the_end_of_the_file_are_filled(tmp_path, runner):
    """/audiohost/inpaint p x 0 0.005 used to crash the splice: a gap at either end of the file."""
    rate = 48000
    root = make_project(tmp_path / "p")
    stem = root / "inpaint" / "ends.wav"
    write_tone(stem, 1.5, rate, subtype="PCM_24")
    original, _ = sf.read(str(stem), dtype="int32", always_2d=True)
    (root / "inpaint" / "ends.toml").write_text("steps = 2\ntakes = 1\ngaps = [[0.0, 0.005], [1.495, 1.5]]\n")
    [outcome] = render(runner, root)
    assert outcome.status == "rendered", outcome.error
    [take] = outcome.files
    out, _ = sf.read(str(take), dtype="int32", always_2d=True)
    assert out.shape == original.shape
    lo, hi = int((0.005 + HALF_XF) * rate), int((1.495 - HALF_XF) * rate)
    assert np.array_equal(out[lo:hi], original[lo:hi])
    assert not np.array_equal(out[:240], original[:240]) and not np.array_equal(out[-240:], original[-240:])
    fills = sidecar(take)["fills"]
    assert [f["matched_to"] for f in fills] == ["right edge", "left edge"]
    assert fills[0]["crossfade_correlation"][0] is None and fills[1]["crossfade_correlation"][1] is None


@pytest.mark.parametrize(
    "ext, container, subtype",
    [
        ("wav", "WAV", "PCM_U8"),
        ("wav", "WAV", "PCM_32"),
        ("wav", "WAV", "FLOAT"),
        ("wav", "WAV", "DOUBLE"),
        ("flac", "FLAC", "PCM_S8"),
        ("flac", "FLAC", "PCM_16"),
        ("aiff", "AIFF", "PCM_24"),
    ],
)
def test_inpaint_takes_are_written_in_the_inputs_own_sample_format(tmp_path, runner, ext, container, subtype):
    rate, gap = 44100, (0.6, 0.8)
    root = make_project(tmp_path / "p", rate=48000, bits=24, fmt="wav")  # the project's delivery must not apply
    stem = root / "inpaint" / f"pad.{ext}"
    write_tone(stem, 1.5, rate, channels=2, subtype=subtype)
    assert (sf.info(str(stem)).format, sf.info(str(stem)).subtype) == (container, subtype)
    (root / "inpaint" / "pad.toml").write_text(f"steps = 2\ntakes = 1\ngaps = [[{gap[0]}, {gap[1]}]]\n")
    [outcome] = render(runner, root)
    assert outcome.status == "rendered", outcome.error
    [take] = outcome.files
    assert take.suffix == f".{ext}"
    info = sf.info(str(take))
    assert (info.format, info.subtype, info.samplerate, info.channels) == (container, subtype, rate, 2)
    lo, hi = int((gap[0] - HALF_XF) * rate), int((gap[1] + HALF_XF) * rate)
    integer = subtype.startswith("PCM")
    for dtype in ("float64", "int32") if integer else ("float64",):
        before, _ = sf.read(str(stem), dtype=dtype, always_2d=True)
        after, _ = sf.read(str(take), dtype=dtype, always_2d=True)
        assert after.shape == before.shape
        assert np.array_equal(after[:lo], before[:lo]) and np.array_equal(after[hi:], before[hi:])
        assert not np.array_equal(after[lo:hi], before[lo:hi])
    delivery = sidecar(take)["delivery"]
    assert (delivery["format"], delivery["subtype"], delivery["sample_rate"]) == (ext, subtype, rate)


@pytest.mark.parametrize("ext, container, subtype", [("mp3", "MP3", "MPEG_LAYER_III"), ("ogg", "OGG", "VORBIS")])
def test_lossy_inputs_come_back_as_float_wav_identical_to_their_decoded_samples(tmp_path, runner, ext, container, subtype):
    rate, gap = 44100, (0.6, 0.8)
    root = make_project(tmp_path / "p", rate=48000, bits=16)
    stem = root / "inpaint" / f"pad.{ext}"
    stem.parent.mkdir(parents=True)
    t = np.arange(int(1.5 * rate)) / rate
    sf.write(str(stem), np.stack([0.3 * np.sin(2 * np.pi * 330 * t)] * 2, axis=1), rate, format=container, subtype=subtype)
    (root / "inpaint" / "pad.toml").write_text(f"steps = 2\ntakes = 1\ngaps = [[{gap[0]}, {gap[1]}]]\n")
    [outcome] = render(runner, root)
    assert outcome.status == "rendered", outcome.error
    [take] = outcome.files
    info = sf.info(str(take))
    assert (take.suffix, info.format, info.subtype, info.samplerate) == (".wav", "WAV", "FLOAT", rate)
    decoded, _ = sf.read(str(stem), dtype="float64", always_2d=True)
    after, _ = sf.read(str(take), dtype="float64", always_2d=True)
    assert after.shape == decoded.shape
    lo, hi = int((gap[0] - HALF_XF) * rate), int((gap[1] + HALF_XF) * rate)
    assert np.array_equal(after[:lo], decoded[:lo]) and np.array_equal(after[hi:], decoded[hi:])


# --------------------------------------------------------------------------- bad input


def test_bad_jobs_fail_with_one_line_each_and_the_rest_still_render(tmp_path, runner):
    root = make_project(tmp_path / "p", cue("door"))
    inpaint, restyle = root / "inpaint", root / "restyle"
    # an inpaint stem with no silence and no gaps given
    write_tone(inpaint / "nogap.wav", 1.5, 44100)
    (inpaint / "nogap.toml").write_text("steps = 2\ntakes = 1\n")
    # an inpaint stem whose given gap lies past its end
    write_tone(inpaint / "outside.wav", 1.5, 44100)
    (inpaint / "outside.toml").write_text("steps = 2\ntakes = 1\ngaps = [[2.0, 2.2]]\n")
    # random bytes named .wav
    restyle.mkdir(parents=True, exist_ok=True)
    (restyle / "corrupt.wav").write_bytes(np.random.default_rng(0).bytes(4096))
    (restyle / "corrupt.toml").write_text("steps = 2\ntakes = 1\n")
    # and a good stem beside them
    write_tone(restyle / "fine.wav", 1.0, 44100)
    (restyle / "fine.toml").write_text("steps = 2\ntakes = 1\n")

    outcomes = by_name(render(runner, root))
    assert set(outcomes) == {"door", "nogap", "outside", "corrupt", "fine"}
    assert outcomes["door"].status == "rendered"
    assert outcomes["fine"].status == "rendered"
    assert (root / "renders/foley/door/door_t01.wav").is_file()
    assert (root / "renders/restyle/fine/fine__restyle-texture_t01.wav").is_file()

    for name in ("nogap", "outside", "corrupt"):
        o = outcomes[name]
        assert o.status == "failed" and not o.ok and o.files == []
        assert "\n" not in o.error
        assert f"{name}.wav" in o.error, o.error
        assert "internal error" not in o.error
    assert "silence" in outcomes["nogap"].error
    assert "gaps" in outcomes["outside"].error and "outside the file" in outcomes["outside"].error
    assert "not a readable audio file" in outcomes["corrupt"].error

    for name in ("nogap", "outside"):
        assert not (root / "renders" / "inpaint" / name).exists() or not any((root / "renders" / "inpaint" / name).iterdir())
    assert not (root / "renders" / "restyle" / "corrupt").exists()
    assert_renders_clean(root)


def test_a_write_that_fails_halfway_leaves_nothing_behind(tmp_path, runner, monkeypatch):
    import host.output.files as files

    real_write = files.sf.write
    calls = []

    def failing_write(file, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the first take written: half a file, then the disk is full
            file.write(b"RIFF\x00\x00")
            raise OSError(28, "No space left on device")
        return real_write(file, *args, **kwargs)

    monkeypatch.setattr(files.sf, "write", failing_write)
    root = make_project(tmp_path / "p", cue("first", duration=0.5) + cue("second", prompt="a click", duration=0.5))
    outcomes = render(runner, root)
    assert sorted(o.status for o in outcomes) == ["failed", "rendered"]
    failed = next(o for o in outcomes if o.status == "failed")
    assert failed.job.name in failed.error and "\n" not in failed.error
    assert_renders_clean(root)
    assert not list((root / "renders" / "foley" / failed.job.name).glob("*.json"))

    monkeypatch.setattr(files.sf, "write", real_write)
    retry = by_name(render(runner, root))
    assert retry[failed.job.name].status == "rendered"
    assert [p.name for p in retry[failed.job.name].files] == [f"{failed.job.name}_t01.wav"]
    assert_renders_clean(root)
