"""Projects: project.toml settings and the cue sheet."""

from __future__ import annotations

from pathlib import Path

import pytest

from host.config.presets import preset_library
from host.config.project import (
    DEFAULT_PRESET_HASH,
    Project,
    ProjectSettings,
    load_cues,
    load_project,
)
from host.errors import InputError


@pytest.fixture(scope="module")
def builtins():
    library, errors = preset_library()
    assert errors == []
    return library


def make_project(root: Path, settings: str | None = None, cues: str | None = None) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    if settings is not None:
        (root / "project.toml").write_text(settings, encoding="utf-8")
    if cues is not None:
        (root / "cues.toml").write_text(cues, encoding="utf-8")
    return load_project(root)


# --------------------------------------------------------------------------- project.toml


def test_missing_project_toml_means_defaults(tmp_path: Path):
    project = load_project(tmp_path)
    assert project.settings == ProjectSettings()
    delivery = project.settings.delivery
    assert (delivery.sample_rate, delivery.bit_depth, delivery.format, delivery.loudness, delivery.true_peak) == (
        48000, 24, "wav", -23.0, -1.0,
    )
    assert project.settings.restyle_preset == "restyle-texture"
    assert project.settings.inpaint_preset == "inpaint-seamless"
    assert project.settings.model is None


def test_project_folders(tmp_path: Path):
    project = load_project(str(tmp_path))
    root = tmp_path.resolve()
    assert project.root == root
    assert project.renders_dir == root / "renders"
    assert project.restyle_dir == root / "restyle"
    assert project.inpaint_dir == root / "inpaint"
    assert project.presets_dir == root / "presets"
    assert project.cue_sheet == root / "cues.toml"
    assert project.state_dir == root / ".audiohost"


def test_project_must_be_an_existing_folder(tmp_path: Path):
    with pytest.raises(InputError, match="no such project folder"):
        load_project(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="folder"):
        load_project(tmp_path / "file")


def test_project_settings_read(tmp_path: Path):
    project = make_project(
        tmp_path,
        'sample_rate = 96000\nbit_depth = 32\nloudness = "none"\ntrue_peak = -2.0\n'
        'model = "cvssp/audioldm-m-full"\nrestyle_preset = "restyle-radio"\n',
    )
    delivery = project.settings.delivery
    assert (delivery.sample_rate, delivery.bit_depth, delivery.loudness, delivery.true_peak) == (96000, 32, None, -2.0)
    assert project.settings.model == "cvssp/audioldm-m-full"
    assert project.settings.restyle_preset == "restyle-radio"


@pytest.mark.parametrize(
    "text, field",
    [
        ("bit_depth = 20\n", "bit_depth"),
        ('format = "mp3"\n', "format"),
        ("sample_rate = 10\n", "sample_rate"),
        ("loudness = 5\n", "loudness"),
        ('format = "flac"\nbit_depth = 32\n', "format"),
        ("[delivery]\nsample_rate = 44100\n", "delivery"),
        ("samplerate = 44100\n", "samplerate"),
    ],
)
def test_bad_project_toml_names_file_and_field(tmp_path: Path, text: str, field: str):
    (tmp_path / "project.toml").write_text(text)
    with pytest.raises(InputError) as info:
        load_project(tmp_path)
    assert info.value.where.endswith(f"project.toml {field}")
    assert "\n" not in str(info.value)


def test_invalid_project_toml(tmp_path: Path):
    (tmp_path / "project.toml").write_text("sample_rate = = 1")
    with pytest.raises(InputError, match="invalid TOML"):
        load_project(tmp_path)


# --------------------------------------------------------------------------- cues


def test_missing_and_empty_cue_sheets(tmp_path: Path, builtins):
    assert load_cues(make_project(tmp_path / "a"), builtins) == ([], [])
    assert load_cues(make_project(tmp_path / "b", cues=""), builtins) == ([], [])
    assert load_cues(make_project(tmp_path / "c", cues="# nothing yet\n"), builtins) == ([], [])


def test_cues_load_with_overrides(tmp_path: Path, builtins):
    project = make_project(
        tmp_path,
        cues="""
[[cue]]
name = "door-01"
preset = "door-wood-creak"
duration = 3.5
seed = 42
takes = 2

[[cue]]
name = "hum"
prompt = "fluorescent light hum"
delivery = { loudness = -30 }
""",
    )
    cues, errors = load_cues(project, builtins)
    assert errors == []
    door, hum = cues
    assert (door.name, door.preset_name, door.index) == ("door-01", "door-wood-creak", 0)
    assert door.preset.duration == 3.5 and door.preset.seed == 42 and door.preset.takes == 2
    assert door.preset.prompt == builtins["door-wood-creak"].preset.prompt
    assert door.preset.chain == builtins["door-wood-creak"].preset.chain
    assert door.preset_hash == builtins["door-wood-creak"].content_hash
    assert (hum.preset_name, hum.preset_hash, hum.index) == ("default", DEFAULT_PRESET_HASH, 1)
    assert hum.preset.kind == "foley" and hum.preset.prompt == "fluorescent light hum"
    assert hum.preset.delivery.loudness == -30


def test_a_cue_may_ask_for_a_model(tmp_path: Path, builtins):
    project = make_project(tmp_path, cues='[[cue]]\nname = "riff"\nprompt = "a funk bass riff"\nmodel = "cvssp/audioldm2-music"\n')
    [riff], errors = load_cues(project, builtins)
    assert errors == [] and riff.preset.model == "cvssp/audioldm2-music"


def test_one_bad_cue_does_not_stop_the_others(tmp_path: Path, builtins):
    project = make_project(
        tmp_path,
        cues="""
[[cue]]
name = "a"
preset = "ui-click"

[[cue]]
name = "b"
preset = "ui-click"
duration = -2

[[cue]]
name = "c"
preset = "whoosh-fast"
""",
    )
    cues, errors = load_cues(project, builtins)
    assert [c.name for c in cues] == ["a", "c"]
    assert [c.index for c in cues] == [0, 2]
    [err] = errors
    # the cue is named as written, and where it is in the sheet
    assert err.where.endswith('cues.toml cue "b" (cue[1]).duration')
    assert err.reason == "must be between 0.04 and 600 seconds, got -2"


@pytest.mark.parametrize(
    "body, field, reason",
    [
        ('name = "../x"\npreset = "ui-click"', "name", "letters, digits"),
        ('name = "a/b"\npreset = "ui-click"', "name", "letters, digits"),
        ('name = ".hidden"\npreset = "ui-click"', "name", "dot"),
        (f'name = "{"x" * 101}"\npreset = "ui-click"', "name", "100"),
        ('preset = "ui-click"', "name", "required"),
        ('name = 3\npreset = "ui-click"', "name", "text"),
        ('name = "x"\npreset = "ui-clik"', "preset", "ui-click"),
        ('name = "x"\npreset = "restyle-radio"', "preset",
         "preset 'restyle-radio' is a restyle preset; a cue without an input renders foley"),
        ('name = "x"\npreset = "inpaint-seamless"', "preset", "inpaint preset"),
        ('name = "x"\npreset = "ui-click"\nprompts = "y"', "prompts", "did you mean 'prompt'"),
        ('name = "x"\npreset = "ui-click"\nkind = "restyle"', "kind", "unknown field"),
        ('name = "x"\npreset = "ui-click"\nstrength = 1.5', "strength", "between 0 and 1"),
        ('name = "x"\npreset = "ui-click"\nscheduler = "euler"', "scheduler", "'ddim' or 'dpm'"),
        ('name = "x"\npreset = "ui-click"\nprompt = ""', "prompt", "needs a prompt"),
        ('name = "x"\npreset = "ui-click"\ndelivery = { format = "flac", bit_depth = 32 }', "delivery", "FLAC"),
        ('name = "x"\npreset = "ui-click"\n[[cue.chain]]\nplugin = "Reverbb"', "chain", "did you mean 'Reverb'"),
    ],
)
def test_bad_cue_messages(tmp_path: Path, builtins, body: str, field: str, reason: str):
    from host.finish.chain import check_chain

    project = make_project(tmp_path, cues=f"[[cue]]\n{body}\n")
    cues, errors = load_cues(project, builtins, check_chain=check_chain)
    assert cues == []
    [err] = errors
    assert "cues.toml cue" in err.where and "cue[0]" in err.where
    assert field in str(err)
    assert reason in err.reason
    assert "\n" not in str(err)


def test_cue_needs_a_preset_or_a_prompt(tmp_path: Path, builtins):
    project = make_project(tmp_path, cues='[[cue]]\nname = "x"\nduration = 2\n')
    cues, [err] = load_cues(project, builtins)
    assert cues == [] and "preset" in err.reason and "prompt" in err.reason


def test_duplicate_cue_names_rejected(tmp_path: Path, builtins):
    project = make_project(
        tmp_path,
        cues='[[cue]]\nname = "hit"\npreset = "impact-heavy"\n'
        '[[cue]]\nname = "hit"\npreset = "ui-click"\n'
        '[[cue]]\nname = "HIT"\npreset = "ui-click"\n',
    )
    cues, errors = load_cues(project, builtins)
    assert [(c.name, c.preset_name) for c in cues] == [("hit", "impact-heavy")]
    assert [e.where.split("cues.toml ")[-1] for e in errors] == ['cue "hit" (cue[1]).name', 'cue "HIT" (cue[2]).name']
    assert all("already used by cue[0]" in e.reason for e in errors)


def test_invalid_cue_toml(tmp_path: Path, builtins):
    project = make_project(tmp_path, cues='[[cue]]\nname = "x\n')
    cues, [err] = load_cues(project, builtins)
    assert cues == []
    assert "cues.toml" in err.where and err.reason.startswith("invalid TOML: ")


def test_cue_sheet_shape_errors(tmp_path: Path, builtins):
    project = make_project(tmp_path, cues='[cue]\nname = "x"\npreset = "ui-click"\n')
    cues, [err] = load_cues(project, builtins)
    assert cues == [] and "[[cue]]" in err.reason
    project = make_project(tmp_path, cues='title = "x"\n[[cue]]\nname = "x"\npreset = "ui-click"\n')
    cues, [err] = load_cues(project, builtins)
    assert [c.name for c in cues] == ["x"] and err.where.endswith("cues.toml title")


def test_cue_uses_project_presets(tmp_path: Path):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "ui-click.toml").write_text('kind = "foley"\nprompt = "my own click"\nduration = 0.5\n')
    project = make_project(tmp_path, cues='[[cue]]\nname = "c"\npreset = "ui-click"\n')
    library, errors = preset_library(project.root)
    assert errors == []
    [cue], [] = load_cues(project, library)
    assert cue.preset.prompt == "my own click" and cue.preset.duration == 0.5


def test_library_default_preset_replaces_builtin_default(tmp_path: Path):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "default.toml").write_text('kind = "foley"\nsteps = 80\n')
    project = make_project(tmp_path, cues='[[cue]]\nname = "c"\nprompt = "a bell"\n')
    library, _ = preset_library(project.root)
    [cue], [] = load_cues(project, library)
    assert cue.preset_name == "default" and cue.preset.steps == 80
    assert cue.preset_hash == library["default"].content_hash
