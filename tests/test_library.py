"""Takes as library assets, end to end with the tiny model: the metadata inside every delivered
file (read back with wavinfo and mutagen, independent readers) matches the sidecar; UCS names;
a stem's takes name their preset; rejecting a take (command line and OSC) and listing takes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import mutagen.flac
import numpy as np
import pytest
import soundfile as sf
import wavinfo

from host.cli import main
from host.config.presets import BUILTIN_DIR, preset_library
from host.config.project import load_project
from host.config.ucs import lookup
from host.errors import InputError
from host.jobs.build import job_from_preset
from host.output.metadata import rescale
from host.output.takes import take_base
from host.output.ucs import parse_ucs_name
from host.plan.project import plan_project
from host.runner import Runner
from tests.conftest import write_tone
from tests.test_metadata import INPUT_TREF, bwf_input, chunk_list

PROJECT = 'sample_rate = 48000\nbit_depth = 24\nformat = "{fmt}"\nloudness = -23.0\ntrue_peak = -1.0\n'


def make_project(root: Path, cues: str = "", fmt: str = "wav", extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "project.toml").write_text(PROJECT.format(fmt=fmt) + extra)
    (root / "cues.toml").write_text(cues)
    return root


def cue(name: str, prompt: str = "a heavy wooden door slams shut", takes: int = 1, seed: int | None = 7, duration: float = 0.5, extra: str = "") -> str:
    text = f'[[cue]]\nname = "{name}"\nprompt = "{prompt}"\nduration = {duration}\nsteps = 2\ntakes = {takes}\n'
    return text + (f"seed = {seed}\n" if seed is not None else "") + extra + "\n"


@pytest.fixture
def runner(tiny_model) -> Runner:
    return Runner(tiny_model, batch_size=8)


def render(runner: Runner, root: Path):
    plan = plan_project(root)
    assert not plan.problems, [str(p) for p in plan.problems]
    outcomes = runner.run(plan.jobs)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return {o.job.name: o for o in outcomes}


def sidecar(audio: Path) -> dict:
    return json.loads(audio.with_suffix(".json").read_text())


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in (root / "renders").rglob("*") if p.is_file()}


def local_clock(iso: str) -> tuple[str, str]:
    when = datetime.fromisoformat(iso).astimezone()
    return when.strftime("%Y-%m-%d"), when.strftime("%H:%M:%S")


# --------------------------------------------------------------------------- metadata in delivered takes


def test_bext_and_ixml_of_a_delivered_take_match_its_sidecar(tmp_path, runner):
    prompt = "rain on a tin roof, " + "heavy and steady, " * 20  # longer than bext holds
    root = make_project(tmp_path / "demo", cue("rain", prompt=prompt, takes=2, extra='preset = "rain-on-window"'))
    takes = render(runner, root)["rain"].files
    assert [t.name for t in takes] == ["rain_t01.wav", "rain_t02.wav"]
    ids = set()
    for number, take in enumerate(takes, 1):
        record = sidecar(take)
        info = wavinfo.WavInfoReader(str(take))
        bext, ixml = info.bext, info.ixml.raw_xml.getroot()
        assert len(record["take_id"]) == 32 and int(record["take_id"], 16) >= 0
        ids.add(record["take_id"])
        assert bext.originator == "audiohost" and bext.originator_ref == record["take_id"]
        assert bext.description.endswith("...") and len(bext.description) <= 256 and prompt.startswith(bext.description[:-3])
        assert (bext.originator_date, bext.originator_time) == local_clock(record["rendered_at"])
        assert bext.time_reference == record["time_reference"] == 0  # foley has no place on a timeline
        line = bext.coding_history.strip()
        assert line.startswith("A=PCM,F=48000,W=24,M=mono,T=audiohost ")
        assert f"tiny@{record['model']['revision']}" in line and "preset rain-on-window" in line
        assert "chain " + " ".join(e["plugin"] for e in record["preset"]["settings"]["chain"]) in line
        assert bext.loudness_value == pytest.approx(record["levels"]["loudness_out"], abs=0.01)
        assert bext.max_true_peak == pytest.approx(record["levels"]["true_peak_out"], abs=0.01)

        assert ixml.findtext("PROJECT") == "demo" and ixml.findtext("SCENE") == "rain"
        assert ixml.findtext("TAKE") == str(record["take"]) == str(number)
        assert ixml.findtext("NOTE") == prompt  # the whole prompt
        assert ixml.findtext("FILE_UID") == record["take_id"]
        block = ixml.find("AUDIOHOST")
        assert int(block.findtext("SEED")) == record["seed"]
        assert int(block.findtext("STEPS")) == record["steps"] == 2
        assert float(block.findtext("GUIDANCE")) == record["guidance"]
        assert block.findtext("SCHEDULER") == record["scheduler"]
        assert block.findtext("MODEL") == "tiny" and block.findtext("MODEL_REVISION") == record["model"]["revision"]
        assert block.findtext("PRESET") == "rain-on-window"
        env = record["environment"]
        assert env["device"] == "cpu" and env["threads"] >= 1 and {"torch", "diffusers", "numpy", "soxr", "pedalboard"} <= set(env["versions"])
    assert len(ids) == 2  # every take has its own id


def test_flac_takes_carry_the_sidecar_as_vorbis_comments(tmp_path, runner):
    root = make_project(tmp_path / "p", cue("click", prompt="a soft click"), fmt="flac")
    [take] = render(runner, root)["click"].files
    assert take.suffix == ".flac"
    record = sidecar(take)
    tags = mutagen.flac.FLAC(take).tags
    assert tags["ORIGINATOR_REFERENCE"] == [record["take_id"]]
    assert tags["TAKE"] == ["1"] and tags["SCENE"] == ["click"] and tags["PROJECT"] == ["p"]
    assert tags["DESCRIPTION"] == ["a soft click"] and tags["AUDIOHOST_SEED"] == [str(record["seed"])]
    assert tags["TIME_REFERENCE"] == ["0"]


def test_a_region_restyle_goes_back_where_the_stem_came_from(tmp_path, runner):
    """The take's TimeReference is the stem's own plus the region's start, at the take's rate."""
    from host.config.presets import Preset
    from host.config.project import DEFAULT_PRESET_HASH
    from host.output.files import write_audio_new
    from host.output.metadata import TakeMetadata

    root = make_project(tmp_path / "p")
    stem = root / "session" / "pluck.wav"
    stem.parent.mkdir(parents=True)
    tref = 44100 * 3600 + 123  # one hour and 123 samples after midnight, at the stem's 44.1 kHz
    audio = write_tone(tmp_path / "tone.wav", 1.5, 44100).T
    write_audio_new(stem, audio, 44100, 16, "wav", metadata=TakeMetadata(
        take_id="rec1", prompt="", project="x", scene="pluck", take=1, origination=datetime(2026, 1, 1, 12),
        sample_rate=44100, channels=1, coding_history="A=PCM,F=44100,W=16,M=mono,T=recorder", time_reference=tref))
    preset = Preset(kind="restyle", prompt="steel drum", steps=2, strength=0.5)
    job = job_from_preset(load_project(root), "pluck", "restyle-x", DEFAULT_PRESET_HASH, preset, input=stem, source="osc", region=(0.25, 1.0))
    [outcome] = runner.run([job])
    assert outcome.status == "rendered", outcome.error
    [take] = outcome.files
    expected = rescale(tref, 44100, 48000) + 12000  # 0.25 s at 48 kHz
    assert sidecar(take)["time_reference"] == expected
    bext = wavinfo.WavInfoReader(str(take)).bext
    assert bext.time_reference == expected
    assert wavinfo.WavInfoReader(str(take)).ixml.raw_xml.getroot().findtext("HISTORY/PARENT_FILENAME") == "pluck.wav"


def test_an_inpainted_bwf_keeps_its_chunks_and_time_reference_and_every_sample_outside_the_gap(tmp_path, runner):
    root = make_project(tmp_path / "p")
    stem = root / "inpaint" / "dialog.wav"
    stem.parent.mkdir(parents=True)
    ints, input_chunks = bwf_input(stem, frames=96000)  # 2 s, 24-bit stereo, bext iXML LIST cue smpl and a vendor chunk
    (root / "inpaint" / "dialog.toml").write_text("steps = 2\ntakes = 1\ngaps = [[0.8, 1.0]]\n")
    [take] = render(runner, root)["dialog"].files
    assert take.name == "dialog__inpaint-seamless_t01.wav"
    record = sidecar(take)

    chunks = chunk_list(take.read_bytes())
    kept = [(cid, payload) for cid, payload in chunks if cid not in (b"fmt ", b"data", b"bext", b"iXML")]
    assert kept == [c for c in input_chunks if c[0] not in (b"bext", b"iXML")]  # byte for byte, in order
    bext = wavinfo.WavInfoReader(str(take)).bext
    assert bext.time_reference == INPUT_TREF == record["time_reference"]
    assert bext.originator_ref == record["take_id"]
    history = bext.coding_history.split("\r\n")
    assert history[0] == "A=PCM,F=48000,W=24,M=stereo,T=recorder" and history[1].startswith("A=PCM,F=48000,W=24,M=stereo,T=audiohost")
    ixml = wavinfo.WavInfoReader(str(take)).ixml.raw_xml.getroot()
    assert (ixml.findtext("PROJECT"), ixml.findtext("SCENE"), ixml.findtext("TAKE")) == ("Film", "12A", "3")  # the production's
    assert ixml.findtext("FILE_UID") == record["take_id"] and ixml.findtext("HISTORY/PARENT_FILENAME") == "dialog.wav"

    got, rate = sf.read(take, dtype="int32", always_2d=True)
    got = got >> 8
    fade = int(0.01 * rate)
    outside = np.r_[0 : int(0.8 * rate) - fade, int(1.0 * rate) + fade : ints.shape[0]]
    np.testing.assert_array_equal(got[outside], ints[outside])
    assert not np.array_equal(got[int(0.85 * rate) : int(0.95 * rate)], ints[int(0.85 * rate) : int(0.95 * rate)])  # the gap was filled


# --------------------------------------------------------------------------- naming


def ucs_project(root: Path, cues: str) -> Path:
    return make_project(root, cues, extra='naming = "ucs"\ncreator_id = "AH"\nsource_id = "Demo Lib"\n')


def test_ucs_names_for_every_shipped_foley_preset_are_valid(tmp_path):
    root = ucs_project(tmp_path / "p", "")
    project = load_project(root)
    library, problems = preset_library(None)
    assert not problems
    foley = {n: e for n, e in library.items() if e.preset.kind == "foley" and e.path.parent.resolve() == BUILTIN_DIR}
    assert len(foley) >= 15  # the 14 foley presets and the room-tone loop: every one is checked below
    for name, entry in foley.items():
        job = job_from_preset(project, f"{name}-cue", name, entry.content_hash, entry.preset, source="cue")
        base, note = take_base(job)
        assert note is None
        parts = parse_ucs_name(f"{base}_t01")
        assert parts is not None, base
        assert lookup(parts.cat_id) is not None and parts.cat_id == entry.preset.ucs
        assert (parts.creator_id, parts.source_id, parts.user_data) == ("AH", "Demo Lib", "t01")
        assert "_" not in parts.fx_name and parts.fx_name == " ".join(w.capitalize() for w in f"{name}-cue".split("-"))


def test_ucs_naming_names_files_and_switching_naming_renders_nothing_again(tmp_path, runner):
    cues = cue("door-slam", extra='preset = "door-wood-creak"') + cue("owl", prompt="an owl at night")
    root = make_project(tmp_path / "p", cues)
    stems = root / "restyle"
    write_tone(stems / "pluck.wav", 1.0, 44100)
    (stems / "pluck.toml").write_text("steps = 2\ntakes = 1\n")
    first = render(runner, root)
    before = files_under(root)
    assert {"renders/foley/door-slam/door-slam_t01.wav", "renders/foley/owl/owl_t01.wav",
            "renders/restyle/pluck/pluck__restyle-texture_t01.wav"} <= before

    # the same project switched to UCS names: everything is found under the old names
    (root / "project.toml").write_text(PROJECT.format(fmt="wav") + 'naming = "ucs"\ncreator_id = "AH"\nsource_id = "Demo"\n')
    again = render(runner, root)
    assert {o.status for o in again.values()} == {"cached"}
    assert files_under(root) == before
    assert again["door-slam"].files == first["door-slam"].files

    # new takes get UCS names; without a CatID the default name, and the sidecar says why; a
    # CatID added to a stem's sidecar names files, it does not render anything again
    (root / "cues.toml").write_text(cues + cue("door-creak", extra='preset = "door-wood-creak"') + cue("owl2", prompt="two owls"))
    (stems / "pluck.toml").write_text('steps = 2\ntakes = 1\nucs = "MUSCPerc"\n')
    write_tone(stems / "bell.wav", 1.0, 44100, freq=880)
    (stems / "bell.toml").write_text('steps = 2\ntakes = 1\nucs = "MUSCPerc"\n')
    write_tone(stems / "hum.wav", 1.0, 44100, freq=110)
    (stems / "hum.toml").write_text("steps = 2\ntakes = 1\n")
    third = render(runner, root)
    assert {k: o.status for k, o in third.items()} == {
        "door-slam": "cached", "owl": "cached", "pluck": "cached", "door-creak": "rendered", "owl2": "rendered", "bell": "rendered", "hum": "rendered",
    }
    names = {k: [p.name for p in o.files] for k, o in third.items()}
    assert names["door-creak"] == ["DOORCreak_Door Creak_AH_Demo_t01.wav"]
    assert names["bell"] == ["MUSCPerc_Bell Restyle Texture_AH_Demo_t01.wav"]
    assert names["pluck"] == ["pluck__restyle-texture_t01.wav"]
    assert names["owl2"] == ["owl2_t01.wav"] and "no UCS CatID" in sidecar(third["owl2"].files[0])["naming_note"]
    assert names["hum"] == ["hum__restyle-texture_t01.wav"]
    assert 'naming = "ucs"' in sidecar(third["hum"].files[0])["naming_note"]
    assert sidecar(third["door-creak"].files[0])["ucs"] == {"cat_id": "DOORCreak", "creator_id": "AH", "source_id": "Demo"}
    assert {o.status for o in render(runner, root).values()} == {"cached"}

    # a UCS-named take deleted by hand comes back under its name; rejected, a new number replaces it
    ucs_take = third["door-creak"].files[0]
    ucs_take.unlink()
    assert [p.name for p in render(runner, root)["door-creak"].files] == [ucs_take.name]
    assert reject(root, str(ucs_take)) == 0
    assert [p.name for p in render(runner, root)["door-creak"].files] == ["DOORCreak_Door Creak_AH_Demo_t02.wav"]


def test_a_stem_restyled_with_two_presets_gets_two_names_and_two_numberings(tmp_path, runner):
    root = make_project(tmp_path / "p")
    (root / "presets").mkdir()
    (root / "presets" / "quick-radio.toml").write_text('kind = "restyle"\nprompt = "old radio"\nsteps = 2\ntakes = 2\nseed = 3\n')
    (root / "presets" / "quick-drum.toml").write_text('kind = "restyle"\nprompt = "steel drum"\nsteps = 2\ntakes = 1\nseed = 3\n')
    write_tone(root / "restyle" / "quick-radio" / "loop.wav", 1.0, 44100)
    write_tone(root / "restyle" / "quick-drum" / "loop.wav", 1.0, 44100)
    outcomes = runner.run(plan_project(root).jobs)
    assert all(o.status == "rendered" for o in outcomes), [o.error for o in outcomes]
    folder = root / "renders" / "restyle" / "loop"
    assert sorted(p.name for p in folder.glob("*.wav")) == ["loop__quick-drum_t01.wav", "loop__quick-radio_t01.wav", "loop__quick-radio_t02.wav"]
    assert {sidecar(p)["preset"]["name"] for p in folder.glob("loop__quick-radio_t*.wav")} == {"quick-radio"}


def test_takes_named_before_the_preset_was_in_the_name_are_still_found(tmp_path, runner):
    """Projects rendered before: ``<stem>_tNN`` takes stay valid (the sidecars say what they are)."""
    root = make_project(tmp_path / "p")
    write_tone(root / "restyle" / "loop.wav", 1.0, 44100)
    (root / "restyle" / "loop.toml").write_text("steps = 2\ntakes = 2\nseed = 5\n")
    [take1, take2] = render(runner, root)["loop"].files
    for n, take in enumerate((take1, take2), 1):  # as an earlier audiohost named them
        old = take.with_name(f"loop_t{n:02d}.wav")
        take.rename(old)
        record = sidecar(take)
        record["file"] = old.name
        old.with_suffix(".json").write_text(json.dumps(record))
        take.with_suffix(".json").unlink()
    before = files_under(root)
    again = render(runner, root)["loop"]
    assert again.status == "cached" and [p.name for p in again.files] == ["loop_t01.wav", "loop_t02.wav"]
    assert files_under(root) == before


# --------------------------------------------------------------------------- rejecting and listing


def reject(root: Path, *takes: str, cwd: Path | None = None) -> int:
    old = Path.cwd()
    os.chdir(cwd or old)
    try:
        return main(["takes", "reject", str(root), *takes])
    finally:
        os.chdir(old)


def test_reject_then_rerun_renders_nothing_for_that_take_and_a_replacement_with_a_fresh_seed(tmp_path, runner, capsys):
    root = make_project(tmp_path / "p", cue("door", takes=2, seed=100) + cue("solo", prompt="a bell", takes=1, seed=9))
    first = render(runner, root)
    t1, t2 = first["door"].files
    assert [sidecar(t)["seed"] for t in (t1, t2)] == [100, 101]
    [solo] = first["solo"].files

    # relative to the project, and as `takes list` shows them (relative to renders/)
    assert reject(root, "renders/foley/door/door_t01.wav", "foley/solo/solo_t01.json", cwd=tmp_path) == 0
    out = capsys.readouterr().out
    assert "rejected renders/foley/door/door_t01.wav -> renders/.rejected/foley/door/door_t01.wav" in out
    rejected = root / "renders" / ".rejected" / "foley"
    assert sorted(p.name for p in (rejected / "door").iterdir()) == ["door_t01.json", "door_t01.wav"]
    assert not t1.exists() and not t1.with_suffix(".json").exists() and not solo.exists()
    note = json.loads((rejected / "door" / "door_t01.json").read_text())["rejected"]
    assert note["via"] == "cli" and note["from"] == "foley/door/door_t01.wav" and note["at"]

    again = render(runner, root)
    # door wants 2: t02 is kept and one new take with a fresh seed replaces t01, under a new number
    assert [p.name for p in again["door"].files] == ["door_t02.wav", "door_t03.wav"]
    assert sidecar(again["door"].files[1])["seed"] == 102
    # solo wants 1 and has none kept: its replacement, never the rejected seed again
    assert [p.name for p in again["solo"].files] == ["solo_t02.wav"] and sidecar(again["solo"].files[0])["seed"] == 10
    seeds = [json.loads(p.read_text())["seed"] for p in (root / "renders" / "foley").rglob("*.json")]
    assert 100 not in seeds and 9 not in seeds  # no rejected take came back

    before = files_under(root)
    assert {o.status for o in render(runner, root).values()} == {"cached"}
    assert files_under(root) == before

    # deleting a take by hand still means "render it again" (same seed, same sound: it was
    # rendered in a batch and now alone, so not to the last bit; `audiohost recall` is bit-exact)
    kept = again["door"].files[0]
    data = sf.read(kept)[0]
    kept.unlink()
    third = render(runner, root)["door"]
    assert third.status == "rendered" and kept.is_file() and sidecar(kept)["seed"] == 101
    np.testing.assert_allclose(sf.read(kept)[0], data, atol=1e-5)


def test_reject_moves_only_takes_inside_renders(tmp_path, runner, capsys):
    root = make_project(tmp_path / "p", cue("door", takes=2))
    t1, t2 = render(runner, root)["door"].files
    outside = tmp_path / "elsewhere.wav"
    outside.write_bytes(b"RIFF")
    (t2.parent / "link.wav").symlink_to(outside)
    (t2.parent / "link.json").write_text(json.dumps({**sidecar(t2), "file": "link.wav"}))
    (root / "renders" / "notes.json").write_text("{}")
    (root / "renders" / "foley" / "door" / "stray.json").write_text('{"file": "door_t01.wav"}')
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}

    bad = {
        "cues.toml": "not inside renders/",
        "renders/../cues.toml": "not inside renders/",
        str(outside): "not inside renders/",
        "renders/notes.json": "not a take",
        "renders/foley/door/link.wav": "symbolic link",
        "renders/foley/door/nothing_t09.wav": "has no sidecar",
        "renders/foley/door/stray.json": "not an audiohost take sidecar",
        "renders/foley/door/door_t01.json/..": "not a take",
        "": "empty",
    }
    for path, reason in bad.items():
        assert reject(root, path, cwd=root) == 1, path
        err = capsys.readouterr().err
        assert reason in err and err.count("\n") == 1, (path, err)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()} == before
    assert outside.read_bytes() == b"RIFF" and not (root / "renders" / ".rejected").exists()

    assert reject(root, str(t1)) == 0  # absolute is fine
    assert reject(root, "renders/.rejected/foley/door/door_t01.wav", cwd=root) == 1
    assert "rejected already" in capsys.readouterr().err


def test_a_take_folder_swapped_for_a_link_after_the_check_leads_nowhere(tmp_path, runner, monkeypatch):
    """The path is checked, then the take folder becomes a symlink to a look-alike outside the
    project: nothing outside is moved, and the project's take stays where it was."""
    import host.output.library as library

    root = make_project(tmp_path / "p", cue("door", takes=1))
    [take] = render(runner, root)["door"].files
    outside = tmp_path / "outside"
    shutil.copytree(take.parent, outside)
    real = take.parent.with_name("door-real")
    checked = library.confine

    def confine_then_swap(*args, **kwargs):
        result = checked(*args, **kwargs)
        take.parent.rename(real)
        take.parent.symlink_to(outside, target_is_directory=True)
        return result

    monkeypatch.setattr(library, "confine", confine_then_swap)
    with pytest.raises(InputError, match="a link, or gone"):
        library.reject_take(root, take)
    assert sorted(p.name for p in outside.iterdir()) == ["door_t01.json", "door_t01.wav"]
    assert sorted(p.name for p in real.iterdir()) == ["door_t01.json", "door_t01.wav"]
    assert not list((root / "renders" / ".rejected").rglob("*.wav"))


def test_a_rejection_cut_short_is_finished_by_rejecting_again(tmp_path, runner):
    root = make_project(tmp_path / "p", cue("door", takes=1))
    [take] = render(runner, root)["door"].files
    dest = root / "renders" / ".rejected" / "foley" / "door"
    dest.mkdir(parents=True)
    os.link(take, dest / take.name)  # the crash came after the first step
    assert reject(root, str(take)) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["door_t01.json", "door_t01.wav"] and not take.exists()


def test_reject_on_a_filesystem_without_hard_links(tmp_path, runner, monkeypatch):
    import errno

    root = make_project(tmp_path / "p", cue("door", takes=1))
    [take] = render(runner, root)["door"].files
    data = take.read_bytes()

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)  # as on FAT, exFAT or an SMB share
    assert reject(root, str(take)) == 0
    moved = root / "renders" / ".rejected" / "foley" / "door"
    assert (moved / take.name).read_bytes() == data and not take.exists()
    assert json.loads((moved / "door_t01.json").read_text())["rejected"]["via"] == "cli"
    assert not [p for p in moved.iterdir() if p.name.startswith(".")]  # no temp file left


def test_takes_list_shows_state_loudness_clap_score_and_seed(tmp_path, runner, capsys):
    root = make_project(tmp_path / "p", cue("door", takes=3, seed=40))
    t1, t2, t3 = render(runner, root)["door"].files
    ranked = sidecar(t3)
    ranked["clap_score"] = 0.4213
    t3.with_suffix(".json").write_text(json.dumps(ranked))
    assert reject(root, str(t1)) == 0
    t2.unlink()  # deleted by hand: rendered again next time
    capsys.readouterr()

    assert main(["takes", "list", str(root), "--json"]) == 0
    rows = {r["path"]: r for r in json.loads(capsys.readouterr().out)}
    assert {p: r["state"] for p, r in rows.items()} == {
        "renders/.rejected/foley/door/door_t01.wav": "rejected",
        "renders/foley/door/door_t02.wav": "missing audio",
        "renders/foley/door/door_t03.wav": "kept",
    }
    kept = rows["renders/foley/door/door_t03.wav"]
    assert kept["seed"] == 42 and kept["clap_score"] == 0.4213 and kept["take"] == 3
    assert kept["loudness"] == pytest.approx(-23.0, abs=0.1) and kept["true_peak"] <= -1.0
    assert rows["renders/.rejected/foley/door/door_t01.wav"]["rejected_at"]

    assert main(["takes", "list", str(root)]) == 0
    table = capsys.readouterr().out
    assert "1 kept, 1 rejected, 1 missing audio" in table and "0.421" in table and "42" in table


# --------------------------------------------------------------------------- rejecting over OSC


def test_reject_over_osc_and_with_audiohost_request(tmp_path, tiny_model):
    from tests.oscpeer import Daemon, OscPeer

    root = make_project(tmp_path / "proj", cue("door", takes=2, seed=500, duration=1.0)).resolve()
    peer = OscPeer(0)
    daemon = Daemon([root], tmp_path / "state", peer.reply_port).start()
    peer.daemon = ("127.0.0.1", daemon.port)
    try:
        daemon.wait_ready(peer)
        peer.send("/audiohost/render", "proj", "door", "first")
        done = peer.wait_for(lambda m: m[0] in ("/audiohost/job/done", "/audiohost/job/failed") and m[1][-1] == "first", 120)
        assert done[0] == "/audiohost/job/done", done
        t1, t2 = (Path(p) for p in done[1][1:3])

        peer.send("/audiohost/reject", "proj", "renders/foley/door/door_t01.wav", "why")
        reply = peer.wait_for(lambda m: m[0] in ("/audiohost/rejected", "/audiohost/error"), 20)
        assert reply == ("/audiohost/rejected", ["proj", str(t1), str(root / "renders/.rejected/foley/door/door_t01.wav"), "why"])
        assert json.loads((root / "renders/.rejected/foley/door/door_t01.json").read_text())["rejected"]["tag"] == "why"

        peer.send("/audiohost/reject", "proj", "../cues.toml", "bad")
        error = peer.wait_for(lambda m: m[0] == "/audiohost/error", 20)
        assert error[1][0] == "/audiohost/reject" and "only takes can be rejected" in error[1][1]

        client = subprocess.run(
            [sys.executable, "-m", "host", "request", "reject", "proj", "foley/door/door_t02.json", "--port", str(daemon.port), "--json"],
            capture_output=True, text=True, timeout=60,
        )
        assert client.returncode == 0, client.stderr
        assert json.loads(client.stdout)["rejected"] == [{"take": str(t2), "moved_to": str(root / "renders/.rejected/foley/door/door_t02.wav")}]

        peer.send("/audiohost/render", "proj", "door", "again")
        done = peer.wait_for(lambda m: m[0] in ("/audiohost/job/done", "/audiohost/job/failed") and m[1][-1] == "again", 120)
        assert [Path(p).name for p in done[1][1:-1]] == ["door_t03.wav", "door_t04.wav"]
        assert [sidecar(Path(p))["seed"] for p in done[1][1:-1]] == [502, 503]
    finally:
        code = daemon.stop()
        peer.close()
    assert code == 0
