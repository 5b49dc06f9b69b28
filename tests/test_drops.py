"""Drop folders: which stems wait in restyle/ and inpaint/, and how each will be rendered."""

from __future__ import annotations

from pathlib import Path

import pytest

from host.config.presets import preset_library
from host.config.project import Project, load_project
from host.errors import InputError
from host.intake.drops import AUDIO_SUFFIXES, is_stem_file, safe_name, scan_drops, stem_from_path


@pytest.fixture(scope="module")
def builtins():
    library, errors = preset_library()
    assert errors == []
    return library


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return load_project(tmp_path)


def drop(project: Project, rel: str, sidecar: str | None = None) -> Path:
    path = project.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")  # only the name matters here
    if sidecar is not None:
        path.with_suffix(".toml").write_text(sidecar, encoding="utf-8")
    return path


def test_audio_suffixes():
    for suffix in (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3", ".caf", ".w64", ".rf64"):
        assert suffix in AUDIO_SUFFIXES
    assert is_stem_file(Path("x.WAV"))
    assert not is_stem_file(Path(".x.wav"))
    assert not is_stem_file(Path("x.wav.partial"))
    assert not is_stem_file(Path("x.toml"))


def test_direct_stem_uses_project_default_preset(project, builtins):
    path = drop(project, "restyle/Lead Vox.wav")
    stem = stem_from_path(project, builtins, path)
    assert stem.kind == "restyle"
    assert stem.preset_name == "restyle-texture"
    assert stem.preset == builtins["restyle-texture"].preset
    assert stem.preset_hash == builtins["restyle-texture"].content_hash
    assert stem.name == "Lead_Vox"
    assert stem.gaps is None

    stem = stem_from_path(project, builtins, drop(project, "inpaint/dialog.flac"))
    assert (stem.kind, stem.preset_name) == ("inpaint", "inpaint-seamless")


def test_project_toml_changes_default_preset(tmp_path: Path, builtins):
    (tmp_path / "project.toml").write_text('restyle_preset = "restyle-radio"\ninpaint_preset = "inpaint-room-tone"\n')
    project = load_project(tmp_path)
    assert stem_from_path(project, builtins, drop(project, "restyle/a.wav")).preset_name == "restyle-radio"
    assert stem_from_path(project, builtins, drop(project, "inpaint/a.wav")).preset_name == "inpaint-room-tone"


def test_unknown_project_default_preset_names_project_toml(tmp_path: Path, builtins):
    (tmp_path / "project.toml").write_text('restyle_preset = "restyle-radioo"\n')
    project = load_project(tmp_path)
    with pytest.raises(InputError) as info:
        stem_from_path(project, builtins, drop(project, "restyle/a.wav"))
    assert info.value.where.endswith("project.toml restyle_preset")
    assert "restyle-radio" in info.value.reason


def test_preset_folder_selects_preset(project, builtins):
    stem = stem_from_path(project, builtins, drop(project, "restyle/restyle-radio/x.wav"))
    assert (stem.kind, stem.preset_name, stem.name) == ("restyle", "restyle-radio", "x")
    assert stem.preset.strength == builtins["restyle-radio"].preset.strength


def test_sidecar_gaps_and_strength(project, builtins):
    path = drop(project, "inpaint/take3.wav", sidecar="gaps = [[4.0, 4.5], [1.0, 1.25]]\nstrength = 0.3\nseed = 9\n")
    stem = stem_from_path(project, builtins, path)
    assert stem.gaps == ((1.0, 1.25), (4.0, 4.5))
    assert stem.preset.strength == 0.3 and stem.preset.seed == 9
    assert stem.preset.prompt == builtins["inpaint-seamless"].preset.prompt

    path = drop(project, "restyle/restyle-steel-drum/keys.wav", sidecar='strength = 0.8\nprompt = "steel drum solo"\n')
    stem = stem_from_path(project, builtins, path)
    assert stem.preset.strength == 0.8 and stem.preset.prompt == "steel drum solo"
    assert stem.preset.chain == builtins["restyle-steel-drum"].preset.chain
    assert stem.gaps is None


def test_sidecar_preset_overrides_folder(project, builtins):
    path = drop(project, "restyle/a.wav", sidecar='preset = "restyle-steel-drum"\n')
    assert stem_from_path(project, builtins, path).preset_name == "restyle-steel-drum"
    path = drop(project, "restyle/b.wav", sidecar='preset = "ui-click"\n')
    with pytest.raises(InputError, match="foley preset, not a restyle preset"):
        stem_from_path(project, builtins, path)


@pytest.mark.parametrize(
    "sidecar, field, reason",
    [
        ("strength = 1.5\n", "strength", "between 0 and 1"),
        ("gaps = [[2.0, 1.0]]\n", "gaps", "start before it ends"),
        ("gaps = [[-1.0, 1.0]]\n", "gaps", "before 0"),
        ("gaps = [[0.0, 2.0], [1.0, 3.0]]\n", "gaps", "overlap"),
        ("gaps = []\n", "gaps", "at least one"),
        ('gaps = [[1.0, "x"]]\n', "gaps", "number"),
        ("duration = 3\n", "duration", "unknown field"),
        ("strenght = 0.2\n", "strenght", "did you mean 'strength'"),
        ("steps = 0\n", "steps", "between 1 and 999"),
        ("takes = 1.5\n", "takes", "whole number"),
        ("gaps = [[1.0, 2.0]\n", "", "invalid TOML"),
    ],
)
def test_bad_sidecar(project, builtins, sidecar: str, field: str, reason: str):
    path = drop(project, "inpaint/a.wav", sidecar=sidecar)
    with pytest.raises(InputError) as info:
        stem_from_path(project, builtins, path)
    err = info.value
    assert err.where.split()[0].endswith("inpaint/a.toml")
    assert err.where.endswith(field)
    assert reason in err.reason
    assert "\n" not in str(err)


def test_gaps_only_for_inpaint(project, builtins):
    path = drop(project, "restyle/a.wav", sidecar="gaps = [[1.0, 2.0]]\n")
    with pytest.raises(InputError, match="only inpaint"):
        stem_from_path(project, builtins, path)


def test_foley_preset_folder_rejected(project, builtins):
    path = drop(project, "restyle/footsteps-gravel/a.wav")
    with pytest.raises(InputError) as info:
        stem_from_path(project, builtins, path)
    assert info.value.where.endswith("restyle/footsteps-gravel/")
    assert "preset 'footsteps-gravel' is a foley preset, not a restyle preset" in info.value.reason
    assert "restyle-radio" in info.value.reason  # lists what would work


def test_inpaint_preset_under_restyle_rejected(project, builtins):
    with pytest.raises(InputError, match="inpaint preset, not a restyle preset"):
        stem_from_path(project, builtins, drop(project, "restyle/inpaint-seamless/a.wav"))


def test_unknown_preset_folder_lists_close_names(project, builtins):
    with pytest.raises(InputError) as info:
        stem_from_path(project, builtins, drop(project, "restyle/restyle-steeldrum/a.wav"))
    assert info.value.where.endswith("restyle/restyle-steeldrum/")
    assert "no preset named 'restyle-steeldrum'" in info.value.reason
    assert "restyle-steel-drum" in info.value.reason


def test_not_a_drop(project, builtins):
    with pytest.raises(InputError, match="not a drop"):
        stem_from_path(project, builtins, drop(project, "renders/a.wav"))
    with pytest.raises(InputError, match="not a drop"):
        stem_from_path(project, builtins, drop(project, "restyle/restyle-radio/deeper/a.wav"))
    with pytest.raises(InputError, match="not an audio file"):
        stem_from_path(project, builtins, drop(project, "restyle/notes.txt"))


def test_scan_drops(project, builtins):
    expected = [
        drop(project, "inpaint/b.wav"),
        drop(project, "inpaint/inpaint-room-tone/c.aiff"),
        drop(project, "restyle/a.WAV"),
        drop(project, "restyle/restyle-radio/z.flac"),
        drop(project, "restyle/restyle-radio/y.mp3"),
    ]
    bad = drop(project, "restyle/footsteps-gravel/f.wav")
    drop(project, "restyle/.hidden.wav")
    drop(project, "restyle/copying.wav.partial")
    drop(project, "restyle/notes.txt")
    drop(project, "restyle/restyle-radio/deeper/d.wav")
    drop(project, "restyle/.trash/e.wav")
    drop(project, "renders/r.wav")
    drop(project, "a.wav")
    stems, errors = scan_drops(project, builtins)
    assert [s.path for s in stems] == sorted(expected)
    [err] = errors
    assert "footsteps-gravel" in str(err)
    assert bad.parent.name in err.where


def test_scan_empty_project(project, builtins):
    assert scan_drops(project, builtins) == ([], [])


def test_safe_name():
    assert safe_name("Lead Vox (final)") == "Lead_Vox_final"
    assert safe_name("..weird") == "weird"
    assert safe_name("???") == "stem"
    assert len(safe_name("x" * 300)) == 100


def test_a_stem_symlinked_out_of_the_project_is_refused_not_rendered(tmp_path, builtins):
    (tmp_path / "proj").mkdir()
    project = load_project(tmp_path / "proj")
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"")
    inside = drop(project, "stems/kept.wav")
    (project.root / "restyle").mkdir()
    (project.root / "restyle" / "x.wav").symlink_to(secret)  # the reported case: rendered today
    (project.root / "restyle" / "ok.wav").symlink_to(inside)  # a symlink that stays inside is fine
    with pytest.raises(InputError) as info:
        stem_from_path(project, builtins, project.root / "restyle" / "x.wav")
    assert "outside the project" in info.value.reason and info.value.where.endswith("restyle/x.wav")
    stems, errors = scan_drops(project, builtins)
    assert [s.path.name for s in stems] == ["ok.wav"]
    [err] = errors
    assert "restyle/x.wav" in str(err) and "outside the project" in str(err) and "\n" not in str(err)


def test_symlinked_drop_folders_are_not_followed_out_of_the_project(tmp_path, builtins):
    (tmp_path / "proj").mkdir()
    project = load_project(tmp_path / "proj")
    elsewhere = tmp_path / "elsewhere"
    for name in ("a.wav", "b.wav"):
        (elsewhere / name).parent.mkdir(parents=True, exist_ok=True)
        (elsewhere / name).write_bytes(b"")
    (project.root / "restyle").mkdir()
    (project.root / "restyle" / "restyle-radio").symlink_to(elsewhere, target_is_directory=True)
    shared = drop(project, "shared/c.wav").parent
    (project.root / "inpaint").mkdir()
    (project.root / "inpaint" / "inpaint-room-tone").symlink_to(shared, target_is_directory=True)  # inside: followed
    stems, errors = scan_drops(project, builtins)
    assert [(s.kind, s.preset_name, s.path.name) for s in stems] == [("inpaint", "inpaint-room-tone", "c.wav")]
    [err] = errors
    assert err.where.endswith("restyle/restyle-radio/") and "leads out of the project; not followed" in err.reason
    with pytest.raises(InputError, match="outside the project"):  # what the watcher hands over is checked too
        stem_from_path(project, builtins, project.root / "restyle" / "restyle-radio" / "a.wav")


def test_a_drop_folder_that_is_itself_a_symlink_out_of_the_project_is_not_scanned(tmp_path, builtins):
    (tmp_path / "proj").mkdir()
    project = load_project(tmp_path / "proj")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.wav").write_bytes(b"")
    (project.root / "restyle").symlink_to(elsewhere, target_is_directory=True)
    stems, errors = scan_drops(project, builtins)
    assert stems == [] and len(errors) == 1 and "restyle/" in errors[0].where
