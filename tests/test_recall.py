"""Exact recall: a take rendered again from its sidecar alone is bit-identical to the original on
the same model revision, library versions and device, batched takes included; where something
differs recall says what, and renders only with --anyway, reporting the largest difference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from host.cli import main
from host.plan.project import plan_project
from host.recall import recall
from host.runner import Runner
from tests.conftest import write_tone
from tests.test_library import cue, make_project, sidecar


@pytest.fixture
def runner(tiny_model) -> Runner:
    return Runner(tiny_model, batch_size=8)


def render(runner: Runner, root: Path) -> dict:
    outcomes = runner.run(plan_project(root).jobs)
    assert all(o.status == "rendered" for o in outcomes), [o.error for o in outcomes]
    return {o.job.name: o for o in outcomes}


def samples(path: Path) -> np.ndarray:
    return sf.read(path, dtype="int32", always_2d=True)[0]


def test_recall_of_takes_rendered_alone_is_bit_identical(tmp_path, runner, tiny_model):
    root = make_project(tmp_path / "p", cue("door", seed=11))
    write_tone(root / "restyle" / "loop.wav", 1.2, 44100)
    (root / "restyle" / "loop.toml").write_text("steps = 2\ntakes = 1\nstrength = 0.6\n")
    stem = root / "inpaint" / "pad.wav"
    data = write_tone(stem, 2.0, 44100, subtype="PCM_24")
    data[40000:46000] = 0.0  # 136 ms of digital silence
    sf.write(stem, data, 44100, subtype="PCM_24")
    (root / "inpaint" / "pad.toml").write_text("steps = 2\ntakes = 1\n")  # the gap is found as silence
    outcomes = render(runner, root)
    for name in ("door", "loop", "pad"):
        [take] = outcomes[name].files
        assert sidecar(take)["batch"] is None  # one take, alone in its call
        report = recall(take.with_suffix(".json"), model=tiny_model)
        assert report.differences == [] and report.identical, (name, report.as_dict())
        assert report.path == take.with_name(f"{take.stem}_recall.wav")
        np.testing.assert_array_equal(samples(report.path), samples(take))
        recalled = json.loads(report.sidecar.read_text())
        assert "job_key" not in recalled and recalled["recall"]["identical"] is True  # never counted as a take


def test_recall_of_batched_takes_is_bit_identical_and_needs_the_batch(tmp_path, runner, tiny_model):
    # two cues of one geometry share one denoising call with a third take
    root = make_project(tmp_path / "p", cue("door", takes=2, seed=20) + cue("bell", prompt="a small bell rings", seed=90))
    calls = runner.denoise_calls
    outcomes = render(runner, root)
    assert runner.denoise_calls == calls + 1
    bell = outcomes["bell"].files[0]
    batch = sidecar(bell)["batch"]
    assert batch["position"] == 2 and [s for _, _, s in batch["takes"]] == [20, 21, 90]
    for take in [*outcomes["door"].files, bell]:
        report = recall(take.with_suffix(".json"), model=tiny_model)
        assert report.identical and report.max_difference == 0.0, take.name

    # the same take recalled alone (as if its batch were not recorded) is not the same to the bit
    lone = bell.with_name("lone.json")
    lone.write_text(json.dumps({**sidecar(bell), "batch": None, "file": bell.name}))
    report = recall(lone, model=tiny_model)
    assert report.differences == [] and 0 < report.max_difference < 1e-4


def test_recall_of_a_restyle_rendered_with_its_sibling_takes(tmp_path, runner, tiny_model):
    root = make_project(tmp_path / "p")
    write_tone(root / "restyle" / "loop.wav", 1.2, 44100)
    (root / "restyle" / "loop.toml").write_text("steps = 2\ntakes = 3\nstrength = 0.6\nseed = 4\n")
    takes = render(runner, root)["loop"].files
    assert sidecar(takes[1])["batch"]["position"] == 1
    report = recall(takes[1].with_suffix(".json"), model=tiny_model)
    assert report.identical


def test_recall_of_a_region_restyle_requested_over_osc(tmp_path, runner, tiny_model):
    from host.config.presets import Preset
    from host.config.project import DEFAULT_PRESET_HASH, load_project
    from host.jobs.build import job_from_preset

    root = make_project(tmp_path / "p")
    stem = root / "session" / "pluck.wav"
    write_tone(stem, 2.0, 44100)
    preset = Preset(kind="restyle", prompt="steel drum", steps=2, strength=0.5, takes=2, seed=8)
    job = job_from_preset(load_project(root), "pluck", "restyle-x", DEFAULT_PRESET_HASH, preset, input=stem, source="osc", region=(0.5, 1.0))
    [outcome] = runner.run([job])
    assert outcome.status == "rendered", outcome.error
    for take in outcome.files:
        assert sidecar(take)["region"] == [0.5, 1.0]
        report = recall(take.with_suffix(".json"), model=tiny_model)
        assert report.identical, report.as_dict()


def test_recall_says_what_differs_and_renders_only_anyway(tmp_path, runner, capsys):
    root = make_project(tmp_path / "p", cue("door", seed=33))
    [take] = render(runner, root)["door"].files
    changed = take.with_name("changed.json")
    record = sidecar(take)
    record["model"]["revision"] = "sha256:0123456789abcdef"
    record["environment"]["versions"]["numpy"] = "1.26.4"
    changed.write_text(json.dumps(record))
    before = sorted(p.name for p in take.parent.iterdir())

    assert main(["recall", str(changed)]) == 1
    err = capsys.readouterr().err
    assert "model revision: the take was rendered with tiny at sha256:0123456789abcdef" in err
    assert "numpy: 1.26.4 then" in err and "--anyway" in err
    assert sorted(p.name for p in take.parent.iterdir()) == before  # nothing rendered

    out_dir = tmp_path / "recalled"
    assert main(["recall", str(changed), "--anyway", "--to", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert f"recalled {out_dir / take.name}" in out and f"bit-identical to {take.name}" in out
    np.testing.assert_array_equal(samples(out_dir / take.name), samples(take))

    # never over a file: the next recall into the same folder takes the next name
    assert main(["recall", str(changed), "--anyway", "--to", str(out_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == str(out_dir / f"{take.stem}_recall.wav") and report["max_difference"] == 0.0
    assert any("model revision" in d for d in report["differences"])


def test_recall_reports_the_largest_difference_when_the_audio_differs(tmp_path, runner, tiny_model):
    root = make_project(tmp_path / "p", cue("door", seed=34))
    [take] = render(runner, root)["door"].files
    original = samples(take)
    tampered = original.copy()
    tampered[100, 0] += 256 * 1000  # 1000 steps of 24 bits
    sf.write(take, tampered, 48000, subtype="PCM_24")  # as if the original had been edited
    report = recall(take.with_suffix(".json"), model=tiny_model)
    assert report.identical is False and report.max_difference == pytest.approx(1000 / 2**23)
    assert main(["recall", str(take.with_suffix(".json"))]) == 1  # nothing differed, yet not identical: said


def test_recall_of_a_changed_or_missing_input(tmp_path, runner, tiny_model):
    root = make_project(tmp_path / "p")
    stem = root / "restyle" / "loop.wav"
    write_tone(stem, 1.2, 44100)
    (root / "restyle" / "loop.toml").write_text("steps = 2\ntakes = 1\n")
    [take] = render(runner, root)["loop"].files
    write_tone(stem, 1.2, 44100, freq=500)
    report = recall(take.with_suffix(".json"), model=tiny_model)
    assert not report.rendered and report.differences[0].startswith("input: loop.wav has changed since")
    report = recall(take.with_suffix(".json"), model=tiny_model, anyway=True)
    assert report.rendered and report.max_difference > 0
    stem.unlink()
    with pytest.raises(Exception) as err:
        recall(take.with_suffix(".json"), model=tiny_model)
    assert "the take's input is gone" in str(err.value)


@pytest.mark.parametrize("damage", ["not json", "[]", '{"kind": "foley"}', "missing seed", "bad batch"])
def test_a_damaged_sidecar_gets_one_line(tmp_path, runner, capsys, damage):
    root = make_project(tmp_path / "p", cue("door", seed=35))
    [take] = render(runner, root)["door"].files
    bad = tmp_path / "bad.json"
    record = sidecar(take)
    text = {
        "not json": "{",
        "[]": "[]",
        '{"kind": "foley"}': '{"kind": "foley"}',
        "missing seed": json.dumps({k: v for k, v in record.items() if k != "seed"}),
        "bad batch": json.dumps({**record, "batch": {"takes": [["a", "b", 1]], "position": 5}}),
    }[damage]
    bad.write_text(text)
    assert main(["recall", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}") and err.count("\n") == 1
    shutil.rmtree(root)
